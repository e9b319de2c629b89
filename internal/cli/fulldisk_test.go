package cli_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/testenv"
)

// fdTree reads every file under root (path → content), skipping backups.
func fdTree(t *testing.T, root string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".backup" {
			return filepath.SkipDir
		}
		if d.IsDir() || d.Name() == "filler" {
			return nil
		}
		data, err := os.ReadFile(p)
		out[p] = data
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// fdFill writes a file until the file system is full.
func fdFill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, size := range []int{64 << 10, 512, 1} {
		chunk := make([]byte, size)
		for {
			if _, err := f.Write(chunk); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatal(err)
				}
				break
			}
		}
	}
}

// TestFullDisk runs init and certs renew on a full file system (a 1 MiB
// tmpfs the test mounts): each gives a clear error naming the file and
// "no space left on device", every old file is intact, no temporary file
// or partial backup is left, and once there is room again both complete
// and verify exits 0.
func TestFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("environment limit: mounting the small tmpfs this test fills needs root, and this test runs as another user")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("environment limit: mount -t tmpfs is not permitted here (%v: %s)", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	bin := testenv.Kubepki(t)
	for _, profile := range catalog.Profiles() {
		t.Run(string(profile), func(t *testing.T) {
			root := filepath.Join(mnt, string(profile))
			dir := filepath.Join(root, "pki")
			common := []string{"--dir", dir, "--profile", string(profile)}
			want := func(code int, args ...string) string {
				t.Helper()
				got, out := crashRun(t, bin, append(args, common...)...)
				if got != code {
					t.Fatalf("kubepki %s: exit %d, want %d\n%s", strings.Join(args, " "), got, code, out)
				}
				return out
			}
			want(0, "init")
			// A file init will have to write again, and renew does not need.
			missing := filepath.Join(dir, "sa.pub")
			if profile == catalog.Hardway {
				missing = filepath.Join(dir, "admin.kubeconfig")
			}
			if err := os.Remove(missing); err != nil {
				t.Fatal(err)
			}
			before := fdTree(t, root)
			filler := filepath.Join(mnt, "filler")
			fdFill(t, filler)

			out := want(1, "certs", "renew", "all")
			if !strings.Contains(out, "kubepki: write ") || !strings.Contains(out, "no space left on device") {
				t.Errorf("renew on a full disk does not say which write failed and why:\n%s", out)
			}
			out = want(3, "init")
			if !strings.Contains(out, filepath.Base(missing)) || !strings.Contains(out, "no space left on device") {
				t.Errorf("init on a full disk does not say what failed and why:\n%s", out)
			}
			after := fdTree(t, root)
			for p, data := range before {
				if !bytes.Equal(after[p], data) {
					t.Errorf("%s changed on a full disk", p)
				}
			}
			for p := range after {
				if _, ok := before[p]; !ok {
					t.Errorf("%s appeared on a full disk", p)
				}
			}
			if temps := crashTemps(t, mnt); len(temps) > 0 {
				t.Errorf("temporary files left on a full disk: %q", temps)
			}
			if backups, _ := filepath.Glob(filepath.Join(dir, ".backup", "*")); len(backups) > 0 {
				t.Errorf("a failed renewal left backups: %q", backups)
			}

			if err := os.Remove(filler); err != nil {
				t.Fatal(err)
			}
			want(0, "init")
			want(0, "certs", "renew", "all")
			want(0, "verify")
		})
	}
}
