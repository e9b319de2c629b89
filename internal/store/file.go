// Package store owns the PKI directory on disk: atomic writes with the right
// modes, reading certificate and key pairs, and backups. It knows files,
// not Kubernetes.
package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// File modes kubepki writes, whatever the umask.
const (
	KeyMode    os.FileMode = 0o600
	CertMode   os.FileMode = 0o644
	KeyDirMode os.FileMode = 0o700
)

// ErrExists is returned by Create when the file is already there.
var ErrExists = errors.New("file exists")

// Create writes data to path atomically and only if path does not exist:
// it is never overwritten, even by a racing writer. The file appears whole
// with its final mode or not at all.
func Create(path string, data []byte, mode os.FileMode) error {
	return write(path, data, mode, false)
}

// Replace writes data to path atomically, replacing any existing file.
func Replace(path string, data []byte, mode os.FileMode) error {
	return write(path, data, mode, true)
}

func write(path string, data []byte, mode os.FileMode, replace bool) error {
	dir := filepath.Dir(path)
	if err := MkdirAll(dir); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName) // no-op once renamed or linked and removed
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: fsync: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	testPause()
	if replace {
		err = os.Rename(tmpName, path)
	} else {
		// link(2) fails with EEXIST instead of replacing: an atomic create.
		err = os.Link(tmpName, path)
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("write %s: %w", path, ErrExists)
		}
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return syncDir(dir)
}

// replaceSymlink makes path a symbolic link to target, atomically.
func replaceSymlink(path, target string) error {
	dir := filepath.Dir(path)
	if err := MkdirAll(dir); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmpName := tmp.Name()
	tmp.Close()
	// The name is reserved; put the link in its place, then rename.
	if err := os.Remove(tmpName); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Symlink(target, tmpName); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmpName, path); err != nil {
		os.Remove(tmpName)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return syncDir(dir)
}

// MkdirAll creates dir and missing parents with mode 0700: PKI directories
// hold private keys.
func MkdirAll(dir string) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("mkdir %s: not a directory", dir)
		}
		return nil
	}
	if err := os.MkdirAll(dir, KeyDirMode); err != nil {
		return fmt.Errorf("mkdir %s: %w", dir, err)
	}
	// MkdirAll applies the umask; set the mode the key directory needs.
	if err := os.Chmod(dir, KeyDirMode); err != nil {
		return fmt.Errorf("chmod %s: %w", dir, err)
	}
	return nil
}

// syncDir makes a rename or link durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
