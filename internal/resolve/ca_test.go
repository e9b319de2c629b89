package resolve

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"strings"
	"testing"
	"time"
)

// selfSigned makes a CA certificate whose subject is exactly rdn, so a
// test can spell a name as openssl does (UTF8String) or as Go does
// (PrintableString).
func selfSigned(t *testing.T, serial int64, rdn pkix.RDNSequence) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := asn1.Marshal(rdn)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), RawSubject: raw, NotBefore: testNow, NotAfter: testNow.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
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

func cn(v string, tag int) pkix.RDNSequence {
	return pkix.RDNSequence{{{Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: asn1.RawValue{Tag: tag, Bytes: []byte(v)}}}}
}

// TestSameSubjects: two CAs of one bundle with one subject are named, by
// position and serial, however the name is encoded; a rotation's CAs,
// with subjects of their own, are not.
func TestSameSubjects(t *testing.T) {
	const utf8, printable = asn1.TagUTF8String, asn1.TagPrintableString
	tests := []struct {
		name  string
		certs []pkix.RDNSequence
		want  []string
	}{
		{"one CA", []pkix.RDNSequence{cn("kubernetes", printable)}, nil},
		{"rotation", []pkix.RDNSequence{cn("kubernetes-next", printable), cn("kubernetes", printable)}, nil},
		{"same bytes", []pkix.RDNSequence{cn("kubernetes", printable), cn("kubernetes", printable)}, []string{"CA #1 (CN=kubernetes serial 1 ", "CA #2 (CN=kubernetes serial 2 "}},
		{"openssl's UTF8String beside Go's PrintableString", []pkix.RDNSequence{cn("kubernetes", printable), cn("kubernetes", utf8)}, []string{"CA #1 ", "CA #2 "}},
		{"case folded", []pkix.RDNSequence{cn("kubernetes-next", printable), cn("kubernetes", printable), cn("Kubernetes", utf8)}, []string{"CA #2 ", "CA #3 "}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ca := &CA{}
			for i, rdn := range tc.certs {
				ca.Certs = append(ca.Certs, selfSigned(t, int64(i+1), rdn))
			}
			got := ca.SameSubjects()
			if len(tc.want) == 0 {
				if len(got) != 0 {
					t.Fatalf("SameSubjects = %q, want none", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("SameSubjects = %q, want one finding", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got[0], w) {
					t.Errorf("SameSubjects = %q, want it to name %q", got[0], w)
				}
			}
		})
	}
}
