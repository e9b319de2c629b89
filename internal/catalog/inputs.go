package catalog

import (
	"fmt"
	"net"
	"time"

	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/pki"
)

// inputs are the values of a spec the tables need, derived once.
type inputs struct {
	c            *cluster.Cluster
	alg          pki.KeyAlgorithm
	caValidity   time.Duration
	leafValidity time.Duration
	serviceIP    net.IP
	endpointHost string
}

func newInputs(c *cluster.Cluster) (inputs, error) {
	alg, err := pki.ParseKeyAlgorithm(c.KeyAlgorithm)
	if err != nil {
		return inputs{}, fmt.Errorf("keyAlgorithm: %w", err)
	}
	svc, err := cluster.ServiceIP(c.ServiceCIDR)
	if err != nil {
		return inputs{}, fmt.Errorf("serviceCIDR: %w", err)
	}
	host, _, err := net.SplitHostPort(c.APIServer.Endpoint)
	if err != nil {
		return inputs{}, fmt.Errorf("apiServer.endpoint: %w", err)
	}
	return inputs{
		c:            c,
		alg:          alg,
		caValidity:   c.Validity.CA.Duration,
		leafValidity: c.Validity.Leaf.Duration,
		serviceIP:    svc,
		endpointHost: host,
	}, nil
}

// tokenKeyAlgorithm is the algorithm of service-account signing keys:
// kube-apiserver verifies tokens signed with RSA or ECDSA only, so an
// Ed25519 cluster still gets an ECDSA-P256 token key.
func (in inputs) tokenKeyAlgorithm() pki.KeyAlgorithm {
	if in.alg.CanSignTokens() {
		return in.alg
	}
	return pki.ECDSAP256
}

// caSubject is the full subject defaults plus a CN.
func (in inputs) caSubject(cn string) pki.Subject {
	s := in.leafSubject(cn)
	s.Organization = nonEmpty(in.c.Subject.Organization)
	return s
}

// leafSubject carries C, ST and L but never the default O: a leaf's O is
// its list of Kubernetes groups, and a stray organisation there would put
// the component into a group nobody intended.
func (in inputs) leafSubject(cn string, groups ...string) pki.Subject {
	return pki.Subject{
		CommonName:   cn,
		Organization: groups,
		Country:      nonEmpty(in.c.Subject.Country),
		Province:     nonEmpty(in.c.Subject.Province),
		Locality:     nonEmpty(in.c.Subject.Locality),
	}
}

func (in inputs) ca(name, path, cn, desc string) CertSpec {
	return CertSpec{
		Name: name, Description: desc, Path: path, KeyAlgorithm: in.alg,
		Profile: pki.Profile{Subject: in.caSubject(cn), IsCA: true, Validity: in.caValidity},
	}
}

func (in inputs) leaf(name, ca, path, desc string, subj pki.Subject, usages ...pki.Usage) CertSpec {
	return CertSpec{
		Name: name, Description: desc, CA: ca, Path: path, KeyAlgorithm: in.alg,
		Profile: pki.Profile{Subject: subj, Usages: usages, Validity: in.leafValidity},
	}
}

// apiServerNames are the names clients use for the API server: the
// kubernetes Service in every spelling a Pod may resolve, the service IP
// (the ClusterIP Pods dial), the endpoint, the control-plane nodes and the
// extra SANs of the spec.
func (in inputs) apiServerNames(dns []string, ips []net.IP) ([]string, []net.IP) {
	dns = append(dns,
		"kubernetes",
		"kubernetes.default",
		"kubernetes.default.svc",
	)
	dns = append(dns, "kubernetes.default.svc."+in.c.DNSDomain)
	ips = append(ips, in.serviceIP)
	for _, n := range in.c.ControlPlanes() {
		dns, ips = addNames(dns, ips, n.Hostnames...)
		dns, ips = addNames(dns, ips, n.IPs...)
	}
	dns, ips = addNames(dns, ips, in.endpointHost)
	dns, ips = addNames(dns, ips, in.c.APIServer.ExtraSANs...)
	return dns, ips
}

// addNames sorts each name into the DNS or IP list, skipping duplicates.
func addNames(dns []string, ips []net.IP, names ...string) ([]string, []net.IP) {
	for _, s := range names {
		if ip := net.ParseIP(s); ip != nil {
			if !containsIP(ips, ip) {
				ips = append(ips, ip)
			}
			continue
		}
		if !contains(dns, s) {
			dns = append(dns, s)
		}
	}
	return dns, ips
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func containsIP(list []net.IP, ip net.IP) bool {
	for _, x := range list {
		if x.Equal(ip) {
			return true
		}
	}
	return false
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}
