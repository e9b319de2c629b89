package csr

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"

	"kubepki.dev/kubepki/internal/pki"
)

// FuzzParseRequest feeds spec.request bytes, which anyone allowed to create
// a CSR chooses, through everything the signer and approver do with them
// before signing: parsing, the CA check, every signer's rules and the
// kubelet-serving policies; and through what `csr list` decodes of them,
// which must list every request, with the reason when it does not parse.
// None may panic.
func FuzzParseRequest(f *testing.F) {
	_, good := newRequest(f, reqSpec{cn: "system:node:n", o: []string{NodesGroup}, dns: []string{"n"}, ips: []string{"10.0.0.1"}})
	_, ca := newRequest(f, reqSpec{cn: "x", exts: []pkix.Extension{basicConstraintsExt(f, true), keyUsageExt(f, 0, 5)}})
	f.Add(good)
	f.Add(ca)
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nMAA=\n-----END CERTIFICATE REQUEST-----\n"))
	f.Add([]byte{})
	src := &fakeNodes{nodes: map[string]*corev1.Node{"n": testNode("n", addr(corev1.NodeInternalIP, "10.0.0.1"), addr(corev1.NodeHostName, "n"))}}
	a, err := NewApprover(KubeletServingChain(src, time.Hour, ServingBounds{IPRanges: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")}}))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := ParseRequest(data)
		sum := Summarize(csrObject("f", certv1.KubeletServingSignerName, "system:node:n", []string{NodesGroup}, data))
		if sum.Name != "f" || (err != nil) != (sum.RequestError != "") {
			t.Fatalf("Summarize: name %q, requestError %q; ParseRequest: %v", sum.Name, sum.RequestError, err)
		}
		if err != nil {
			return
		}
		if sum.CommonName != req.Subject.CommonName || len(sum.DNSNames) != len(req.DNSNames) || len(sum.IPAddresses) != len(req.IPAddresses) {
			t.Fatalf("Summarize lost part of the request: %+v", sum)
		}
		_ = RequestsCA(req)
		for _, s := range []string{certv1.KubeletServingSignerName, certv1.KubeAPIServerClientKubeletSignerName, certv1.KubeAPIServerClientSignerName, "kubepki.dev/x"} {
			_ = ValidateForSigner(s, req, []certv1.KeyUsage{"digital signature", "server auth"})
		}
		c := csrObject("f", certv1.KubeletServingSignerName, "system:node:n", []string{NodesGroup}, data, "digital signature", "server auth")
		if _, err := a.Decide(context.Background(), c); err != nil {
			t.Fatalf("Decide: %v", err)
		}
	})
}

// FuzzParseApprovalPolicy: a policy file is operator input, but a typo must
// be an error, never a panic.
func FuzzParseApprovalPolicy(f *testing.F) {
	f.Add([]byte(testPolicy))
	f.Add([]byte("rules:\n- {name: a, requesterUsers: [u], commonNames: ['[']}\n"))
	f.Add([]byte("{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseApprovalPolicy(data)
		if err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("parsed policy does not validate: %v", err)
		}
		for _, r := range p.Rules {
			_ = matchName(r.CommonNames, "jane", "jane")
			_ = matchName(r.Groups, "system:masters", "jane")
		}
	})
}

// FuzzKubeletServingDecision judges kubelet serving requests with arbitrary
// node names, SANs and Node addresses (all of which a node's credentials
// choose: NodeRestriction lets a kubelet write its own status.addresses)
// and checks, on every approval, the invariants the chain exists for,
// computed here independently of it: no wildcard, no loopback name or
// address, nothing in the service CIDR, no name or address of the API
// server, DNS SANs only NODE or NODE.cluster.internal, IP SANs only inside
// the declared ranges, nothing another Node holds.
func FuzzKubeletServingDecision(f *testing.F) {
	ip := func(s string) []byte {
		a := netip.MustParseAddr(s)
		if a.Is4() {
			b := a.As4()
			return b[:]
		}
		b := a.As16()
		return append([]byte{1}, b[:]...) // odd first byte: 16 bytes follow
	}
	f.Add("node-a", "node-a,node-a.cluster.internal", ip("10.0.0.1"), "10.0.0.1,node-a,node-a.cluster.internal", "10.0.0.2") // approved
	f.Add("node-a", "node-a,kubernetes.default.svc.cluster.local", ip("10.0.0.1"), "10.0.0.1,node-a,kubernetes.default.svc.cluster.local", "10.0.0.2")
	f.Add("node-a", "node-a", append(ip("10.0.0.1"), ip("10.96.0.1")...), "10.0.0.1,10.96.0.1,node-a", "10.0.0.2")
	f.Add("node-a", "node-a", append(ip("10.0.0.1"), ip("10.0.0.2")...), "10.0.0.1,10.0.0.2,node-a", "10.0.0.2")
	f.Add("node-a", "*.cluster.internal", ip("10.0.0.1"), "10.0.0.1,*.cluster.internal", "10.0.0.2")
	f.Add("node-a", "localhost", ip("127.0.0.1"), "127.0.0.1,localhost", "10.0.0.2")
	f.Add("kubernetes", "kubernetes", ip("10.0.0.1"), "10.0.0.1,kubernetes", "10.0.0.2")
	f.Add("kubernetes.default.svc", "kubernetes.default.svc.cluster.internal", ip("10.0.0.1"), "10.0.0.1,kubernetes.default.svc.cluster.internal", "x")
	f.Add("n", "n", ip("::ffff:10.96.0.1"), "::ffff:10.96.0.1,10.96.0.1,n", "x")
	f.Add("n", "n", ip("fd00::1"), "fd00::1,n", "fd00::2")
	f.Add("n", "N", ip("10.0.0.250"), "10.0.0.250,n", "x")

	bounds := ServingBounds{
		IPRanges:       []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("fd00::/64"), netip.MustParsePrefix("10.96.0.0/11")},
		DNSSuffixes:    []string{"cluster.internal"},
		ServiceCIDRs:   []netip.Prefix{netip.MustParsePrefix(DefaultServiceCIDR)},
		ClusterDomain:  DefaultClusterDomain,
		APIServerNames: []string{"api.example.com"},
		APIServerIPs:   []netip.Addr{netip.MustParseAddr("10.0.0.250")},
	}
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, nodeName, dnsList string, ipBytes []byte, addrList, neighbourList string) {
		if nodeName == "" || nodeName == "neighbour" {
			return
		}
		tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: NodeUserPrefix + nodeName, Organization: []string{NodesGroup}}}
		if dnsList != "" {
			tmpl.DNSNames = strings.Split(dnsList, ",")
		}
		for len(ipBytes) > 0 && len(tmpl.IPAddresses) < 8 {
			n := 4
			if ipBytes[0]&1 == 1 && len(ipBytes) >= 17 {
				ipBytes, n = ipBytes[1:], 16
			}
			if len(ipBytes) < n {
				break
			}
			tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(slices.Clone(ipBytes[:n])))
			ipBytes = ipBytes[n:]
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
		if err != nil {
			return // not encodable (a non-ASCII name): never reaches the API
		}
		req, err := x509.ParseCertificateRequest(der)
		if err != nil {
			return
		}
		var own, neighbour []corev1.NodeAddress
		for _, a := range strings.Split(addrList, ",") {
			own = append(own, addr(corev1.NodeInternalIP, a), addr(corev1.NodeHostName, a))
		}
		for _, a := range strings.Split(neighbourList, ",") {
			neighbour = append(neighbour, addr(corev1.NodeInternalIP, a))
		}
		src := &fakeNodes{nodes: map[string]*corev1.Node{nodeName: testNode(nodeName, own...), "neighbour": testNode("neighbour", neighbour...)}}
		a, err := NewApprover(KubeletServingChain(src, time.Hour, bounds))
		if err != nil {
			t.Fatal(err)
		}
		c := csrObject("f", certv1.KubeletServingSignerName, NodeUserPrefix+nodeName, []string{NodesGroup}, pki.EncodeCSR(der), "digital signature", "server auth")
		d, err := a.Decide(context.Background(), c)
		if err != nil {
			t.Fatalf("Decide: %v", err)
		}
		if d.Verdict != Approve {
			return
		}
		held := map[string]bool{}
		for _, a := range strings.Split(neighbourList, ",") {
			held[strings.ToLower(a)] = true
			if ip, err := netip.ParseAddr(a); err == nil {
				held[ip.Unmap().WithZone("").String()] = true
			}
		}
		node := strings.ToLower(nodeName)
		for _, dns := range req.DNSNames {
			l := strings.ToLower(dns)
			switch {
			case strings.Contains(l, "*"):
				t.Fatalf("approved wildcard %q", dns)
			case l == "localhost" || strings.HasSuffix(l, ".localhost"):
				t.Fatalf("approved loopback name %q", dns)
			case l == "kubernetes" || l == "kubernetes.default" || l == "api.example.com" ||
				strings.HasSuffix(l, ".svc") || strings.HasSuffix(l, ".svc.cluster.local") || l == "svc":
				t.Fatalf("approved API server or Service name %q", dns)
			case l != node && l != node+".cluster.internal":
				t.Fatalf("approved DNS SAN %q for node %q", dns, nodeName)
			case held[l]:
				t.Fatalf("approved DNS SAN %q held by another node", dns)
			}
		}
		for _, raw := range req.IPAddresses {
			ip, _ := netip.AddrFromSlice(raw)
			ip = ip.Unmap()
			switch {
			case ip.IsLoopback() || ip.IsUnspecified():
				t.Fatalf("approved loopback IP %s", ip)
			case netip.MustParsePrefix(DefaultServiceCIDR).Contains(ip):
				t.Fatalf("approved service IP %s", ip)
			case ip == netip.MustParseAddr("10.0.0.250"):
				t.Fatalf("approved the API server's IP %s", ip)
			case !netip.MustParsePrefix("10.0.0.0/24").Contains(ip) && !netip.MustParsePrefix("fd00::/64").Contains(ip) && !netip.MustParsePrefix("10.96.0.0/11").Contains(ip):
				t.Fatalf("approved IP %s outside the declared ranges", ip)
			case held[ip.String()]:
				t.Fatalf("approved IP %s held by another node", ip)
			}
		}
	})
}
