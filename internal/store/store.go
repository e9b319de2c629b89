package store

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"kubepki.dev/kubepki/internal/pki"
)

// Store is a PKI directory. Paths given to its methods are file stems
// relative to Dir ("etcd/server"); the extensions are added here.
type Store struct {
	Dir string
	// KubeconfigDir holds the kubeconfigs: Dir itself in the hard-way
	// layout, its parent (/etc/kubernetes) in kubeadm's.
	KubeconfigDir string
	// Referenced are the files outside Dir and KubeconfigDir that the
	// kubeconfigs refer to, which recovery may finish writing; the
	// caller sets it (kubeconfig.ReferencedFiles) before Recover.
	Referenced Referenced
	// Keys says which key files ReadKey and ReadCA accept, and whether
	// certificates may be read through symbolic links.
	Keys KeyPolicy
}

// KubeconfigPath is the path of a kubeconfig file name.
func (s Store) KubeconfigPath(file string) string {
	dir := s.KubeconfigDir
	if dir == "" {
		dir = s.Dir
	}
	return filepath.Join(dir, file)
}

// CertPath is the certificate file of a stem.
func (s Store) CertPath(stem string) string { return filepath.Join(s.Dir, stem+".crt") }

// KeyPath is the private key file of a stem.
func (s Store) KeyPath(stem string) string { return filepath.Join(s.Dir, stem+".key") }

// PubPath is the public key file of a stem.
func (s Store) PubPath(stem string) string { return filepath.Join(s.Dir, stem+".pub") }

// Exists reports whether the file exists.
func Exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// ReadCert reads the first certificate of stem.crt. A missing file gives an
// error satisfying errors.Is(err, fs.ErrNotExist).
func (s Store) ReadCert(stem string) (*x509.Certificate, error) {
	path := s.CertPath(stem)
	data, err := s.read(path, false)
	if err != nil {
		return nil, err
	}
	c, err := pki.ParseCert(data)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return c, nil
}

// ReadKey reads stem.key, if s.Keys allows: a refusal is an
// *UnsafeFileError.
func (s Store) ReadKey(stem string) (crypto.Signer, error) {
	path := s.KeyPath(stem)
	data, err := s.read(path, true)
	if err != nil {
		return nil, err
	}
	k, err := pki.ParseKey(data)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return k, nil
}

// ReadCA reads a CA's certificate and, if present, its key. A CA whose key
// is absent is external: it can verify but not issue.
func (s Store) ReadCA(stem string) (*pki.CA, error) {
	cert, err := s.ReadCert(stem)
	if err != nil {
		return nil, err
	}
	key, err := s.ReadKey(stem)
	if errors.Is(err, fs.ErrNotExist) {
		return &pki.CA{Cert: cert}, nil
	}
	if err != nil {
		return nil, err
	}
	if !pki.KeyMatches(cert.PublicKey, key) {
		return nil, fmt.Errorf("%s does not match %s", s.KeyPath(stem), s.CertPath(stem))
	}
	return &pki.CA{Cert: cert, Key: key}, nil
}

// ReadFile reads a certificate, public key or kubeconfig of the directory
// (any path, not a stem) as s.Keys allows: never through a symbolic link
// unless s.Keys.Insecure, and only a regular file.
func (s Store) ReadFile(path string) ([]byte, error) { return s.read(path, false) }

// ReadKeyFile reads a private key file of the directory (any path, not a
// stem) if s.Keys allows: a refusal is an *UnsafeFileError.
func (s Store) ReadKeyFile(path string) ([]byte, error) { return s.read(path, true) }

// read reads a file of the directory as s.Keys allows, marking a refusal
// as one of a managed file.
func (s Store) read(path string, secret bool) ([]byte, error) {
	data, err := readFile(path, s.Keys, secret)
	var unsafe *UnsafeFileError
	if errors.As(err, &unsafe) {
		unsafe.Managed = true
	}
	return data, err
}

// CreateKey writes a new private key, 0600, refusing to overwrite.
func (s Store) CreateKey(stem string, key crypto.Signer) error {
	data, err := pki.EncodeKey(key)
	if err != nil {
		return err
	}
	return Create(s.KeyPath(stem), data, KeyMode)
}

// CreateCert writes a new certificate, 0644, refusing to overwrite.
func (s Store) CreateCert(stem string, cert *x509.Certificate) error {
	return Create(s.CertPath(stem), pki.EncodeCert(cert), CertMode)
}

// CreatePublicKey writes a PKIX public key, 0644, refusing to overwrite.
func (s Store) CreatePublicKey(stem string, pub crypto.PublicKey) error {
	data, err := pki.EncodePublicKey(pub)
	if err != nil {
		return err
	}
	return Create(s.PubPath(stem), data, CertMode)
}

// backupFile copies a regular file with its mode less the bits in clear,
// or a symbolic link as a link (never the bytes it points to), to dst:
// into a backup, and back from it on a rollback.
func backupFile(src, dst string, clear fs.FileMode) error {
	f, err := os.OpenFile(src, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ELOOP) {
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		return replaceSymlink(dst, target)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	return Replace(dst, data, fi.Mode().Perm()&^clear)
}

// ReadPublicKey reads stem.pub.
func (s Store) ReadPublicKey(stem string) (crypto.PublicKey, error) {
	path := s.PubPath(stem)
	data, err := s.read(path, false)
	if err != nil {
		return nil, err
	}
	pub, err := pki.ParsePublicKey(data)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return pub, nil
}
