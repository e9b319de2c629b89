package store

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// KeyPolicy says which private key files may be read. The zero value is
// the strict policy: a key must be a regular file (not a symbolic link)
// owned by the user running kubepki, and neither group nor others may
// read or write it — what ssh demands of an identity file, since anyone
// who can read a CA key can issue any identity in the cluster.
type KeyPolicy struct {
	// Insecure reads keys whatever their owner and mode, through symbolic
	// links (kubepki --insecure-key-permissions).
	Insecure bool
	// SecretVolume accepts the layout kubelet gives a Secret volume:
	// each file a symbolic link into a directory beside it
	// (ca.key -> ..data/ca.key, ..data -> ..2026_03_14_15_09_26.123),
	// owned by root, readable by the pod's fsGroup. A link that leads
	// out of the key's directory, and a key others can read, are still
	// refused.
	SecretVolume bool
}

// UnsafeFileError is a refusal to read a file that someone else could
// have planted or read: a symbolic link, a file of another owner, a
// private key that group or others can read.
type UnsafeFileError struct {
	Path string
	// Problem says what is wrong: "mode 0644 is readable by others".
	Problem string
	// Fix is the command that makes it right: "chmod 600 pki/ca.key".
	Fix string
	// Mode: the problem is the mode, and chmod fixes it.
	Mode bool
	// Managed: the file was read through a Store, a PKI directory whose
	// modes kubepki init tightens.
	Managed bool
}

func (e *UnsafeFileError) Error() string {
	return e.Path + ": " + e.Problem + "; fix with " + e.Fix
}

// maxFile bounds what is read from one certificate or key file.
const maxFile = 1 << 20

// ReadKeyFile reads a private key file if p allows it: see KeyPolicy.
// The checks concern the file actually opened (O_NOFOLLOW, then fstat),
// not whatever the path names a moment before or after.
func ReadKeyFile(path string, p KeyPolicy) ([]byte, error) {
	return readFile(path, p, true)
}

// ReadFile reads a certificate or public key file: like ReadKeyFile, it
// does not follow a symbolic link unless p allows it, but owner and mode
// do not matter.
func ReadFile(path string, p KeyPolicy) ([]byte, error) {
	return readFile(path, p, false)
}

func readFile(path string, p KeyPolicy, secret bool) ([]byte, error) {
	f, fi, err := OpenRegular(path, p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if secret && !p.Insecure {
		if err := keyProblem(path, fi, p.SecretVolume); err != nil {
			return nil, err
		}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxFile {
		return nil, fmt.Errorf("read %s: larger than %d MiB", path, maxFile>>20)
	}
	return data, nil
}

// OpenRegular opens a regular file for reading as p allows (through a
// symbolic link only if p.Insecure, or within the directory for
// p.SecretVolume), and returns what fstat says of the file opened. It never
// blocks: a FIFO or device planted in place of a PKI file is opened
// non-blocking and refused as "not a regular file". Every read of a
// certificate, key or kubeconfig goes through it.
func OpenRegular(path string, p KeyPolicy) (*os.File, fs.FileInfo, error) {
	name, flags := path, syscall.O_NOFOLLOW
	switch {
	case p.Insecure:
		flags = 0
	case p.SecretVolume:
		resolved, err := withinDir(path)
		if err != nil {
			return nil, nil, err
		}
		// The resolved name's last element is no link, unless the
		// volume changed since: O_NOFOLLOW then refuses, and the next
		// read sees the new layout.
		name = resolved
	}
	// O_NONBLOCK: opening a FIFO planted in place of a key must not hang.
	f, err := os.OpenFile(name, os.O_RDONLY|flags|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ELOOP) && flags != 0 {
		return nil, nil, symlinkError(path)
	}
	if err != nil {
		// Name the path asked for, not the resolved one inside the
		// volume's timestamped directory.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, nil, fmt.Errorf("open %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("read %s: not a regular file (%s)", path, fi.Mode().Type())
	}
	return f, fi, nil
}

func symlinkError(path string) *UnsafeFileError {
	target, _ := os.Readlink(path)
	return &UnsafeFileError{
		Path:    path,
		Problem: fmt.Sprintf("is a symbolic link (to %s), and kubepki does not read keys or certificates through links", target),
		Fix:     fmt.Sprintf("cp --remove-destination %q %s", target, path),
	}
}

// withinDir resolves every link in path and returns the result, if it
// stays inside path's own directory (itself resolved): a Secret volume's
// links do, a link to a file elsewhere does not.
func withinDir(path string) (string, error) {
	dir, err := filepath.EvalSymlinks(filepath.Dir(path))
	if err != nil {
		return "", err
	}
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", err
	}
	if rel, err := filepath.Rel(dir, resolved); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", &UnsafeFileError{
			Path:    path,
			Problem: fmt.Sprintf("is a symbolic link out of its directory (to %s)", resolved),
			Fix:     fmt.Sprintf("cp --remove-destination %q %s", resolved, path),
		}
	}
	return resolved, nil
}

// keyProblem says what makes an opened key file unsafe, or nil: another
// owner (root too, as for ssh), a second hard link (a name elsewhere,
// perhaps in a directory others can read, for the same key), or a mode
// that lets group or others in. In a Secret volume root may own it and its
// group (the fsGroup) read it.
func keyProblem(path string, fi fs.FileInfo, secretVolume bool) *UnsafeFileError {
	uid, euid := owner(fi), os.Geteuid()
	if uid != euid && !(secretVolume && uid == 0) {
		return &UnsafeFileError{
			Path:    path,
			Problem: fmt.Sprintf("owned by uid %d, not by uid %d that runs kubepki", uid, euid),
			Fix:     fmt.Sprintf("chown %d %s", euid, path),
		}
	}
	if n := HardLinks(fi); n > 1 {
		return &UnsafeFileError{
			Path:    path,
			Problem: fmt.Sprintf("has %d hard links: another path can read or replace it", n),
			Fix:     fmt.Sprintf("cp %s %s.copy && mv %s.copy %s (and remove the other links)", path, path, path, path),
		}
	}
	forbidden := fs.FileMode(0o077)
	if secretVolume {
		forbidden = 0o027
	}
	perm := fi.Mode().Perm()
	if perm&forbidden == 0 {
		return nil
	}
	return &UnsafeFileError{
		Path:    path,
		Problem: fmt.Sprintf("mode %04o %s", perm, exposure(perm)),
		Fix:     fmt.Sprintf("chmod %o %s", perm&^forbidden, path),
		Mode:    true,
	}
}

// exposure words what a mode lets others do to a private key.
func exposure(perm fs.FileMode) string {
	switch {
	case perm&0o004 != 0:
		return "is readable by others"
	case perm&0o040 != 0:
		return "is readable by its group"
	}
	return "lets group or others write or run it"
}

// owner is the uid that owns a file.
func owner(fi fs.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}

// HardLinks is the number of hard links to a file, as fstat or lstat
// reported it: more than one, for a private key, is a refusal.
func HardLinks(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 1
}

// Tighten clears the forbidden permission bits of a file or directory
// (0644 &^ 0077 = 0600), never through a symbolic link, and only if the
// user owns it. It returns the mode before and after; they are equal when
// there was nothing to do.
func Tighten(path string, forbidden fs.FileMode) (before, after fs.FileMode, err error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ELOOP) {
		return 0, 0, symlinkError(path)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("tighten %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, fmt.Errorf("tighten %s: %w", path, err)
	}
	before = fi.Mode().Perm()
	after = before &^ forbidden
	if after == before {
		return before, after, nil
	}
	if uid, euid := owner(fi), os.Geteuid(); uid != euid {
		return before, before, fmt.Errorf("tighten %s: owned by uid %d, not by uid %d that runs kubepki", path, uid, euid)
	}
	// fchmod: the file opened, not what the path may name by now.
	if err := f.Chmod(after); err != nil {
		return before, before, fmt.Errorf("tighten %s: %w", path, err)
	}
	return before, after, nil
}
