package csr

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// policyCase is one row of a single policy's table.
type policyCase struct {
	name string
	// user and groups are the requester; usages and exp go in the spec.
	user    string
	groups  []string
	usages  []certv1.KeyUsage
	exp     *int32
	req     reqSpec
	node    *corev1.Node        // put in ctx when set
	noNode  bool                // put "looked up, absent" in ctx
	holders map[string][]string // other Nodes holding SANs, put in ctx when set
	want    string              // "" passes; otherwise a substring of the reason
}

// runPolicy runs one policy function over its table.
func runPolicy(t *testing.T, check func(context.Context, *certv1.CertificateSigningRequest, *x509.CertificateRequest) (bool, string), cases []policyCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, pemData := newRequest(t, tc.req)
			c := csrObject("x", certv1.KubeletServingSignerName, tc.user, tc.groups, pemData, tc.usages...)
			c.Spec.ExpirationSeconds = tc.exp
			ctx := context.Background()
			if tc.node != nil || tc.noNode || tc.holders != nil {
				ctx = withFacts(ctx, nodeFact{node: tc.node, holders: tc.holders})
			}
			ok, reason := check(ctx, c, req)
			if tc.want == "" {
				if !ok {
					t.Fatalf("denied: %s", reason)
				}
				return
			}
			if ok {
				t.Fatalf("passed, want a denial containing %q", tc.want)
			}
			if !strings.Contains(reason, tc.want) {
				t.Fatalf("reason %q, want it to contain %q", reason, tc.want)
			}
		})
	}
}

const nodeA = "system:node:node-a"

func nodeGroups() []string { return []string{NodesGroup, "system:authenticated"} }

func testNode(name string, addrs ...corev1.NodeAddress) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{Addresses: addrs}}
}

func addr(t corev1.NodeAddressType, a string) corev1.NodeAddress {
	return corev1.NodeAddress{Type: t, Address: a}
}

func TestPolicyRequesterIsNode(t *testing.T) {
	runPolicy(t, requesterIsNode, []policyCase{
		{name: "node", user: nodeA, groups: nodeGroups()},
		{name: "node name without group", user: nodeA, groups: []string{"system:authenticated"}, want: "is not a node"},
		{name: "admin", user: "admin", groups: []string{MastersGroup}, want: `requester "admin" is not a node`},
		{name: "bare prefix", user: "system:node:", groups: nodeGroups(), want: "is not a node"},
	})
}

func TestPolicyCommonNameIsRequester(t *testing.T) {
	runPolicy(t, commonNameIsRequester, []policyCase{
		{name: "own name", user: nodeA, req: reqSpec{cn: nodeA}},
		{name: "another node's name", user: nodeA, req: reqSpec{cn: "system:node:node-b"}, want: `CN "system:node:node-b" is not the requester "system:node:node-a"`},
		{name: "case matters", user: nodeA, req: reqSpec{cn: "system:node:NODE-A"}, want: "is not the requester"},
	})
}

func TestPolicyOrganizationIsNodes(t *testing.T) {
	runPolicy(t, organizationIsNodes, []policyCase{
		{name: "system:nodes", req: reqSpec{o: []string{NodesGroup}}},
		{name: "none", req: reqSpec{}, want: "want exactly [system:nodes]"},
		{name: "extra group", req: reqSpec{o: []string{NodesGroup, MastersGroup}}, want: "want exactly"},
	})
}

func TestPolicyServingUsages(t *testing.T) {
	runPolicy(t, servingUsages, []policyCase{
		{name: "ECDSA set", usages: []certv1.KeyUsage{"digital signature", "server auth"}},
		{name: "RSA set", usages: []certv1.KeyUsage{"digital signature", "key encipherment", "server auth"}},
		{name: "client auth", usages: []certv1.KeyUsage{"digital signature", "server auth", "client auth"}, want: `usage "client auth" is not allowed`},
		{name: "client auth alone", usages: []certv1.KeyUsage{"client auth"}, want: `"client auth"`},
		{name: "missing server auth", usages: []certv1.KeyUsage{"digital signature"}, want: "not a kubelet serving set"},
		{name: "cert sign", usages: []certv1.KeyUsage{"digital signature", "server auth", "cert sign"}, want: "not a kubelet serving set"},
	})
}

func TestPolicyKubeletClientUsages(t *testing.T) {
	runPolicy(t, kubeletClientUsagesPolicy, []policyCase{
		{name: "ECDSA set", usages: []certv1.KeyUsage{"digital signature", "client auth"}},
		{name: "RSA set", usages: []certv1.KeyUsage{"key encipherment", "digital signature", "client auth"}},
		{name: "server auth", usages: []certv1.KeyUsage{"digital signature", "client auth", "server auth"}, want: "not a kubelet client set"},
	})
}

func TestPolicySANsAreDNSOrIP(t *testing.T) {
	runPolicy(t, sansAreDNSOrIP, []policyCase{
		{name: "DNS", req: reqSpec{dns: []string{"node-a"}}},
		{name: "IP", req: reqSpec{ips: []string{"10.0.0.1"}}},
		{name: "none", req: reqSpec{}, want: "no DNS or IP"},
		{name: "email", req: reqSpec{dns: []string{"a"}, emails: []string{"a@b.c"}}, want: "email"},
		{name: "URI", req: reqSpec{dns: []string{"a"}, uris: []string{"spiffe://c/n"}}, want: "URI"},
	})
}

func TestPolicyNoSANs(t *testing.T) {
	runPolicy(t, noSANsPolicy, []policyCase{
		{name: "none", req: reqSpec{cn: "x"}},
		{name: "DNS", req: reqSpec{dns: []string{"a"}}, want: "takes no subjectAltNames"},
		{name: "email", req: reqSpec{emails: []string{"a@b.c"}}, want: "email"},
	})
}

func TestPolicyNotCA(t *testing.T) {
	runPolicy(t, notCA, []policyCase{
		{name: "leaf", usages: []certv1.KeyUsage{"client auth"}},
		{name: "CA:TRUE", req: reqSpec{exts: []pkix.Extension{basicConstraintsExt(t, true)}}, want: "CA:TRUE"},
		{name: "keyCertSign in request", req: reqSpec{exts: []pkix.Extension{keyUsageExt(t, 5)}}, want: "keyCertSign"},
		{name: "cert sign usage", usages: []certv1.KeyUsage{"cert sign"}, want: `"cert sign" asks for a CA`},
		{name: "crl sign usage", usages: []certv1.KeyUsage{"crl sign"}, want: "asks for a CA"},
	})
}

func TestPolicyDurationWithin(t *testing.T) {
	runPolicy(t, durationWithin(24*time.Hour), []policyCase{
		{name: "unset", exp: nil},
		{name: "at the limit", exp: seconds(24 * time.Hour)},
		{name: "over", exp: seconds(25 * time.Hour), want: "more than the 24h0m0s limit"},
	})
	runPolicy(t, durationWithin(0), []policyCase{{name: "no limit", exp: seconds(1000 * time.Hour)}})
}

func TestPolicyNodeExists(t *testing.T) {
	runPolicy(t, nodeExists, []policyCase{
		{name: "exists", user: nodeA, node: testNode("node-a")},
		{name: "absent", user: nodeA, noNode: true, want: `node "node-a" does not exist`},
		{name: "not looked up", user: nodeA, want: "not looked up"},
	})
}

func TestPolicyIPSANsAreNodeAddresses(t *testing.T) {
	n := testNode("node-a",
		addr(corev1.NodeInternalIP, "10.0.0.1"),
		addr(corev1.NodeExternalIP, "203.0.113.7"),
		addr(corev1.NodeInternalIP, "fd00::1"),
		addr(corev1.NodeHostName, "192.0.2.9"),   // a Hostname that is an IP counts, as in the kubelet
		addr(corev1.NodeInternalDNS, "10.9.9.9"), // but an IP-looking InternalDNS does not
	)
	runPolicy(t, ipSANsAreNodeAddresses, []policyCase{
		{name: "no IP SANs", node: n},
		{name: "internal IP", node: n, req: reqSpec{ips: []string{"10.0.0.1"}}},
		{name: "all kinds", node: n, req: reqSpec{ips: []string{"10.0.0.1", "203.0.113.7", "fd00::1", "192.0.2.9"}}},
		{name: "IPv6 spelled differently", node: n, req: reqSpec{ips: []string{"fd00:0:0::1"}}},
		{name: "foreign IP", node: n, req: reqSpec{ips: []string{"10.0.0.1", "10.0.0.2"}}, want: "IP SAN 10.0.0.2 is not an address of node node-a"},
		{name: "IP only in InternalDNS", node: n, req: reqSpec{ips: []string{"10.9.9.9"}}, want: "10.9.9.9 is not an address"},
		{name: "no node", noNode: true, req: reqSpec{ips: []string{"10.0.0.1"}}, want: "no Node"},
	})
}

func TestPolicyDNSSANsAreNodeNames(t *testing.T) {
	n := testNode("node-a",
		addr(corev1.NodeHostName, "node-a"),
		addr(corev1.NodeInternalDNS, "node-a.internal"),
		addr(corev1.NodeExternalDNS, "node-a.example.com"),
		addr(corev1.NodeInternalIP, "10.0.0.1"),
	)
	runPolicy(t, dnsSANsAreNodeNames, []policyCase{
		{name: "no DNS SANs", node: n},
		{name: "all names", node: n, req: reqSpec{dns: []string{"node-a", "node-a.internal", "node-a.example.com"}}},
		{name: "case-insensitive", node: n, req: reqSpec{dns: []string{"NODE-A.internal"}}},
		{name: "foreign name", node: n, req: reqSpec{dns: []string{"node-a", "kubernetes.default.svc"}}, want: "DNS SAN kubernetes.default.svc is not a name of node node-a"},
		{name: "IP address as DNS", node: n, req: reqSpec{dns: []string{"10.0.0.1"}}, want: "is not a name"},
		{name: "wildcard", node: n, req: reqSpec{dns: []string{"*.internal"}}, want: "is not a name"},
		{name: "no node", noNode: true, req: reqSpec{dns: []string{"node-a"}}, want: "no Node"},
	})
}

// fakeNodes is a NodeSource over a map.
type fakeNodes struct {
	nodes map[string]*corev1.Node
	err   error
	calls int
}

func (f *fakeNodes) Node(_ context.Context, name string) (*corev1.Node, error) {
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	return f.nodes[name], nil
}

func (f *fakeNodes) NodesWithAddress(_ context.Context, address string) ([]string, error) {
	var names []string
	for name, n := range f.nodes {
		for _, a := range n.Status.Addresses {
			if AddressKey(a.Address) == AddressKey(address) {
				names = append(names, name)
				break
			}
		}
	}
	slices.Sort(names)
	return names, nil
}

// testBounds are the bounds the chain tests declare: nodes in
// 10.0.0.0/24 and fd00::/64, names under cluster.internal, kubeadm's
// service CIDR, and an API server at api.example.com / 10.0.0.250.
func testBounds() ServingBounds {
	return ServingBounds{
		IPRanges:       []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("fd00::/64")},
		DNSSuffixes:    []string{"cluster.internal"},
		ServiceCIDRs:   []netip.Prefix{netip.MustParsePrefix(DefaultServiceCIDR)},
		ClusterDomain:  DefaultClusterDomain,
		APIServerNames: []string{"api.example.com"},
		APIServerIPs:   []netip.Addr{netip.MustParseAddr("10.0.0.250")},
	}
}

// TestKubeletServingChain runs the whole chain: the order of the policies
// decides which reason a many-times-wrong request is denied with.
//
// node-a's credentials have written into its own status.addresses every
// address an attacker wants (NodeRestriction lets a node do that): the API
// server's names, the service IP, node-b's IP, a wildcard, loopback, an
// address outside the node ranges. The Node now "has" them all, and each is
// still denied, by a policy that names the offending SAN.
func TestKubeletServingChain(t *testing.T) {
	forged := []corev1.NodeAddress{
		addr(corev1.NodeInternalIP, "10.0.0.1"), addr(corev1.NodeHostName, "node-a"),
		addr(corev1.NodeInternalDNS, "node-a.cluster.internal"),
		addr(corev1.NodeInternalDNS, "kubernetes.default.svc.cluster.local"),
		addr(corev1.NodeInternalDNS, "kubernetes"),
		addr(corev1.NodeExternalDNS, "api.example.com"),
		addr(corev1.NodeInternalDNS, "my-svc.my-ns.svc"),
		addr(corev1.NodeInternalIP, "10.96.0.1"),
		addr(corev1.NodeInternalIP, "::ffff:10.96.0.10"),
		addr(corev1.NodeInternalIP, "10.0.0.2"), // node-b's
		addr(corev1.NodeInternalIP, "10.0.0.250"),
		addr(corev1.NodeExternalDNS, "*.cluster.internal"),
		addr(corev1.NodeHostName, "localhost"),
		addr(corev1.NodeInternalIP, "127.0.0.1"),
		addr(corev1.NodeInternalIP, "::1"),
		addr(corev1.NodeExternalIP, "203.0.113.7"),
		addr(corev1.NodeExternalDNS, "node-a.evil.example.com"),
		addr(corev1.NodeInternalDNS, "node-b.cluster.internal"), // node-b's
	}
	src := &fakeNodes{nodes: map[string]*corev1.Node{
		"node-a": testNode("node-a", forged...),
		"node-b": testNode("node-b", addr(corev1.NodeInternalIP, "10.0.0.2"), addr(corev1.NodeHostName, "node-b"), addr(corev1.NodeInternalDNS, "node-b.cluster.internal")),
		"node-c": testNode("node-c", addr(corev1.NodeInternalIP, "10.0.0.3"), addr(corev1.NodeHostName, "node-c")),
	}}
	a, err := NewApprover(KubeletServingChain(src, 48*time.Hour, testBounds()))
	if err != nil {
		t.Fatal(err)
	}
	serving := []certv1.KeyUsage{"digital signature", "server auth"}
	o := []string{NodesGroup}
	good := reqSpec{cn: nodeA, o: o, dns: []string{"node-a", "node-a.cluster.internal"}, ips: []string{"10.0.0.1"}}
	// own adds the forged SANs to node-a's honest ones.
	own := func(dns []string, ips ...string) reqSpec {
		return reqSpec{cn: nodeA, o: o, dns: append([]string{"node-a"}, dns...), ips: append([]string{"10.0.0.1"}, ips...)}
	}
	tests := []struct {
		name    string
		user    string
		req     reqSpec
		usages  []certv1.KeyUsage
		verdict Verdict
		policy  string
		reason  string // substring of the reason
	}{
		{"own names", nodeA, good, serving, Approve, "", ""},
		{"own names, mixed case", nodeA, own([]string{"Node-A.Cluster.Internal"}), serving, Approve, "", ""},
		{"another node's name", nodeA, reqSpec{cn: "system:node:node-b", o: o, dns: []string{"node-b"}}, serving, Deny, "cn-is-requester", "system:node:node-b"},
		{"different requester", "admin", good, serving, Deny, "requester-is-node", "admin"},
		{"client auth", nodeA, good, append(serving, "client auth"), Deny, "serving-usages", "client auth"},
		{"unregistered node", "system:node:node-z", reqSpec{cn: "system:node:node-z", o: o, dns: []string{"node-z"}, ips: []string{"10.0.0.9"}}, serving, Deny, "node-exists", "node-z"},
		// What node-a wrote into its own status, one at a time.
		{"API server service name", nodeA, own([]string{"kubernetes.default.svc.cluster.local"}), serving, Deny, "not-api-server", "DNS SAN kubernetes.default.svc.cluster.local"},
		{"API server short name", nodeA, own([]string{"kubernetes"}), serving, Deny, "not-api-server", "DNS SAN kubernetes "},
		{"API server host", nodeA, own([]string{"api.example.com"}), serving, Deny, "not-api-server", "DNS SAN api.example.com"},
		{"another Service", nodeA, own([]string{"my-svc.my-ns.svc"}), serving, Deny, "not-api-server", "my-svc.my-ns.svc"},
		{"service IP", nodeA, own(nil, "10.96.0.1"), serving, Deny, "not-service-cidr", "IP SAN 10.96.0.1 is in the service CIDR 10.96.0.0/12"},
		{"service IP, IPv4-in-IPv6", nodeA, own(nil, "::ffff:10.96.0.10"), serving, Deny, "not-service-cidr", "10.96.0.10"},
		{"API server IP", nodeA, own(nil, "10.0.0.250"), serving, Deny, "not-api-server", "IP SAN 10.0.0.250 is the API server's"},
		{"neighbour's IP", nodeA, own(nil, "10.0.0.2"), serving, Deny, "sans-not-held-by-other-nodes", "IP SAN 10.0.0.2 is an address of node node-b"},
		{"neighbour's name", nodeA, own([]string{"node-b.cluster.internal"}), serving, Deny, "dns-sans-are-node-name", "DNS SAN node-b.cluster.internal"},
		{"unreported in-range IP of another node", nodeA, own(nil, "10.0.0.3"), serving, Deny, "sans-not-held-by-other-nodes", "IP SAN 10.0.0.3 is an address of node node-c"},
		{"wildcard", nodeA, own([]string{"*.cluster.internal"}), serving, Deny, "no-wildcard", "DNS SAN *.cluster.internal is a wildcard"},
		{"localhost", nodeA, own([]string{"localhost"}), serving, Deny, "no-loopback", "DNS SAN localhost"},
		{"127.0.0.1", nodeA, own(nil, "127.0.0.1"), serving, Deny, "no-loopback", "IP SAN 127.0.0.1"},
		{"::1", nodeA, own(nil, "::1"), serving, Deny, "no-loopback", "IP SAN ::1"},
		{"outside the ranges", nodeA, own(nil, "203.0.113.7"), serving, Deny, "ip-sans-in-declared-ranges", "IP SAN 203.0.113.7 is outside the declared kubelet serving IP ranges (10.0.0.0/24, fd00::/64)"},
		{"undeclared suffix", nodeA, own([]string{"node-a.evil.example.com"}), serving, Deny, "dns-sans-are-node-name", "DNS SAN node-a.evil.example.com"},
		// In bounds but not what the Node reports.
		{"unreported in-range IP", nodeA, own(nil, "10.0.0.99"), serving, Deny, "ip-sans-are-node-addresses", "IP SAN 10.0.0.99 is not an address of node node-a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, pemData := newRequest(t, tc.req)
			c := csrObject("x", certv1.KubeletServingSignerName, tc.user, nodeGroups(), pemData, tc.usages...)
			if tc.user == "admin" {
				c.Spec.Groups = []string{MastersGroup}
			}
			d, err := a.Decide(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			if d.Verdict != tc.verdict || d.Policy != tc.policy {
				t.Fatalf("Decide = %v by %q (%s), want %v by %q", d.Verdict, d.Policy, d.Reason, tc.verdict, tc.policy)
			}
			if !strings.Contains(d.Reason, tc.reason) {
				t.Errorf("reason %q, want it to contain %q", d.Reason, tc.reason)
			}
			if d.Verdict == Deny && !strings.Contains(d.Message(), d.Reason) {
				t.Errorf("message %q lacks the reason", d.Message())
			}
		})
	}

	// A lookup error is "cannot decide now", never a denial.
	src.err = errors.New("apiserver unavailable")
	_, pemData := newRequest(t, good)
	if d, err := a.Decide(context.Background(), csrObject("x", certv1.KubeletServingSignerName, nodeA, nodeGroups(), pemData, serving...)); err == nil {
		t.Fatalf("lookup error gave %v, want an error", d)
	}
}

// TestKubeletServingChainUndeclared: without declared IP ranges nothing is
// approved or denied; the request is left for a person, with the reason
// naming the flag.
func TestKubeletServingChainUndeclared(t *testing.T) {
	src := &fakeNodes{nodes: map[string]*corev1.Node{"node-a": testNode("node-a", addr(corev1.NodeInternalIP, "10.0.0.1"), addr(corev1.NodeHostName, "node-a"))}}
	bounds := testBounds()
	bounds.IPRanges = nil
	a, err := NewApprover(KubeletServingChain(src, 0, bounds))
	if err != nil {
		t.Fatal(err)
	}
	_, pemData := newRequest(t, reqSpec{cn: nodeA, o: []string{NodesGroup}, dns: []string{"node-a"}, ips: []string{"10.0.0.1"}})
	d, err := a.Decide(context.Background(), csrObject("x", certv1.KubeletServingSignerName, nodeA, nodeGroups(), pemData, "digital signature", "server auth"))
	if err != nil {
		t.Fatal(err)
	}
	if d.Verdict != Ignore || !strings.Contains(d.Reason, "--kubelet-serving-ip-ranges") || src.calls != 0 {
		t.Fatalf("Decide = %v (%s), %d lookups; want ignore naming --kubelet-serving-ip-ranges, no lookup", d.Verdict, d.Reason, src.calls)
	}
}

func TestPolicyNoWildcard(t *testing.T) {
	runPolicy(t, noWildcard, []policyCase{
		{name: "plain", req: reqSpec{dns: []string{"node-a", "node-a.cluster.internal"}}},
		{name: "leading", req: reqSpec{dns: []string{"node-a", "*.cluster.internal"}}, want: "DNS SAN *.cluster.internal is a wildcard"},
		{name: "inside a label", req: reqSpec{dns: []string{"node-*.cluster.internal"}}, want: "wildcard"},
		{name: "bare", req: reqSpec{dns: []string{"*"}}, want: "wildcard"},
	})
}

func TestPolicyNoLoopback(t *testing.T) {
	runPolicy(t, noLoopback, []policyCase{
		{name: "node addresses", req: reqSpec{dns: []string{"node-a"}, ips: []string{"10.0.0.1", "fd00::1"}}},
		{name: "localhost", req: reqSpec{dns: []string{"LocalHost"}}, want: "DNS SAN LocalHost is a loopback name"},
		{name: "under localhost", req: reqSpec{dns: []string{"api.localhost"}}, want: "loopback name"},
		{name: "127.0.0.1", req: reqSpec{ips: []string{"127.0.0.1"}}, want: "IP SAN 127.0.0.1"},
		{name: "127.8.9.10", req: reqSpec{ips: []string{"127.8.9.10"}}, want: "127.8.9.10"},
		{name: "::1", req: reqSpec{ips: []string{"::1"}}, want: "IP SAN ::1"},
		{name: "::ffff:127.0.0.1", req: reqSpec{ips: []string{"::ffff:127.0.0.1"}}, want: "loopback"},
		{name: "0.0.0.0", req: reqSpec{ips: []string{"0.0.0.0"}}, want: "unspecified"},
		{name: "::", req: reqSpec{ips: []string{"::"}}, want: "unspecified"},
	})
}

func TestPolicyNotServiceCIDR(t *testing.T) {
	b := testBounds()
	b.ServiceCIDRs = append(b.ServiceCIDRs, netip.MustParsePrefix("fd00:96::/108"))
	runPolicy(t, b.notServiceCIDR, []policyCase{
		{name: "node IP", req: reqSpec{ips: []string{"10.0.0.1", "10.112.0.1"}}},
		{name: "kubernetes Service", req: reqSpec{ips: []string{"10.96.0.1"}}, want: "IP SAN 10.96.0.1 is in the service CIDR 10.96.0.0/12"},
		{name: "last of the range", req: reqSpec{ips: []string{"10.111.255.254"}}, want: "10.111.255.254"},
		{name: "IPv4-in-IPv6", req: reqSpec{ips: []string{"::ffff:10.96.0.10"}}, want: "service CIDR 10.96.0.0/12"},
		{name: "IPv6 service", req: reqSpec{ips: []string{"fd00:96::1"}}, want: "service CIDR fd00:96::/108"},
	})
}

func TestPolicyNotAPIServer(t *testing.T) {
	b := testBounds()
	runPolicy(t, b.notAPIServer, []policyCase{
		{name: "node names", req: reqSpec{dns: []string{"node-a", "node-a.cluster.internal"}, ips: []string{"10.0.0.1"}}},
		{name: "kubernetes", req: reqSpec{dns: []string{"kubernetes"}}, want: "DNS SAN kubernetes is a name of the API server"},
		{name: "kubernetes.default", req: reqSpec{dns: []string{"kubernetes.default"}}, want: "kubernetes.default"},
		{name: "kubernetes.default.svc", req: reqSpec{dns: []string{"kubernetes.default.svc"}}, want: "kubernetes.default.svc"},
		{name: "full name", req: reqSpec{dns: []string{"Kubernetes.Default.Svc.Cluster.Local"}}, want: "Kubernetes.Default.Svc.Cluster.Local"},
		{name: "any Service", req: reqSpec{dns: []string{"vault.secrets.svc.cluster.local"}}, want: "vault.secrets.svc.cluster.local"},
		{name: "declared host", req: reqSpec{dns: []string{"API.example.com"}}, want: "API.example.com"},
		{name: "API server IP", req: reqSpec{ips: []string{"10.0.0.250"}}, want: "IP SAN 10.0.0.250 is the API server's address"},
		{name: "API server IP, IPv4-in-IPv6", req: reqSpec{ips: []string{"::ffff:10.0.0.250"}}, want: "the API server's address"},
	})
}

func TestPolicyDNSSANsAreNodeName(t *testing.T) {
	b := testBounds()
	b.DNSSuffixes = append(b.DNSSuffixes, "Nodes.Example.com")
	runPolicy(t, b.dnsSANsAreNodeName, []policyCase{
		{name: "node name", user: nodeA, req: reqSpec{dns: []string{"node-a"}}},
		{name: "under suffixes", user: nodeA, req: reqSpec{dns: []string{"node-a.cluster.internal", "node-a.nodes.example.com"}}},
		{name: "case-insensitive", user: nodeA, req: reqSpec{dns: []string{"NODE-A.Cluster.Internal"}}},
		{name: "no DNS SANs", user: nodeA, req: reqSpec{ips: []string{"10.0.0.1"}}},
		{name: "another node", user: nodeA, req: reqSpec{dns: []string{"node-b"}}, want: "DNS SAN node-b is not the node's name"},
		{name: "undeclared suffix", user: nodeA, req: reqSpec{dns: []string{"node-a.example.org"}}, want: "node-a.example.org"},
		{name: "suffix alone", user: nodeA, req: reqSpec{dns: []string{"cluster.internal"}}, want: "cluster.internal is not"},
		{name: "deeper name", user: nodeA, req: reqSpec{dns: []string{"x.node-a.cluster.internal"}}, want: "x.node-a.cluster.internal"},
		{name: "prefix trick", user: nodeA, req: reqSpec{dns: []string{"node-a.cluster.internal.evil.com"}}, want: "is not the node's name"},
		{name: "trailing dot", user: nodeA, req: reqSpec{dns: []string{"node-a."}}, want: "is not a host name"},
		{name: "wildcard", user: nodeA, req: reqSpec{dns: []string{"*.cluster.internal"}}, want: "is not a host name"},
		{name: "allowed list in reason", user: nodeA, req: reqSpec{dns: []string{"x"}}, want: "allowed: node-a, node-a.cluster.internal, node-a.nodes.example.com"},
	})
}

func TestPolicyIPSANsInRanges(t *testing.T) {
	b := testBounds()
	runPolicy(t, b.ipSANsInRanges, []policyCase{
		{name: "in range", req: reqSpec{ips: []string{"10.0.0.1", "10.0.0.255", "fd00::5"}}},
		{name: "no IP SANs", req: reqSpec{dns: []string{"node-a"}}},
		{name: "IPv4-in-IPv6 in range", req: reqSpec{ips: []string{"::ffff:10.0.0.7"}}},
		{name: "outside", req: reqSpec{ips: []string{"10.0.1.1"}}, want: "IP SAN 10.0.1.1 is outside the declared kubelet serving IP ranges (10.0.0.0/24, fd00::/64)"},
		{name: "other IPv6", req: reqSpec{ips: []string{"fd01::1"}}, want: "fd01::1 is outside"},
	})
	runPolicy(t, ServingBounds{}.ipSANsInRanges, []policyCase{
		{name: "nothing declared", req: reqSpec{ips: []string{"10.0.0.1"}}, want: "(none)"},
	})
}

func TestPolicySANsNotHeldByOtherNodes(t *testing.T) {
	holders := map[string][]string{"10.0.0.1": nil, "10.0.0.2": {"node-b"}, "node-b.cluster.internal": {"node-b", "node-c"}, "node-a": nil}
	runPolicy(t, sansNotHeldByOtherNodes, []policyCase{
		{name: "own", holders: holders, req: reqSpec{dns: []string{"node-a"}, ips: []string{"10.0.0.1"}}},
		{name: "neighbour IP", holders: holders, req: reqSpec{ips: []string{"10.0.0.1", "10.0.0.2"}}, want: "IP SAN 10.0.0.2 is an address of node node-b"},
		{name: "neighbour IP, IPv4-in-IPv6", holders: holders, req: reqSpec{ips: []string{"::ffff:10.0.0.2"}}, want: "address of node node-b"},
		{name: "neighbour name, any case", holders: holders, req: reqSpec{dns: []string{"Node-B.cluster.internal"}}, want: "DNS SAN Node-B.cluster.internal is an address of node node-b, node-c"},
		{name: "not looked up", req: reqSpec{ips: []string{"10.0.0.1"}}, want: "not looked up"},
	})
}

func TestKubeletClientRenewalChain(t *testing.T) {
	a, err := NewApprover(KubeletClientRenewalChain(0))
	if err != nil {
		t.Fatal(err)
	}
	client := []certv1.KeyUsage{"digital signature", "client auth"}
	tests := []struct {
		name    string
		user    string
		groups  []string
		req     reqSpec
		usages  []certv1.KeyUsage
		verdict Verdict
		policy  string
	}{
		{"self renewal", nodeA, nodeGroups(), reqSpec{cn: nodeA, o: []string{NodesGroup}}, client, Approve, ""},
		{"bootstrap token is left alone", "system:bootstrap:abcdef", []string{"system:bootstrappers"}, reqSpec{cn: nodeA, o: []string{NodesGroup}}, client, Ignore, ""},
		{"self but not a node", "jane", []string{"developers"}, reqSpec{cn: "jane", o: []string{NodesGroup}}, client, Deny, "requester-is-node"},
		{"self with a SAN", nodeA, nodeGroups(), reqSpec{cn: nodeA, o: []string{NodesGroup}, dns: []string{"x"}}, client, Deny, "no-sans"},
		{"self with server auth", nodeA, nodeGroups(), reqSpec{cn: nodeA, o: []string{NodesGroup}}, append(client, "server auth"), Deny, "client-usages"},
		{"self with extra group", nodeA, nodeGroups(), reqSpec{cn: nodeA, o: []string{NodesGroup, MastersGroup}}, client, Deny, "o-is-system-nodes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, pemData := newRequest(t, tc.req)
			c := csrObject("x", certv1.KubeAPIServerClientKubeletSignerName, tc.user, tc.groups, pemData, tc.usages...)
			d, err := a.Decide(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			if d.Verdict != tc.verdict || d.Policy != tc.policy {
				t.Fatalf("Decide = %v by %q (%s), want %v by %q", d.Verdict, d.Policy, d.Reason, tc.verdict, tc.policy)
			}
		})
	}
}
