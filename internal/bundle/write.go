package bundle

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"maps"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"kubepki.dev/kubepki/internal/store"
)

// WriteDir installs the bundle under root as if root were the node's "/":
// root/var/lib/kubelet/ca.crt, … with each file's mode, plus the manifest
// at root/kubepki-manifest.json. Files are replaced atomically.
func (b *Bundle) WriteDir(root string) error {
	for _, f := range b.Files {
		if err := store.Replace(filepath.Join(root, filepath.FromSlash(f.Path)), f.Data, f.Mode); err != nil {
			return err
		}
	}
	m, err := b.Manifest()
	if err != nil {
		return err
	}
	return store.Replace(filepath.Join(root, ManifestName), m, store.CertMode)
}

// WriteTarGz writes the bundle as a gzipped tar whose paths are relative
// to the node's "/", owned by root, with the manifest first.
func (b *Bundle) WriteTarGz(w io.Writer, mtime time.Time) error {
	zw := gzip.NewWriter(w)
	tw := tar.NewWriter(zw)
	m, err := b.Manifest()
	if err != nil {
		return err
	}
	add := func(name string, mode int64, data []byte) error {
		hdr := &tar.Header{
			Name: name, Mode: mode, Size: int64(len(data)), ModTime: mtime,
			Typeflag: tar.TypeReg, Uname: "root", Gname: "root",
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("tar %s: %w", name, err)
		}
		_, err := tw.Write(data)
		return err
	}
	if err := add(ManifestName, 0o644, m); err != nil {
		return err
	}
	// Directory entries first, so that extracting gives each directory its
	// mode rather than the umask's: 0700 where a private file lives, 0755
	// for the directories above.
	dirs := map[string]int64{}
	for _, f := range b.Files {
		dir := path.Dir(strings.TrimPrefix(f.Path, "/"))
		for d := dir; d != "." && d != "/"; d = path.Dir(d) {
			if _, seen := dirs[d]; !seen {
				dirs[d] = 0o755
			}
		}
		if f.Mode.Perm()&0o077 == 0 && dir != "." {
			dirs[dir] = 0o700
		}
	}
	for _, d := range slices.Sorted(maps.Keys(dirs)) {
		hdr := &tar.Header{Name: d + "/", Mode: dirs[d], ModTime: mtime, Typeflag: tar.TypeDir, Uname: "root", Gname: "root"}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("tar %s: %w", d, err)
		}
	}
	for _, f := range b.Files {
		if err := add(strings.TrimPrefix(f.Path, "/"), int64(f.Mode.Perm()), f.Data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}
