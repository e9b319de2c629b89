package controller

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/store"
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
	if reloads != 2 || failures != 1 {
		t.Errorf("reloads %d (failures %d), want 2 (1)", reloads, failures)
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
func TestCAFilesSecretVolume(t *testing.T) {
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
