package pki

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"slices"
	"strings"
	"testing"
)

func TestKeyAlgorithms(t *testing.T) {
	want := []KeyAlgorithm{"RSA-2048", "RSA-3072", "RSA-4096", "ECDSA-P256", "ECDSA-P384", "Ed25519"}
	if got := KeyAlgorithms(); !slices.Equal(got, want) {
		t.Errorf("KeyAlgorithms() = %q, want %q", got, want)
	}
	if DefaultKeyAlgorithm != ECDSAP256 {
		t.Errorf("DefaultKeyAlgorithm = %s", DefaultKeyAlgorithm)
	}

	tests := []struct {
		alg        KeyAlgorithm
		check      func(any) bool
		tokens     bool
		slow       bool
		privPEMLen [2]int // bounds on the PKCS#8 PEM length, a cheap size check
	}{
		{RSA2048, func(k any) bool { r, ok := k.(*rsa.PrivateKey); return ok && r.N.BitLen() == 2048 }, true, false, [2]int{1600, 1800}},
		{RSA3072, func(k any) bool { r, ok := k.(*rsa.PrivateKey); return ok && r.N.BitLen() == 3072 }, true, true, [2]int{2300, 2600}},
		{RSA4096, func(k any) bool { r, ok := k.(*rsa.PrivateKey); return ok && r.N.BitLen() == 4096 }, true, true, [2]int{3100, 3400}},
		{ECDSAP256, func(k any) bool { e, ok := k.(*ecdsa.PrivateKey); return ok && e.Curve.Params().BitSize == 256 }, true, false, [2]int{200, 300}},
		{ECDSAP384, func(k any) bool { e, ok := k.(*ecdsa.PrivateKey); return ok && e.Curve.Params().BitSize == 384 }, true, false, [2]int{250, 350}},
		{Ed25519, func(k any) bool { _, ok := k.(ed25519.PrivateKey); return ok }, false, false, [2]int{100, 150}},
	}
	if len(tests) != len(KeyAlgorithms()) {
		t.Fatalf("table covers %d algorithms, KeyAlgorithms has %d", len(tests), len(KeyAlgorithms()))
	}
	for _, tc := range tests {
		t.Run(string(tc.alg), func(t *testing.T) {
			for _, s := range []string{string(tc.alg), strings.ToLower(string(tc.alg)), strings.ToUpper(string(tc.alg))} {
				if got, err := ParseKeyAlgorithm(s); err != nil || got != tc.alg {
					t.Errorf("ParseKeyAlgorithm(%q) = %q, %v", s, got, err)
				}
			}
			key := cachedKey(t, tc.alg, 0)
			if !tc.check(key) {
				t.Errorf("GenerateKey(%s) = %T", tc.alg, key)
			}
			if got := AlgorithmOf(key.Public()); got != tc.alg {
				t.Errorf("AlgorithmOf = %q, want %q", got, tc.alg)
			}
			if tc.alg.CanSignTokens() != tc.tokens {
				t.Errorf("CanSignTokens = %v", !tc.tokens)
			}
			if tc.alg.Slow() != tc.slow {
				t.Errorf("Slow = %v", !tc.slow)
			}
			if !KeyMatches(key.Public(), key) {
				t.Error("KeyMatches(own public key) = false")
			}
			if KeyMatches(cachedKey(t, tc.alg, 1).Public(), key) {
				t.Error("KeyMatches(another key of the same algorithm) = true")
			}
			other := ECDSAP256
			if tc.alg == ECDSAP256 {
				other = Ed25519
			}
			if KeyMatches(cachedKey(t, other, 0).Public(), key) {
				t.Errorf("KeyMatches(a %s key) = true", other)
			}

			pemKey := mustEncodeKey(t, key)
			if n := len(pemKey); n < tc.privPEMLen[0] || n > tc.privPEMLen[1] {
				t.Errorf("PKCS#8 PEM is %d bytes, want %d-%d", n, tc.privPEMLen[0], tc.privPEMLen[1])
			}
			b, _ := pem.Decode(pemKey)
			if b == nil || b.Type != "PRIVATE KEY" || len(b.Headers) != 0 {
				t.Fatalf("EncodeKey wrote %q", firstLine(pemKey))
			}
			if _, err := x509.ParsePKCS8PrivateKey(b.Bytes); err != nil {
				t.Errorf("EncodeKey output is not PKCS#8: %v", err)
			}
			back, err := ParseKey(pemKey)
			if err != nil {
				t.Fatal(err)
			}
			if !KeyMatches(key.Public(), back) {
				t.Error("ParseKey(EncodeKey(k)) is a different key")
			}

			pubPEM, err := EncodePublicKey(key.Public())
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(pubPEM), "-----BEGIN PUBLIC KEY-----\n") {
				t.Errorf("EncodePublicKey wrote %q", firstLine(pubPEM))
			}
			pub, err := ParsePublicKey(pubPEM)
			if err != nil {
				t.Fatal(err)
			}
			if !KeyMatches(pub, key) {
				t.Error("ParsePublicKey(EncodePublicKey(pub)) is a different key")
			}
		})
	}
}

func TestParseKeyAlgorithmUnknown(t *testing.T) {
	for _, s := range []string{"", "RSA", "RSA-1024", "ECDSA-P521", "ed448", "RSA2048"} {
		_, err := ParseKeyAlgorithm(s)
		if err == nil {
			t.Errorf("ParseKeyAlgorithm(%q) succeeded", s)
			continue
		}
		// The error lists every valid choice.
		for _, a := range KeyAlgorithms() {
			if !strings.Contains(err.Error(), string(a)) {
				t.Errorf("ParseKeyAlgorithm(%q) error %q does not list %s", s, err, a)
			}
		}
	}
	if _, err := GenerateKey("DSA-1024"); err == nil || !strings.Contains(err.Error(), "DSA-1024") {
		t.Errorf("GenerateKey(DSA-1024) error = %v", err)
	}
}

func TestAlgorithmOfForeign(t *testing.T) {
	if got := AlgorithmOf("not a key"); got != "string" {
		t.Errorf("AlgorithmOf(string) = %q", got)
	}
	// The public part of a key parsed back from its certificate is named too.
	ca := mustCA(t, cachedKey(t, ECDSAP384, 0), caProfile("alg"), testNow)
	if got := AlgorithmOf(ca.Cert.PublicKey); got != ECDSAP384 {
		t.Errorf("AlgorithmOf(cert key) = %q", got)
	}
}
