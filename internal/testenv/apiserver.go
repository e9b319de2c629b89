package testenv

import (
	"crypto/tls"
	"strconv"
	"strings"
	"testing"
)

// DefaultServiceCIDR is the service IP range used when
// APIServerConfig.ServiceCIDR is empty (kubeadm's default). The first IP,
// 10.96.0.1, belongs in the apiserver serving certificate's SANs.
const DefaultServiceCIDR = "10.96.0.0/12"

// ServiceAccountIssuer is the --service-account-issuer kube-apiserver is
// started with.
const ServiceAccountIssuer = "https://kubernetes.default.svc.cluster.local"

// APIServerConfig holds the kube-apiserver flags that depend on the PKI under
// test. All files are PEM. Empty optional fields are omitted from Args.
type APIServerConfig struct {
	// Port is the --secure-port on 127.0.0.1 (required; see FreePort).
	Port int

	// EtcdEndpoint is the etcd client URL (required), e.g. from StartEtcd.
	EtcdEndpoint string
	// EtcdCAFile verifies etcd's serving certificate; EtcdCertFile and
	// EtcdKeyFile are the apiserver's etcd client certificate.
	EtcdCAFile, EtcdCertFile, EtcdKeyFile string

	// ClientCAFile verifies client certificates (--client-ca-file).
	ClientCAFile string
	// TLSCertFile and TLSKeyFile are the serving certificate (required: it
	// must cover 127.0.0.1, or kube-apiserver would write a self-signed
	// one to /var/run/kubernetes).
	TLSCertFile, TLSKeyFile string
	// ServiceAccountKeyFile (public keys verifying tokens) and
	// ServiceAccountSigningKeyFile (private key issuing them) are required.
	ServiceAccountKeyFile, ServiceAccountSigningKeyFile string
	// ServiceCIDR defaults to DefaultServiceCIDR. It must be IPv4, like
	// the advertise address.
	ServiceCIDR string

	// KubeletClientCert and KubeletClientKey are the client certificate
	// used to reach kubelets (optional).
	KubeletClientCert, KubeletClientKey string

	// RequestHeaderClientCAFile enables the front proxy (aggregation
	// layer) authenticator: --requestheader-client-ca-file together with
	// kubeadm's X-Remote-* header flags (optional).
	RequestHeaderClientCAFile string
	// RequestHeaderAllowedNames are the accepted front proxy client CNs;
	// they default to "front-proxy-client" when RequestHeaderClientCAFile
	// is set.
	RequestHeaderAllowedNames []string
	// ProxyClientCertFile and ProxyClientKeyFile are the certificate the
	// apiserver presents to aggregated API servers (optional).
	ProxyClientCertFile, ProxyClientKeyFile string

	// ExtraArgs are appended last; a later flag overrides an earlier one.
	ExtraArgs []string
}

// Args returns the kube-apiserver flags for c. Besides the PKI flags they
// keep the apiserver on 127.0.0.1 (--bind-address, --advertise-address) and
// self-contained (--endpoint-reconciler-type=none), with kubeadm's
// authorization mode, admission plugins, --allow-privileged and service
// account issuer.
func (c APIServerConfig) Args() []string {
	args := []string{
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(c.Port),
		"--endpoint-reconciler-type=none",
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--allow-privileged=true",
		"--service-account-issuer=" + ServiceAccountIssuer,
		"--service-cluster-ip-range=" + or(c.ServiceCIDR, DefaultServiceCIDR),
		"--etcd-servers=" + c.EtcdEndpoint,
	}
	flag := func(name, value string) {
		if value != "" {
			args = append(args, "--"+name+"="+value)
		}
	}
	flag("etcd-cafile", c.EtcdCAFile)
	flag("etcd-certfile", c.EtcdCertFile)
	flag("etcd-keyfile", c.EtcdKeyFile)
	flag("client-ca-file", c.ClientCAFile)
	flag("tls-cert-file", c.TLSCertFile)
	flag("tls-private-key-file", c.TLSKeyFile)
	flag("service-account-key-file", c.ServiceAccountKeyFile)
	flag("service-account-signing-key-file", c.ServiceAccountSigningKeyFile)
	flag("kubelet-client-certificate", c.KubeletClientCert)
	flag("kubelet-client-key", c.KubeletClientKey)
	if c.RequestHeaderClientCAFile != "" {
		names := c.RequestHeaderAllowedNames
		if len(names) == 0 {
			names = []string{"front-proxy-client"}
		}
		args = append(args,
			"--requestheader-client-ca-file="+c.RequestHeaderClientCAFile,
			"--requestheader-allowed-names="+strings.Join(names, ","),
			"--requestheader-username-headers=X-Remote-User",
			"--requestheader-group-headers=X-Remote-Group",
			"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		)
	}
	flag("proxy-client-cert-file", c.ProxyClientCertFile)
	flag("proxy-client-key-file", c.ProxyClientKeyFile)
	return append(args, c.ExtraArgs...)
}

// StartAPIServer starts kube-apiserver with cfg.Args() and waits until
// https://127.0.0.1:PORT/readyz answers 200 using readyTLS, which should
// trust the serving CA and present an admin client certificate (anonymous
// requests are only authorized once RBAC has bootstrapped).
func StartAPIServer(t testing.TB, bins Binaries, cfg APIServerConfig, readyTLS *tls.Config) *Process {
	t.Helper()
	if cfg.Port == 0 {
		t.Fatal("testenv: start kube-apiserver: APIServerConfig.Port is required (use FreePort)")
	}
	if cfg.EtcdEndpoint == "" || cfg.TLSCertFile == "" {
		t.Fatal("testenv: start kube-apiserver: APIServerConfig.EtcdEndpoint and TLSCertFile are required")
	}
	p := Start(t, "kube-apiserver", bins.KubeAPIServer, cfg.Args()...)
	WaitReady(t, "https://127.0.0.1:"+strconv.Itoa(cfg.Port)+"/readyz", readyTLS, p)
	return p
}

// RestartAPIServer stops kube-apiserver p (SIGTERM, as a supervisor would)
// and starts it again with the same flags — same port, same etcd, so every
// object is still there and clients reconnect to the same address — then
// waits until /readyz answers 200 using readyTLS. down, if not nil, runs
// while the server is stopped (to inject a longer outage). It returns the
// new process.
func RestartAPIServer(t testing.TB, p *Process, readyTLS *tls.Config, down func()) *Process {
	t.Helper()
	port := ""
	for _, a := range p.args {
		if v, ok := strings.CutPrefix(a, "--secure-port="); ok {
			port = v
		}
	}
	if port == "" {
		t.Fatalf("testenv: restart kube-apiserver: no --secure-port in its flags")
	}
	p.Stop()
	if down != nil {
		down()
	}
	np := p.Restart(t)
	WaitReady(t, "https://127.0.0.1:"+port+"/readyz", readyTLS, np)
	return np
}
