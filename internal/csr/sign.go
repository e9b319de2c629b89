package csr

import (
	"crypto/x509"
	"fmt"
	"slices"
	"time"

	certv1 "k8s.io/api/certificates/v1"

	"kubepki.dev/kubepki/internal/pki"
)

// Sign issues the certificate an approved request asks for, the way
// kube-controller-manager's signer does: subject and SANs from the request,
// key usages from spec.usages (not from the request's extensions), a random
// 128-bit serial, the lifetime ttl (see Lifetime) placed by Validity, and
// basic constraints CA:FALSE whatever the request says. No other extension
// of the request is copied. Check the request with ValidateForSigner first.
func Sign(ca *pki.CA, req *x509.CertificateRequest, usages []certv1.KeyUsage, ttl time.Duration, now time.Time) (*x509.Certificate, error) {
	if ca == nil || ca.Cert == nil {
		return nil, fmt.Errorf("sign %q: no CA", req.Subject.CommonName)
	}
	ku, eku, err := KeyUsages(usages)
	if err != nil {
		return nil, fmt.Errorf("sign %q: %w", req.Subject.CommonName, err)
	}
	notBefore, notAfter, err := Validity(now, ttl, ca.Cert.NotAfter)
	if err != nil {
		return nil, fmt.Errorf("sign %q: %w", req.Subject.CommonName, err)
	}
	// The request's own extensions (basic constraints, key usage, anything
	// else) are deliberately not copied: the certificate says only what
	// the template's fields say.
	return ca.Sign(req.PublicKey, &x509.Certificate{
		Subject:        req.Subject,
		NotBefore:      notBefore,
		NotAfter:       notAfter,
		KeyUsage:       ku,
		ExtKeyUsage:    eku,
		DNSNames:       slices.Clone(req.DNSNames),
		IPAddresses:    slices.Clone(req.IPAddresses),
		EmailAddresses: slices.Clone(req.EmailAddresses),
		URIs:           slices.Clone(req.URIs),
	}, now)
}
