package catalog

import (
	"net"
	"slices"

	"kubepki.dev/kubepki/internal/pki"
)

// Hard-way identities. The CN is the Kubernetes user and O its groups; the
// default RBAC bindings name these users (system:kube-scheduler, …) and the
// Node authorizer recognises system:node:<name> in group system:nodes.
const (
	hardwayCA = "ca"
)

var loopback = net.IPv4(127, 0, 0, 1)

// hardway is the catalog of "Kubernetes the Hard Way", with the tutorial's
// two mistakes corrected: kube-scheduler's O is system:kube-scheduler (not
// system:system:kube-scheduler), and the API server's cluster-domain name is
// kubernetes.default.svc.<domain> (not kubernetes.svc.cluster.local).
func hardway(in inputs) *Plan {
	client, server := pki.UsageClientAuth, pki.UsageServerAuth
	p := &Plan{Profile: Hardway}
	p.Certs = append(p.Certs,
		in.ca(hardwayCA, "ca", "CA", "self-signed cluster CA; signs every other certificate"),
		in.extras(in.leaf("admin", hardwayCA, "admin", "kubectl client for the cluster administrator (system:masters bypasses RBAC)",
			in.leafSubject("admin", "system:masters"), client)),
	)
	for _, n := range in.c.Workers() {
		// The kubelet is both a client of the API server and a server the API
		// server dials (logs, exec) by node IP, so the node IPs are SANs.
		dns, ips := addNames([]string{n.Name}, nil, n.Hostnames...)
		dns, ips = addNames(dns, ips, n.IPs...)
		if !containsIP(ips, loopback) {
			ips = append(ips, loopback)
		}
		c := in.leaf(n.Name, hardwayCA, n.Name, "kubelet client and serving certificate of node "+n.Name,
			in.leafSubject("system:node:"+n.Name, "system:nodes"), client, server)
		c.Node, c.Profile.DNSNames, c.Profile.IPs = n.Name, dns, ips
		p.Certs = append(p.Certs, c)
	}
	apiDNS, apiIPs := in.apiServerNames(nil, []net.IP{loopback})
	// The tutorial also names kubernetes.default.svc.cluster; keep it so a
	// hard-way cluster's clients that use it still verify.
	apiDNS, apiIPs = addNames(apiDNS, apiIPs, "kubernetes.default.svc.cluster")
	api := in.leaf("kube-api-server", hardwayCA, "kube-api-server",
		"kube-apiserver serving certificate, also its client certificate towards kubelets",
		in.leafSubject("kubernetes"), client, server)
	api.Profile.DNSNames, api.Profile.IPs = apiDNS, apiIPs
	p.Certs = append(p.Certs,
		in.extras(in.leaf("kube-proxy", hardwayCA, "kube-proxy", "kube-proxy client",
			in.leafSubject("system:kube-proxy", "system:node-proxier"), client)),
		in.extras(in.leaf("kube-scheduler", hardwayCA, "kube-scheduler", "kube-scheduler client",
			in.leafSubject("system:kube-scheduler", "system:kube-scheduler"), client)),
		in.extras(in.leaf("kube-controller-manager", hardwayCA, "kube-controller-manager", "kube-controller-manager client",
			in.leafSubject("system:kube-controller-manager", "system:kube-controller-manager"), client)),
		api,
	)
	sa := in.extras(in.leaf("service-accounts", hardwayCA, "service-accounts",
		"service-account token signing key pair (the certificate only carries the public key)",
		in.leafSubject("service-accounts"), client))
	sa.KeyAlgorithm = in.tokenKeyAlgorithm()
	p.Certs = append(p.Certs, sa)
	return p
}

// extras adds to a component certificate what the spec's components say
// it has beyond the catalog: the tutorial's ca.conf gives kube-proxy,
// kube-scheduler and kube-controller-manager serverAuth and SANs, which a
// directory its openssl commands made keeps (cluster.Cluster.Components).
func (in inputs) extras(c CertSpec) CertSpec {
	x, ok := in.c.Components[c.Name]
	if !ok {
		return c
	}
	c.Profile.Usages = slices.Clone(c.Profile.Usages)
	for _, u := range x.ExtraUsages {
		if !slices.Contains(c.Profile.Usages, u) {
			c.Profile.Usages = append(c.Profile.Usages, u)
		}
	}
	c.Profile.DNSNames, c.Profile.IPs = addNames(c.Profile.DNSNames, c.Profile.IPs, x.ExtraSANs...)
	return c
}
