package pki

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"net"
	"slices"
	"strings"
)

// Diff lists, one human-readable line each, how cert differs from what the
// profile asks for: identity (CN, O), CA flag, usages and SANs. Country,
// province and locality are cosmetic and not compared; neither is validity,
// which is a question of time, not of shape.
//
// A CA is compared only as a CA: its name is not a Kubernetes identity, so a
// CA the user brings (any CN, and openssl's `req -x509` leaves key usage
// out, which allows every use) is accepted when it can sign certificates.
func Diff(cert *x509.Certificate, p Profile) []string {
	var out []string
	if p.IsCA {
		if !cert.IsCA {
			out = append(out, "CA:FALSE, want CA:TRUE")
		}
		if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
			out = append(out, fmt.Sprintf("key usage is [%s], want at least [keyCertSign]", strings.Join(KeyUsageNames(cert.KeyUsage), ", ")))
		}
		return out
	}
	if got, want := cert.Subject.CommonName, p.Subject.CommonName; got != want {
		out = append(out, fmt.Sprintf("CN is %q, want %q", got, want))
	}
	if got, want := sorted(cert.Subject.Organization), sorted(p.Subject.Organization); !slices.Equal(got, want) {
		out = append(out, fmt.Sprintf("O (groups) is [%s], want [%s]", strings.Join(got, ", "), strings.Join(want, ", ")))
	}
	if cert.IsCA != p.IsCA {
		out = append(out, fmt.Sprintf("CA:%s, want CA:%s", strings.ToUpper(fmt.Sprint(cert.IsCA)), strings.ToUpper(fmt.Sprint(p.IsCA))))
	}
	if want := RequiredKeyUsage(cert.PublicKey, p.IsCA); cert.KeyUsage&want != want {
		out = append(out, fmt.Sprintf("key usage is [%s], want at least [%s]", strings.Join(KeyUsageNames(cert.KeyUsage), ", "), strings.Join(KeyUsageNames(want), ", ")))
	}
	if !p.IsCA && cert.KeyUsage&x509.KeyUsageCertSign != 0 {
		out = append(out, "key usage includes certSign on a non-CA certificate")
	}
	gotU, wantU := usageStrings(UsagesOf(cert)), usageStrings(p.Usages)
	for _, u := range setMinus(wantU, gotU) {
		out = append(out, fmt.Sprintf("extended key usage %q required, absent", u))
	}
	for _, u := range setMinus(gotU, wantU) {
		out = append(out, fmt.Sprintf("extended key usage %q present, not in spec", u))
	}
	gotS, wantS := SANs(cert.DNSNames, cert.IPAddresses), SANs(p.DNSNames, p.IPs)
	for _, s := range setMinus(wantS, gotS) {
		out = append(out, fmt.Sprintf("SAN %s required by spec, absent", s))
	}
	for _, s := range setMinus(gotS, wantS) {
		out = append(out, fmt.Sprintf("SAN %s present, not in spec", s))
	}
	return out
}

// RequiredKeyUsage is the key usage a certificate must have to work: a CA
// must be allowed to sign certificates (kubeadm's CAs lack cRLSign and the
// hard way's openssl CAs lack digitalSignature; both work), and a leaf needs
// what KeyUsageFor gives it for TLS.
func RequiredKeyUsage(pub crypto.PublicKey, isCA bool) x509.KeyUsage {
	if isCA {
		return x509.KeyUsageCertSign
	}
	return KeyUsageFor(pub, false)
}

// SANs renders DNS names and IPs the way openssl prints them: DNS:x, IP:y.
func SANs(dns []string, ips []net.IP) []string {
	out := make([]string, 0, len(dns)+len(ips))
	for _, d := range dns {
		out = append(out, "DNS:"+d)
	}
	for _, ip := range ips {
		out = append(out, "IP:"+ip.String())
	}
	return out
}

// KeyUsageNames names the bits of a key usage in RFC 5280 order.
func KeyUsageNames(ku x509.KeyUsage) []string {
	names := []string{"digitalSignature", "contentCommitment", "keyEncipherment", "dataEncipherment", "keyAgreement", "keyCertSign", "cRLSign", "encipherOnly", "decipherOnly"}
	var out []string
	for i, n := range names {
		if ku&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

func usageStrings(us []Usage) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = string(u)
	}
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// setMinus returns the elements of a not in b, in a's order.
func setMinus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}
