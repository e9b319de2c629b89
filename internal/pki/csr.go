package pki

import (
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"time"
)

var oidBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}

// Requested is what a CSR asks for in its extension request besides names.
type Requested struct {
	// IsCA is set when the CSR asks for basicConstraints CA:TRUE.
	IsCA bool
	// Usages are the extended key usages it asks for (client/server auth);
	// Unknown counts the others.
	Usages  []Usage
	Unknown int
}

// RequestedOf decodes a CSR's requested basic constraints and extended key
// usage (openssl req -addext / ca.conf req_extensions).
func RequestedOf(csr *x509.CertificateRequest) (Requested, error) {
	var r Requested
	for _, ext := range csr.Extensions {
		switch {
		case ext.Id.Equal(oidBasicConstraints):
			var bc struct {
				IsCA       bool `asn1:"optional"`
				MaxPathLen int  `asn1:"optional,default:-1"`
			}
			if _, err := asn1.Unmarshal(ext.Value, &bc); err != nil {
				return r, fmt.Errorf("CSR basicConstraints: %w", err)
			}
			r.IsCA = bc.IsCA
		case ext.Id.Equal(oidExtKeyUsage):
			var oids []asn1.ObjectIdentifier
			if _, err := asn1.Unmarshal(ext.Value, &oids); err != nil {
				return r, fmt.Errorf("CSR extendedKeyUsage: %w", err)
			}
			for _, o := range oids {
				switch {
				case o.Equal(oidClientAuth):
					r.Usages = append(r.Usages, UsageClientAuth)
				case o.Equal(oidServerAuth):
					r.Usages = append(r.Usages, UsageServerAuth)
				default:
					r.Unknown++
				}
			}
		}
	}
	return r, nil
}

// ProfileFromCSR is the certificate a CA may issue for a CSR, under the
// rules kubepki's catalog follows: never a CA; only client and server auth;
// SANs only for a serving certificate (a client certificate names its
// identity in CN and O alone), and only DNS names and IPs. usages, if
// empty, are the CSR's requested ones. The CSR must be self-signed
// correctly (ParseCSR checks it).
func ProfileFromCSR(csr *x509.CertificateRequest, usages []Usage, validity time.Duration) (Profile, error) {
	req, err := RequestedOf(csr)
	if err != nil {
		return Profile{}, err
	}
	if req.IsCA {
		return Profile{}, fmt.Errorf("CSR asks for CA:TRUE; refusing to issue a CA from a CSR")
	}
	if len(usages) == 0 {
		usages = req.Usages
	}
	if len(usages) == 0 {
		return Profile{}, fmt.Errorf("CSR requests no client or server auth usage; choose one (--client, --server or --usages)")
	}
	server := false
	for _, u := range usages {
		if _, err := ExtKeyUsages([]Usage{u}); err != nil {
			return Profile{}, err
		}
		server = server || u == UsageServerAuth
	}
	if csr.Subject.CommonName == "" {
		return Profile{}, fmt.Errorf("CSR has no common name")
	}
	if len(csr.EmailAddresses) > 0 || len(csr.URIs) > 0 {
		return Profile{}, fmt.Errorf("CSR requests email or URI SANs, which Kubernetes certificates do not use")
	}
	if !server && (len(csr.DNSNames) > 0 || len(csr.IPAddresses) > 0) {
		return Profile{}, fmt.Errorf("CSR requests SANs %v for a client-only certificate; a client certificate's identity is its CN and O (add server auth if it also serves)", SANs(csr.DNSNames, csr.IPAddresses))
	}
	if validity <= 0 {
		return Profile{}, fmt.Errorf("validity must be positive")
	}
	return Profile{
		Subject:  SubjectOf(csr.Subject),
		Usages:   usages,
		DNSNames: csr.DNSNames,
		IPs:      csr.IPAddresses,
		Validity: validity,
	}, nil
}
