package csr

import (
	"context"
	"crypto/x509"
	"strings"
	"testing"

	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
)

// TestDecideTriage checks what Decide drops before any policy runs, and
// that policies run in order with the first failure deciding.
func TestDecideTriage(t *testing.T) {
	var ran []string
	pass := func(name string) Policy {
		return Policy{name, func(context.Context, *certv1.CertificateSigningRequest, *x509.CertificateRequest) (bool, string) {
			ran = append(ran, name)
			return true, ""
		}}
	}
	fail := func(name string) Policy {
		return Policy{name, func(context.Context, *certv1.CertificateSigningRequest, *x509.CertificateRequest) (bool, string) {
			ran = append(ran, name)
			return false, name + " says no"
		}}
	}
	a, err := NewApprover(
		Chain{Name: "passing", SignerName: "example.com/pass", Policies: []Policy{pass("one"), pass("two")}},
		Chain{Name: "failing", SignerName: "example.com/fail", Policies: []Policy{pass("one"), fail("two"), fail("three")}},
		Chain{Name: "picky", SignerName: "example.com/picky",
			Owns: func(c *certv1.CertificateSigningRequest, _ *x509.CertificateRequest) (bool, string) {
				return c.Spec.Username == "me", "not mine"
			},
			Policies: []Policy{pass("one")}},
	)
	if err != nil {
		t.Fatal(err)
	}
	_, pemData := newRequest(t, reqSpec{cn: "x"})
	mk := func(signer, user string, conds ...certv1.RequestConditionType) *certv1.CertificateSigningRequest {
		c := csrObject("x", signer, user, nil, pemData, "client auth")
		for _, ct := range conds {
			c.Status.Conditions = append(c.Status.Conditions, certv1.CertificateSigningRequestCondition{Type: ct, Status: corev1.ConditionTrue})
		}
		return c
	}
	issued := mk("example.com/pass", "me")
	issued.Status.Certificate = []byte("x")
	garbled := mk("example.com/pass", "me")
	garbled.Spec.Request = []byte("not a request")
	tests := []struct {
		name    string
		c       *certv1.CertificateSigningRequest
		verdict Verdict
		policy  string
		ran     string
	}{
		{"approved already", mk("example.com/pass", "me", certv1.CertificateApproved), Ignore, "", ""},
		{"denied already", mk("example.com/pass", "me", certv1.CertificateDenied), Ignore, "", ""},
		{"failed", mk("example.com/pass", "me", certv1.CertificateFailed), Ignore, "", ""},
		{"issued", issued, Ignore, "", ""},
		{"no chain", mk("example.com/other", "me"), Ignore, "", ""},
		{"not owned", mk("example.com/picky", "you"), Ignore, "", ""},
		{"garbled request", garbled, Deny, "request-parses", ""},
		{"all pass", mk("example.com/pass", "me"), Approve, "", "one,two"},
		{"first failure decides", mk("example.com/fail", "me"), Deny, "two", "one,two"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ran = nil
			d, err := a.Decide(context.Background(), tc.c)
			if err != nil {
				t.Fatal(err)
			}
			if d.Verdict != tc.verdict || d.Policy != tc.policy || strings.Join(ran, ",") != tc.ran {
				t.Fatalf("Decide = %v by %q (%s), ran %v; want %v by %q, ran %s", d.Verdict, d.Policy, d.Reason, ran, tc.verdict, tc.policy, tc.ran)
			}
		})
	}
	if _, err := NewApprover(KubeletServingChain(nil, 0, ServingBounds{}), KubeletServingChain(nil, 0, ServingBounds{})); err == nil {
		t.Error("two chains for one signer accepted")
	}
}

func TestDecisionMessage(t *testing.T) {
	d := Decision{Verdict: Deny, Chain: "kubelet-serving", Policy: "cn-is-requester", Reason: "CN x"}
	if got := d.Message(); got != "kubepki kubelet-serving policy cn-is-requester: CN x" {
		t.Errorf("Message = %q", got)
	}
	if got := (Decision{Verdict: Approve, Chain: "c", Reason: "all 2 policies passed"}).Message(); got != "kubepki c: all 2 policies passed" {
		t.Errorf("Message = %q", got)
	}
}
