package pki

import (
	"crypto/rand"
	"crypto/x509"
	"math/big"
	"net"
	"slices"
	"testing"
	"time"
)

// craft signs a certificate outside Issue's rules, for shapes Issue never
// makes (certSign on a leaf, RSA leaf without keyEncipherment, …).
func craft(t *testing.T, ca *CA, mutate func(*x509.Certificate)) *x509.Certificate {
	t.Helper()
	p := leafProfile()
	pub := cachedKey(t, ECDSAP256, 1).Public()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(42),
		Subject:               p.Subject.Name(),
		NotBefore:             testNow,
		NotAfter:              testNow.Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              p.DNSNames,
		IPAddresses:           p.IPs,
		PublicKey:             pub,
	}
	mutate(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, tmpl.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDiff(t *testing.T) {
	ca := mustCA(t, cachedKey(t, ECDSAP256, 0), caProfile("diff CA"), testNow)
	leafKey := cachedKey(t, ECDSAP256, 1)
	rsaKey := cachedKey(t, RSA2048, 1)
	base := leafProfile() // the spec every case is compared against

	// issued returns a certificate issued for a profile derived from base.
	issued := func(mutate func(*Profile)) func(*testing.T) *x509.Certificate {
		return func(t *testing.T) *x509.Certificate {
			p := leafProfile()
			if mutate != nil {
				mutate(&p)
			}
			return mustIssue(t, ca, leafKey.Public(), p, testNow)
		}
	}
	crafted := func(mutate func(*x509.Certificate)) func(*testing.T) *x509.Certificate {
		return func(t *testing.T) *x509.Certificate { return craft(t, ca, mutate) }
	}

	tests := []struct {
		name string
		cert func(*testing.T) *x509.Certificate
		spec func(*Profile) // changes to base, if any
		want []string
	}{
		{"identical", issued(nil), nil, nil},
		{"wrong CN", issued(func(p *Profile) { p.Subject.CommonName = "system:node:node-1" }), nil,
			[]string{`CN is "system:node:node-1", want "system:node:node-0"`}},
		{"wrong O", issued(func(p *Profile) { p.Subject.Organization = []string{"system:masters"} }), nil,
			[]string{`O (groups) is [system:masters], want [system:nodes]`}},
		{"missing O", issued(func(p *Profile) { p.Subject.Organization = nil }), nil,
			[]string{`O (groups) is [], want [system:nodes]`}},
		{"extra O", issued(func(p *Profile) { p.Subject.Organization = []string{"system:nodes", "system:masters"} }), nil,
			[]string{`O (groups) is [system:masters, system:nodes], want [system:nodes]`}},
		{"O order is irrelevant",
			issued(func(p *Profile) { p.Subject.Organization = []string{"b", "a"} }),
			func(p *Profile) { p.Subject.Organization = []string{"a", "b"} }, nil},
		{"C, ST, L are cosmetic", issued(func(p *Profile) {
			p.Subject.Country, p.Subject.Province, p.Subject.Locality = []string{"DE"}, []string{"BE"}, []string{"Berlin"}
		}), nil, nil},
		{"validity is not shape", issued(func(p *Profile) { p.Validity = time.Hour }), nil, nil},
		{"missing DNS SAN", issued(func(p *Profile) { p.DNSNames = p.DNSNames[:1] }), nil,
			[]string{`SAN DNS:node-0.kubernetes.local required by spec, absent`}},
		{"missing IP SAN", issued(func(p *Profile) { p.IPs = p.IPs[:2] }), nil,
			[]string{`SAN IP:fd00::1 required by spec, absent`}},
		{"extra SAN", issued(func(p *Profile) { p.IPs = append(p.IPs, net.ParseIP("10.0.0.9")) }), nil,
			[]string{`SAN IP:10.0.0.9 present, not in spec`}},
		{"SAN replaced", issued(func(p *Profile) { p.DNSNames = []string{"node-0", "node-9.kubernetes.local"} }), nil,
			[]string{`SAN DNS:node-0.kubernetes.local required by spec, absent`, `SAN DNS:node-9.kubernetes.local present, not in spec`}},
		{"SAN order is irrelevant", issued(func(p *Profile) {
			slices.Reverse(p.DNSNames)
			p.IPs = []net.IP{p.IPs[2], p.IPs[0], p.IPs[1]}
		}), nil, nil},
		{"IPv4 as 4 or 16 bytes", issued(nil), func(p *Profile) { p.IPs[0] = p.IPs[0].To4() }, nil},
		{"missing EKU", issued(func(p *Profile) { p.Usages = []Usage{UsageClientAuth} }), nil,
			[]string{`extended key usage "server auth" required, absent`}},
		{"extra EKU", issued(nil), func(p *Profile) { p.Usages = []Usage{UsageServerAuth} },
			[]string{`extended key usage "client auth" present, not in spec`}},
		{"EKU order is irrelevant", issued(func(p *Profile) { p.Usages = []Usage{UsageServerAuth, UsageClientAuth} }), nil, nil},
		{"unknown EKU", crafted(func(c *x509.Certificate) { c.ExtKeyUsage = append(c.ExtKeyUsage, x509.ExtKeyUsageCodeSigning) }), nil,
			[]string{`extended key usage "ext-key-usage-3" present, not in spec`}},
		{"CA where a leaf is wanted", issued(func(p *Profile) { p.IsCA = true }), nil,
			[]string{"CA:TRUE, want CA:FALSE", "key usage includes certSign on a non-CA certificate"}},
		{"leaf where a CA is wanted", issued(nil), func(p *Profile) { p.IsCA = true },
			[]string{"CA:FALSE, want CA:TRUE", "key usage is [digitalSignature], want at least [keyCertSign]"}},
		{"certSign on a leaf", crafted(func(c *x509.Certificate) { c.KeyUsage |= x509.KeyUsageCertSign }), nil,
			[]string{"key usage includes certSign on a non-CA certificate"}},
		{"no digitalSignature", crafted(func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageKeyAgreement }), nil,
			[]string{"key usage is [keyAgreement], want at least [digitalSignature]"}},
		{"RSA leaf without keyEncipherment", crafted(func(c *x509.Certificate) { c.PublicKey = rsaKey.Public() }), nil,
			[]string{"key usage is [digitalSignature], want at least [digitalSignature, keyEncipherment]"}},
		{"extra key usage bits are tolerated", crafted(func(c *x509.Certificate) { c.KeyUsage |= x509.KeyUsageKeyEncipherment }), nil, nil},
		{"several at once", issued(func(p *Profile) {
			p.Subject.CommonName = "x"
			p.Usages = []Usage{UsageServerAuth}
			p.DNSNames = nil
		}), nil, []string{
			`CN is "x", want "system:node:node-0"`,
			`extended key usage "client auth" required, absent`,
			`SAN DNS:node-0 required by spec, absent`,
			`SAN DNS:node-0.kubernetes.local required by spec, absent`,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := base
			spec.IPs = slices.Clone(base.IPs)
			if tc.spec != nil {
				tc.spec(&spec)
			}
			got := Diff(tc.cert(t), spec)
			if !slices.Equal(got, tc.want) {
				t.Errorf("Diff:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestDiffCA: CAs made elsewhere lack cRLSign (kubeadm) or
// digitalSignature (openssl); both still sign and must not drift.
func TestDiffCA(t *testing.T) {
	key := cachedKey(t, ECDSAP256, 0)
	spec := caProfile("diff CA")
	selfSigned := func(ku x509.KeyUsage) *x509.Certificate {
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(7), Subject: spec.Subject.Name(),
			NotBefore: testNow, NotAfter: testNow.Add(time.Hour),
			KeyUsage: ku, BasicConstraintsValid: true, IsCA: true,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tests := []struct {
		name string
		ku   x509.KeyUsage
		want []string
	}{
		{"kubepki", x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign | x509.KeyUsageCRLSign, nil},
		{"kubeadm", x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign, nil},
		{"openssl", x509.KeyUsageCertSign | x509.KeyUsageCRLSign, nil},
		{"cannot sign", x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
			[]string{"key usage is [digitalSignature, cRLSign], want at least [keyCertSign]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Diff(selfSigned(tc.ku), spec); !slices.Equal(got, tc.want) {
				t.Errorf("Diff:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
	// A CA's subject is not compared: a user's CA with another name or
	// organisation is still the CA; a CA without key usage (openssl req -x509)
	// may sign.
	other := spec
	other.Subject.CommonName, other.Subject.Organization = "Acme Root", []string{"someone else"}
	ca := mustCA(t, key, spec, testNow)
	if got := Diff(ca.Cert, other); len(got) != 0 {
		t.Errorf("Diff of a CA by subject: %q, want none", got)
	}
	if got := Diff(selfSigned(0), spec); len(got) != 0 {
		t.Errorf("Diff of a CA without key usage: %q, want none", got)
	}
}

func TestKeyUsageNames(t *testing.T) {
	tests := []struct {
		ku   x509.KeyUsage
		want []string
	}{
		{0, nil},
		{x509.KeyUsageDigitalSignature, []string{"digitalSignature"}},
		{x509.KeyUsageDecipherOnly | x509.KeyUsageDigitalSignature, []string{"digitalSignature", "decipherOnly"}},
		{1<<9 - 1, []string{"digitalSignature", "contentCommitment", "keyEncipherment", "dataEncipherment", "keyAgreement", "keyCertSign", "cRLSign", "encipherOnly", "decipherOnly"}},
	}
	for _, tc := range tests {
		if got := KeyUsageNames(tc.ku); !slices.Equal(got, tc.want) {
			t.Errorf("KeyUsageNames(%d) = %q, want %q", tc.ku, got, tc.want)
		}
	}
	// Each name is the bit of its Go constant.
	for name, ku := range map[string]x509.KeyUsage{
		"keyEncipherment": x509.KeyUsageKeyEncipherment, "keyCertSign": x509.KeyUsageCertSign,
		"cRLSign": x509.KeyUsageCRLSign, "contentCommitment": x509.KeyUsageContentCommitment,
	} {
		if got := KeyUsageNames(ku); !slices.Equal(got, []string{name}) {
			t.Errorf("KeyUsageNames(%s) = %q", name, got)
		}
	}
}

func TestSANs(t *testing.T) {
	got := SANs([]string{"a", "b.c"}, []net.IP{net.ParseIP("10.0.0.1"), net.ParseIP("::1"), net.IPv4(1, 2, 3, 4).To4()})
	want := []string{"DNS:a", "DNS:b.c", "IP:10.0.0.1", "IP:::1", "IP:1.2.3.4"}
	if !slices.Equal(got, want) {
		t.Errorf("SANs = %q, want %q", got, want)
	}
	if got := SANs(nil, nil); got == nil || len(got) != 0 {
		t.Errorf("SANs(nil, nil) = %#v, want empty", got)
	}
}
