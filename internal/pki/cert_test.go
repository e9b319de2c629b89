package pki

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"encoding/json"
	"math/big"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSerialNumber(t *testing.T) {
	const n = 2000
	seen := map[string]bool{}
	over64 := 0
	for range n {
		s, err := SerialNumber()
		if err != nil {
			t.Fatal(err)
		}
		if s.Sign() <= 0 {
			t.Fatalf("serial %v is not positive", s)
		}
		// RFC 5280 §4.1.2.2: at most 20 octets.
		if s.BitLen() > 128 {
			t.Fatalf("serial %v has %d bits, want at most 128", s, s.BitLen())
		}
		if s.BitLen() > 64 {
			over64++
		}
		if seen[s.String()] {
			t.Fatalf("serial %v repeated", s)
		}
		seen[s.String()] = true
	}
	// A uniform 128-bit number has at most 64 bits with probability 2^-64:
	// anything but (nearly) all of them above 64 bits means the range shrank.
	if over64 < n*99/100 {
		t.Errorf("only %d of %d serials have more than 64 bits", over64, n)
	}
	// And it is not stuck at a fixed size: about half have the top bit set.
	top := 0
	for s := range seen {
		v, _ := new(big.Int).SetString(s, 10)
		if v.BitLen() == 128 {
			top++
		}
	}
	if top < n/4 || top > 3*n/4 {
		t.Errorf("%d of %d serials have bit 127 set, want about half", top, n)
	}
}

// TestIssueRules checks, for every algorithm, the rules every certificate
// follows: positive large serial, backdated NotBefore, SKI/AKI, the key
// usages Kubernetes gives, CA flags, and Go's own chain verification.
func TestIssueRules(t *testing.T) {
	for _, alg := range KeyAlgorithms() {
		t.Run(string(alg), func(t *testing.T) {
			t.Parallel()
			caKey, leafKey := cachedKey(t, alg, 0), cachedKey(t, alg, 1)
			cap := caProfile("rules CA")
			cap.IsCA = false // NewCA must make it a CA regardless
			ca := mustCA(t, caKey, cap, testNow)
			lp := leafProfile()
			leaf := mustIssue(t, ca, leafKey.Public(), lp, testNow)

			for _, c := range []*x509.Certificate{ca.Cert, leaf} {
				name := c.Subject.CommonName
				// Positive, more than 64 random bits (fails with probability 2^-64).
				if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() <= 64 || c.SerialNumber.BitLen() > 128 {
					t.Errorf("%s: serial %v", name, c.SerialNumber)
				}
				if want := testNow.Add(-5 * time.Minute); !c.NotBefore.Equal(want) {
					t.Errorf("%s: NotBefore %v, want now-5m = %v", name, c.NotBefore, want)
				}
				if !c.BasicConstraintsValid {
					t.Errorf("%s: no basicConstraints", name)
				}
				ski, err := SubjectKeyID(c.PublicKey)
				if err != nil {
					t.Fatal(err)
				}
				if len(c.SubjectKeyId) != 20 || !bytes.Equal(c.SubjectKeyId, ski) {
					t.Errorf("%s: SKI %x, want %x", name, c.SubjectKeyId, ski)
				}
			}
			if ca.Cert.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
				t.Error("CA and leaf share a serial number")
			}

			// CA.
			if !ca.Cert.IsCA {
				t.Error("NewCA made a non-CA certificate")
			}
			if want := x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign | x509.KeyUsageCRLSign; ca.Cert.KeyUsage != want {
				t.Errorf("CA key usage %v, want %v", KeyUsageNames(ca.Cert.KeyUsage), KeyUsageNames(want))
			}
			if want := testNow.Add(cap.Validity); !ca.Cert.NotAfter.Equal(want) {
				t.Errorf("CA NotAfter %v, want %v", ca.Cert.NotAfter, want)
			}
			if err := ca.Cert.CheckSignatureFrom(ca.Cert); err != nil {
				t.Errorf("CA is not self-signed: %v", err)
			}
			if !bytes.Equal(ca.Cert.RawIssuer, ca.Cert.RawSubject) {
				t.Error("CA issuer differs from its subject")
			}
			if !KeyMatches(ca.Cert.PublicKey, ca.Key) || !KeyMatches(caKey.Public(), ca.Key) {
				t.Error("NewCA did not keep the CA key")
			}

			// Leaf.
			if leaf.IsCA {
				t.Error("leaf is a CA")
			}
			wantKU := x509.KeyUsageDigitalSignature
			if strings.HasPrefix(string(alg), "RSA") {
				wantKU |= x509.KeyUsageKeyEncipherment
			}
			if leaf.KeyUsage != wantKU {
				t.Errorf("leaf key usage %v, want %v", KeyUsageNames(leaf.KeyUsage), KeyUsageNames(wantKU))
			}
			if want := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}; !slices.Equal(leaf.ExtKeyUsage, want) {
				t.Errorf("leaf EKU %v, want %v", leaf.ExtKeyUsage, want)
			}
			if want := testNow.Add(lp.Validity); !leaf.NotAfter.Equal(want) {
				t.Errorf("leaf NotAfter %v, want %v", leaf.NotAfter, want)
			}
			if !bytes.Equal(leaf.AuthorityKeyId, ca.Cert.SubjectKeyId) {
				t.Errorf("leaf AKI %x, want CA SKI %x", leaf.AuthorityKeyId, ca.Cert.SubjectKeyId)
			}
			if !bytes.Equal(leaf.RawIssuer, ca.Cert.RawSubject) {
				t.Error("leaf issuer is not the CA's subject")
			}
			if !slices.Equal(leaf.DNSNames, lp.DNSNames) || !slices.Equal(SANs(nil, leaf.IPAddresses), SANs(nil, lp.IPs)) {
				t.Errorf("leaf SANs %q, want %q", SANs(leaf.DNSNames, leaf.IPAddresses), SANs(lp.DNSNames, lp.IPs))
			}
			if d := Diff(leaf, lp); len(d) != 0 {
				t.Errorf("Diff(leaf, its own profile) = %q", d)
			}
			if d := Diff(ca.Cert, caProfile("rules CA")); len(d) != 0 {
				t.Errorf("Diff(CA, CA profile) = %q", d)
			}

			roots := x509.NewCertPool()
			roots.AddCert(ca.Cert)
			for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth} {
				if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: testNow, KeyUsages: []x509.ExtKeyUsage{u}, DNSName: "node-0.kubernetes.local"}); err != nil {
					t.Errorf("Go verify for %v: %v", u, err)
				}
			}
		})
	}
}

func TestIssueCapsNotAfterAtCA(t *testing.T) {
	key := cachedKey(t, ECDSAP256, 0)
	cap := caProfile("short CA")
	cap.Validity = 30 * 24 * time.Hour
	ca := mustCA(t, key, cap, testNow)

	tests := []struct {
		name      string
		issueAt   time.Time
		validity  time.Duration
		wantAfter time.Time
	}{
		{"shorter than CA", testNow, 24 * time.Hour, testNow.Add(24 * time.Hour)},
		{"ends with CA", testNow, 30 * 24 * time.Hour, ca.Cert.NotAfter},
		{"longer than CA", testNow, 365 * 24 * time.Hour, ca.Cert.NotAfter},
		{"issued late in CA life", testNow.Add(29 * 24 * time.Hour), 7 * 24 * time.Hour, ca.Cert.NotAfter},
		{"one second before CA expiry", ca.Cert.NotAfter.Add(-time.Second), time.Hour, ca.Cert.NotAfter},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := leafProfile()
			p.Validity = tc.validity
			leaf := mustIssue(t, ca, cachedKey(t, ECDSAP256, 1).Public(), p, tc.issueAt)
			if !leaf.NotAfter.Equal(tc.wantAfter) {
				t.Errorf("NotAfter %v, want %v", leaf.NotAfter, tc.wantAfter)
			}
			if leaf.NotAfter.After(ca.Cert.NotAfter) {
				t.Errorf("leaf NotAfter %v outlives CA %v", leaf.NotAfter, ca.Cert.NotAfter)
			}
			if want := tc.issueAt.Add(-Backdate); !leaf.NotBefore.Equal(want) {
				t.Errorf("NotBefore %v, want %v", leaf.NotBefore, want)
			}
		})
	}
}

func TestIssueErrors(t *testing.T) {
	key := cachedKey(t, ECDSAP256, 0)
	ca := mustCA(t, key, caProfile("errors CA"), testNow)
	pub := cachedKey(t, ECDSAP256, 1).Public()
	external := &CA{Cert: ca.Cert}

	tests := []struct {
		name    string
		ca      *CA
		mutate  func(*Profile)
		at      time.Time
		wantErr []string
	}{
		{"external CA", external, nil, testNow, []string{`"system:node:node-0"`, `CA "errors CA" has no private key (external CA)`}},
		{"expired CA", ca, nil, ca.Cert.NotAfter.Add(time.Second), []string{`CA "errors CA" expired on ` + ca.Cert.NotAfter.UTC().Format(time.RFC3339)}},
		{"at CA NotAfter", ca, nil, ca.Cert.NotAfter, []string{"expired on"}},
		{"long after CA expiry", ca, nil, ca.Cert.NotAfter.AddDate(5, 0, 0), []string{"expired on"}},
		{"no common name", ca, func(p *Profile) { p.Subject.CommonName = "" }, testNow, []string{"needs a common name"}},
		{"zero validity", ca, func(p *Profile) { p.Validity = 0 }, testNow, []string{"validity must be positive"}},
		{"negative validity", ca, func(p *Profile) { p.Validity = -time.Hour }, testNow, []string{"validity must be positive"}},
		{"unknown usage", ca, func(p *Profile) { p.Usages = append(p.Usages, "code signing") }, testNow, []string{`unknown usage "code signing"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := leafProfile()
			if tc.mutate != nil {
				tc.mutate(&p)
			}
			c, err := tc.ca.Issue(pub, p, tc.at)
			if err == nil {
				t.Fatalf("Issue succeeded (NotAfter %v), want error", c.NotAfter)
			}
			if c != nil {
				t.Error("Issue returned a certificate along with an error")
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}

	t.Run("NewCA", func(t *testing.T) {
		for _, p := range []Profile{
			{Subject: Subject{CommonName: ""}, Validity: time.Hour},
			{Subject: Subject{CommonName: "x"}},
			{Subject: Subject{CommonName: "x"}, Validity: time.Hour, Usages: []Usage{"bogus"}},
		} {
			if ca, err := NewCA(key, p, testNow); err == nil {
				t.Errorf("NewCA(%+v) = %v, want error", p, ca.Cert.Subject)
			}
		}
	})
}

// TestIssueDoesNotAliasProfile: the certificate must not share the
// profile's slices, and the profile must not be modified.
func TestIssueDoesNotAliasProfile(t *testing.T) {
	ca := mustCA(t, cachedKey(t, ECDSAP256, 0), caProfile("alias CA"), testNow)
	p := leafProfile()
	before, _ := json.Marshal(p)
	mustIssue(t, ca, cachedKey(t, ECDSAP256, 1).Public(), p, testNow)
	after, _ := json.Marshal(p)
	if !bytes.Equal(before, after) {
		t.Errorf("Issue modified the profile:\n%s\n%s", before, after)
	}
}

func TestKeyUsageFor(t *testing.T) {
	for _, alg := range KeyAlgorithms() {
		pub := cachedKey(t, alg, 0).Public()
		rsa := strings.HasPrefix(string(alg), "RSA")
		leaf := KeyUsageFor(pub, false)
		want := x509.KeyUsageDigitalSignature
		if rsa {
			want |= x509.KeyUsageKeyEncipherment
		}
		if leaf != want {
			t.Errorf("%s leaf: %v, want %v", alg, KeyUsageNames(leaf), KeyUsageNames(want))
		}
		if ca, want := KeyUsageFor(pub, true), x509.KeyUsageDigitalSignature|x509.KeyUsageCertSign|x509.KeyUsageCRLSign; ca != want {
			t.Errorf("%s CA: %v, want %v", alg, KeyUsageNames(ca), KeyUsageNames(want))
		}
		if got := RequiredKeyUsage(pub, true); got != x509.KeyUsageCertSign {
			t.Errorf("%s RequiredKeyUsage CA = %v", alg, KeyUsageNames(got))
		}
		if got := RequiredKeyUsage(pub, false); got != want {
			t.Errorf("%s RequiredKeyUsage leaf = %v", alg, KeyUsageNames(got))
		}
	}
}

func TestExtKeyUsagesRoundTrip(t *testing.T) {
	tests := []struct {
		in   []Usage
		want []x509.ExtKeyUsage
	}{
		{nil, nil},
		{[]Usage{UsageClientAuth}, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
		{[]Usage{UsageServerAuth, UsageClientAuth}, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}},
	}
	for _, tc := range tests {
		got, err := ExtKeyUsages(tc.in)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ExtKeyUsages(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		if back := UsagesOf(&x509.Certificate{ExtKeyUsage: got}); !slices.Equal(back, tc.in) {
			t.Errorf("UsagesOf(ExtKeyUsages(%q)) = %q", tc.in, back)
		}
	}
	if _, err := ExtKeyUsages([]Usage{"Client Auth"}); err == nil {
		t.Error(`ExtKeyUsages accepted "Client Auth" (usages are lower case)`)
	}
	if got := UsagesOf(&x509.Certificate{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}); !slices.Equal(got, []Usage{"ext-key-usage-3"}) {
		t.Errorf("UsagesOf(codeSigning) = %q", got)
	}
}

// TestUsageExtensionsEncoding checks the hand-made key usage encoding of
// CSRs against Go's certificate encoder for every combination of the nine
// bits, and the extended key usage OIDs.
func TestUsageExtensionsEncoding(t *testing.T) {
	signer := cachedKey(t, ECDSAP256, 0)
	for ku := x509.KeyUsage(1); ku < 1<<9; ku++ {
		exts, err := usageExtensions(ku, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(exts) != 1 || !exts[0].Id.Equal(oidKeyUsage) || !exts[0].Critical {
			t.Fatalf("ku %v: extensions %+v", ku, exts)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), KeyUsage: ku, NotBefore: testNow, NotAfter: testNow.Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, signer.Public(), signer)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		var goValue []byte
		for _, e := range c.Extensions {
			if e.Id.Equal(oidKeyUsage) {
				goValue = e.Value
			}
		}
		if !bytes.Equal(exts[0].Value, goValue) {
			t.Errorf("key usage %v encodes as %x, Go's certificate encoder gives %x", KeyUsageNames(ku), exts[0].Value, goValue)
		}
		var bs asn1.BitString
		if rest, err := asn1.Unmarshal(exts[0].Value, &bs); err != nil || len(rest) != 0 {
			t.Fatalf("ku %v: %v", ku, err)
		}
		for i := range 9 {
			if bs.At(i) == 1 != (ku&(1<<i) != 0) {
				t.Errorf("ku %v: bit %d is %d", KeyUsageNames(ku), i, bs.At(i))
			}
		}
	}

	exts, err := usageExtensions(x509.KeyUsageDigitalSignature, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth})
	if err != nil {
		t.Fatal(err)
	}
	if len(exts) != 2 || !exts[1].Id.Equal(oidExtKeyUsage) || exts[1].Critical {
		t.Fatalf("extensions %+v, want key usage then non-critical EKU", exts)
	}
	var oids []asn1.ObjectIdentifier
	if _, err := asn1.Unmarshal(exts[1].Value, &oids); err != nil {
		t.Fatal(err)
	}
	if len(oids) != 2 || !oids[0].Equal(oidServerAuth) || !oids[1].Equal(oidClientAuth) {
		t.Errorf("EKU OIDs %v", oids)
	}
}

func TestCreateCSR(t *testing.T) {
	key := cachedKey(t, ECDSAP256, 0)
	t.Run("client only, no SANs", func(t *testing.T) {
		p := Profile{Subject: Subject{CommonName: "admin", Organization: []string{"system:masters"}}, Usages: []Usage{UsageClientAuth}}
		der, err := CreateCSR(key, p)
		if err != nil {
			t.Fatal(err)
		}
		csr, err := ParseCSR(EncodeCSR(der))
		if err != nil {
			t.Fatal(err)
		}
		if len(csr.DNSNames) != 0 || len(csr.IPAddresses) != 0 {
			t.Errorf("SANs %q %v, want none", csr.DNSNames, csr.IPAddresses)
		}
		ku, eku := csrUsages(t, csr)
		if ku != x509.KeyUsageDigitalSignature || !slices.Equal(eku, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
			t.Errorf("usages %v %v", KeyUsageNames(ku), eku)
		}
	})
	t.Run("no usages: no EKU extension", func(t *testing.T) {
		der, err := CreateCSR(key, Profile{Subject: Subject{CommonName: "x"}})
		if err != nil {
			t.Fatal(err)
		}
		csr, err := x509.ParseCertificateRequest(der)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range csr.Extensions {
			if e.Id.Equal(oidExtKeyUsage) {
				t.Error("CSR carries an empty EKU extension")
			}
		}
	})
	t.Run("CA CSR", func(t *testing.T) {
		der, err := CreateCSR(key, Profile{Subject: Subject{CommonName: "intermediate"}, IsCA: true})
		if err != nil {
			t.Fatal(err)
		}
		csr, err := x509.ParseCertificateRequest(der)
		if err != nil {
			t.Fatal(err)
		}
		if ku, _ := csrUsages(t, csr); ku != x509.KeyUsageDigitalSignature|x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
			t.Errorf("CA CSR key usage %v", KeyUsageNames(ku))
		}
	})
	t.Run("unknown usage", func(t *testing.T) {
		if _, err := CreateCSR(key, Profile{Subject: Subject{CommonName: "x"}, Usages: []Usage{"bogus"}}); err == nil {
			t.Error("CreateCSR accepted an unknown usage")
		}
	})
	t.Run("IPv4 and IPv6", func(t *testing.T) {
		p := Profile{Subject: Subject{CommonName: "x"}, IPs: []net.IP{net.ParseIP("10.0.0.1"), net.ParseIP("::1")}}
		der, err := CreateCSR(key, p)
		if err != nil {
			t.Fatal(err)
		}
		csr, err := ParseCSR(EncodeCSR(der))
		if err != nil {
			t.Fatal(err)
		}
		if got := SANs(csr.DNSNames, csr.IPAddresses); !slices.Equal(got, []string{"IP:10.0.0.1", "IP:::1"}) {
			t.Errorf("SANs %q", got)
		}
	})
}

func TestProfileMarshalJSON(t *testing.T) {
	p := leafProfile()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["validity"] != "8760h0m0s" {
		t.Errorf("validity = %v, want 8760h0m0s in %s", m["validity"], b)
	}
	if _, ok := m["isCA"]; ok {
		t.Errorf("isCA present for a leaf: %s", b)
	}
	subj, _ := m["subject"].(map[string]any)
	if subj["commonName"] != "system:node:node-0" {
		t.Errorf("subject %v", m["subject"])
	}
	if ips, _ := m["ips"].([]any); len(ips) != 3 || ips[0] != "192.168.10.101" {
		t.Errorf("ips %v", m["ips"])
	}
}

func TestSubjectRoundTrip(t *testing.T) {
	s := Subject{CommonName: "cn", Organization: []string{"a", "b"}, Country: []string{"US"}, Province: []string{"WA"}, Locality: []string{"Seattle"}}
	got := SubjectOf(s.Name())
	b1, _ := json.Marshal(s)
	b2, _ := json.Marshal(got)
	if !bytes.Equal(b1, b2) {
		t.Errorf("SubjectOf(Name()) = %s, want %s", b2, b1)
	}
}

func TestSubjectSameIdentity(t *testing.T) {
	admin := Subject{CommonName: "admin", Organization: []string{"system:masters", "ops"}}
	for _, tc := range []struct {
		name  string
		other Subject
		want  bool
	}{
		{"same", Subject{CommonName: "admin", Organization: []string{"system:masters", "ops"}}, true},
		{"groups reordered and repeated", Subject{CommonName: "admin", Organization: []string{"ops", "system:masters", "ops"}}, true},
		{"locality does not matter", Subject{CommonName: "admin", Organization: []string{"ops", "system:masters"}, Locality: []string{"Seattle"}}, true},
		{"other user", Subject{CommonName: "jane", Organization: []string{"system:masters", "ops"}}, false},
		{"a group fewer", Subject{CommonName: "admin", Organization: []string{"ops"}}, false},
		{"a group more", Subject{CommonName: "admin", Organization: []string{"ops", "system:masters", "dev"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := admin.SameIdentity(tc.other); got != tc.want {
				t.Errorf("SameIdentity(%+v) = %v, want %v", tc.other, got, tc.want)
			}
		})
	}
}
