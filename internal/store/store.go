package store

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"kubepki.dev/kubepki/internal/pki"
)

// Store is a PKI directory. Paths given to its methods are file stems
// relative to Dir ("etcd/server"); the extensions are added here.
type Store struct {
	Dir string
	// KubeconfigDir holds the kubeconfigs: Dir itself in the hard-way
	// layout, its parent (/etc/kubernetes) in kubeadm's.
	KubeconfigDir string
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
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := pki.ParseCert(data)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return c, nil
}

// ReadKey reads stem.key.
func (s Store) ReadKey(stem string) (crypto.Signer, error) {
	path := s.KeyPath(stem)
	data, err := os.ReadFile(path)
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

// Backup copies the files that exist among paths into
// Dir/.backup/<timestamp>/, keeping their relative paths and modes, and
// returns the backup directory ("" if nothing was copied).
func (s Store) Backup(now time.Time, paths ...string) (string, error) {
	dir := filepath.Join(s.Dir, ".backup", now.UTC().Format("20060102T150405Z"))
	// Two backups in one second must not share a directory.
	for i := 2; Exists(dir); i++ {
		dir = filepath.Join(s.Dir, ".backup", fmt.Sprintf("%s.%d", now.UTC().Format("20060102T150405Z"), i))
	}
	copied := false
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("backup %s: %w", p, err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("backup %s: %w", p, err)
		}
		rel, err := filepath.Rel(s.Dir, p)
		if err != nil || rel == ".." || filepath.IsAbs(rel) || len(rel) > 1 && rel[:2] == ".." {
			rel = filepath.Base(p)
		}
		if err := Replace(filepath.Join(dir, rel), data, fi.Mode().Perm()); err != nil {
			return "", fmt.Errorf("backup %s: %w", p, err)
		}
		copied = true
	}
	if !copied {
		return "", nil
	}
	return dir, nil
}

// ReadPublicKey reads stem.pub.
func (s Store) ReadPublicKey(stem string) (crypto.PublicKey, error) {
	path := s.PubPath(stem)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pub, err := pki.ParsePublicKey(data)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return pub, nil
}
