package csr

import (
	"crypto/rand"
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
	if ca == nil || ca.Cert == nil || ca.Key == nil {
		return nil, fmt.Errorf("sign %q: no CA key", req.Subject.CommonName)
	}
	ku, eku, err := KeyUsages(usages)
	if err != nil {
		return nil, fmt.Errorf("sign %q: %w", req.Subject.CommonName, err)
	}
	notBefore, notAfter, err := Validity(now, ttl, ca.Cert.NotAfter)
	if err != nil {
		return nil, fmt.Errorf("sign %q: %w", req.Subject.CommonName, err)
	}
	serial, err := pki.SerialNumber()
	if err != nil {
		return nil, err
	}
	ski, err := pki.SubjectKeyID(req.PublicKey)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               req.Subject,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              ku,
		ExtKeyUsage:           eku,
		BasicConstraintsValid: true,
		IsCA:                  false,
		DNSNames:              slices.Clone(req.DNSNames),
		IPAddresses:           slices.Clone(req.IPAddresses),
		EmailAddresses:        slices.Clone(req.EmailAddresses),
		URIs:                  slices.Clone(req.URIs),
		SubjectKeyId:          ski,
	}
	// The request's own extensions (basic constraints, key usage, anything
	// else) are deliberately not copied: x509.CreateCertificate writes only
	// what the template's fields and its (empty) ExtraExtensions say.
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, req.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("sign %q: %w", req.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse certificate for %q: %w", req.Subject.CommonName, err)
	}
	return cert, nil
}
