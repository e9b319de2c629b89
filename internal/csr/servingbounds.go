package csr

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Defaults for ServingBounds.
const (
	// DefaultServiceCIDR is kubeadm's --service-cidr; its first address
	// (10.96.0.1) is the kubernetes Service, i.e. the API server as every
	// Pod dials it.
	DefaultServiceCIDR = "10.96.0.0/12"
	// DefaultClusterDomain is the kubelet's --cluster-domain default.
	DefaultClusterDomain = "cluster.local"
)

// ServingBounds is what the operator declares about kubelet serving
// certificates. A Node's status.addresses are written by the kubelet itself
// (NodeRestriction lets a node change its own status freely), so they say
// what a node claims, not what it is: the approver only approves names and
// addresses inside these bounds, and never a wildcard, a loopback address
// or name, an address of the service CIDR, or a name or address of the API
// server, whatever the Node says.
type ServingBounds struct {
	// IPRanges are the networks node addresses come from. Without any,
	// kubelet serving requests are not auto-approved at all.
	IPRanges []netip.Prefix
	// DNSSuffixes allow DNS SANs <node>.<suffix>; the bare <node> is
	// always allowed.
	DNSSuffixes []string
	// ServiceCIDRs are never approved (kube-apiserver's
	// --service-cluster-ip-range).
	ServiceCIDRs []netip.Prefix
	// ClusterDomain is the cluster DNS domain: kubernetes.default.svc.DOMAIN
	// and every name under svc.DOMAIN are Services, never a node.
	ClusterDomain string
	// APIServerNames and APIServerIPs are the API server's own names
	// and addresses besides the in-cluster ones (the host clients dial).
	APIServerNames []string
	APIServerIPs   []netip.Addr
}

// Enabled reports whether kubelet serving requests may be auto-approved:
// only once node IP ranges are declared.
func (b ServingBounds) Enabled() bool { return len(b.IPRanges) > 0 }

// ParsePrefixes reads CIDRs ("192.0.2.0/24", "fd00::/64"); a bare address
// is a /32 or /128.
func ParsePrefixes(values []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range values {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		p, err := netip.ParsePrefix(v)
		if err != nil {
			a, aerr := netip.ParseAddr(v)
			if aerr != nil {
				return nil, fmt.Errorf("%q is not a CIDR (like 192.0.2.0/24) or an IP address", v)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// loopback are the loopback networks; a certificate for them lets its
// holder be "localhost" to any client on the same host.
var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// Validate checks the declared bounds: ranges that are not all addresses,
// and are not inside loopback or the service CIDR; suffixes that are DNS
// names outside the cluster's Service domain.
func (b ServingBounds) Validate() error {
	var errs []error
	for _, p := range b.IPRanges {
		if p.Bits() == 0 {
			errs = append(errs, fmt.Errorf("kubelet serving IP range %s covers every address: declare the networks your nodes are in", p))
			continue
		}
		for _, bad := range slices.Concat(loopback, b.ServiceCIDRs) {
			if bad.Bits() <= p.Bits() && bad.Contains(p.Addr()) {
				errs = append(errs, fmt.Errorf("kubelet serving IP range %s lies inside %s, which is never approved", p, bad))
			}
		}
	}
	for _, s := range b.DNSSuffixes {
		if reason := b.badSuffix(s); reason != "" {
			errs = append(errs, fmt.Errorf("kubelet serving DNS suffix %q: %s", s, reason))
		}
	}
	return errors.Join(errs...)
}

func (b ServingBounds) badSuffix(s string) string {
	l := strings.ToLower(s)
	if msgs := validation.IsDNS1123Subdomain(l); len(msgs) > 0 {
		return "not a DNS name: " + msgs[0]
	}
	if l == "localhost" || strings.HasSuffix(l, ".localhost") {
		return "a loopback name"
	}
	if b.serviceName(l) || l == strings.ToLower(b.ClusterDomain) {
		return "the cluster's Service domain, where names belong to Services (the API server's among them)"
	}
	return ""
}

// serviceName reports whether the lower-case name is a Service's (the
// API server is the kubernetes Service): NAME.NS.svc, or anything under
// svc.DOMAIN.
func (b ServingBounds) serviceName(l string) bool {
	if l == "svc" || strings.HasSuffix(l, ".svc") {
		return true
	}
	if d := strings.ToLower(b.ClusterDomain); d != "" && (l == "svc."+d || strings.HasSuffix(l, ".svc."+d)) {
		return true
	}
	return false
}

// apiServerName reports whether the lower-case name is one of the API
// server's: the kubernetes Service's names (as kubeadm puts them in the
// apiserver certificate), any Service name, or a declared name.
func (b ServingBounds) apiServerName(l string) bool {
	switch l {
	case "kubernetes", "kubernetes.default":
		return true
	}
	if b.serviceName(l) {
		return true
	}
	return slices.ContainsFunc(b.APIServerNames, func(n string) bool { return strings.EqualFold(n, l) })
}

// isLoopbackName: localhost and the names under it (RFC 6761).
func isLoopbackName(l string) bool {
	return l == "localhost" || strings.HasSuffix(l, ".localhost") || l == "localhost.localdomain"
}

// addrOf converts a parsed SAN to a netip.Addr, unmapping IPv4-in-IPv6
// (::ffff:10.96.0.1 is 10.96.0.1 to every client).
func addrOf(ip []byte) (netip.Addr, bool) {
	a, ok := netip.AddrFromSlice(ip)
	return a.Unmap(), ok
}

// inAny reports the first prefix holding a.
func inAny(prefixes []netip.Prefix, a netip.Addr) (netip.Prefix, bool) {
	for _, p := range prefixes {
		if p.Contains(a) {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// KubeletServingRules is the kubeletServing section of an ApprovalPolicy:
// the bounds of kubelet serving certificates, added to the controller's
// flags.
//
//	kubeletServing:
//	  ipRanges: [192.0.2.0/24, "fd00:10::/64"]
//	  dnsSuffixes: [nodes.example.com]
type KubeletServingRules struct {
	IPRanges    []string `json:"ipRanges,omitempty"`
	DNSSuffixes []string `json:"dnsSuffixes,omitempty"`
}

// AddTo adds the rules' ranges and suffixes to b.
func (r *KubeletServingRules) AddTo(b *ServingBounds) error {
	if r == nil {
		return nil
	}
	ps, err := ParsePrefixes(r.IPRanges)
	if err != nil {
		return fmt.Errorf("kubeletServing.ipRanges: %w", err)
	}
	b.IPRanges = append(b.IPRanges, ps...)
	b.DNSSuffixes = append(b.DNSSuffixes, r.DNSSuffixes...)
	return nil
}
