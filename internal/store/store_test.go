package store

import (
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kubepki.dev/kubepki/internal/pki"
)

var testNow = time.Date(2026, time.March, 14, 15, 9, 26, 0, time.UTC)

func newKey(t *testing.T, alg pki.KeyAlgorithm) crypto.Signer {
	t.Helper()
	k, err := pki.GenerateKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newCA(t *testing.T, key crypto.Signer, cn string) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA(key, pki.Profile{Subject: pki.Subject{CommonName: cn}, Validity: 24 * time.Hour}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestPaths(t *testing.T) {
	st := Store{Dir: "/etc/kubernetes/pki"}
	for _, tc := range []struct{ got, want string }{
		{st.CertPath("etcd/server"), "/etc/kubernetes/pki/etcd/server.crt"},
		{st.KeyPath("etcd/server"), "/etc/kubernetes/pki/etcd/server.key"},
		{st.PubPath("sa"), "/etc/kubernetes/pki/sa.pub"},
		{st.CertPath("ca"), "/etc/kubernetes/pki/ca.crt"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %s, want %s", tc.got, tc.want)
		}
	}
}

func TestCreateAndRead(t *testing.T) {
	withUmask(t, 0o077)
	st := Store{Dir: filepath.Join(t.TempDir(), "pki")}
	for _, alg := range []pki.KeyAlgorithm{pki.RSA2048, pki.ECDSAP256, pki.Ed25519} {
		t.Run(string(alg), func(t *testing.T) {
			stem := "etcd/" + string(alg)
			key := newKey(t, alg)
			ca := newCA(t, key, "ca "+string(alg))
			if err := st.CreateKey(stem, key); err != nil {
				t.Fatal(err)
			}
			if err := st.CreateCert(stem, ca.Cert); err != nil {
				t.Fatal(err)
			}
			if err := st.CreatePublicKey(stem, key.Public()); err != nil {
				t.Fatal(err)
			}
			keyPEM, _ := pki.EncodeKey(key)
			pubPEM, _ := pki.EncodePublicKey(key.Public())
			assertFile(t, st.KeyPath(stem), keyPEM, KeyMode)
			assertFile(t, st.CertPath(stem), pki.EncodeCert(ca.Cert), CertMode)
			assertFile(t, st.PubPath(stem), pubPEM, CertMode)
			assertDirMode(t, filepath.Join(st.Dir, "etcd"), KeyDirMode)

			c, err := st.ReadCert(stem)
			if err != nil || !c.Equal(ca.Cert) {
				t.Errorf("ReadCert: %v", err)
			}
			k, err := st.ReadKey(stem)
			if err != nil || !pki.KeyMatches(key.Public(), k) {
				t.Errorf("ReadKey: %v", err)
			}
			pub, err := st.ReadPublicKey(stem)
			if err != nil || !pki.KeyMatches(pub, key) {
				t.Errorf("ReadPublicKey: %v", err)
			}
			got, err := st.ReadCA(stem)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Cert.Equal(ca.Cert) || got.Key == nil || !pki.KeyMatches(ca.Cert.PublicKey, got.Key) {
				t.Error("ReadCA did not return the CA with its key")
			}

			// Create* never overwrite.
			other := newKey(t, pki.ECDSAP256)
			if err := st.CreateKey(stem, other); !errors.Is(err, ErrExists) {
				t.Errorf("CreateKey over an existing key: %v", err)
			}
			if err := st.CreateCert(stem, newCA(t, other, "other").Cert); !errors.Is(err, ErrExists) {
				t.Errorf("CreateCert over an existing cert: %v", err)
			}
			if err := st.CreatePublicKey(stem, other.Public()); !errors.Is(err, ErrExists) {
				t.Errorf("CreatePublicKey over an existing key: %v", err)
			}
			assertFile(t, st.KeyPath(stem), keyPEM, KeyMode)
			assertFile(t, st.CertPath(stem), pki.EncodeCert(ca.Cert), CertMode)
			assertFile(t, st.PubPath(stem), pubPEM, CertMode)
		})
	}
}

func TestReadMissing(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	if _, err := st.ReadCert("nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadCert: %v, want ErrNotExist", err)
	}
	if _, err := st.ReadKey("nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadKey: %v, want ErrNotExist", err)
	}
	if _, err := st.ReadPublicKey("nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadPublicKey: %v, want ErrNotExist", err)
	}
	if _, err := st.ReadCA("nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadCA: %v, want ErrNotExist", err)
	}
}

func TestReadCorrupt(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	for _, p := range []string{st.CertPath("bad"), st.KeyPath("bad"), st.PubPath("bad")} {
		if err := os.WriteFile(p, []byte("-----BEGIN GARBAGE-----\nAAAA\n-----END GARBAGE-----\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for name, err := range map[string]error{
		"ReadCert":      second(st.ReadCert("bad")),
		"ReadKey":       second(st.ReadKey("bad")),
		"ReadPublicKey": second(st.ReadPublicKey("bad")),
		"ReadCA":        second(st.ReadCA("bad")),
	} {
		if err == nil {
			t.Errorf("%s of garbage succeeded", name)
			continue
		}
		if errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: corrupt file reported as missing: %v", name, err)
		}
		if !strings.Contains(err.Error(), filepath.Join(st.Dir, "bad.")) {
			t.Errorf("%s: error %q does not name the file", name, err)
		}
	}
}

func second[T any](_ T, err error) error { return err }

func TestReadCA(t *testing.T) {
	key := newKey(t, pki.ECDSAP256)
	ca := newCA(t, key, "ca")
	keyPEM, _ := pki.EncodeKey(key)
	otherPEM, _ := pki.EncodeKey(newKey(t, pki.ECDSAP256))
	rsaKey := newKey(t, pki.RSA2048)
	rsaCA := newCA(t, rsaKey, "rsa ca")
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey.(*rsa.PrivateKey))})

	tests := []struct {
		name    string
		cert    []byte
		key     []byte // nil: no key file
		wantKey bool
		wantErr string
	}{
		{"cert and key", pki.EncodeCert(ca.Cert), keyPEM, true, ""},
		{"cert without key: external CA", pki.EncodeCert(ca.Cert), nil, false, ""},
		{"PKCS#1 key as kubeadm writes it", pki.EncodeCert(rsaCA.Cert), pkcs1, true, ""},
		{"mismatched key", pki.EncodeCert(ca.Cert), otherPEM, false, "does not match"},
		{"key of another algorithm", pki.EncodeCert(ca.Cert), pkcs1, false, "does not match"},
		{"unreadable key", pki.EncodeCert(ca.Cert), []byte("not a key"), false, "no PEM private key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := Store{Dir: t.TempDir()}
			if err := os.WriteFile(st.CertPath("ca"), tc.cert, 0o644); err != nil {
				t.Fatal(err)
			}
			if tc.key != nil {
				if err := os.WriteFile(st.KeyPath("ca"), tc.key, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, err := st.ReadCA("ca")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if got != nil {
					t.Error("CA returned with an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Cert == nil {
				t.Fatal("nil certificate")
			}
			if (got.Key != nil) != tc.wantKey {
				t.Fatalf("Key = %v, want present=%v", got.Key, tc.wantKey)
			}
			if got.Key != nil && !pki.KeyMatches(got.Cert.PublicKey, got.Key) {
				t.Error("returned key does not match the certificate")
			}
			if got.Key == nil {
				// An external CA cannot issue, with a clear error.
				_, err := got.Issue(newKey(t, pki.ECDSAP256).Public(), pki.Profile{Subject: pki.Subject{CommonName: "x"}, Validity: time.Hour}, testNow)
				if err == nil || !strings.Contains(err.Error(), "external CA") {
					t.Errorf("Issue with external CA: %v", err)
				}
			}
		})
	}
}

// TestCommitBackup: a commit copies every file it replaces into
// Dir/.backup/<UTC timestamp>/ with its mode and relative path (base name
// for a file outside Dir), and a second commit in the same second gets a
// directory of its own.
func TestCommitBackup(t *testing.T) {
	dir := t.TempDir()
	st := Store{Dir: filepath.Join(dir, "pki")}
	files := map[string]struct {
		data []byte
		mode os.FileMode
	}{
		"ca.crt":          {[]byte("ca cert"), 0o644},
		"ca.key":          {[]byte("ca key"), 0o600},
		"etcd/server.key": {[]byte("etcd key"), 0o600},
		"odd.pub":         {[]byte("odd"), 0o640},
	}
	for rel, f := range files {
		p := filepath.Join(st.Dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.data, f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	outside := filepath.Join(dir, "outside.conf")
	if err := os.WriteFile(outside, []byte("outside"), 0o600); err != nil {
		t.Fatal(err)
	}

	// A time zone other than UTC: the directory name is UTC.
	when := time.Date(2026, time.January, 2, 4, 4, 5, 999, time.FixedZone("CET", 3600))
	tx := st.NewTransaction()
	for rel := range files {
		if err := tx.Stage(filepath.Join(st.Dir, rel), []byte("new "+rel), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{filepath.Join(st.Dir, "missing.crt"), outside} {
		if err := tx.Stage(p, []byte("new"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := tx.Commit(when)
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(st.Dir, ".backup", "20260102T030405Z")
	if got != want {
		t.Fatalf("Commit returned %q, want %q", got, want)
	}
	for rel, f := range files {
		assertFile(t, filepath.Join(want, rel), f.data, f.mode)
		assertFile(t, filepath.Join(st.Dir, rel), []byte("new "+rel), 0o600)
	}
	assertFile(t, filepath.Join(want, "outside.conf"), []byte("outside"), 0o600)
	assertDirMode(t, filepath.Join(st.Dir, ".backup"), KeyDirMode)
	assertDirMode(t, want, KeyDirMode)
	assertTree(t, want, "ca.crt", "ca.key", "etcd/", "etcd/server.key", JournalFile, "odd.pub", "outside.conf")

	// Committing again in the same second keeps the first backup.
	tx = st.NewTransaction()
	if err := tx.Stage(filepath.Join(st.Dir, "ca.crt"), []byte("ca cert v3"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err = tx.Commit(when)
	if err != nil || got != want+".2" {
		t.Fatalf("second Commit = %q, %v; want %s.2", got, err, want)
	}
	assertFile(t, filepath.Join(got, "ca.crt"), []byte("new ca.crt"), 0o600)
	assertFile(t, filepath.Join(want, "ca.crt"), files["ca.crt"].data, 0o644)
}
