package catalog

import (
	"net"
	"net/url"
	"strings"

	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/pki"
)

// KubeconfigSpec is one kubeconfig of the plan: a client certificate of the
// plan, embedded with its CA and the server it talks to.
type KubeconfigSpec struct {
	// Name identifies the kubeconfig ("admin", "kubelet-node-0").
	Name        string `json:"name"`
	Description string `json:"description"`
	// File is the file name, relative to the kubeconfig directory.
	File string `json:"file"`
	// Server is the API server URL.
	Server string `json:"server"`
	// Cluster and User name the kubeconfig's cluster and user entries; the
	// context is User@Cluster, as kubeadm names it.
	Cluster string `json:"cluster"`
	User    string `json:"user"`
	// Cert is the Name of the client certificate of the plan it embeds.
	Cert string `json:"cert"`
	// Node is set for a node's kubelet kubeconfig.
	Node string `json:"node,omitempty"`
	// InstalledAs is the name the file has on its node (kubelet.conf): a
	// directory of one real node holds that instead of File.
	InstalledAs string `json:"installedAs,omitempty"`
}

// Context is the name of the kubeconfig's only context.
func (k KubeconfigSpec) Context() string { return k.User + "@" + k.Cluster }

// Kubeconfig returns the kubeconfig of the plan with the given name.
func (p *Plan) Kubeconfig(name string) (KubeconfigSpec, bool) {
	for _, k := range p.Kubeconfigs {
		if k.Name == name {
			return k, true
		}
	}
	return KubeconfigSpec{}, false
}

// KubeconfigOf returns the kubeconfig that holds an embedded-only
// certificate (CertSpec.Embedded).
func (p *Plan) KubeconfigOf(cert string) (KubeconfigSpec, bool) {
	for _, k := range p.Kubeconfigs {
		if k.Cert == cert {
			return k, true
		}
	}
	return KubeconfigSpec{}, false
}

// servers returns the API server URLs: the endpoint everyone outside the
// control plane uses, and the local one components on a control-plane node
// use: the API server's own port (APIServer.SecurePort) on localHost (the
// hard way's 127.0.0.1, kubeadm's advertise address).
func (in inputs) servers(localHost string) (endpoint, local string) {
	return "https://" + in.c.APIServer.Endpoint, "https://" + net.JoinHostPort(localHost, in.c.APIServer.SecurePort())
}

// hardwayKubeconfigs are the kubeconfigs of "Kubernetes the Hard Way", each
// embedding a certificate that also lives in the PKI directory.
func hardwayKubeconfigs(in inputs, p *Plan) {
	endpoint, local := in.servers("127.0.0.1")
	add := func(name, cert, user, server, node, desc string) {
		p.Kubeconfigs = append(p.Kubeconfigs, KubeconfigSpec{
			Name: name, Description: desc, File: name + ".kubeconfig", Server: server,
			Cluster: in.c.Name, User: user, Cert: cert, Node: node,
		})
	}
	for _, n := range in.c.Workers() {
		add(n.Name, n.Name, "system:node:"+n.Name, endpoint, n.Name, "kubelet of node "+n.Name)
	}
	add("kube-proxy", "kube-proxy", "system:kube-proxy", endpoint, "", "kube-proxy on every worker")
	add("kube-controller-manager", "kube-controller-manager", "system:kube-controller-manager", local, "", "kube-controller-manager on the control plane")
	add("kube-scheduler", "kube-scheduler", "system:kube-scheduler", local, "", "kube-scheduler on the control plane")
	add("admin", "admin", "admin", endpoint, "", "the cluster administrator's kubectl")
}

// kubeadmKubeconfigs are kubeadm v1.37's kubeconfigs. Their client
// certificates exist only inside them (CertSpec.Embedded), as kubeadm does.
func kubeadmKubeconfigs(in inputs, p *Plan) {
	// controller-manager.conf and scheduler.conf talk to the API server on
	// their own node, at its advertise address, as kubeadm writes them.
	advertise := "127.0.0.1"
	if cp := in.c.ControlPlanes()[0]; len(cp.IPs) > 0 {
		advertise = cp.IPs[0]
	}
	endpoint, local := in.servers(advertise)
	client := pki.UsageClientAuth
	add := func(name, file, server, node, desc string, subj pki.Subject) {
		cert := in.leaf(name, "ca", "", "client certificate embedded in "+file, subj, client)
		cert.Embedded, cert.Node = true, node
		p.Certs = append(p.Certs, cert)
		k := KubeconfigSpec{
			Name: name, Description: desc, File: file, Server: server,
			Cluster: in.c.Name, User: subj.CommonName, Cert: name, Node: node,
		}
		if node != "" {
			k.InstalledAs = "kubelet.conf"
		}
		p.Kubeconfigs = append(p.Kubeconfigs, k)
	}
	// Since v1.29 admin.conf is in kubeadm:cluster-admins, which kubeadm
	// binds to cluster-admin; only super-admin.conf is in system:masters, the
	// group RBAC cannot revoke. Before v1.29 there was no super-admin.conf
	// and admin.conf was in system:masters: a cluster of that era has no
	// binding for kubeadm:cluster-admins, so its admin.conf stays as it is
	// ("Certificate Management with kubeadm", kubeadm v1.29 release notes).
	if in.c.Before(1, 29) {
		add("admin.conf", "admin.conf", endpoint, "", "the cluster administrator (system:masters bypasses RBAC; kubeadm before v1.29)",
			in.leafSubject("kubernetes-admin", "system:masters"))
	} else {
		add("admin.conf", "admin.conf", endpoint, "", "the cluster administrator (kubeadm:cluster-admins, bound to cluster-admin)",
			in.leafSubject("kubernetes-admin", "kubeadm:cluster-admins"))
		add("super-admin.conf", "super-admin.conf", endpoint, "", "break-glass super user (system:masters bypasses RBAC)",
			in.leafSubject("kubernetes-super-admin", "system:masters"))
	}
	add("controller-manager.conf", "controller-manager.conf", local, "", "kube-controller-manager",
		in.leafSubject("system:kube-controller-manager"))
	add("scheduler.conf", "scheduler.conf", local, "", "kube-scheduler",
		in.leafSubject("system:kube-scheduler"))
	for _, n := range in.c.Nodes {
		// A control-plane node's kubelet talks to its own API server (kubeadm
		// init writes kubelet.conf with the local endpoint); a worker's to the
		// cluster endpoint.
		server := endpoint
		if n.Has(cluster.RoleControlPlane) {
			host := "127.0.0.1"
			if len(n.IPs) > 0 {
				host = n.IPs[0]
			}
			_, server = in.servers(host)
		}
		add("kubelet-"+n.Name+".conf", "kubelet-"+n.Name+".conf", server, n.Name, "kubelet of node "+n.Name+" (installed as /etc/kubernetes/kubelet.conf)",
			in.leafSubject("system:node:"+n.Name, "system:nodes"))
	}
}

// APIServerCert is the plan's kube-apiserver serving certificate.
func (p *Plan) APIServerCert() (CertSpec, bool) {
	if p.Profile == Kubeadm {
		return p.Cert("apiserver")
	}
	return p.Cert("kube-api-server")
}

// ServesAt reports whether server, a kubeconfig's server URL, reaches the
// API server as the plan makes it: the kubeconfig's own URL, or https on the
// same port at any name or address the API server certificate holds.
// Installations differ in which of those names a kubeconfig uses
// ("Kubernetes the Hard Way" has changed its admin and control-plane
// kubeconfigs between 127.0.0.1 and server.kubernetes.local), and each works.
func (p *Plan) ServesAt(k KubeconfigSpec, server string) bool {
	if server == k.Server {
		return true
	}
	want, err := url.Parse(k.Server)
	if err != nil {
		return false
	}
	got, err := url.Parse(server)
	if err != nil || got.Scheme != "https" || got.Port() != want.Port() || (got.Path != "" && got.Path != "/") ||
		got.User != nil || got.RawQuery != "" || got.Fragment != "" {
		return false
	}
	api, ok := p.APIServerCert()
	if !ok {
		return false
	}
	host := got.Hostname()
	if ip := net.ParseIP(host); ip != nil {
		return containsIP(api.Profile.IPs, ip)
	}
	return contains(api.Profile.DNSNames, strings.ToLower(host))
}
