package pki

import (
	"bytes"
	"crypto/x509"
	"testing"
)

// The parsers below read files a user hands kubepki (a CA to adopt, a key
// to reuse, a CSR to sign): they must fail cleanly on anything, never panic,
// and what they accept must be usable.

// fuzzSeeds are valid and nearly valid PEM inputs shared by the targets.
func fuzzSeeds(f *testing.F) [][]byte {
	f.Helper()
	var seeds [][]byte
	for _, alg := range []KeyAlgorithm{RSA2048, ECDSAP256, ECDSAP384, Ed25519} {
		key := cachedKey(f, alg, 0)
		ca := mustCA(f, key, caProfile("fuzz "+string(alg)), testNow)
		leaf := mustIssue(f, ca, key.Public(), leafProfile(), testNow)
		csr, err := CreateCSR(key, leafProfile())
		if err != nil {
			f.Fatal(err)
		}
		keyPEM := mustEncodeKey(f, key)
		seeds = append(seeds,
			EncodeCert(ca.Cert),
			append(EncodeCert(leaf), EncodeCert(ca.Cert)...),
			keyPEM,
			EncodeCSR(csr),
			mustPub(f, key.Public()),
			append(keyPEM, EncodeCert(leaf)...),
		)
		if alg == RSA2048 {
			seeds = append(seeds, pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(asRSA(f, key))))
		}
		if alg == ECDSAP256 {
			der, err := x509.MarshalECPrivateKey(asECDSA(f, key))
			if err != nil {
				f.Fatal(err)
			}
			seeds = append(seeds, pemBlock("EC PRIVATE KEY", der))
			// Truncated and bit-flipped forms.
			seeds = append(seeds, keyPEM[:len(keyPEM)/2], bytes.Replace(keyPEM, []byte("PRIVATE KEY"), []byte("EC PRIVATE KEY"), 2))
			seeds = append(seeds, pemBlock("CERTIFICATE", leaf.Raw[:len(leaf.Raw)-1]), pemBlock("CERTIFICATE REQUEST", csr[:len(csr)/2]))
		}
	}
	seeds = append(seeds, nil, []byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"),
		pemBlock("ENCRYPTED PRIVATE KEY", []byte{0x30, 0x00}), pemBlock("PRIVATE KEY", x25519PKCS8(f)))
	return seeds
}

func FuzzParseCerts(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := ParseCerts(data)
		if err != nil {
			if certs != nil {
				t.Fatal("certificates returned with an error")
			}
			if _, err2 := ParseCert(data); err2 == nil {
				t.Fatal("ParseCert succeeded where ParseCerts failed")
			}
			return
		}
		if len(certs) == 0 {
			t.Fatal("no certificates and no error")
		}
		for _, c := range certs {
			if c == nil || len(c.Raw) == 0 {
				t.Fatal("nil or empty certificate")
			}
			// Whatever parsed re-encodes to something that parses the same.
			again, err := ParseCert(EncodeCert(c))
			if err != nil || !again.Equal(c) {
				t.Fatalf("re-encoded certificate: %v", err)
			}
			// The checks run on adopted certificates must not panic either.
			_ = Diff(c, leafProfile())
			_ = AlgorithmOf(c.PublicKey)
		}
		first, err := ParseCert(data)
		if err != nil || !first.Equal(certs[0]) {
			t.Fatalf("ParseCert disagrees with ParseCerts: %v", err)
		}
	})
}

func FuzzParseKey(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		key, err := ParseKey(data)
		if err != nil {
			if key != nil {
				t.Fatal("key returned with an error")
			}
			return
		}
		if key == nil || key.Public() == nil {
			t.Fatal("nil key and no error")
		}
		if !KeyMatches(key.Public(), key) {
			t.Fatalf("%T does not match its own public key", key)
		}
		// A key kubepki adopts, it can write back out and read again.
		enc, err := EncodeKey(key)
		if err != nil {
			t.Fatalf("parsed %T cannot be re-encoded: %v", key, err)
		}
		again, err := ParseKey(enc)
		if err != nil || !KeyMatches(key.Public(), again) {
			t.Fatalf("re-encoded key: %v", err)
		}
		_ = AlgorithmOf(key.Public())
	})
}

func FuzzParseCSR(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		csr, err := ParseCSR(data)
		if err != nil {
			if csr != nil {
				t.Fatal("CSR returned with an error")
			}
			return
		}
		if csr == nil || csr.PublicKey == nil {
			t.Fatal("nil CSR or key and no error")
		}
		if err := csr.CheckSignature(); err != nil {
			t.Fatalf("accepted CSR fails its signature check: %v", err)
		}
	})
}

func FuzzParsePublicKey(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pub, err := ParsePublicKey(data)
		if err != nil {
			return
		}
		if pub == nil {
			t.Fatal("nil public key and no error")
		}
		if _, err := EncodePublicKey(pub); err != nil {
			t.Fatalf("parsed %T cannot be re-encoded: %v", pub, err)
		}
	})
}
