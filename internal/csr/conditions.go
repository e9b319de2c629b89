package csr

import (
	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
)

// HasCondition reports whether the CSR has a condition of the type whose
// status is True (or empty, which the API server defaults to True).
func HasCondition(c *certv1.CertificateSigningRequest, t certv1.RequestConditionType) bool {
	return Condition(c, t) != nil
}

// Condition returns the CSR's true condition of the type, or nil.
func Condition(c *certv1.CertificateSigningRequest, t certv1.RequestConditionType) *certv1.CertificateSigningRequestCondition {
	for i := range c.Status.Conditions {
		cond := &c.Status.Conditions[i]
		if cond.Type == t && (cond.Status == "" || cond.Status == corev1.ConditionTrue) {
			return cond
		}
	}
	return nil
}

// Approved reports whether the CSR is approved and not denied (the API
// server refuses to hold both, but a signer must not rely on that).
func Approved(c *certv1.CertificateSigningRequest) bool {
	return HasCondition(c, certv1.CertificateApproved) && !HasCondition(c, certv1.CertificateDenied)
}

// Denied reports whether the CSR was denied.
func Denied(c *certv1.CertificateSigningRequest) bool {
	return HasCondition(c, certv1.CertificateDenied)
}

// Failed reports whether a signer gave up on the CSR.
func Failed(c *certv1.CertificateSigningRequest) bool {
	return HasCondition(c, certv1.CertificateFailed)
}

// Issued reports whether the CSR carries a certificate.
func Issued(c *certv1.CertificateSigningRequest) bool {
	return len(c.Status.Certificate) > 0
}

// Decided reports whether an approver has already approved or denied the CSR.
func Decided(c *certv1.CertificateSigningRequest) bool {
	return HasCondition(c, certv1.CertificateApproved) || HasCondition(c, certv1.CertificateDenied)
}

// NeedsSigning reports whether a signer should act: approved, not denied,
// not failed, no certificate yet.
func NeedsSigning(c *certv1.CertificateSigningRequest) bool {
	return Approved(c) && !Failed(c) && !Issued(c)
}

// State names the CSR's state the way kubectl get csr's CONDITION column
// does: Pending, Approved, Approved,Issued, Denied, Failed.
func State(c *certv1.CertificateSigningRequest) string {
	switch {
	case Denied(c):
		return "Denied"
	case Failed(c):
		return "Failed"
	case Approved(c) && Issued(c):
		return "Approved,Issued"
	case Approved(c):
		return "Approved"
	}
	return "Pending"
}
