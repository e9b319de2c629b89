package wiring

import (
	"net"
	"slices"
	"strings"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/pki"
)

const (
	cert = catalog.SourceCert
	key  = catalog.SourceKey
	pub  = catalog.SourcePublicKey
	kc   = catalog.SourceKubeconfig
)

// etcd serves clients and peers with client-certificate authentication.
// The hard way has no etcd certificates of its own: etcd runs on the
// control plane beside kube-apiserver, whose certificate (client and server
// auth, 127.0.0.1 among its SANs) serves as etcd's.
func (w *wirer) etcd() error {
	server, peer, ca := "etcd-server", "etcd-peer", w.ca("etcd-ca")
	if w.hardway() {
		server, peer = "kube-api-server", "kube-api-server"
	}
	ip := w.nodeIP()
	w.flag("name", w.node.Name)
	w.flag("data-dir", w.path("/var/lib/etcd"))
	w.flag("listen-client-urls", w.etcdURLs(EtcdClientPort))
	w.flag("advertise-client-urls", url(ip, EtcdClientPort))
	w.flag("listen-peer-urls", url(ip, EtcdPeerPort))
	w.flag("initial-advertise-peer-urls", url(ip, EtcdPeerPort))
	w.flag("initial-cluster", w.node.Name+"="+url(ip, EtcdPeerPort))
	w.flag("cert-file", w.file(cert, server))
	w.flag("key-file", w.file(key, server))
	w.flag("trusted-ca-file", w.file(cert, ca))
	w.flag("client-cert-auth", "true")
	w.flag("peer-cert-file", w.file(cert, peer))
	w.flag("peer-key-file", w.file(key, peer))
	w.flag("peer-trusted-ca-file", w.file(cert, ca))
	w.flag("peer-client-cert-auth", "true")
	return w.err
}

func (w *wirer) apiServer() error {
	if _, _, err := net.SplitHostPort(w.c.APIServer.Endpoint); err != nil {
		return err
	}
	port := w.c.APIServer.SecurePort()
	ip := w.nodeIP()
	w.flag("advertise-address", ip)
	if w.c.APIServer.BindAddress != "" {
		w.flag("bind-address", w.c.APIServer.BindAddress)
	}
	w.flag("secure-port", port)
	w.flag("allow-privileged", "true")
	w.flag("authorization-mode", "Node,RBAC")
	w.flag("enable-admission-plugins", "NodeRestriction")
	w.flag("service-cluster-ip-range", w.c.ServiceCIDR)
	w.flag("service-account-issuer", "https://kubernetes.default.svc."+w.c.DNSDomain)
	w.flag("etcd-servers", w.etcdServers())
	if isLoopback(ip) {
		// kube-apiserver refuses to publish a loopback address as the
		// kubernetes Service endpoint; a one-host cluster turns that off.
		w.flag("endpoint-reconciler-type", "none")
	}
	if w.hardway() {
		w.flag("client-ca-file", w.file(cert, "ca"))
		w.flag("tls-cert-file", w.file(cert, "kube-api-server"))
		w.flag("tls-private-key-file", w.file(key, "kube-api-server"))
		w.etcdClient("ca", "kube-api-server")
		w.flag("kubelet-certificate-authority", w.file(cert, "ca"))
		w.flag("kubelet-client-certificate", w.file(cert, "kube-api-server"))
		w.flag("kubelet-client-key", w.file(key, "kube-api-server"))
		w.flag("service-account-key-file", w.file(cert, "service-accounts"))
		w.flag("service-account-signing-key-file", w.file(key, "service-accounts"))
		return w.err
	}
	frontProxyCA := w.ca("front-proxy-ca")
	w.flag("client-ca-file", w.file(cert, "ca"))
	w.flag("tls-cert-file", w.file(cert, "apiserver"))
	w.flag("tls-private-key-file", w.file(key, "apiserver"))
	w.etcdClient(w.ca("etcd-ca"), "apiserver-etcd-client")
	w.flag("kubelet-client-certificate", w.file(cert, "apiserver-kubelet-client"))
	w.flag("kubelet-client-key", w.file(key, "apiserver-kubelet-client"))
	w.flag("service-account-key-file", w.file(pub, "sa"))
	w.flag("service-account-signing-key-file", w.file(key, "sa"))
	w.flag("proxy-client-cert-file", w.file(cert, "front-proxy-client"))
	w.flag("proxy-client-key-file", w.file(key, "front-proxy-client"))
	w.flag("requestheader-client-ca-file", w.file(cert, frontProxyCA))
	w.flag("requestheader-allowed-names", "front-proxy-client")
	w.flag("requestheader-username-headers", "X-Remote-User")
	w.flag("requestheader-group-headers", "X-Remote-Group")
	w.flag("requestheader-extra-headers-prefix", "X-Remote-Extra-")
	return w.err
}

// etcdServers is where kube-apiserver finds etcd: the local member on
// 127.0.0.1, or every endpoint of an external etcd (kubeadm's
// etcd.external.endpoints), comma-separated as --etcd-servers takes them.
func (w *wirer) etcdServers() string {
	if x := w.c.Etcd.External; x != nil {
		return strings.Join(x.Endpoints, ",")
	}
	return url("127.0.0.1", EtcdClientPort)
}

// etcdClient sets the CA, certificate and key kube-apiserver dials etcd
// with: the layout's own (ca, a client cert) for a local etcd. An external
// etcd is certified outside this PKI, so its files are the ones the spec
// names, as given (not under --root: no bundle installs them), and a file
// the spec leaves out is not set, as kubeadm writes its manifest.
func (w *wirer) etcdClient(ca, client string) {
	x := w.c.Etcd.External
	if x == nil {
		w.flag("etcd-cafile", w.file(cert, ca))
		w.flag("etcd-certfile", w.file(cert, client))
		w.flag("etcd-keyfile", w.file(key, client))
		return
	}
	for _, f := range []struct{ name, path string }{{"etcd-cafile", x.CAFile}, {"etcd-certfile", x.CertFile}, {"etcd-keyfile", x.KeyFile}} {
		if f.path != "" {
			w.flag(f.name, f.path)
		}
	}
}

// controllerManager signs the Certificates API's kubernetes.io/* signers
// with the cluster CA, hands ca.crt to every Pod as the root CA, and signs
// service-account tokens with the key the API server verifies them with.
func (w *wirer) controllerManager() error {
	kubeconfig, sa := "controller-manager.conf", "sa"
	if w.hardway() {
		kubeconfig, sa = "kube-controller-manager", "service-accounts"
	}
	saKey := w.file(key, sa)
	w.componentAuth(w.file(kc, kubeconfig))
	w.servingCert(KubeControllerManager)
	w.flag("cluster-name", w.c.Name)
	w.flag("client-ca-file", w.file(cert, "ca"))
	if !w.externalCA {
		// With an external CA there is no key to sign with: the built-in
		// signer stays off, as kubeadm leaves it in external-CA mode.
		w.flag("cluster-signing-cert-file", w.file(cert, "ca"))
		w.flag("cluster-signing-key-file", w.file(key, "ca"))
	}
	w.flag("root-ca-file", w.file(cert, "ca"))
	w.flag("service-account-private-key-file", saKey)
	w.flag("use-service-account-credentials", "true")
	w.flag("service-cluster-ip-range", w.c.ServiceCIDR)
	if w.c.PodCIDR != "" {
		w.flag("cluster-cidr", w.c.PodCIDR)
		w.flag("allocate-node-cidrs", "true")
	}
	if !w.hardway() {
		w.flag("requestheader-client-ca-file", w.file(cert, w.ca("front-proxy-ca")))
		w.flag("controllers", "*,bootstrapsigner,tokencleaner")
	}
	return w.err
}

func (w *wirer) scheduler() error {
	kubeconfig := "scheduler.conf"
	if w.hardway() {
		kubeconfig = "kube-scheduler"
	}
	w.componentAuth(w.file(kc, kubeconfig))
	w.servingCert(KubeScheduler)
	return w.err
}

// servingCert makes kube-scheduler or kube-controller-manager serve its
// own certificate when the plan gives it serverAuth (the hard way's
// ca.conf does), so what it serves on its secure port is a file kubepki
// manages, renews and can compare with what is served. Without
// --tls-cert-file it serves a self-signed certificate it makes in memory.
func (w *wirer) servingCert(comp Component) {
	c, ok := ServingCert(w.plan, comp)
	if !ok {
		return
	}
	w.flag("tls-cert-file", w.file(cert, c.Name))
	w.flag("tls-private-key-file", w.file(key, c.Name))
}

// ServingCert is the plan's certificate kube-scheduler or
// kube-controller-manager serves from a file: its own certificate, when
// it has serverAuth (the hard way's ca.conf gives it, with SANs, through
// the spec's components). Otherwise there is none.
func ServingCert(plan *catalog.Plan, comp Component) (catalog.CertSpec, bool) {
	if plan.Profile != catalog.Hardway || (comp != KubeScheduler && comp != KubeControllerManager) {
		return catalog.CertSpec{}, false
	}
	c, ok := plan.Cert(string(comp))
	if !ok || !slices.Contains(c.Profile.Usages, pki.UsageServerAuth) {
		return catalog.CertSpec{}, false
	}
	return c, true
}

// componentAuth is what kube-controller-manager and kube-scheduler share:
// one kubeconfig for the API, for authenticating and authorizing requests
// to their own /healthz and /metrics, localhost serving, leader election.
func (w *wirer) componentAuth(kubeconfig string) {
	w.flag("kubeconfig", kubeconfig)
	w.flag("authentication-kubeconfig", kubeconfig)
	w.flag("authorization-kubeconfig", kubeconfig)
	w.flag("bind-address", "127.0.0.1")
	w.flag("leader-elect", "true")
}

func isLoopback(ip string) bool {
	return strings.HasPrefix(ip, "127.") || ip == "::1"
}
