package pki

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testNow is a fixed instant with no sub-second part: X.509 times have
// second precision, so NotBefore/NotAfter can be compared exactly.
var testNow = time.Date(2026, time.March, 14, 15, 9, 26, 0, time.UTC)

// keyCache holds generated keys per algorithm and slot so that the slow RSA
// sizes are generated once per test binary, not once per test.
var keyCache struct {
	sync.Mutex
	m map[KeyAlgorithm]map[int]*keyOnce
}

type keyOnce struct {
	once sync.Once
	key  crypto.Signer
	err  error
}

// cachedKey returns key number slot of algorithm a; different slots are
// different keys, the same slot is the same key.
func cachedKey(t testing.TB, a KeyAlgorithm, slot int) crypto.Signer {
	t.Helper()
	keyCache.Lock()
	if keyCache.m == nil {
		keyCache.m = map[KeyAlgorithm]map[int]*keyOnce{}
	}
	if keyCache.m[a] == nil {
		keyCache.m[a] = map[int]*keyOnce{}
	}
	k := keyCache.m[a][slot]
	if k == nil {
		k = &keyOnce{}
		keyCache.m[a][slot] = k
	}
	keyCache.Unlock()
	k.once.Do(func() { k.key, k.err = GenerateKey(a) })
	if k.err != nil {
		t.Fatalf("GenerateKey(%s): %v", a, k.err)
	}
	return k.key
}

func caProfile(cn string) Profile {
	return Profile{
		Subject:  Subject{CommonName: cn, Organization: []string{"kubepki tests"}, Country: []string{"US"}},
		IsCA:     true,
		Validity: 10 * 365 * 24 * time.Hour,
	}
}

func leafProfile() Profile {
	return Profile{
		Subject:  Subject{CommonName: "system:node:node-0", Organization: []string{"system:nodes"}},
		Usages:   []Usage{UsageClientAuth, UsageServerAuth},
		DNSNames: []string{"node-0", "node-0.kubernetes.local"},
		IPs:      []net.IP{net.ParseIP("192.168.10.101"), net.ParseIP("127.0.0.1"), net.ParseIP("fd00::1")},
		Validity: 365 * 24 * time.Hour,
	}
}

func mustCA(t testing.TB, key crypto.Signer, p Profile, now time.Time) *CA {
	t.Helper()
	ca, err := NewCA(key, p, now)
	if err != nil {
		t.Fatalf("NewCA(%q): %v", p.Subject.CommonName, err)
	}
	return ca
}

func mustIssue(t testing.TB, ca *CA, pub crypto.PublicKey, p Profile, now time.Time) *x509.Certificate {
	t.Helper()
	c, err := ca.Issue(pub, p, now)
	if err != nil {
		t.Fatalf("Issue(%q): %v", p.Subject.CommonName, err)
	}
	return c
}

func mustEncodeKey(t testing.TB, k crypto.Signer) []byte {
	t.Helper()
	b, err := EncodeKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// opensslExt is one extension as openssl x509 -ext prints it.
type opensslExt struct {
	Critical bool
	Value    string
}

// parseOpenSSLExts parses the output of openssl x509 -noout -ext …:
//
//	X509v3 Key Usage: critical
//	    Digital Signature
//
// into name → extension; multi-line values are joined with "\n".
func parseOpenSSLExts(t testing.TB, out string) map[string]opensslExt {
	t.Helper()
	exts := map[string]opensslExt{}
	var cur string
	for line := range strings.SplitSeq(out, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		if !strings.HasPrefix(line, " ") {
			name, rest, ok := strings.Cut(line, ":")
			if !ok {
				t.Fatalf("unexpected openssl -ext line %q in\n%s", line, out)
			}
			cur = strings.TrimPrefix(strings.TrimSpace(name), "X509v3 ")
			exts[cur] = opensslExt{Critical: strings.TrimSpace(rest) == "critical"}
			continue
		}
		if cur == "" {
			t.Fatalf("value line %q before any extension in\n%s", line, out)
		}
		e := exts[cur]
		if e.Value != "" {
			e.Value += "\n"
		}
		e.Value += strings.TrimSpace(line)
		exts[cur] = e
	}
	return exts
}

func readFile(t testing.TB, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func asRSA(t testing.TB, k crypto.Signer) *rsa.PrivateKey {
	t.Helper()
	r, ok := k.(*rsa.PrivateKey)
	if !ok {
		t.Fatalf("%T is not RSA", k)
	}
	return r
}

func asECDSA(t testing.TB, k crypto.Signer) *ecdsa.PrivateKey {
	t.Helper()
	e, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		t.Fatalf("%T is not ECDSA", k)
	}
	return e
}

// x25519PKCS8 is a valid PKCS#8 key that is not a signer.
func x25519PKCS8(t testing.TB) []byte {
	t.Helper()
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
