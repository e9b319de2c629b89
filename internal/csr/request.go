package csr

import (
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
)

// MaxRequestBytes bounds spec.request. A PKCS#10 request for an RSA-4096
// key with a hundred SANs is under 16 KiB; anything near this limit is not a
// certificate request a Kubernetes component would make.
const MaxRequestBytes = 64 << 10

// ParseRequest parses spec.request of a CertificateSigningRequest: PEM whose
// first block is a "CERTIFICATE REQUEST" (the API server accepts nothing
// else, and like it we ignore what follows the first block), holding a
// PKCS#10 request whose self-signature verifies. spec.request is untrusted:
// whoever may create CSR objects chooses every byte of it.
func ParseRequest(data []byte) (*x509.CertificateRequest, error) {
	if len(data) > MaxRequestBytes {
		return nil, fmt.Errorf("certificate request is %d bytes, more than the %d allowed", len(data), MaxRequestBytes)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("certificate request is not PEM")
	}
	if block.Type != "CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("PEM block is %q, want \"CERTIFICATE REQUEST\"", block.Type)
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse certificate request: %w", err)
	}
	if err := req.CheckSignature(); err != nil {
		return nil, fmt.Errorf("certificate request signature: %w", err)
	}
	return req, nil
}

// The extensions RequestsCA looks at (RFC 5280 §4.2.1.9 and §4.2.1.3).
func oidBasicConstraints() asn1.ObjectIdentifier { return asn1.ObjectIdentifier{2, 5, 29, 19} }
func oidKeyUsage() asn1.ObjectIdentifier         { return asn1.ObjectIdentifier{2, 5, 29, 15} }

// RequestsCA reports whether the request asks to be a CA: a basic
// constraints extension with cA TRUE, or a key usage extension with
// keyCertSign. Signers never honour either (the certificate they issue is
// CA:FALSE with the key usages of spec.usages); the approver refuses such
// requests outright, since nobody asking for a leaf writes them by accident.
// The result is a reason for a person, or "" when the request is a leaf.
func RequestsCA(req *x509.CertificateRequest) string {
	for _, ext := range req.Extensions {
		switch {
		case ext.Id.Equal(oidBasicConstraints()):
			var bc struct {
				IsCA       bool `asn1:"optional"`
				MaxPathLen int  `asn1:"optional,default:-1"`
			}
			if rest, err := asn1.Unmarshal(ext.Value, &bc); err != nil || len(rest) > 0 {
				return "the request carries a malformed basic constraints extension"
			}
			if bc.IsCA {
				return "the request asks for basic constraints CA:TRUE"
			}
		case ext.Id.Equal(oidKeyUsage()):
			var bits asn1.BitString
			if rest, err := asn1.Unmarshal(ext.Value, &bits); err != nil || len(rest) > 0 {
				return "the request carries a malformed key usage extension"
			}
			// keyCertSign is bit 5, cRLSign bit 6 (RFC 5280 §4.2.1.3).
			if bits.At(5) == 1 || bits.At(6) == 1 {
				return "the request asks for the keyCertSign or cRLSign key usage"
			}
		}
	}
	return ""
}
