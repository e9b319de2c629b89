package catalog

import (
	"net"

	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/pki"
)

// kubeadm is the catalog of kubeadm v1.37's /etc/kubernetes/pki
// (cmd/kubeadm/app/phases/certs/certlist.go): the same names, CNs, usages
// and SANs, so a directory written here is one kubeadm accepts as its own.
// The node-specific certificates (apiserver, etcd server and peer) are those
// of the first control-plane node. With an external etcd (etcd.external)
// there is no etcd CA and no etcd certificate at all, as kubeadm's
// GetCertsWithoutEtcd: that etcd and its client certificate are someone
// else's.
func kubeadm(in inputs) *Plan {
	client, server := pki.UsageClientAuth, pki.UsageServerAuth
	cp := in.c.ControlPlanes()[0]
	localEtcd := in.c.Etcd.External == nil
	etcdCA, frontProxyCA := "ca", "ca"
	// kubeadm's CAs name themselves in a SAN as well
	// (pkiutil.NewSelfSignedCACert: DNSNames is the CN).
	ca := func(name, path, cn, desc string) CertSpec {
		c := in.ca(name, path, cn, desc)
		c.Profile.DNSNames = []string{cn}
		return c
	}
	p := &Plan{Profile: Kubeadm}
	p.Certs = append(p.Certs, ca("ca", "ca", "kubernetes", "self-signed Kubernetes CA to provision identities for other Kubernetes components"))
	if in.c.SeparateFrontProxyCA() {
		frontProxyCA = "front-proxy-ca"
		p.Certs = append(p.Certs, ca(frontProxyCA, "front-proxy-ca", "front-proxy-ca", "self-signed CA to provision identities for front proxy"))
	}
	if localEtcd && in.c.SeparateEtcdCA() {
		etcdCA = "etcd-ca"
		p.Certs = append(p.Certs, ca(etcdCA, "etcd/ca", "etcd-ca", "self-signed CA to provision identities for etcd"))
	}

	api := in.leaf("apiserver", "ca", "apiserver", "certificate for serving the Kubernetes API",
		in.leafSubject("kube-apiserver"), server)
	api.Node = cp.Name
	api.Profile.DNSNames, api.Profile.IPs = in.apiServerNames([]string{cp.Name}, nil)

	p.Certs = append(p.Certs,
		api,
		in.leaf("apiserver-kubelet-client", "ca", "apiserver-kubelet-client", "certificate for the API server to connect to kubelet",
			in.leafSubject("kube-apiserver-kubelet-client"), client),
		in.leaf("front-proxy-client", frontProxyCA, "front-proxy-client", "certificate for the front proxy client",
			in.leafSubject("front-proxy-client"), client),
	)
	if localEtcd {
		// etcd's serving and peer certificates carry the node's names plus
		// the extra SANs of etcd.local (kubeadm's GetEtcdAltNames and
		// GetEtcdPeerAltNames).
		etcdServer := in.leaf("etcd-server", etcdCA, "etcd/server", "certificate for serving etcd",
			in.leafSubject(cp.Name), server, client)
		etcdServer.Node = cp.Name
		etcdServer.Profile.DNSNames, etcdServer.Profile.IPs = etcdNames(cp, in.c.Etcd.ServerCertSANs)
		etcdPeer := in.leaf("etcd-peer", etcdCA, "etcd/peer", "certificate for etcd nodes to communicate with each other",
			in.leafSubject(cp.Name), server, client)
		etcdPeer.Node = cp.Name
		etcdPeer.Profile.DNSNames, etcdPeer.Profile.IPs = etcdNames(cp, in.c.Etcd.PeerCertSANs)
		p.Certs = append(p.Certs,
			etcdServer,
			etcdPeer,
			in.leaf("etcd-healthcheck-client", etcdCA, "etcd/healthcheck-client", "certificate for liveness probes to healthcheck etcd",
				in.leafSubject("kube-etcd-healthcheck-client"), client),
			in.leaf("apiserver-etcd-client", etcdCA, "apiserver-etcd-client", "certificate the apiserver uses to access etcd",
				in.leafSubject("kube-apiserver-etcd-client"), client),
		)
	}
	p.Keys = []KeySpec{{
		Name: "sa", Path: "sa", KeyAlgorithm: in.tokenKeyAlgorithm(),
		Description: "service-account token signing key pair (sa.key, sa.pub)",
	}}
	return p
}

// etcdNames are the names etcd is reached by on its node: the node name,
// localhost, the node IPs and both loopbacks (kubeadm's GetEtcdAltNames),
// then the spec's extra SANs.
func etcdNames(n cluster.Node, extra []string) ([]string, []net.IP) {
	dns, ips := addNames([]string{n.Name, "localhost"}, nil, n.IPs...)
	dns, ips = addNames(dns, ips, "127.0.0.1", "::1")
	return addNames(dns, ips, extra...)
}
