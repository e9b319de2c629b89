package pki

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"math/big"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"kubepki.dev/kubepki/internal/openssltest"
)

// opensslIP renders an IP the way OpenSSL 3 prints it in a SAN: dotted quad
// for IPv4, eight uppercase unpadded hex groups for IPv6.
func opensslIP(ip net.IP) string {
	if v4 := ip.To4(); v4 != nil {
		return "IP Address:" + v4.String()
	}
	ip = ip.To16()
	groups := make([]string, 8)
	for i := range groups {
		groups[i] = fmt.Sprintf("%X", uint16(ip[2*i])<<8|uint16(ip[2*i+1]))
	}
	return "IP Address:" + strings.Join(groups, ":")
}

func opensslSANs(p Profile) []string {
	var out []string
	for _, d := range p.DNSNames {
		out = append(out, "DNS:"+d)
	}
	for _, ip := range p.IPs {
		out = append(out, opensslIP(ip))
	}
	slices.Sort(out)
	return out
}

// opensslHex renders bytes as openssl prints key identifiers: AB:CD:….
func opensslHex(b []byte) string {
	h := strings.ToUpper(hex.EncodeToString(b))
	var parts []string
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

// TestOpenSSLInterop issues a CA and a client+server leaf for every
// algorithm and has the real openssl verify the chain, read the keys and
// print the extensions the profile promised.
func TestOpenSSLInterop(t *testing.T) {
	openssltest.Bin(t)
	for _, alg := range KeyAlgorithms() {
		t.Run(string(alg), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			caKey, leafKey := cachedKey(t, alg, 0), cachedKey(t, alg, 1)
			ca := mustCA(t, caKey, caProfile("interop CA "+string(alg)), testNow)
			lp := leafProfile()
			leaf := mustIssue(t, ca, leafKey.Public(), lp, testNow)

			writeFile(t, dir, "ca.crt", EncodeCert(ca.Cert))
			writeFile(t, dir, "ca.key", mustEncodeKey(t, caKey))
			writeFile(t, dir, "leaf.crt", EncodeCert(leaf))
			writeFile(t, dir, "leaf.key", mustEncodeKey(t, leafKey))

			// The chain verifies, strictly, for both TLS purposes; at the
			// fixed issue time (openssl would otherwise use the wall clock).
			at := fmt.Sprint(testNow.Unix() + 60)
			for _, purpose := range []string{"sslclient", "sslserver"} {
				out := openssltest.Run(t, dir, "verify", "-x509_strict", "-attime", at, "-purpose", purpose, "-CAfile", "ca.crt", "leaf.crt")
				if strings.TrimSpace(out) != "leaf.crt: OK" {
					t.Errorf("openssl verify -purpose %s: %q, want %q", purpose, out, "leaf.crt: OK")
				}
			}
			// Negative control: a different CA with the same name is rejected,
			// so the OK above means something.
			other := mustCA(t, cachedKey(t, alg, 2), caProfile("interop CA "+string(alg)), testNow)
			writeFile(t, dir, "other.crt", EncodeCert(other.Cert))
			if out, errOut, err := openssltest.Try(t, dir, "verify", "-attime", at, "-CAfile", "other.crt", "leaf.crt"); err == nil {
				t.Errorf("openssl verify against an unrelated CA with the same name succeeded:\n%s%s", out, errOut)
			}

			// Leaf extensions.
			exts := parseOpenSSLExts(t, openssltest.Run(t, dir, "x509", "-in", "leaf.crt", "-noout", "-ext",
				"subjectAltName,keyUsage,extendedKeyUsage,basicConstraints,subjectKeyIdentifier,authorityKeyIdentifier"))
			wantKU := "Digital Signature"
			if strings.HasPrefix(string(alg), "RSA") {
				wantKU = "Digital Signature, Key Encipherment"
			}
			checkExt(t, "leaf", exts, "Key Usage", true, wantKU)
			checkExt(t, "leaf", exts, "Basic Constraints", true, "CA:FALSE")
			checkExt(t, "leaf", exts, "Extended Key Usage", false, "TLS Web Client Authentication, TLS Web Server Authentication")
			san, ok := exts["Subject Alternative Name"]
			if !ok {
				t.Fatalf("leaf has no subjectAltName; openssl printed %v", exts)
			}
			gotSANs := strings.Split(san.Value, ", ")
			slices.Sort(gotSANs)
			if want := opensslSANs(lp); !slices.Equal(gotSANs, want) {
				t.Errorf("leaf SANs per openssl:\n got %q\nwant %q", gotSANs, want)
			}
			checkExt(t, "leaf", exts, "Subject Key Identifier", false, opensslHex(leaf.SubjectKeyId))
			checkExt(t, "leaf", exts, "Authority Key Identifier", false, opensslHex(ca.Cert.SubjectKeyId))

			// CA extensions: no EKU, no SANs.
			caExts := parseOpenSSLExts(t, openssltest.Run(t, dir, "x509", "-in", "ca.crt", "-noout", "-ext",
				"subjectAltName,keyUsage,extendedKeyUsage,basicConstraints,subjectKeyIdentifier"))
			checkExt(t, "CA", caExts, "Key Usage", true, "Digital Signature, Certificate Sign, CRL Sign")
			checkExt(t, "CA", caExts, "Basic Constraints", true, "CA:TRUE")
			checkExt(t, "CA", caExts, "Subject Key Identifier", false, opensslHex(ca.Cert.SubjectKeyId))
			for _, absent := range []string{"Extended Key Usage", "Subject Alternative Name"} {
				if e, ok := caExts[absent]; ok {
					t.Errorf("CA has %s %q; the CA profile asks for none", absent, e.Value)
				}
			}

			// Subject as openssl sees it (RFC 2253 lists the last RDN first).
			subj := strings.TrimSpace(openssltest.Run(t, dir, "x509", "-in", "leaf.crt", "-noout", "-subject", "-nameopt", "RFC2253"))
			if want := "subject=CN=system:node:node-0,O=system:nodes"; subj != want {
				t.Errorf("leaf subject: %q, want %q", subj, want)
			}

			// openssl reads the keys, and each matches its certificate.
			for _, name := range []string{"leaf", "ca"} {
				openssltest.Run(t, dir, "pkey", "-in", name+".key", "-noout")
				keyPub := openssltest.Run(t, dir, "pkey", "-in", name+".key", "-pubout")
				certPub := openssltest.Run(t, dir, "x509", "-in", name+".crt", "-pubkey", "-noout")
				if keyPub != certPub || !strings.Contains(keyPub, "BEGIN PUBLIC KEY") {
					t.Errorf("%s: openssl pkey -pubout\n%s\ndiffers from openssl x509 -pubkey\n%s", name, keyPub, certPub)
				}
				// Our own PKIX encoding agrees with openssl's.
				var pub any = leafKey.Public()
				if name == "ca" {
					pub = caKey.Public()
				}
				ours, err := EncodePublicKey(pub)
				if err != nil {
					t.Fatal(err)
				}
				if string(ours) != keyPub {
					t.Errorf("%s: EncodePublicKey\n%s\ndiffers from openssl\n%s", name, ours, keyPub)
				}
			}
		})
	}
}

func checkExt(t *testing.T, what string, exts map[string]opensslExt, name string, critical bool, want string) {
	t.Helper()
	e, ok := exts[name]
	if !ok {
		t.Errorf("%s: openssl shows no %s (got %v)", what, name, exts)
		return
	}
	if e.Value != want {
		t.Errorf("%s: %s is %q, want %q", what, name, e.Value, want)
	}
	if e.Critical != critical {
		t.Errorf("%s: %s critical=%v, want %v", what, name, e.Critical, critical)
	}
}

// TestSubjectKeyIDMatchesOpenSSL: openssl computes the SKI of a certificate
// it makes itself (RFC 5280 method 1); ours must be the same value, so that
// AKIs of certificates we issue from an openssl-made CA line up.
func TestSubjectKeyIDMatchesOpenSSL(t *testing.T) {
	openssltest.Bin(t)
	for _, alg := range KeyAlgorithms() {
		t.Run(string(alg), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			key := cachedKey(t, alg, 0)
			writeFile(t, dir, "ca.key", mustEncodeKey(t, key))
			openssltest.Run(t, dir, "req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=openssl CA", "-days", "1", "-out", "ca.crt",
				"-addext", "subjectKeyIdentifier=hash")
			ca, err := ParseCert([]byte(openssltest.Run(t, dir, "x509", "-in", "ca.crt")))
			if err != nil {
				t.Fatal(err)
			}
			ski, err := SubjectKeyID(key.Public())
			if err != nil {
				t.Fatal(err)
			}
			if hex.EncodeToString(ski) != hex.EncodeToString(ca.SubjectKeyId) {
				t.Errorf("SubjectKeyID = %x, openssl computed %x", ski, ca.SubjectKeyId)
			}
		})
	}
}

// TestIssueFromOpenSSLCA: a CA made by openssl (key in PKCS#1/SEC 1 form)
// can sign with kubepki, and openssl verifies what it signed.
func TestIssueFromOpenSSLCA(t *testing.T) {
	openssltest.Bin(t)
	tests := []struct {
		name   string
		keyGen []string
	}{
		{"rsa-traditional", []string{"genrsa", "-traditional", "-out", "ca.key", "2048"}},
		{"ec-sec1", []string{"ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", "ca.key"}},
		{"ed25519-pkcs8", []string{"genpkey", "-algorithm", "ed25519", "-out", "ca.key"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			openssltest.Run(t, dir, tc.keyGen...)
			openssltest.Run(t, dir, "req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=openssl CA", "-days", "3650", "-out", "ca.crt")
			cert, err := ParseCert([]byte(openssltest.Run(t, dir, "x509", "-in", "ca.crt")))
			if err != nil {
				t.Fatal(err)
			}
			key, err := ParseKey([]byte(openssltest.Run(t, dir, "pkey", "-in", "ca.key")))
			if err != nil {
				t.Fatal(err)
			}
			if !KeyMatches(cert.PublicKey, key) {
				t.Fatal("openssl key does not match openssl certificate per KeyMatches")
			}
			ca := &CA{Cert: cert, Key: key}
			leaf, err := ca.Issue(cachedKey(t, ECDSAP256, 0).Public(), leafProfile(), cert.NotBefore.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(leaf.AuthorityKeyId, cert.SubjectKeyId) {
				t.Errorf("AKI %x, want openssl CA's SKI %x", leaf.AuthorityKeyId, cert.SubjectKeyId)
			}
			writeFile(t, dir, "leaf.crt", EncodeCert(leaf))
			out := openssltest.Run(t, dir, "verify", "-attime", fmt.Sprint(cert.NotBefore.Add(2*time.Hour).Unix()), "-CAfile", "ca.crt", "leaf.crt")
			if strings.TrimSpace(out) != "leaf.crt: OK" {
				t.Errorf("openssl verify: %q", out)
			}
		})
	}
}

// TestParseKeyOpenSSLFormats: keys as openssl writes them in every
// traditional and PKCS#8 form parse, and are the key openssl sees.
func TestParseKeyOpenSSLFormats(t *testing.T) {
	openssltest.Bin(t)
	tests := []struct {
		name       string
		gen        []string
		wantHeader string
		wantAlg    KeyAlgorithm
	}{
		{"pkcs1-rsa", []string{"genrsa", "-traditional", "-out", "k.pem", "2048"}, "-----BEGIN RSA PRIVATE KEY-----", RSA2048},
		// ecparam -genkey without -noout writes an EC PARAMETERS block first:
		// ParseKey must skip it.
		{"sec1-p256-with-params", []string{"ecparam", "-genkey", "-name", "prime256v1", "-out", "k.pem"}, "-----BEGIN EC PARAMETERS-----", ECDSAP256},
		{"sec1-p384", []string{"ecparam", "-genkey", "-name", "secp384r1", "-noout", "-out", "k.pem"}, "-----BEGIN EC PRIVATE KEY-----", ECDSAP384},
		{"pkcs8-rsa", []string{"genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072", "-out", "k.pem"}, "-----BEGIN PRIVATE KEY-----", RSA3072},
		{"pkcs8-ec", []string{"genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "k.pem"}, "-----BEGIN PRIVATE KEY-----", ECDSAP256},
		{"pkcs8-ed25519", []string{"genpkey", "-algorithm", "ed25519", "-out", "k.pem"}, "-----BEGIN PRIVATE KEY-----", Ed25519},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			openssltest.Run(t, dir, tc.gen...)
			pemData := readFile(t, dir, "k.pem")
			if !strings.HasPrefix(string(pemData), tc.wantHeader) {
				t.Fatalf("openssl wrote %q…, want it to start with %s (test premise)", firstLine(pemData), tc.wantHeader)
			}
			key, err := ParseKey(pemData)
			if err != nil {
				t.Fatalf("ParseKey: %v", err)
			}
			if got := AlgorithmOf(key.Public()); got != tc.wantAlg {
				t.Errorf("AlgorithmOf = %s, want %s", got, tc.wantAlg)
			}
			ours, err := EncodePublicKey(key.Public())
			if err != nil {
				t.Fatal(err)
			}
			if theirs := openssltest.Run(t, dir, "pkey", "-in", "k.pem", "-pubout"); string(ours) != theirs {
				t.Errorf("public key of parsed key\n%s\ndiffers from openssl's\n%s", ours, theirs)
			}
			// Re-encoded as PKCS#8, openssl reads it back as the same key.
			writeFile(t, dir, "k8.pem", mustEncodeKey(t, key))
			if a, b := openssltest.Run(t, dir, "pkey", "-in", "k8.pem", "-pubout"), openssltest.Run(t, dir, "pkey", "-in", "k.pem", "-pubout"); a != b {
				t.Errorf("re-encoded key has public key\n%s\nwant\n%s", a, b)
			}
		})
	}
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	return s
}

// TestCSROpenSSL: CreateCSR round-trips through ParseCSR, openssl verifies
// its self-signature and shows the requested extensions, and an openssl CA
// that copies the requested extensions issues a certificate Diff accepts.
func TestCSROpenSSL(t *testing.T) {
	openssltest.Bin(t)
	for _, alg := range KeyAlgorithms() {
		t.Run(string(alg), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			key := cachedKey(t, alg, 1)
			p := leafProfile()
			der, err := CreateCSR(key, p)
			if err != nil {
				t.Fatal(err)
			}
			pemCSR := EncodeCSR(der)
			csr, err := ParseCSR(pemCSR)
			if err != nil {
				t.Fatalf("ParseCSR: %v", err)
			}
			if got := SubjectOf(csr.Subject); got.CommonName != p.Subject.CommonName || !slices.Equal(got.Organization, p.Subject.Organization) {
				t.Errorf("CSR subject %+v, want %+v", got, p.Subject)
			}
			if !slices.Equal(csr.DNSNames, p.DNSNames) {
				t.Errorf("CSR DNS names %q, want %q", csr.DNSNames, p.DNSNames)
			}
			if got, want := SANs(nil, csr.IPAddresses), SANs(nil, p.IPs); !slices.Equal(got, want) {
				t.Errorf("CSR IPs %q, want %q", got, want)
			}
			if !KeyMatches(csr.PublicKey, key) {
				t.Error("CSR public key is not the key's")
			}
			ku, eku := csrUsages(t, csr)
			if want := KeyUsageFor(key.Public(), false); ku != want {
				t.Errorf("CSR key usage %v, want %v", KeyUsageNames(ku), KeyUsageNames(want))
			}
			if want := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}; !slices.Equal(eku, want) {
				t.Errorf("CSR ext key usage %v, want %v", eku, want)
			}

			writeFile(t, dir, "req.csr", pemCSR)
			_, errOut, err := openssltest.Try(t, dir, "req", "-in", "req.csr", "-verify", "-noout")
			if err != nil || !strings.Contains(errOut, "verify OK") {
				t.Errorf("openssl req -verify: err=%v, stderr %q", err, errOut)
			}
			text := openssltest.Run(t, dir, "req", "-in", "req.csr", "-noout", "-text")
			wantKU := "Digital Signature"
			if strings.HasPrefix(string(alg), "RSA") {
				wantKU = "Digital Signature, Key Encipherment"
			}
			for _, want := range []string{
				"Requested Extensions:",
				"X509v3 Key Usage: critical\n                    " + wantKU + "\n",
				"TLS Web Client Authentication, TLS Web Server Authentication",
				"Subject: O = system:nodes, CN = system:node:node-0",
			} {
				if !strings.Contains(text, want) {
					t.Errorf("openssl req -text lacks %q:\n%s", want, text)
				}
			}
			if strings.Contains(text, "Key Encipherment") != strings.HasPrefix(string(alg), "RSA") {
				t.Errorf("Key Encipherment requested for %s; it is for RSA only:\n%s", alg, text)
			}
			if strings.Contains(text, "Certificate Sign") {
				t.Errorf("leaf CSR requests Certificate Sign:\n%s", text)
			}
			for _, san := range opensslSANs(p) {
				if !strings.Contains(text, san) {
					t.Errorf("openssl req -text lacks SAN %q:\n%s", san, text)
				}
			}

			// An external openssl CA signs it, copying the requested extensions.
			ca := mustCA(t, cachedKey(t, ECDSAP256, 0), caProfile("external"), testNow)
			writeFile(t, dir, "ca.crt", EncodeCert(ca.Cert))
			writeFile(t, dir, "ca.key", mustEncodeKey(t, ca.Key))
			openssltest.Run(t, dir, "x509", "-req", "-in", "req.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
				"-copy_extensions", "copyall", "-days", "30", "-out", "leaf.crt")
			leaf, err := ParseCert(readFile(t, dir, "leaf.crt"))
			if err != nil {
				t.Fatal(err)
			}
			if d := Diff(leaf, p); len(d) != 0 {
				t.Errorf("certificate signed by openssl from our CSR differs from the profile: %q", d)
			}
		})
	}
}

// csrUsages decodes the key usage and extended key usage a CSR requests
// with Go's certificate parser: it wraps the extensions in a certificate.
func csrUsages(t *testing.T, csr *x509.CertificateRequest) (x509.KeyUsage, []x509.ExtKeyUsage) {
	t.Helper()
	var haveKU bool
	for _, e := range csr.Extensions {
		if e.Id.Equal(oidKeyUsage) {
			haveKU = true
			if !e.Critical {
				t.Error("CSR key usage extension is not critical")
			}
		}
	}
	if !haveKU {
		t.Fatal("CSR has no key usage extension")
	}
	signer := cachedKey(t, ECDSAP256, 3)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), ExtraExtensions: csr.Extensions, NotBefore: testNow, NotAfter: testNow.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, signer.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("requested extensions do not parse as certificate extensions: %v", err)
	}
	return c.KeyUsage, c.ExtKeyUsage
}
