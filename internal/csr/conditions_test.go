package csr

import (
	"testing"

	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
)

func TestConditions(t *testing.T) {
	cond := func(ct certv1.RequestConditionType, s corev1.ConditionStatus) certv1.CertificateSigningRequestCondition {
		return certv1.CertificateSigningRequestCondition{Type: ct, Status: s}
	}
	tests := []struct {
		name        string
		conds       []certv1.CertificateSigningRequestCondition
		cert        bool
		needsSigned bool
		state       string
	}{
		{"pending", nil, false, false, "Pending"},
		{"approved", []certv1.CertificateSigningRequestCondition{cond(certv1.CertificateApproved, corev1.ConditionTrue)}, false, true, "Approved"},
		{"approved, empty status counts as true", []certv1.CertificateSigningRequestCondition{cond(certv1.CertificateApproved, "")}, false, true, "Approved"},
		{"approved False is not approved", []certv1.CertificateSigningRequestCondition{cond(certv1.CertificateApproved, corev1.ConditionFalse)}, false, false, "Pending"},
		{"issued", []certv1.CertificateSigningRequestCondition{cond(certv1.CertificateApproved, corev1.ConditionTrue)}, true, false, "Approved,Issued"},
		{"denied", []certv1.CertificateSigningRequestCondition{cond(certv1.CertificateDenied, corev1.ConditionTrue)}, false, false, "Denied"},
		{"approved and denied", []certv1.CertificateSigningRequestCondition{cond(certv1.CertificateApproved, corev1.ConditionTrue), cond(certv1.CertificateDenied, corev1.ConditionTrue)}, false, false, "Denied"},
		{"failed", []certv1.CertificateSigningRequestCondition{cond(certv1.CertificateApproved, corev1.ConditionTrue), cond(certv1.CertificateFailed, corev1.ConditionTrue)}, false, false, "Failed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &certv1.CertificateSigningRequest{}
			c.Status.Conditions = tc.conds
			if tc.cert {
				c.Status.Certificate = []byte("x")
			}
			if got := NeedsSigning(c); got != tc.needsSigned {
				t.Errorf("NeedsSigning = %v", got)
			}
			if got := State(c); got != tc.state {
				t.Errorf("State = %q, want %q", got, tc.state)
			}
		})
	}
}
