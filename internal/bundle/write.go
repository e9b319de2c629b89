package bundle

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"path/filepath"
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
// to the node's "/", owned by root, with the manifest first. It holds
// regular files only, so extracting it at "/" changes no directory.
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
	// No directory entries: every directory above a file already belongs
	// to the system or to a component (/, etc/, var/lib/, root/, the
	// kubelet's var/lib/kubelet/, kubeadm's etc/kubernetes/), and an entry
	// for it would make `tar -xpf -C /` reset its mode and owner — root/
	// from 0700 to whatever the archive says. tar creates a missing
	// directory itself; the files in it carry their own modes (keys 0600).
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
