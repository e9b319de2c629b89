package csr

import (
	"context"
	"crypto/x509/pkix"
	"testing"
	"time"

	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
)

// FuzzParseRequest feeds spec.request bytes, which anyone allowed to create
// a CSR chooses, through everything the signer and approver do with them
// before signing: parsing, the CA check, every signer's rules and the
// kubelet-serving policies. None may panic.
func FuzzParseRequest(f *testing.F) {
	_, good := newRequest(f, reqSpec{cn: "system:node:n", o: []string{NodesGroup}, dns: []string{"n"}, ips: []string{"10.0.0.1"}})
	_, ca := newRequest(f, reqSpec{cn: "x", exts: []pkix.Extension{basicConstraintsExt(f, true), keyUsageExt(f, 0, 5)}})
	f.Add(good)
	f.Add(ca)
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nMAA=\n-----END CERTIFICATE REQUEST-----\n"))
	f.Add([]byte{})
	src := &fakeNodes{nodes: map[string]*corev1.Node{"n": testNode("n", addr(corev1.NodeInternalIP, "10.0.0.1"), addr(corev1.NodeHostName, "n"))}}
	a, err := NewApprover(KubeletServingChain(src, time.Hour))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := ParseRequest(data)
		if err != nil {
			return
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
