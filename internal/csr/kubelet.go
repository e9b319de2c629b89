package csr

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// NodeSource looks up the Node objects the kubelet-serving policies compare
// a request with.
type NodeSource interface {
	// Node returns the named Node, or nil and no error if there is none.
	// An error means the answer is unknown (the request is retried).
	Node(ctx context.Context, name string) (*corev1.Node, error)
	// NodesWithAddress returns the names of the Nodes whose
	// status.addresses hold the address, compared as AddressKey says.
	NodesWithAddress(ctx context.Context, address string) ([]string, error)
}

// AddressKey is the form in which node addresses and SANs are compared: an
// IP in canonical form (IPv4-in-IPv6 unmapped), a name in lower case.
func AddressKey(address string) string {
	if a, err := netip.ParseAddr(address); err == nil {
		return a.Unmap().WithZone("").String()
	}
	return strings.ToLower(address)
}

// nodeFact is what Prepare looked up for a request: the requester's Node
// (nil when it does not exist), and for each SAN (by AddressKey) the other
// Nodes whose status.addresses hold it.
type nodeFact struct {
	node    *corev1.Node
	holders map[string][]string
}

type nodeFactKey struct{}

// withNode returns ctx carrying the Node (nil: looked up, absent).
func withNode(ctx context.Context, n *corev1.Node) context.Context {
	return withFacts(ctx, nodeFact{node: n})
}

func withFacts(ctx context.Context, f nodeFact) context.Context {
	return context.WithValue(ctx, nodeFactKey{}, f)
}

// nodeOf returns the Node put in ctx by withNode, and whether one was looked up.
func nodeOf(ctx context.Context) (*corev1.Node, bool) {
	f, ok := ctx.Value(nodeFactKey{}).(nodeFact)
	return f.node, ok
}

// holdersOf returns the other Nodes holding a SAN, and whether they were
// looked up.
func holdersOf(ctx context.Context) (map[string][]string, bool) {
	f, ok := ctx.Value(nodeFactKey{}).(nodeFact)
	return f.holders, ok && f.holders != nil
}

// NodeName returns the node a user name belongs to (system:node:NAME).
func NodeName(user string) (string, bool) {
	name, ok := strings.CutPrefix(user, NodeUserPrefix)
	return name, ok && name != ""
}

// KubeletServingChain approves kubelet serving certificates
// (kubernetes.io/kubelet-serving), which kube-controller-manager never
// approves: it cannot tell a node asking for its own names from a node
// asking for another's, and a Node's status.addresses are written by the
// kubelet itself, so one node's credentials can add any address there.
//
// The chain therefore judges a request against what the operator declared
// (bounds), not only what the node reports. It owns requests only once node
// IP ranges are declared; until then they are left for a person. It denies
// anything but a node asking for exactly its own names: the requester
// (spec.username, set by the API server) is system:node:NAME in
// system:nodes, the CN is that user, O is [system:nodes], the usages are a
// serving set, no CA, no longer than maxDuration; no SAN is a wildcard, a
// loopback name or address, in the service CIDR, or a name or address of
// the API server; every DNS SAN is NAME or NAME.<declared suffix>, every IP
// SAN is inside a declared range; no other Node holds any of them; and
// every SAN is one of the Node's own status.addresses (the API server
// dials the kubelet at those).
func KubeletServingChain(nodes NodeSource, maxDuration time.Duration, bounds ServingBounds) Chain {
	return Chain{
		Name:       "kubelet-serving",
		SignerName: certv1.KubeletServingSignerName,
		Owns: func(*certv1.CertificateSigningRequest, *x509.CertificateRequest) (bool, string) {
			if !bounds.Enabled() {
				return false, "no kubelet serving IP ranges declared (--kubelet-serving-ip-ranges or kubeletServing.ipRanges of the approval policy); left for a person"
			}
			return true, ""
		},
		Prepare: func(ctx context.Context, c *certv1.CertificateSigningRequest, req *x509.CertificateRequest) (context.Context, error) {
			name, ok := NodeName(c.Spec.Username)
			if !ok {
				return withNode(ctx, nil), nil // requester-is-node denies it
			}
			n, err := nodes.Node(ctx, name)
			if err != nil {
				return ctx, fmt.Errorf("look up node %s: %w", name, err)
			}
			holders := map[string][]string{}
			for _, san := range sanKeys(req) {
				if _, done := holders[san]; done {
					continue
				}
				names, err := nodes.NodesWithAddress(ctx, san)
				if err != nil {
					return ctx, fmt.Errorf("look up nodes with address %s: %w", san, err)
				}
				holders[san] = slices.DeleteFunc(slices.Clone(names), func(h string) bool { return h == name })
			}
			return withFacts(ctx, nodeFact{node: n, holders: holders}), nil
		},
		Policies: []Policy{
			{"requester-is-node", requesterIsNode},
			{"cn-is-requester", commonNameIsRequester},
			{"o-is-system-nodes", organizationIsNodes},
			{"serving-usages", servingUsages},
			{"sans-are-dns-or-ip", sansAreDNSOrIP},
			{"not-ca", notCA},
			{"duration-within-limit", durationWithin(maxDuration)},
			{"no-wildcard", noWildcard},
			{"no-loopback", noLoopback},
			{"not-service-cidr", bounds.notServiceCIDR},
			{"not-api-server", bounds.notAPIServer},
			{"dns-sans-are-node-name", bounds.dnsSANsAreNodeName},
			{"ip-sans-in-declared-ranges", bounds.ipSANsInRanges},
			{"node-exists", nodeExists},
			{"sans-not-held-by-other-nodes", sansNotHeldByOtherNodes},
			{"ip-sans-are-node-addresses", ipSANsAreNodeAddresses},
			{"dns-sans-are-node-names", dnsSANsAreNodeNames},
		},
	}
}

// sanKeys returns the request's DNS and IP SANs as AddressKeys.
func sanKeys(req *x509.CertificateRequest) []string {
	var keys []string
	for _, d := range req.DNSNames {
		keys = append(keys, AddressKey(d))
	}
	for _, ip := range req.IPAddresses {
		if a, ok := addrOf(ip); ok {
			keys = append(keys, a.String())
		}
	}
	return keys
}

// KubeletClientRenewalChain approves a node renewing its own client
// certificate (kubernetes.io/kube-apiserver-client-kubelet), as
// kube-controller-manager's selfnodeclient approval does: the requester is
// the CN it asks for. Other requests for the signer (a kubelet bootstrapping
// with a bootstrap token, a person asking for a node's identity) are left
// alone, for a person or kube-controller-manager's nodeclient approval.
func KubeletClientRenewalChain(maxDuration time.Duration) Chain {
	return Chain{
		Name:       "kubelet-client-renewal",
		SignerName: certv1.KubeAPIServerClientKubeletSignerName,
		Owns: func(c *certv1.CertificateSigningRequest, req *x509.CertificateRequest) (bool, string) {
			if c.Spec.Username != req.Subject.CommonName {
				return false, fmt.Sprintf("requester %q asks for CN %q: not a node renewing its own certificate; left for a person", c.Spec.Username, req.Subject.CommonName)
			}
			return true, ""
		},
		Policies: []Policy{
			{"requester-is-node", requesterIsNode},
			{"o-is-system-nodes", organizationIsNodes},
			{"client-usages", kubeletClientUsagesPolicy},
			{"no-sans", noSANsPolicy},
			{"not-ca", notCA},
			{"duration-within-limit", durationWithin(maxDuration)},
		},
	}
}

// requesterIsNode: the user who created the request is a node.
func requesterIsNode(_ context.Context, c *certv1.CertificateSigningRequest, _ *x509.CertificateRequest) (bool, string) {
	if _, ok := NodeName(c.Spec.Username); !ok || !slices.Contains(c.Spec.Groups, NodesGroup) {
		return false, fmt.Sprintf("requester %q is not a node (want user %s<nodeName> in group %s)", c.Spec.Username, NodeUserPrefix, NodesGroup)
	}
	return true, ""
}

// commonNameIsRequester: a node asks only for its own identity.
func commonNameIsRequester(_ context.Context, c *certv1.CertificateSigningRequest, req *x509.CertificateRequest) (bool, string) {
	if req.Subject.CommonName != c.Spec.Username {
		return false, fmt.Sprintf("CN %q is not the requester %q: a node may only ask for its own certificate", req.Subject.CommonName, c.Spec.Username)
	}
	return true, ""
}

// organizationIsNodes: O is exactly [system:nodes].
func organizationIsNodes(_ context.Context, _ *certv1.CertificateSigningRequest, req *x509.CertificateRequest) (bool, string) {
	if !slices.Equal(req.Subject.Organization, []string{NodesGroup}) {
		return false, fmt.Sprintf("O is [%s], want exactly [%s]", strings.Join(req.Subject.Organization, ", "), NodesGroup)
	}
	return true, ""
}

// servingUsages: a serving certificate cannot also be a client one.
func servingUsages(_ context.Context, c *certv1.CertificateSigningRequest, _ *x509.CertificateRequest) (bool, string) {
	if slices.Contains(c.Spec.Usages, certv1.UsageClientAuth) {
		return false, "usage \"client auth\" is not allowed in a kubelet serving certificate: it would let whoever holds the kubelet's serving key authenticate to the API server"
	}
	if err := usagesIn(c.Spec.Usages, kubeletServingUsages(), "kubelet serving"); err != nil {
		return false, err.Error()
	}
	return true, ""
}

// kubeletClientUsagesPolicy: a kubelet client certificate's usages.
func kubeletClientUsagesPolicy(_ context.Context, c *certv1.CertificateSigningRequest, _ *x509.CertificateRequest) (bool, string) {
	if err := usagesIn(c.Spec.Usages, kubeletClientUsages(), "kubelet client"); err != nil {
		return false, err.Error()
	}
	return true, ""
}

// sansAreDNSOrIP: at least one DNS or IP SAN, and no other kind.
func sansAreDNSOrIP(_ context.Context, _ *certv1.CertificateSigningRequest, req *x509.CertificateRequest) (bool, string) {
	switch {
	case len(req.DNSNames) == 0 && len(req.IPAddresses) == 0:
		return false, "no DNS or IP subjectAltName: a serving certificate must name the addresses it serves"
	case len(req.EmailAddresses) > 0:
		return false, "email subjectAltNames are not allowed in a serving certificate"
	case len(req.URIs) > 0:
		return false, "URI subjectAltNames are not allowed in a serving certificate"
	}
	return true, ""
}

// noSANsPolicy: client certificates name a user, not a host.
func noSANsPolicy(_ context.Context, _ *certv1.CertificateSigningRequest, req *x509.CertificateRequest) (bool, string) {
	if err := noSANs(req, "a client certificate"); err != nil {
		return false, err.Error()
	}
	return true, ""
}

// notCA: nobody gets a CA through the approver.
func notCA(_ context.Context, c *certv1.CertificateSigningRequest, req *x509.CertificateRequest) (bool, string) {
	if reason := RequestsCA(req); reason != "" {
		return false, reason + "; kubepki approves leaf certificates only"
	}
	for _, u := range c.Spec.Usages {
		if u == certv1.UsageCertSign || u == certv1.UsageCRLSign {
			return false, fmt.Sprintf("usage %q asks for a CA; kubepki approves leaf certificates only", u)
		}
	}
	return true, ""
}

// durationWithin: spec.expirationSeconds, when set, is at most max.
func durationWithin(max time.Duration) func(context.Context, *certv1.CertificateSigningRequest, *x509.CertificateRequest) (bool, string) {
	return func(_ context.Context, c *certv1.CertificateSigningRequest, _ *x509.CertificateRequest) (bool, string) {
		if c.Spec.ExpirationSeconds == nil || max <= 0 {
			return true, ""
		}
		if d := time.Duration(*c.Spec.ExpirationSeconds) * time.Second; d > max {
			return false, fmt.Sprintf("expirationSeconds asks for %s, more than the %s limit", d, max)
		}
		return true, ""
	}
}

// nodeExists: the requester's Node object exists.
func nodeExists(ctx context.Context, c *certv1.CertificateSigningRequest, _ *x509.CertificateRequest) (bool, string) {
	n, looked := nodeOf(ctx)
	if !looked {
		return false, "the requester's Node was not looked up"
	}
	if n == nil {
		name, _ := NodeName(c.Spec.Username)
		return false, fmt.Sprintf("node %q does not exist: a kubelet registers its Node before asking for a serving certificate", name)
	}
	return true, ""
}

// nodeIPs returns the IPs the kubelet puts in its serving certificate:
// InternalIP and ExternalIP addresses, and a Hostname that is an IP.
func nodeIPs(n *corev1.Node) []net.IP {
	var ips []net.IP
	for _, a := range n.Status.Addresses {
		switch a.Type {
		case corev1.NodeInternalIP, corev1.NodeExternalIP, corev1.NodeHostName:
			if ip := net.ParseIP(a.Address); ip != nil {
				ips = append(ips, ip)
			}
		}
	}
	return ips
}

// nodeDNSNames returns the names the kubelet puts in its serving
// certificate: Hostname (unless an IP), InternalDNS and ExternalDNS.
func nodeDNSNames(n *corev1.Node) []string {
	var names []string
	for _, a := range n.Status.Addresses {
		switch a.Type {
		case corev1.NodeHostName, corev1.NodeInternalDNS, corev1.NodeExternalDNS:
			if a.Address != "" && net.ParseIP(a.Address) == nil {
				names = append(names, a.Address)
			}
		}
	}
	return names
}

// ipSANsAreNodeAddresses: every IP SAN is one of the Node's addresses.
func ipSANsAreNodeAddresses(ctx context.Context, _ *certv1.CertificateSigningRequest, req *x509.CertificateRequest) (bool, string) {
	n, _ := nodeOf(ctx)
	if n == nil {
		return false, "no Node to compare IP SANs with"
	}
	have := nodeIPs(n)
	for _, ip := range req.IPAddresses {
		if !slices.ContainsFunc(have, ip.Equal) {
			return false, fmt.Sprintf("IP SAN %s is not an address of node %s (status.addresses has %s)", ip, n.Name, ipsString(have))
		}
	}
	return true, ""
}

// dnsSANsAreNodeNames: every DNS SAN is one of the Node's host names.
func dnsSANsAreNodeNames(ctx context.Context, _ *certv1.CertificateSigningRequest, req *x509.CertificateRequest) (bool, string) {
	n, _ := nodeOf(ctx)
	if n == nil {
		return false, "no Node to compare DNS SANs with"
	}
	have := nodeDNSNames(n)
	for _, d := range req.DNSNames {
		if !slices.ContainsFunc(have, func(h string) bool { return strings.EqualFold(h, d) }) {
			return false, fmt.Sprintf("DNS SAN %s is not a name of node %s (Hostname/InternalDNS/ExternalDNS: %s)", d, n.Name, orNone(have))
		}
	}
	return true, ""
}

func ipsString(ips []net.IP) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return orNone(s)
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// noWildcard: a wildcard DNS SAN would serve every name under it; a
// kubelet serves one host.
func noWildcard(_ context.Context, _ *certv1.CertificateSigningRequest, req *x509.CertificateRequest) (bool, string) {
	for _, d := range req.DNSNames {
		if strings.Contains(d, "*") {
			return false, fmt.Sprintf("DNS SAN %s is a wildcard: a kubelet serving certificate names one host", d)
		}
	}
	return true, ""
}

// noLoopback: localhost, 127.0.0.0/8, ::1 and the unspecified addresses
// belong to whichever host the client runs on; a certificate for them lets
// its holder be the local API server, etcd or kubelet to any client.
func noLoopback(_ context.Context, _ *certv1.CertificateSigningRequest, req *x509.CertificateRequest) (bool, string) {
	for _, d := range req.DNSNames {
		if isLoopbackName(strings.ToLower(d)) {
			return false, fmt.Sprintf("DNS SAN %s is a loopback name", d)
		}
	}
	for _, ip := range req.IPAddresses {
		if a, ok := addrOf(ip); !ok || a.IsLoopback() || a.IsUnspecified() {
			return false, fmt.Sprintf("IP SAN %s is a loopback or unspecified address", ip)
		}
	}
	return true, ""
}

// notServiceCIDR: Service IPs (10.96.0.1 is the API server as Pods dial
// it) are never a node's.
func (b ServingBounds) notServiceCIDR(_ context.Context, _ *certv1.CertificateSigningRequest, req *x509.CertificateRequest) (bool, string) {
	for _, ip := range req.IPAddresses {
		a, _ := addrOf(ip)
		if p, in := inAny(b.ServiceCIDRs, a); in {
			return false, fmt.Sprintf("IP SAN %s is in the service CIDR %s: Service addresses (the API server's among them) are never a node's", ip, p)
		}
	}
	return true, ""
}

// notAPIServer: the API server's names (kubernetes,
// kubernetes.default.svc.cluster.local, any Service name) and the address
// clients dial it at.
func (b ServingBounds) notAPIServer(_ context.Context, _ *certv1.CertificateSigningRequest, req *x509.CertificateRequest) (bool, string) {
	for _, d := range req.DNSNames {
		if b.apiServerName(strings.ToLower(d)) {
			return false, fmt.Sprintf("DNS SAN %s is a name of the API server or a Service", d)
		}
	}
	for _, ip := range req.IPAddresses {
		a, _ := addrOf(ip)
		if slices.Contains(b.APIServerIPs, a) {
			return false, fmt.Sprintf("IP SAN %s is the API server's address", ip)
		}
	}
	return true, ""
}

// dnsSANsAreNodeName: every DNS SAN is the node's name, or the node's name
// under a declared suffix; what the Node reports does not widen that.
func (b ServingBounds) dnsSANsAreNodeName(_ context.Context, c *certv1.CertificateSigningRequest, req *x509.CertificateRequest) (bool, string) {
	node, _ := NodeName(c.Spec.Username)
	node = strings.ToLower(node)
	allowed := []string{node}
	for _, s := range b.DNSSuffixes {
		allowed = append(allowed, node+"."+strings.ToLower(s))
	}
	for _, d := range req.DNSNames {
		l := strings.ToLower(d)
		if msgs := validation.IsDNS1123Subdomain(l); len(msgs) > 0 {
			return false, fmt.Sprintf("DNS SAN %q is not a host name: %s", d, msgs[0])
		}
		if !slices.Contains(allowed, l) {
			return false, fmt.Sprintf("DNS SAN %s is not the node's name or the node's name under a declared suffix (allowed: %s)", d, strings.Join(allowed, ", "))
		}
	}
	return true, ""
}

// ipSANsInRanges: every IP SAN is inside a declared node range.
func (b ServingBounds) ipSANsInRanges(_ context.Context, _ *certv1.CertificateSigningRequest, req *x509.CertificateRequest) (bool, string) {
	for _, ip := range req.IPAddresses {
		a, _ := addrOf(ip)
		if _, in := inAny(b.IPRanges, a); !in {
			return false, fmt.Sprintf("IP SAN %s is outside the declared kubelet serving IP ranges (%s)", ip, prefixesString(b.IPRanges))
		}
	}
	return true, ""
}

// sansNotHeldByOtherNodes: no other Node's status.addresses hold a SAN; a
// node that writes a neighbour's address into its own status gets nothing
// (and so does the neighbour, until one of them is fixed: a person looks).
func sansNotHeldByOtherNodes(ctx context.Context, _ *certv1.CertificateSigningRequest, req *x509.CertificateRequest) (bool, string) {
	holders, looked := holdersOf(ctx)
	if !looked {
		return false, "the Nodes holding the SANs were not looked up"
	}
	for _, d := range req.DNSNames {
		if h := holders[AddressKey(d)]; len(h) > 0 {
			return false, fmt.Sprintf("DNS SAN %s is an address of node %s", d, strings.Join(h, ", "))
		}
	}
	for _, ip := range req.IPAddresses {
		a, _ := addrOf(ip)
		if h := holders[a.String()]; len(h) > 0 {
			return false, fmt.Sprintf("IP SAN %s is an address of node %s", ip, strings.Join(h, ", "))
		}
	}
	return true, ""
}

func prefixesString(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return orNone(s)
}
