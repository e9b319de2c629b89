package store

import (
	"crypto/x509"
	"fmt"

	"kubepki.dev/kubepki/internal/pki"
)

// ReadCerts reads every certificate of stem.crt: a CA file can be a bundle
// (during a CA rotation it holds the new CA and the old one).
func (s Store) ReadCerts(stem string) ([]*x509.Certificate, error) {
	path := s.CertPath(stem)
	data, err := s.read(path, false)
	if err != nil {
		return nil, err
	}
	certs, err := pki.ParseCerts(data)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return certs, nil
}
