package adopt

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/pki"
)

// The service CIDRs whose first address is common enough to recognise.
var knownServiceCIDRs = []struct{ cidr, source string }{
	{"10.96.0.0/12", "kubeadm's default serviceSubnet"},
	{"10.32.0.0/24", `the service range of "Kubernetes the Hard Way"`},
}

// ServiceCIDR guesses the service CIDR from the kubernetes Service's
// ClusterIP, which is always the CIDR's first usable address
// (cluster.ServiceIP): the certificate names the address, never the
// prefix length. A range someone is known to use (kubeadm's 10.96.0.0/12)
// is taken whole; otherwise the smallest sensible network the address
// begins: the /24 (IPv4) or /112 (IPv6) when the address ends one in 1, or
// the longest prefix it begins if it does not. why says where the prefix
// came from; it is always a guess.
func ServiceCIDR(ip net.IP) (cidr, why string, err error) {
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return "", "", fmt.Errorf("%v is not an IP address", ip)
	}
	addr = addr.Unmap()
	for _, k := range knownServiceCIDRs {
		if first, _ := cluster.ServiceIP(k.cidr); first.Equal(ip) {
			return k.cidr, k.source, nil
		}
	}
	network := prev(addr)
	if !network.IsValid() {
		return "", "", fmt.Errorf("service IP %s is the first address of no network", addr)
	}
	base, maxBits := 24, 30
	if addr.Is6() {
		base, maxBits = 112, 126
	}
	for bits := base; bits <= maxBits; bits++ {
		if p := netip.PrefixFrom(network, bits); p.Masked().Addr() == network {
			return p.String(), fmt.Sprintf("the smallest network of at least /%d that %s begins", base, addr), nil
		}
	}
	return "", "", fmt.Errorf("service IP %s is the first address of no network of /%d or less", addr, maxBits)
}

// prev is the address before a, invalid for the zero address.
func prev(a netip.Addr) netip.Addr {
	b := a.AsSlice()
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] > 0 {
			b[i]--
			p, _ := netip.AddrFromSlice(b)
			return p
		}
		b[i] = 0xff
	}
	return netip.Addr{}
}

// serviceDNSPrefix is how every name of the kubernetes Service that
// carries the cluster's DNS domain begins.
const serviceDNSPrefix = "kubernetes.default.svc."

// kubernetesNames are the names of the kubernetes Service without a domain.
var kubernetesNames = []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc"}

// dnsDomains lists the domains of the kubernetes.default.svc.<domain>
// names among a certificate's DNS SANs, in order.
func dnsDomains(dns []string) []string {
	var out []string
	for _, d := range dns {
		if dom, ok := strings.CutPrefix(d, serviceDNSPrefix); ok && dom != "" {
			out = appendNew(out, dom)
		}
	}
	return out
}

// Lifetime rounds a certificate's lifetime to what a spec would say: to
// whole days when within two hours of one (the issuer backdates NotBefore
// a few minutes: kubeadm and kubepki by 5), else to whole hours.
func Lifetime(c *x509.Certificate) time.Duration {
	d := c.NotAfter.Sub(c.NotBefore)
	day := 24 * time.Hour
	if r := d.Round(day); r > 0 && (d-r).Abs() <= 2*time.Hour {
		return r
	}
	if r := d.Round(time.Hour); r > 0 {
		return r
	}
	return d
}

// keyAlgorithm names a certificate's key as a spec's keyAlgorithm, or ""
// when kubepki cannot generate that kind of key.
func keyAlgorithm(c *x509.Certificate) string {
	a, err := pki.ParseKeyAlgorithm(string(pki.AlgorithmOf(c.PublicKey)))
	if err != nil {
		return ""
	}
	return string(a)
}

// common reads the API server certificate (apiStem) and the cluster CA,
// fills in what both layouts infer alike from them (the key algorithm of
// the leaves, the lifetimes, the CA's subject and the service network),
// and returns the API server certificate.
func (r *reader) common(c *cluster.Cluster, apiStem string) (*x509.Certificate, error) {
	api, err := r.cert(apiStem)
	if err != nil {
		return nil, err
	}
	ca, err := r.cert("ca")
	if err != nil {
		return nil, err
	}
	r.fill(c, ca, api)
	return api, nil
}

func (r *reader) fill(c *cluster.Cluster, ca, api *x509.Certificate) {
	switch alg := keyAlgorithm(api); {
	case alg != "":
		c.KeyAlgorithm = alg
	default:
		r.note("keyAlgorithm", "the API server's key is %s, which kubepki does not generate; new keys will be %s", pki.AlgorithmOf(api.PublicKey), pki.DefaultKeyAlgorithm)
	}
	c.Validity.Leaf = cluster.Duration{Duration: Lifetime(api)}
	if ca != nil {
		c.Validity.CA = cluster.Duration{Duration: Lifetime(ca)}
		if c.Validity.CA.Duration < c.Validity.Leaf.Duration {
			c.Validity.Leaf = c.Validity.CA
		}
		s := pki.SubjectOf(ca.Subject)
		c.Subject = cluster.Subject{
			Country: first(s.Country), Province: first(s.Province),
			Locality: first(s.Locality), Organization: first(s.Organization),
		}
	}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// setServiceCIDR sets the service CIDR from the service IP, noting the
// guess of its prefix.
func (r *reader) setServiceCIDR(c *cluster.Cluster, svc net.IP, fallback, apiFile string) {
	if svc == nil {
		c.ServiceCIDR = fallback
		r.note("serviceCIDR", "%s names no service IP; assumed %s: set it to kube-apiserver's --service-cluster-ip-range", apiFile, fallback)
		return
	}
	cidr, why, err := ServiceCIDR(svc)
	if err != nil {
		c.ServiceCIDR = fallback
		r.note("serviceCIDR", "%v; assumed %s: set it to kube-apiserver's --service-cluster-ip-range", err, fallback)
		return
	}
	c.ServiceCIDR = cidr
	r.note("serviceCIDR", "%s names the service IP %s but no prefix length; %s is %s: set it to kube-apiserver's --service-cluster-ip-range if that differs", apiFile, svc, cidr, why)
}

// isLoopback reports a loopback address.
func isLoopback(ip net.IP) bool { return ip.IsLoopback() }
