package inspect

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kubepki.dev/kubepki/internal/openssltest"
	"kubepki.dev/kubepki/internal/pki"
)

// opensslField returns the value of the "key=value" line of out for key.
func opensslField(t *testing.T, out, key string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, key+"="); ok {
			return v
		}
	}
	t.Fatalf("no %s= line in openssl output:\n%s", key, out)
	return ""
}

// TestMatchesOpenSSL checks fingerprint, serial, subject, issuer and public
// key hash against what openssl prints, for serials of awkward shapes
// (leading zero nibble, high bit set, one byte) and each key algorithm.
func TestMatchesOpenSSL(t *testing.T) {
	ca := newCA(t, "kubernetes-ca")
	dir := t.TempDir()
	serials := []*big.Int{big.NewInt(1), big.NewInt(0x80), new(big.Int).SetBytes([]byte{0x0c, 0x9b, 0x72, 0xe9, 0xec, 0x7b, 0xcb, 0x3f}), new(big.Int).Lsh(big.NewInt(0xff), 120)}
	for i, a := range []pki.KeyAlgorithm{pki.RSA2048, pki.ECDSAP256, pki.Ed25519, pki.ECDSAP256} {
		key := testKey(t, a)
		tmpl := &x509.Certificate{
			SerialNumber: serials[i],
			Subject:      pki.Subject{CommonName: "system:node:worker-1", Organization: []string{"system:nodes"}}.Name(),
			NotBefore:    testNow,
			NotAfter:     testNow.Add(time.Hour),
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		certFile := filepath.Join(dir, "cert.pem")
		keyFile := filepath.Join(dir, "key.pem")
		if err := os.WriteFile(certFile, pki.EncodeCert(c), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyFile, encodeKey(t, key), 0o600); err != nil {
			t.Fatal(err)
		}
		out := openssltest.Run(t, "", "x509", "-in", certFile, "-noout", "-fingerprint", "-sha256", "-serial", "-subject", "-issuer")
		d := describeOne(t, "cert.pem", pki.EncodeCert(c), testNow).Certificate
		if want := opensslField(t, out, "sha256 Fingerprint"); d.SHA256Fingerprint != want {
			t.Errorf("%s: fingerprint %s, openssl says %s", a, d.SHA256Fingerprint, want)
		}
		if want := opensslField(t, out, "serial"); strings.ReplaceAll(d.Serial, ":", "") != want {
			t.Errorf("%s: serial %s, openssl says %s", a, d.Serial, want)
		}
		if want := opensslField(t, out, "subject"); d.Subject != want {
			t.Errorf("%s: subject %q, openssl says %q", a, d.Subject, want)
		}
		if want := opensslField(t, out, "issuer"); d.Issuer != want {
			t.Errorf("%s: issuer %q, openssl says %q", a, d.Issuer, want)
		}

		spki := filepath.Join(dir, "spki.der")
		openssltest.Run(t, "", "pkey", "-in", keyFile, "-pubout", "-outform", "DER", "-out", spki)
		pub, err := os.ReadFile(spki)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(pub)
		k := describeOne(t, "key.pem", encodeKey(t, key), testNow).PrivateKey
		if want := colonHex(sum[:]); k.PublicKeySHA256 != want || d.PublicKeySHA256 != want {
			t.Errorf("%s: public key SHA-256 %s (key), %s (cert); openssl's SPKI hashes to %s", a, k.PublicKeySHA256, d.PublicKeySHA256, want)
		}
	}
}

// TestOpenSSLMadeFiles describes what openssl itself writes: a
// traditional RSA key, an EC key with its parameters block, a CSR with
// requested extensions, and a certificate with a DN in the hard-way order.
func TestOpenSSLMadeFiles(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	openssltest.Run(t, "", "genrsa", "-traditional", "-out", p("rsa.key"), "2048")
	openssltest.Run(t, "", "ecparam", "-name", "prime256v1", "-genkey", "-out", p("ec.key"))
	openssltest.Run(t, "", "req", "-new", "-key", p("ec.key"), "-subj", "/CN=admin/O=system:masters", "-addext", "extendedKeyUsage=clientAuth", "-addext", "keyUsage=critical,digitalSignature", "-out", p("admin.csr"))
	openssltest.Run(t, "", "req", "-x509", "-key", p("rsa.key"), "-subj", "/CN=admin/O=system:masters", "-days", "30", "-addext", "extendedKeyUsage=clientAuth", "-out", p("admin.crt"))

	read := func(name string) []byte {
		b, err := os.ReadFile(p(name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if k := describeOne(t, "rsa.key", read("rsa.key"), testNow).PrivateKey; k == nil || k.Format != "PKCS#1" || k.KeyAlgorithm != "RSA-2048" {
		t.Errorf("rsa.key: %+v", k)
	}
	if k := describeOne(t, "ec.key", read("ec.key"), testNow).PrivateKey; k == nil || k.Format != "SEC 1" || k.KeyAlgorithm != "ECDSA-P256" {
		t.Errorf("ec.key: %+v", k)
	}
	r := describeOne(t, "admin.csr", read("admin.csr"), testNow).CertificateRequest
	if r == nil || !r.SignatureValid || r.Role != RoleClient || strings.Join(r.KeyUsage, ",") != "digitalSignature" || r.Identity == nil {
		t.Fatalf("admin.csr: %+v", r)
	}
	if !hasNote(r.Identity.Notes, Warning, `group "system:masters"`, "bypasses RBAC") {
		t.Errorf("admin.csr notes: %+v", r.Identity.Notes)
	}
	// Now is whatever openssl took it to be: use a time inside the validity.
	c := describeOne(t, "admin.crt", read("admin.crt"), time.Now()).Certificate
	if c.Subject != "CN = admin, O = system:masters" || c.Issuer != c.Subject || !c.SelfSigned {
		t.Errorf("admin.crt: %+v", c)
	}
	if want := strings.TrimPrefix(strings.TrimSpace(openssltest.Run(t, "", "x509", "-in", p("admin.crt"), "-noout", "-subject")), "subject="); c.Subject != want {
		t.Errorf("subject %q, openssl says %q", c.Subject, want)
	}
}
