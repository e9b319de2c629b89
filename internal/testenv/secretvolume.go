package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// SecretVolume lays files out as the kubelet does for a Secret volume
// (k8s.io/kubernetes/pkg/volume/util AtomicWriter): the visible names are
// symbolic links into ..data, itself a link to a timestamped directory,
// and an update writes a new directory and swaps ..data with one rename.
type SecretVolume struct {
	t   testing.TB
	dir string
	gen int
}

// NewSecretVolume makes a volume in a new directory holding files.
func NewSecretVolume(t testing.TB, files map[string][]byte) *SecretVolume {
	t.Helper()
	v := &SecretVolume{t: t, dir: t.TempDir()}
	v.Update(files)
	for name := range files {
		if err := os.Symlink(filepath.Join("..data", name), v.Path(name)); err != nil {
			t.Fatal(err)
		}
	}
	return v
}

// Path is the visible path of a file of the volume.
func (v *SecretVolume) Path(name string) string { return filepath.Join(v.dir, name) }

// Update replaces the volume's content as the kubelet does when the Secret
// changes: the visible links never point at a half-written file.
func (v *SecretVolume) Update(files map[string][]byte) {
	v.t.Helper()
	v.gen++
	ts := fmt.Sprintf("..2024_01_02_15_04_05.%09d", v.gen)
	if err := os.Mkdir(filepath.Join(v.dir, ts), 0o700); err != nil {
		v.t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(v.dir, ts, name), data, 0o600); err != nil {
			v.t.Fatal(err)
		}
	}
	old, err := os.Readlink(filepath.Join(v.dir, "..data"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		v.t.Fatal(err)
	}
	tmp := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		v.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.dir, "..data")); err != nil {
		v.t.Fatal(err)
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(v.dir, old)); err != nil {
			v.t.Fatal(err)
		}
	}
}
