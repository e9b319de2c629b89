package csr

import (
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"

	certv1 "k8s.io/api/certificates/v1"
)

// keyUsageOf maps an API usage to an x509 key usage bit, as
// kube-controller-manager's signer does ("signing" is digitalSignature).
func keyUsageOf(u certv1.KeyUsage) (x509.KeyUsage, bool) {
	switch u {
	case certv1.UsageSigning, certv1.UsageDigitalSignature:
		return x509.KeyUsageDigitalSignature, true
	case certv1.UsageContentCommitment:
		return x509.KeyUsageContentCommitment, true
	case certv1.UsageKeyEncipherment:
		return x509.KeyUsageKeyEncipherment, true
	case certv1.UsageKeyAgreement:
		return x509.KeyUsageKeyAgreement, true
	case certv1.UsageDataEncipherment:
		return x509.KeyUsageDataEncipherment, true
	case certv1.UsageCertSign:
		return x509.KeyUsageCertSign, true
	case certv1.UsageCRLSign:
		return x509.KeyUsageCRLSign, true
	case certv1.UsageEncipherOnly:
		return x509.KeyUsageEncipherOnly, true
	case certv1.UsageDecipherOnly:
		return x509.KeyUsageDecipherOnly, true
	}
	return 0, false
}

// extKeyUsageOf maps an API usage to an x509 extended key usage.
func extKeyUsageOf(u certv1.KeyUsage) (x509.ExtKeyUsage, bool) {
	switch u {
	case certv1.UsageAny:
		return x509.ExtKeyUsageAny, true
	case certv1.UsageServerAuth:
		return x509.ExtKeyUsageServerAuth, true
	case certv1.UsageClientAuth:
		return x509.ExtKeyUsageClientAuth, true
	case certv1.UsageCodeSigning:
		return x509.ExtKeyUsageCodeSigning, true
	case certv1.UsageEmailProtection, certv1.UsageSMIME:
		return x509.ExtKeyUsageEmailProtection, true
	case certv1.UsageIPsecEndSystem:
		return x509.ExtKeyUsageIPSECEndSystem, true
	case certv1.UsageIPsecTunnel:
		return x509.ExtKeyUsageIPSECTunnel, true
	case certv1.UsageIPsecUser:
		return x509.ExtKeyUsageIPSECUser, true
	case certv1.UsageTimestamping:
		return x509.ExtKeyUsageTimeStamping, true
	case certv1.UsageOCSPSigning:
		return x509.ExtKeyUsageOCSPSigning, true
	case certv1.UsageMicrosoftSGC:
		return x509.ExtKeyUsageMicrosoftServerGatedCrypto, true
	case certv1.UsageNetscapeSGC:
		return x509.ExtKeyUsageNetscapeServerGatedCrypto, true
	}
	return 0, false
}

// KeyUsages translates spec.usages into the certificate's key usage bits
// and extended key usages (sorted, without duplicates). An unknown usage is
// an error.
func KeyUsages(usages []certv1.KeyUsage) (x509.KeyUsage, []x509.ExtKeyUsage, error) {
	var (
		ku      x509.KeyUsage
		eku     []x509.ExtKeyUsage
		unknown []string
	)
	for _, u := range usages {
		if k, ok := keyUsageOf(u); ok {
			ku |= k
		} else if e, ok := extKeyUsageOf(u); ok {
			if !slices.Contains(eku, e) {
				eku = append(eku, e)
			}
		} else {
			unknown = append(unknown, fmt.Sprintf("%q", u))
		}
	}
	if len(unknown) > 0 {
		return 0, nil, fmt.Errorf("unknown usages %s", strings.Join(unknown, ", "))
	}
	slices.Sort(eku)
	return ku, eku, nil
}

// DefaultUsages are the usages kubepki puts in a new CSR for the signer:
// what the kubelet itself asks for (digital signature; key encipherment only
// with an RSA key, the one kind TLS encrypts to; server auth for
// kubelet-serving, client auth otherwise).
func DefaultUsages(signerName string, pub crypto.PublicKey) []certv1.KeyUsage {
	us := []certv1.KeyUsage{certv1.UsageDigitalSignature}
	if _, ok := pub.(*rsa.PublicKey); ok {
		us = append(us, certv1.UsageKeyEncipherment)
	}
	if signerName == certv1.KubeletServingSignerName {
		return append(us, certv1.UsageServerAuth)
	}
	return append(us, certv1.UsageClientAuth)
}

// usageSet is a set of usages compared without regard to order.
type usageSet []certv1.KeyUsage

// equal reports whether us holds exactly the usages of set (duplicates
// ignored; the API server refuses duplicate usages anyway).
func (set usageSet) equal(us []certv1.KeyUsage) bool {
	for _, u := range us {
		if !slices.Contains(set, u) {
			return false
		}
	}
	for _, u := range set {
		if !slices.Contains(us, u) {
			return false
		}
	}
	return true
}

// String lists the usages as [a, b].
func (set usageSet) String() string {
	s := make([]string, len(set))
	for i, u := range set {
		s[i] = string(u)
	}
	return "[" + strings.Join(s, ", ") + "]"
}

func usagesString(us []certv1.KeyUsage) string { return usageSet(us).String() }
