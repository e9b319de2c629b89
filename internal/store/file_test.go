package store

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// These tests change the process umask; none of them may run in parallel.

// withUmask runs the test body with the given umask and restores the
// previous one.
func withUmask(t *testing.T, mask int) {
	t.Helper()
	old := syscall.Umask(mask)
	t.Cleanup(func() { syscall.Umask(old) })
}

// listTree returns every path under dir, relative, sorted, dirs with a
// trailing slash.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			rel += "/"
		}
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func assertTree(t *testing.T, dir string, want ...string) {
	t.Helper()
	slices.Sort(want)
	if got := listTree(t, dir); !slices.Equal(got, want) {
		t.Errorf("directory holds %q, want exactly %q (temp files left behind?)", got, want)
	}
}

func assertFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.Mode().IsRegular() {
		t.Errorf("%s: mode %v, want a regular file", path, fi.Mode())
	}
	if got := fi.Mode().Perm(); got != mode {
		t.Errorf("%s: mode %04o, want %04o", path, got, mode)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("%s: content %q, want %q", path, got, data)
	}
}

func assertDirMode(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.IsDir() || fi.Mode().Perm() != mode {
		t.Errorf("%s: mode %v, want directory %04o", path, fi.Mode(), mode)
	}
}

func TestCreate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ca.key")
	if err := Create(path, []byte("original"), KeyMode); err != nil {
		t.Fatal(err)
	}
	assertFile(t, path, []byte("original"), KeyMode)
	assertTree(t, dir, "ca.key")

	// Neither a different mode nor different content gets through.
	for _, mode := range []os.FileMode{KeyMode, CertMode} {
		err := Create(path, []byte("replacement"), mode)
		if !errors.Is(err, ErrExists) {
			t.Fatalf("second Create: err = %v, want ErrExists", err)
		}
		if !strings.Contains(err.Error(), path) {
			t.Errorf("error %q does not name the file", err)
		}
	}
	assertFile(t, path, []byte("original"), KeyMode)
	assertTree(t, dir, "ca.key")

	// Empty content is a valid file.
	empty := filepath.Join(dir, "empty")
	if err := Create(empty, nil, CertMode); err != nil {
		t.Fatal(err)
	}
	assertFile(t, empty, nil, CertMode)
	assertTree(t, dir, "ca.key", "empty")
}

func TestCreateDoesNotFollowOrReplaceExistingEntries(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("target"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.crt")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	dangling := filepath.Join(dir, "dangling.crt")
	if err := os.Symlink(filepath.Join(dir, "nowhere"), dangling); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "sub.crt")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{link, dangling, sub} {
		if err := Create(p, []byte("new"), CertMode); !errors.Is(err, ErrExists) {
			t.Errorf("Create(%s): err = %v, want ErrExists", filepath.Base(p), err)
		}
	}
	assertFile(t, target, []byte("target"), 0o644)
	if _, err := os.Stat(filepath.Join(dir, "nowhere")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("Create wrote through a dangling symlink")
	}
	assertTree(t, dir, "dangling.crt", "link.crt", "sub.crt/", "target")
}

// TestCreateRace: many writers, one file: exactly one wins, the file is
// wholly the winner's, the others get ErrExists.
func TestCreateRace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sa.key")
	const n = 32
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = Create(path, bytes.Repeat([]byte{byte('a' + i%26)}, 4096+i), KeyMode)
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("writers %d and %d both created the file", winner, i)
			}
			winner = i
		case !errors.Is(err, ErrExists):
			t.Errorf("writer %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no writer created the file")
	}
	assertFile(t, path, bytes.Repeat([]byte{byte('a' + winner%26)}, 4096+winner), KeyMode)
	assertTree(t, dir, "sa.key")
}

func TestReplace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "admin.crt")

	// Replace creates a missing file.
	if err := Replace(path, []byte("v1"), CertMode); err != nil {
		t.Fatal(err)
	}
	assertFile(t, path, []byte("v1"), CertMode)

	// And replaces an existing one, content and mode, even a read-only one.
	if err := os.Chmod(path, 0o444); err != nil {
		t.Fatal(err)
	}
	if err := Replace(path, []byte("v2, longer than v1"), KeyMode); err != nil {
		t.Fatal(err)
	}
	assertFile(t, path, []byte("v2, longer than v1"), KeyMode)
	if err := Replace(path, []byte("3"), CertMode); err != nil {
		t.Fatal(err)
	}
	assertFile(t, path, []byte("3"), CertMode)
	assertTree(t, dir, "admin.crt")

	// Replacing a symlink replaces the link, not its target.
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("target"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := Replace(link, []byte("new"), CertMode); err != nil {
		t.Fatal(err)
	}
	assertFile(t, link, []byte("new"), CertMode)
	assertFile(t, target, []byte("target"), 0o600)
	assertTree(t, dir, "admin.crt", "link", "target")
}

// TestWriteFailuresLeaveNoTempFiles: when the final link or rename fails,
// the temporary file is removed.
func TestWriteFailuresLeaveNoTempFiles(t *testing.T) {
	dir := t.TempDir()
	// A non-empty directory cannot be renamed over.
	full := filepath.Join(dir, "full")
	if err := os.MkdirAll(filepath.Join(full, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := Replace(full, []byte("data"), CertMode); err == nil {
		t.Error("Replace over a non-empty directory succeeded")
	} else if errors.Is(err, ErrExists) {
		t.Errorf("Replace returned ErrExists: %v", err)
	}
	if err := Create(full, []byte("data"), CertMode); !errors.Is(err, ErrExists) {
		t.Errorf("Create over a directory: %v, want ErrExists", err)
	}
	// A parent that is a file.
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, write := range []func(string, []byte, os.FileMode) error{Create, Replace} {
		if err := write(filepath.Join(file, "ca.crt"), []byte("x"), CertMode); err == nil {
			t.Error("write below a regular file succeeded")
		}
	}
	assertTree(t, dir, "file", "full/", "full/x/")

	// A read-only directory: the temp file cannot even be created, and
	// nothing appears (root ignores permissions, so skip then).
	if os.Geteuid() != 0 {
		ro := filepath.Join(dir, "ro")
		if err := os.Mkdir(ro, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(ro, 0o700) })
		if err := Create(filepath.Join(ro, "ca.crt"), []byte("x"), CertMode); err == nil || errors.Is(err, ErrExists) {
			t.Errorf("Create in a read-only directory: %v", err)
		}
		if entries, _ := os.ReadDir(ro); len(entries) != 0 {
			t.Errorf("read-only directory holds %v", entries)
		}
	}
}

// TestModesIgnoreUmask: files and directories get exactly the modes
// kubepki promises, whatever the umask.
func TestModesIgnoreUmask(t *testing.T) {
	for _, mask := range []int{0, 0o022, 0o077, 0o027} {
		t.Run(fmt.Sprintf("umask %04o", mask), func(t *testing.T) {
			root := t.TempDir()
			withUmask(t, mask)
			st := Store{Dir: filepath.Join(root, "pki")}
			if err := Create(st.KeyPath("etcd/ca"), []byte("key"), KeyMode); err != nil {
				t.Fatal(err)
			}
			if err := Create(st.CertPath("etcd/ca"), []byte("cert"), CertMode); err != nil {
				t.Fatal(err)
			}
			if err := Replace(st.CertPath("a/b/c/leaf"), []byte("cert"), CertMode); err != nil {
				t.Fatal(err)
			}
			if err := Replace(st.KeyPath("a/b/c/leaf"), []byte("key"), KeyMode); err != nil {
				t.Fatal(err)
			}
			assertFile(t, st.KeyPath("etcd/ca"), []byte("key"), KeyMode)
			assertFile(t, st.CertPath("etcd/ca"), []byte("cert"), CertMode)
			assertFile(t, st.CertPath("a/b/c/leaf"), []byte("cert"), CertMode)
			assertFile(t, st.KeyPath("a/b/c/leaf"), []byte("key"), KeyMode)
			for _, d := range []string{"", "etcd", "a", "a/b", "a/b/c"} {
				assertDirMode(t, filepath.Join(st.Dir, d), KeyDirMode)
			}
			if err := MkdirAll(filepath.Join(root, "x", "y")); err != nil {
				t.Fatal(err)
			}
			assertDirMode(t, filepath.Join(root, "x"), KeyDirMode)
			assertDirMode(t, filepath.Join(root, "x", "y"), KeyDirMode)
			assertTree(t, st.Dir, "a/", "a/b/", "a/b/c/", "a/b/c/leaf.crt", "a/b/c/leaf.key", "etcd/", "etcd/ca.crt", "etcd/ca.key")
		})
	}
	// The umask is back to what it was.
	cur := syscall.Umask(0o022)
	syscall.Umask(cur)
	t.Logf("umask restored to %04o", cur)
}

func TestMkdirAll(t *testing.T) {
	dir := t.TempDir()
	// An existing directory is left as it is.
	existing := filepath.Join(dir, "existing")
	if err := os.Mkdir(existing, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(existing, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAll(existing); err != nil {
		t.Fatal(err)
	}
	assertDirMode(t, existing, 0o755)
	// A file in the way is an error that says so.
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAll(file); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("MkdirAll(file) = %v, want 'not a directory'", err)
	}
}

func TestExists(t *testing.T) {
	dir := t.TempDir()
	if Exists(filepath.Join(dir, "nope")) {
		t.Error("Exists(missing) = true")
	}
	f := filepath.Join(dir, "f")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if !Exists(f) || !Exists(dir) {
		t.Error("Exists(file or dir) = false")
	}
	// A dangling symlink exists: Create would refuse to replace it.
	l := filepath.Join(dir, "l")
	if err := os.Symlink(filepath.Join(dir, "nope"), l); err != nil {
		t.Fatal(err)
	}
	if !Exists(l) {
		t.Error("Exists(dangling symlink) = false")
	}
}
