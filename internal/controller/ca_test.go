package controller

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/store"
	"kubepki.dev/kubepki/internal/testenv"
)

func TestCAFilesReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, first := writeCA(t, dir, "ca", time.Hour)
	var reloads, failures int
	files, err := LoadCAFiles(certFile, keyFile, store.KeyPolicy{SecretVolume: true}, nil, func(err error) {
		reloads++
		if err != nil {
			failures++
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if !files.Current().Cert.Equal(first.Cert) {
		t.Fatal("not the first CA")
	}
	if reloads != 0 {
		t.Fatalf("reloaded %d times without a change", reloads)
	}

	// Rotate: a new pair under the same names.
	_, _, second := writeCA(t, dir, "ca", time.Hour)
	if !files.Current().Cert.Equal(second.Cert) {
		t.Fatal("rotated CA not picked up")
	}

	// Half a rotation (a new certificate, the old key) keeps the last
	// whole pair.
	third := t.TempDir()
	c3, _, _ := writeCA(t, third, "ca", time.Hour)
	data, err := os.ReadFile(c3)
	if err != nil {
		t.Fatal(err)
	}
	replaceFile(t, certFile, data)
	if !files.Current().Cert.Equal(second.Cert) {
		t.Fatal("a mismatched pair replaced the CA")
	}
	// A file that disappears keeps the CA too.
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	if !files.Current().Cert.Equal(second.Cert) {
		t.Fatal("a missing key dropped the CA")
	}
	if reloads != 3 || failures != 2 {
		t.Errorf("reloads %d (failures %d), want 3 (2)", reloads, failures)
	}
}

// caFixture is a good CA pair, and the bytes of things that are not one.
type caFixture struct {
	certPEM, keyPEM []byte
	ca              *pki.CA
}

func newCAFixture(t *testing.T, name string) caFixture {
	t.Helper()
	certFile, keyFile, ca := writeCA(t, t.TempDir(), name, 24*time.Hour)
	return caFixture{certPEM: readFile(t, certFile), keyPEM: readFile(t, keyFile), ca: ca}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCAFilesKeepLastGood replaces a loaded CA with each kind of garbage an
// operator or a half-finished write can leave, signs many times, and checks
// that the controller keeps the last good CA, reports the change once (one
// log record, one failed reload, Stale), and takes the next good pair.
func TestCAFilesKeepLastGood(t *testing.T) {
	good := newCAFixture(t, "good")
	other := newCAFixture(t, "other")
	leafKey, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := good.ca.Issue(leafKey.Public(), pki.Profile{Subject: pki.Subject{CommonName: "leaf"}, Usages: []pki.Usage{pki.UsageClientAuth}, Validity: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	leafKeyPEM, _ := pki.EncodeKey(leafKey)
	expiredKey, _ := pki.GenerateKey(pki.ECDSAP256)
	expired, err := pki.NewCA(expiredKey, pki.Profile{Subject: pki.Subject{CommonName: "expired"}, Validity: time.Hour}, time.Now().Add(-48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	expiredKeyPEM, _ := pki.EncodeKey(expiredKey)

	tests := []struct {
		name      string
		cert, key []byte // nil: remove the file
		wantErr   string
	}{
		{"certificate not PEM", []byte("garbage\x00\xff not a certificate\n"), good.keyPEM, "certificate"},
		{"certificate empty", []byte{}, good.keyPEM, "certificate"},
		{"certificate truncated mid-write", good.certPEM[:len(good.certPEM)/2], good.keyPEM, "certificate"},
		{"key truncated mid-write", good.certPEM, good.keyPEM[:len(good.keyPEM)/2], "key"},
		{"key of another CA", good.certPEM, other.keyPEM, "is not the key of"},
		{"certificate of another CA", other.certPEM, good.keyPEM, "is not the key of"},
		{"key PEM in the certificate file", good.keyPEM, good.keyPEM, "certificate"},
		{"not a CA", pki.EncodeCert(leaf), leafKeyPEM, "not a CA certificate"},
		{"expired CA", pki.EncodeCert(expired.Cert), expiredKeyPEM, "expired"},
		{"key removed", good.certPEM, nil, "CA key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			certFile, keyFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
			replaceFile(t, certFile, good.certPEM)
			replaceFile(t, keyFile, good.keyPEM)
			var logs bytes.Buffer
			var reloadErrs []error
			files, err := LoadCAFiles(certFile, keyFile, store.KeyPolicy{SecretVolume: true}, slog.New(slog.NewTextHandler(&logs, nil)), func(err error) { reloadErrs = append(reloadErrs, err) })
			if err != nil {
				t.Fatal(err)
			}

			if tc.key == nil {
				if err := os.Remove(keyFile); err != nil {
					t.Fatal(err)
				}
			} else {
				replaceFile(t, keyFile, tc.key)
			}
			replaceFile(t, certFile, tc.cert)
			for range 50 { // fifty signatures
				if ca := files.Current(); !ca.Cert.Equal(good.ca.Cert) || !pki.KeyMatches(ca.Cert.PublicKey, ca.Key) {
					t.Fatalf("signing with %s, want the last good CA", ca.Cert.Subject)
				}
			}
			stale, since, err := files.Stale()
			if !stale || err == nil || !strings.Contains(err.Error(), tc.wantErr) || since.IsZero() {
				t.Errorf("Stale() = %v, %v, %v; want true and an error about %q", stale, since, err, tc.wantErr)
			}
			if len(reloadErrs) != 1 || reloadErrs[0] == nil {
				t.Errorf("onReload told %v, want one error", reloadErrs)
			}
			if n := strings.Count(logs.String(), "do not load"); n != 1 {
				t.Errorf("%d warnings logged for one change, want 1:\n%s", n, logs.String())
			}

			// A good pair again (a new CA): taken at once.
			replaceFile(t, keyFile, other.keyPEM)
			replaceFile(t, certFile, other.certPEM)
			if ca := files.Current(); !ca.Cert.Equal(other.ca.Cert) {
				t.Errorf("after a good pair: signing with %s, want %s", ca.Cert.Subject, other.ca.Cert.Subject)
			}
			if stale, _, err := files.Stale(); stale {
				t.Errorf("still stale after a good pair: %v", err)
			}
			if len(reloadErrs) != 2 || reloadErrs[1] != nil {
				t.Errorf("onReload told %v, want an error then nil", reloadErrs)
			}
		})
	}
}

// TestCAFilesRepeatedGarbage: each new broken version is its own change and
// reported once; a file that comes back unchanged clears the error without
// a reload.
func TestCAFilesRepeatedGarbage(t *testing.T) {
	good := newCAFixture(t, "good")
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	replaceFile(t, certFile, good.certPEM)
	replaceFile(t, keyFile, good.keyPEM)
	var logs bytes.Buffer
	var errs, oks int
	files, err := LoadCAFiles(certFile, keyFile, store.KeyPolicy{SecretVolume: true}, slog.New(slog.NewTextHandler(&logs, nil)), func(err error) {
		if err != nil {
			errs++
		} else {
			oks++
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		replaceFile(t, certFile, fmt.Appendf(nil, "garbage %d", i))
		for range 10 {
			files.Current()
		}
	}
	if errs != 3 || strings.Count(logs.String(), "do not load") != 3 {
		t.Errorf("3 broken versions: %d errors reported, log:\n%s", errs, logs.String())
	}

	// The key file gone and back (a hard link keeps the same inode).
	replaceFile(t, certFile, good.certPEM)
	files.Current()
	link := keyFile + ".saved"
	if err := os.Link(keyFile, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		files.Current()
	}
	if stale, _, _ := files.Stale(); !stale {
		t.Error("not stale while the key file is missing")
	}
	if err := os.Rename(link, keyFile); err != nil {
		t.Fatal(err)
	}
	if stale, _, err := files.Stale(); stale {
		t.Errorf("stale after the key came back: %v", err)
	}
	if errs != 4 || oks != 2 {
		t.Errorf("errors %d, ok %d; want 4 and 2 (the reload, the key back)", errs, oks)
	}
}

// TestCAFilesSecretVolume rotates, breaks and restores a CA mounted from a
// Secret volume.
func TestCAFilesSecretVolume(t *testing.T) {
	first, second := newCAFixture(t, "first"), newCAFixture(t, "second")
	vol := testenv.NewSecretVolume(t, map[string][]byte{"tls.crt": first.certPEM, "tls.key": first.keyPEM})
	files, err := LoadCAFiles(vol.Path("tls.crt"), vol.Path("tls.key"), store.KeyPolicy{SecretVolume: true}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name      string
		cert, key []byte
		want      *pki.CA
		stale     bool
	}{
		{"rotated", second.certPEM, second.keyPEM, second.ca, false},
		{"garbage certificate", []byte("oops"), second.keyPEM, second.ca, true},
		{"mismatched pair", first.certPEM, second.keyPEM, second.ca, true},
		{"restored", first.certPEM, first.keyPEM, first.ca, false},
	}
	for _, s := range steps {
		vol.Update(map[string][]byte{"tls.crt": s.cert, "tls.key": s.key})
		ca := files.Current()
		if !ca.Cert.Equal(s.want.Cert) {
			t.Errorf("%s: signing with %s, want %s", s.name, ca.Cert.Subject, s.want.Cert.Subject)
		}
		if stale, _, err := files.Stale(); stale != s.stale {
			t.Errorf("%s: stale %v (%v), want %v", s.name, stale, err, s.stale)
		}
	}
}

// TestCAFilesNeverMismatched signs while another goroutine keeps
// rewriting the pair in place, file by file, between two CAs, truncating
// and writing like a careless tool: whatever it catches, the pair in use is
// always a CA and its own key.
func TestCAFilesNeverMismatched(t *testing.T) {
	a, b := newCAFixture(t, "a"), newCAFixture(t, "b")
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	replaceFile(t, certFile, a.certPEM)
	replaceFile(t, keyFile, a.keyPEM)
	files, err := LoadCAFiles(certFile, keyFile, store.KeyPolicy{SecretVolume: true}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; !stop.Load(); i++ {
			f := []caFixture{a, b}[i%2]
			// In place, not atomic: O_TRUNC then two writes.
			for _, w := range []struct {
				path string
				data []byte
			}{{certFile, f.certPEM}, {keyFile, f.keyPEM}} {
				fh, err := os.OpenFile(w.path, os.O_WRONLY|os.O_TRUNC, 0o600)
				if err != nil {
					t.Error(err)
					return
				}
				half := len(w.data) / 2
				_, _ = fh.Write(w.data[:half])
				_, _ = fh.Write(w.data[half:])
				fh.Close()
			}
		}
	})
	seen := map[string]bool{}
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		ca := files.Current()
		if !ca.Cert.IsCA || !pki.KeyMatches(ca.Cert.PublicKey, ca.Key) {
			t.Fatalf("signing with a mismatched pair: %s", ca.Cert.Subject)
		}
		seen[ca.Cert.Subject.CommonName] = true
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("CAs used: %v", seen)
}

// TestCAFilesMetrics: the reload callback the controller uses counts each
// change once and sets kubepki_ca_stale while the files are broken.
func TestCAFilesMetrics(t *testing.T) {
	const signer = "kubepki.dev/test"
	certFile, keyFile, _ := writeCA(t, t.TempDir(), "ca", time.Hour)
	m := NewMetrics()
	files, err := LoadCAFiles(certFile, keyFile, store.KeyPolicy{SecretVolume: true}, nil, m.caReloaded(signer))
	if err != nil {
		t.Fatal(err)
	}
	stale := func() float64 { return testutil.ToFloat64(m.caStale.WithLabelValues(signer)) }
	replaceFile(t, certFile, []byte("garbage"))
	for range 20 {
		files.Current()
	}
	if stale() != 1 || testutil.ToFloat64(m.caReloads.WithLabelValues(signer, "error")) != 1 {
		t.Errorf("broken: stale %v, errors %v; want 1 and 1", stale(), testutil.ToFloat64(m.caReloads.WithLabelValues(signer, "error")))
	}
	writeCA(t, filepath.Dir(certFile), "ca", time.Hour)
	files.Current()
	if stale() != 0 || testutil.ToFloat64(m.caReloads.WithLabelValues(signer, "ok")) != 1 {
		t.Errorf("fixed: stale %v, ok %v; want 0 and 1", stale(), testutil.ToFloat64(m.caReloads.WithLabelValues(signer, "ok")))
	}
}

func TestLoadCAFilesRefuses(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := writeCA(t, dir, "a", time.Hour)
	_, otherKey, _ := writeCA(t, dir, "b", time.Hour)
	if _, err := LoadCAFiles(certFile, otherKey, store.KeyPolicy{SecretVolume: true}, nil, nil); err == nil {
		t.Error("mismatched pair loaded")
	}
	if _, err := LoadCAFiles(certFile, dir+"/missing.key", store.KeyPolicy{SecretVolume: true}, nil, nil); err == nil {
		t.Error("missing key loaded")
	}
	if _, err := LoadCAFiles(keyFile, keyFile, store.KeyPolicy{SecretVolume: true}, nil, nil); err == nil {
		t.Error("key as certificate loaded")
	}
}

// kubeletSecret lays dir out as kubelet's atomic writer does for a Secret
// volume, with ca in a new timestamped directory that ..data points to:
// tls.crt -> ..data/tls.crt, tls.key -> ..data/tls.key.
func kubeletSecret(t *testing.T, dir, stamp string, keyMode os.FileMode) *pki.CA {
	t.Helper()
	ts := filepath.Join(dir, "..2026_03_14_"+stamp)
	if err := os.Mkdir(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, ca := writeCA(t, ts, "ca", time.Hour)
	if err := os.Rename(certFile, filepath.Join(ts, "tls.crt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(keyFile, filepath.Join(ts, "tls.key")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(ts, "tls.key"), keyMode); err != nil {
		t.Fatal(err)
	}
	// ..data is swapped by a rename of a new link over it.
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"tls.crt", "tls.key"} {
		if _, err := os.Lstat(filepath.Join(dir, f)); err == nil {
			continue
		}
		if err := os.Symlink("..data/"+f, filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	return ca
}

// TestCAFilesSecretVolume: the controller reads its CA through the links
// of a Secret volume and follows a rotation that swaps ..data, but refuses
// a key others can read or a link out of the volume; the insecure policy
// reads them.
func TestCAFilesSecretVolumePolicy(t *testing.T) {
	policy := store.KeyPolicy{SecretVolume: true}
	dir := t.TempDir()
	first := kubeletSecret(t, dir, "100000.1", 0o400)
	files, err := LoadCAFiles(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), policy, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !files.Current().Cert.Equal(first.Cert) {
		t.Fatal("not the Secret's CA")
	}
	second := kubeletSecret(t, dir, "110000.2", 0o400)
	if !files.Current().Cert.Equal(second.Cert) {
		t.Fatal("the rotated Secret's CA was not picked up")
	}

	open := t.TempDir()
	kubeletSecret(t, open, "100000.1", 0o644)
	if _, err := LoadCAFiles(filepath.Join(open, "tls.crt"), filepath.Join(open, "tls.key"), policy, nil, nil); err == nil || !strings.Contains(err.Error(), "mode 0644 is readable by others") {
		t.Fatalf("0644 key in a Secret volume: %v, want a refusal", err)
	}
	if _, err := LoadCAFiles(filepath.Join(open, "tls.crt"), filepath.Join(open, "tls.key"), store.KeyPolicy{SecretVolume: true, Insecure: true}, nil, nil); err != nil {
		t.Fatalf("insecure: %v", err)
	}

	out := t.TempDir()
	if err := os.Symlink(filepath.Join(dir, "tls.crt"), filepath.Join(out, "tls.crt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "tls.key"), filepath.Join(out, "tls.key")); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCAFiles(filepath.Join(out, "tls.crt"), filepath.Join(out, "tls.key"), policy, nil, nil); err == nil || !strings.Contains(err.Error(), "out of its directory") {
		t.Fatalf("link out of the volume: %v, want a refusal", err)
	}
}
