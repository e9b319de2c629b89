package csr

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
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
	user   string
	groups []string
	usages []certv1.KeyUsage
	exp    *int32
	req    reqSpec
	node   *corev1.Node // put in ctx when set
	noNode bool         // put "looked up, absent" in ctx
	want   string       // "" passes; otherwise a substring of the reason
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
			if tc.node != nil || tc.noNode {
				ctx = withNode(ctx, tc.node)
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

// TestKubeletServingChain runs the whole chain: the order of the policies
// decides which reason a many-times-wrong request is denied with.
func TestKubeletServingChain(t *testing.T) {
	src := &fakeNodes{nodes: map[string]*corev1.Node{
		"node-a": testNode("node-a", addr(corev1.NodeInternalIP, "10.0.0.1"), addr(corev1.NodeHostName, "node-a")),
	}}
	a, err := NewApprover(KubeletServingChain(src, 48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	serving := []certv1.KeyUsage{"digital signature", "server auth"}
	good := reqSpec{cn: nodeA, o: []string{NodesGroup}, dns: []string{"node-a"}, ips: []string{"10.0.0.1"}}
	tests := []struct {
		name    string
		user    string
		req     reqSpec
		usages  []certv1.KeyUsage
		verdict Verdict
		policy  string
	}{
		{"own names", nodeA, good, serving, Approve, ""},
		{"another node's name", nodeA, reqSpec{cn: "system:node:node-b", o: good.o, dns: []string{"node-b"}}, serving, Deny, "cn-is-requester"},
		{"foreign IP", nodeA, reqSpec{cn: nodeA, o: good.o, ips: []string{"10.0.0.99"}}, serving, Deny, "ip-sans-are-node-addresses"},
		{"foreign DNS", nodeA, reqSpec{cn: nodeA, o: good.o, dns: []string{"evil.example.com"}}, serving, Deny, "dns-sans-are-node-names"},
		{"different requester", "admin", good, serving, Deny, "requester-is-node"},
		{"client auth", nodeA, good, append(serving, "client auth"), Deny, "serving-usages"},
		{"unregistered node", "system:node:node-z", reqSpec{cn: "system:node:node-z", o: good.o, dns: []string{"node-z"}}, serving, Deny, "node-exists"},
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
