package pki

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
)

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func TestParseCerts(t *testing.T) {
	ca := mustCA(t, cachedKey(t, ECDSAP256, 0), caProfile("pem CA"), testNow)
	leaf := mustIssue(t, ca, cachedKey(t, ECDSAP256, 1).Public(), leafProfile(), testNow)
	key := mustEncodeKey(t, cachedKey(t, ECDSAP256, 1))

	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name    string
		data    []byte
		want    []*x509.Certificate
		wantErr string
	}{
		{"one", EncodeCert(leaf), []*x509.Certificate{leaf}, ""},
		{"chain in order", cat(EncodeCert(leaf), EncodeCert(ca.Cert)), []*x509.Certificate{leaf, ca.Cert}, ""},
		{"key and text are skipped", cat([]byte("subject=CN=x\n"), key, EncodeCert(ca.Cert), []byte("trailing junk")), []*x509.Certificate{ca.Cert}, ""},
		{"CRLF line endings", bytes.ReplaceAll(EncodeCert(leaf), []byte("\n"), []byte("\r\n")), []*x509.Certificate{leaf}, ""},
		{"empty", nil, nil, "no PEM certificate found"},
		{"key only", key, nil, "no PEM certificate found"},
		{"DER, not PEM", leaf.Raw, nil, "no PEM certificate found"},
		{"garbage certificate", cat(EncodeCert(leaf), pemBlock("CERTIFICATE", []byte("garbage"))), nil, "parse certificate 2"},
		{"truncated certificate", pemBlock("CERTIFICATE", leaf.Raw[:len(leaf.Raw)-10]), nil, "parse certificate 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseCerts(tc.data)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if got != nil {
					t.Errorf("certificates returned with an error")
				}
				if _, err := ParseCert(tc.data); err == nil {
					t.Error("ParseCert succeeded where ParseCerts failed")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("%d certificates, want %d", len(got), len(tc.want))
			}
			for i := range got {
				if !got[i].Equal(tc.want[i]) {
					t.Errorf("certificate %d is %q, want %q", i, got[i].Subject.CommonName, tc.want[i].Subject.CommonName)
				}
			}
			first, err := ParseCert(tc.data)
			if err != nil || !first.Equal(tc.want[0]) {
				t.Errorf("ParseCert = %v, %v; want the first certificate", first, err)
			}
			// Encode→parse is the identity on the DER.
			if !bytes.Equal(EncodeCert(got[0]), pemBlock("CERTIFICATE", tc.want[0].Raw)) {
				t.Error("EncodeCert(ParseCert(x)) changed the certificate")
			}
		})
	}
}

func TestParseKey(t *testing.T) {
	ecKey := cachedKey(t, ECDSAP256, 0)
	rsaKey := cachedKey(t, RSA2048, 0)
	ca := mustCA(t, ecKey, caProfile("pem CA"), testNow)

	pkcs1 := pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(asRSA(t, rsaKey)))
	sec1DER, err := x509.MarshalECPrivateKey(asECDSA(t, ecKey))
	if err != nil {
		t.Fatal(err)
	}
	sec1 := pemBlock("EC PRIVATE KEY", sec1DER)

	tests := []struct {
		name    string
		data    []byte
		want    any // the public key expected
		wantErr string
	}{
		{"pkcs8 ecdsa", mustEncodeKey(t, ecKey), ecKey.Public(), ""},
		{"pkcs8 ed25519", mustEncodeKey(t, cachedKey(t, Ed25519, 0)), cachedKey(t, Ed25519, 0).Public(), ""},
		{"pkcs1 rsa", pkcs1, rsaKey.Public(), ""},
		{"sec1 ec", sec1, ecKey.Public(), ""},
		{"after a certificate", append(EncodeCert(ca.Cert), sec1...), ecKey.Public(), ""},
		{"first of two keys", append(pkcs1, sec1...), rsaKey.Public(), ""},
		{"empty", nil, nil, "no PEM private key found"},
		{"certificate only", EncodeCert(ca.Cert), nil, "no PEM private key found"},
		{"public key only", mustPub(t, ecKey.Public()), nil, "no PEM private key found"},
		{"encrypted", pemBlock("ENCRYPTED PRIVATE KEY", []byte{0x30, 0}), nil, "encrypted"},
		{"garbage pkcs8", pemBlock("PRIVATE KEY", []byte("garbage")), nil, "parse PRIVATE KEY"},
		{"garbage pkcs1", pemBlock("RSA PRIVATE KEY", []byte("garbage")), nil, "parse RSA PRIVATE KEY"},
		{"garbage sec1", pemBlock("EC PRIVATE KEY", []byte("garbage")), nil, "parse EC PRIVATE KEY"},
		// A PKCS#1 body labelled as SEC 1 is rejected, not misread.
		{"mislabelled", pemBlock("EC PRIVATE KEY", x509.MarshalPKCS1PrivateKey(asRSA(t, rsaKey))), nil, "parse EC PRIVATE KEY"},
		// X25519 keys are PKCS#8 but cannot sign.
		{"x25519", pemBlock("PRIVATE KEY", x25519PKCS8(t)), nil, "unsupported private key type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, err := ParseKey(tc.data)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if k != nil {
					t.Error("key returned with an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !KeyMatches(tc.want, k) {
				t.Errorf("parsed %T is not the expected key", k)
			}
		})
	}
}

func TestParseCSR(t *testing.T) {
	key := cachedKey(t, ECDSAP256, 0)
	der, err := CreateCSR(key, leafProfile())
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(der)
	// Flip a byte of the CN inside the signed part.
	i := bytes.Index(tampered, []byte("system:node:node-0"))
	if i < 0 {
		t.Fatal("CN not found in CSR DER")
	}
	tampered[i] = 'S'

	tests := []struct {
		name    string
		data    []byte
		wantErr string
	}{
		{"CSR", EncodeCSR(der), ""},
		{"NEW CERTIFICATE REQUEST", pemBlock("NEW CERTIFICATE REQUEST", der), ""},
		{"after a key", append(mustEncodeKey(t, key), EncodeCSR(der)...), ""},
		{"empty", nil, "no PEM certificate request found"},
		{"key only", mustEncodeKey(t, key), "no PEM certificate request found"},
		{"garbage", pemBlock("CERTIFICATE REQUEST", []byte("garbage")), "parse certificate request"},
		{"tampered", EncodeCSR(tampered), "certificate request signature"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			csr, err := ParseCSR(tc.data)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if csr.Subject.CommonName != "system:node:node-0" || !KeyMatches(csr.PublicKey, key) {
				t.Errorf("CSR %q with a foreign key", csr.Subject.CommonName)
			}
		})
	}
}

func TestParsePublicKey(t *testing.T) {
	key := cachedKey(t, ECDSAP256, 0)
	pub := mustPub(t, key.Public())
	if k, err := ParsePublicKey(append(mustEncodeKey(t, key), pub...)); err != nil || !KeyMatches(k, key) {
		t.Errorf("ParsePublicKey after a private key: %v", err)
	}
	for name, data := range map[string][]byte{
		"empty":       nil,
		"private key": mustEncodeKey(t, key),
		"garbage":     pemBlock("PUBLIC KEY", []byte("garbage")),
	} {
		if _, err := ParsePublicKey(data); err == nil {
			t.Errorf("%s: ParsePublicKey succeeded", name)
		}
	}
}

func mustPub(t testing.TB, pub any) []byte {
	t.Helper()
	b, err := EncodePublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
