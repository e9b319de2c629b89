package inspect

import (
	"crypto"
	"crypto/x509"
	"strings"
	"sync"
	"testing"
	"time"

	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/pkitest"
)

// testNow is a fixed instant with no sub-second part, as X.509 times have.
var testNow = time.Date(2026, time.March, 14, 15, 9, 26, 0, time.UTC)

const year = 365 * 24 * time.Hour

// keys caches one generated key per algorithm: RSA generation is slow.
var keys struct {
	sync.Mutex
	m map[pki.KeyAlgorithm]crypto.Signer
}

// testKey returns the shared test key of algorithm a.
func testKey(t testing.TB, a pki.KeyAlgorithm) crypto.Signer {
	t.Helper()
	keys.Lock()
	defer keys.Unlock()
	if k, ok := keys.m[a]; ok {
		return k
	}
	k, err := pki.GenerateKey(a)
	if err != nil {
		t.Fatalf("GenerateKey(%s): %v", a, err)
	}
	if keys.m == nil {
		keys.m = map[pki.KeyAlgorithm]crypto.Signer{}
	}
	keys.m[a] = k
	return k
}

// newKey returns a fresh key, for tests that need keys to differ.
func newKey(t testing.TB, a pki.KeyAlgorithm) crypto.Signer {
	t.Helper()
	return pkitest.Key(t, a)
}

// newCA returns a CA named cn with a fresh ECDSA key, valid ten years from testNow.
func newCA(t testing.TB, cn string) *pki.CA {
	t.Helper()
	return pkitest.CA(t, cn, 10*year, testNow)
}

// issue signs a certificate for key with the profile, at testNow.
func issue(t testing.TB, ca *pki.CA, key crypto.Signer, p pki.Profile) *x509.Certificate {
	t.Helper()
	if p.Validity == 0 {
		p.Validity = year
	}
	c, err := ca.Issue(key.Public(), p, testNow)
	if err != nil {
		t.Fatalf("Issue %q: %v", p.Subject.CommonName, err)
	}
	return c
}

// encodeKey is pki.EncodeKey or a test failure.
func encodeKey(t testing.TB, k crypto.Signer) []byte {
	t.Helper()
	return pkitest.EncodeKey(t, k)
}

// describeOne describes data and insists on exactly one object.
func describeOne(t testing.TB, name string, data []byte, now time.Time) Object {
	t.Helper()
	objs, err := Describe(name, data, now)
	if err != nil {
		t.Fatalf("Describe(%s): %v", name, err)
	}
	if len(objs) != 1 {
		t.Fatalf("Describe(%s): %d objects, want 1: %+v", name, len(objs), objs)
	}
	return objs[0]
}

// hasNote reports whether notes hold one of severity sev about about whose
// text contains text.
func hasNote(notes []Note, sev Severity, about, text string) bool {
	for _, n := range notes {
		if n.Severity == sev && n.About == about && strings.Contains(n.Text, text) {
			return true
		}
	}
	return false
}

// containsSub reports whether some element of ss contains sub.
func containsSub(ss []string, sub string) bool {
	for _, s := range ss {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
