package store

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"kubepki.dev/kubepki/internal/pki"
)

// otherUID owns the files of the tests that need another owner.
const otherUID = 4242

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("giving a file to another owner needs root")
	}
}

// writeKeyFile writes the PEM of a new key with mode and returns it.
func writeKeyFile(t *testing.T, path string, mode fs.FileMode) []byte {
	t.Helper()
	data, err := pki.EncodeKey(newKey(t, pki.ECDSAP256))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return data
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// TestReadKeyPolicy: the strict policy reads only a regular key file of
// the user's, closed to group and others; each refusal says what is wrong
// and how to fix it; --insecure-key-permissions reads them all.
func TestReadKeyPolicy(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup makes dir/ca.key (and whatever else it needs) and
		// returns the bytes a successful read gives.
		setup func(t *testing.T, dir, elsewhere string) []byte
		// want is a substring of the strict refusal, "" if it reads.
		want     string
		wantMode bool
		// insecureFails: even --insecure-key-permissions cannot read it.
		insecureFails bool
	}{
		{
			name: "0600 own file",
			setup: func(t *testing.T, dir, _ string) []byte {
				return writeKeyFile(t, filepath.Join(dir, "ca.key"), 0o600)
			},
		},
		{
			name: "0400 own file",
			setup: func(t *testing.T, dir, _ string) []byte {
				return writeKeyFile(t, filepath.Join(dir, "ca.key"), 0o400)
			},
		},
		{
			name: "0644",
			setup: func(t *testing.T, dir, _ string) []byte {
				return writeKeyFile(t, filepath.Join(dir, "ca.key"), 0o644)
			},
			want:     "ca.key: mode 0644 is readable by others; fix with chmod 600 ",
			wantMode: true,
		},
		{
			name: "0640",
			setup: func(t *testing.T, dir, _ string) []byte {
				return writeKeyFile(t, filepath.Join(dir, "ca.key"), 0o640)
			},
			want:     "ca.key: mode 0640 is readable by its group; fix with chmod 600 ",
			wantMode: true,
		},
		{
			name: "0620",
			setup: func(t *testing.T, dir, _ string) []byte {
				return writeKeyFile(t, filepath.Join(dir, "ca.key"), 0o620)
			},
			want:     "mode 0620 lets group or others write or run it; fix with chmod 600 ",
			wantMode: true,
		},
		{
			name: "symlink to a 0644 file elsewhere",
			setup: func(t *testing.T, dir, elsewhere string) []byte {
				data := writeKeyFile(t, filepath.Join(elsewhere, "stolen.key"), 0o644)
				symlink(t, filepath.Join(elsewhere, "stolen.key"), filepath.Join(dir, "ca.key"))
				return data
			},
			want: "ca.key: is a symbolic link (to ",
		},
		{
			name: "symlink to a 0600 file",
			setup: func(t *testing.T, dir, elsewhere string) []byte {
				data := writeKeyFile(t, filepath.Join(elsewhere, "real.key"), 0o600)
				symlink(t, filepath.Join(elsewhere, "real.key"), filepath.Join(dir, "ca.key"))
				return data
			},
			want: "is a symbolic link",
		},
		{
			name: "relative symlink in the same directory",
			setup: func(t *testing.T, dir, _ string) []byte {
				data := writeKeyFile(t, filepath.Join(dir, "real.key"), 0o600)
				symlink(t, "real.key", filepath.Join(dir, "ca.key"))
				return data
			},
			want: "is a symbolic link (to real.key)",
		},
		{
			name: "owned by another user",
			setup: func(t *testing.T, dir, _ string) []byte {
				needRoot(t)
				p := filepath.Join(dir, "ca.key")
				data := writeKeyFile(t, p, 0o600)
				if err := os.Chown(p, otherUID, otherUID); err != nil {
					t.Fatal(err)
				}
				return data
			},
			want: "ca.key: owned by uid 4242, not by uid 0 that runs kubepki; fix with chown 0 ",
		},
		{
			name: "a FIFO",
			setup: func(t *testing.T, dir, _ string) []byte {
				if err := syscall.Mkfifo(filepath.Join(dir, "ca.key"), 0o600); err != nil {
					t.Fatal(err)
				}
				return nil
			},
			want:          "not a regular file",
			insecureFails: true,
		},
		{
			// ln outside/hl.key pki/ca.key: the same key under a name
			// elsewhere, which its directory may let others read, or
			// through which someone can replace it.
			name: "second hard link elsewhere",
			setup: func(t *testing.T, dir, elsewhere string) []byte {
				data := writeKeyFile(t, filepath.Join(elsewhere, "hl.key"), 0o600)
				if err := os.Link(filepath.Join(elsewhere, "hl.key"), filepath.Join(dir, "ca.key")); err != nil {
					t.Fatal(err)
				}
				return data
			},
			want: "has 2 hard links: another path can read or replace it; fix with cp ",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := Store{Dir: t.TempDir()}
			elsewhere := t.TempDir()
			data := tc.setup(t, st.Dir, elsewhere)

			key, err := st.ReadKey("ca")
			var unsafe *UnsafeFileError
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("ReadKey: %v", err)
			case tc.want == "":
				if !pki.KeyMatches(key.Public(), key) {
					t.Fatal("key does not match itself")
				}
			case err == nil:
				t.Fatalf("ReadKey read it, want a refusal with %q", tc.want)
			case !strings.Contains(err.Error(), tc.want):
				t.Fatalf("ReadKey: %v, want %q", err, tc.want)
			case !tc.insecureFails && !errors.As(err, &unsafe):
				t.Fatalf("ReadKey: %T is not an *UnsafeFileError", err)
			case unsafe != nil && (unsafe.Mode != tc.wantMode || !unsafe.Managed):
				t.Fatalf("UnsafeFileError Mode=%v Managed=%v, want Mode=%v and Managed", unsafe.Mode, unsafe.Managed, tc.wantMode)
			}
			if unsafe != nil && strings.Contains(unsafe.Error(), "symbolic link") && !strings.Contains(unsafe.Fix, "cp --remove-destination") {
				t.Errorf("fix for a link: %q", unsafe.Fix)
			}

			got, err := ReadKeyFile(st.KeyPath("ca"), KeyPolicy{Insecure: true})
			switch {
			case tc.insecureFails && err == nil:
				t.Fatal("--insecure-key-permissions read a FIFO")
			case !tc.insecureFails && err != nil:
				t.Fatalf("insecure: %v", err)
			case !tc.insecureFails && !bytes.Equal(got, data):
				t.Fatal("insecure: read other bytes than the key's")
			}
		})
	}
}

// TestReadCertSymlink: a certificate is not read through a link either,
// unless the policy says so; its mode does not matter.
func TestReadCertSymlink(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	ca := newCA(t, newKey(t, pki.ECDSAP256), "ca")
	other := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(other, pki.EncodeCert(ca.Cert), 0o666); err != nil {
		t.Fatal(err)
	}
	symlink(t, other, st.CertPath("ca"))
	var unsafe *UnsafeFileError
	if _, err := st.ReadCert("ca"); !errors.As(err, &unsafe) || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("ReadCert through a link: %v, want a refusal", err)
	}
	st.Keys.Insecure = true
	if c, err := st.ReadCert("ca"); err != nil || !c.Equal(ca.Cert) {
		t.Fatalf("insecure ReadCert: %v", err)
	}
	if err := os.Remove(st.CertPath("ca")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(other, st.CertPath("ca")); err != nil {
		t.Fatal(err)
	}
	st.Keys.Insecure = false
	if _, err := st.ReadCert("ca"); err != nil {
		t.Fatalf("ReadCert of a 0666 certificate: %v", err)
	}
}

// secretVolume lays out dir as kubelet's atomic writer does for a Secret:
// ..<timestamp>/ca.key, ..data -> ..<timestamp>, ca.key -> ..data/ca.key.
func secretVolume(t *testing.T, dir string, mode fs.FileMode) []byte {
	t.Helper()
	ts := "..2026_03_14_15_09_26.2603141509"
	data := writeKeyFile(t, filepath.Join(dir, ts, "ca.key"), mode)
	symlink(t, ts, filepath.Join(dir, "..data"))
	symlink(t, "..data/ca.key", filepath.Join(dir, "ca.key"))
	return data
}

// TestReadKeySecretVolume: the controller's policy reads a key through
// the links of a Secret volume, owned by root and readable by the fsGroup,
// and still refuses a link out of the directory and a key others can read.
func TestReadKeySecretVolume(t *testing.T) {
	p := KeyPolicy{SecretVolume: true}
	t.Run("kubelet layout 0400", func(t *testing.T) {
		dir := t.TempDir()
		data := secretVolume(t, dir, 0o400)
		got, err := ReadKeyFile(filepath.Join(dir, "ca.key"), p)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("ReadKeyFile: %v", err)
		}
		if _, err := ReadKeyFile(filepath.Join(dir, "ca.key"), KeyPolicy{}); err == nil {
			t.Fatal("the strict policy read a key through a link")
		}
	})
	t.Run("root-owned, fsGroup-readable 0440", func(t *testing.T) {
		needRoot(t)
		dir := t.TempDir()
		data := secretVolume(t, dir, 0o440)
		if err := os.Lchown(filepath.Join(dir, "..2026_03_14_15_09_26.2603141509", "ca.key"), 0, otherUID); err != nil {
			t.Fatal(err)
		}
		if got, err := ReadKeyFile(filepath.Join(dir, "ca.key"), p); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("ReadKeyFile: %v", err)
		}
	})
	t.Run("readable by others", func(t *testing.T) {
		dir := t.TempDir()
		secretVolume(t, dir, 0o444)
		if _, err := ReadKeyFile(filepath.Join(dir, "ca.key"), p); err == nil || !strings.Contains(err.Error(), "mode 0444 is readable by others") {
			t.Fatalf("ReadKeyFile: %v, want a refusal", err)
		}
	})
	t.Run("link out of the directory", func(t *testing.T) {
		dir, elsewhere := t.TempDir(), t.TempDir()
		writeKeyFile(t, filepath.Join(elsewhere, "ca.key"), 0o600)
		symlink(t, filepath.Join(elsewhere, "ca.key"), filepath.Join(dir, "ca.key"))
		_, err := ReadKeyFile(filepath.Join(dir, "ca.key"), p)
		var unsafe *UnsafeFileError
		if !errors.As(err, &unsafe) || !strings.Contains(err.Error(), "out of its directory") {
			t.Fatalf("ReadKeyFile: %v, want a refusal", err)
		}
	})
	t.Run("owned by another user", func(t *testing.T) {
		needRoot(t)
		dir := t.TempDir()
		secretVolume(t, dir, 0o400)
		if err := os.Lchown(filepath.Join(dir, "..2026_03_14_15_09_26.2603141509", "ca.key"), otherUID, otherUID); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadKeyFile(filepath.Join(dir, "ca.key"), p); err == nil || !strings.Contains(err.Error(), "owned by uid 4242") {
			t.Fatalf("ReadKeyFile: %v, want a refusal", err)
		}
	})
}

// TestTighten: modes lose exactly the forbidden bits, through fchmod on
// the file opened; a link is refused and its target left alone.
func TestTighten(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name            string
		mode, forbidden fs.FileMode
		dir             bool
		want            fs.FileMode
	}{
		{"key 0644", 0o644, 0o077, false, 0o600},
		{"key 0640", 0o640, 0o077, false, 0o600},
		{"key 0600 untouched", 0o600, 0o077, false, 0o600},
		{"cert 0666", 0o666, 0o022, false, 0o644},
		{"dir 0777", 0o777, 0o077, true, 0o700},
		{"dir 0755", 0o755, 0o077, true, 0o700},
		{"kubeadm dir 0777", 0o777, 0o022, true, 0o755},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			if tc.dir {
				if err := os.Mkdir(p, 0o700); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile(p, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, tc.mode); err != nil {
				t.Fatal(err)
			}
			before, after, err := Tighten(p, tc.forbidden)
			if err != nil || before != tc.mode || after != tc.want {
				t.Fatalf("Tighten = %04o, %04o, %v; want %04o, %04o", before, after, err, tc.mode, tc.want)
			}
			fi, err := os.Lstat(p)
			if err != nil || fi.Mode().Perm() != tc.want {
				t.Fatalf("mode on disk %v, want %04o", fi.Mode(), tc.want)
			}
		})
	}
	t.Run("symlink", func(t *testing.T) {
		target := filepath.Join(t.TempDir(), "elsewhere.key")
		writeKeyFile(t, target, 0o644)
		link := filepath.Join(dir, "link.key")
		symlink(t, target, link)
		if _, _, err := Tighten(link, 0o077); err == nil {
			t.Fatal("Tighten went through a link")
		}
		if fi, _ := os.Stat(target); fi.Mode().Perm() != 0o644 {
			t.Fatalf("the link's target changed to %04o", fi.Mode().Perm())
		}
	})
	t.Run("another owner", func(t *testing.T) {
		needRoot(t)
		p := filepath.Join(dir, "theirs.key")
		writeKeyFile(t, p, 0o644)
		if err := os.Chown(p, otherUID, otherUID); err != nil {
			t.Fatal(err)
		}
		if _, _, err := Tighten(p, 0o077); err == nil || !strings.Contains(err.Error(), "owned by uid 4242") {
			t.Fatalf("Tighten: %v, want a refusal", err)
		}
	})
}

// TestBackupSymlink: a link among the backed-up files is kept as a link
// to the same target; the target's bytes never reach the backup.
func TestBackupSymlink(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	secret := filepath.Join(t.TempDir(), "secret.key")
	secretData := writeKeyFile(t, secret, 0o644)
	symlink(t, secret, st.KeyPath("ca"))
	symlink(t, "ca.key", st.KeyPath("alias"))
	certData := pki.EncodeCert(newCA(t, newKey(t, pki.ECDSAP256), "ca").Cert)
	if err := os.WriteFile(st.CertPath("ca"), certData, 0o644); err != nil {
		t.Fatal(err)
	}
	when := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
	tx := st.NewTransaction()
	for _, p := range []string{st.KeyPath("ca"), st.KeyPath("alias"), st.CertPath("ca")} {
		if err := tx.Stage(p, []byte("renewed\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	dir, err := tx.Commit(when)
	if err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"ca.key": secret, "alias.key": "ca.key"} {
		got, err := os.Readlink(filepath.Join(dir, name))
		if err != nil || got != target {
			t.Errorf("backup of %s: link to %q (%v), want a link to %q", name, got, err, target)
		}
	}
	assertFile(t, filepath.Join(dir, "ca.crt"), certData, 0o644)
	err = filepath.WalkDir(st.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(p)
		if err == nil && bytes.Contains(data, secretData) {
			t.Errorf("%s holds the bytes of the link's target", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
