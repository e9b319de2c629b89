package controller

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/store"
)

// CAFiles is a signing CA read from a certificate and a key file and read
// again whenever either file changes on disk (a new modification time, size
// or inode: an atomic rename, a rewrite, or a Secret volume swapping its
// ..data symlink), so that a rotated CA is used without a restart. A change
// that does not load (the certificate written, the key not yet) keeps the
// previous CA until the pair is whole again.
type CAFiles struct {
	certPath, keyPath string
	keys              store.KeyPolicy
	log               *slog.Logger
	onReload          func(err error)

	mu    sync.Mutex
	ca    *pki.CA
	stamp [2]fileStamp
}

// fileStamp is what tells that a file changed.
type fileStamp struct {
	mod  time.Time
	size int64
	ino  uint64
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	s := fileStamp{mod: fi.ModTime(), size: fi.Size()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ino = st.Ino
	}
	return s, nil
}

// LoadCAFiles reads the CA pair, the key as keys allows; it must load now.
// onReload, if not nil, is told of every later reload attempt and its
// outcome.
func LoadCAFiles(certPath, keyPath string, keys store.KeyPolicy, log *slog.Logger, onReload func(error)) (*CAFiles, error) {
	c := &CAFiles{certPath: certPath, keyPath: keyPath, keys: keys, log: log, onReload: onReload}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	stamp, err := c.stamps()
	if err != nil {
		return nil, err
	}
	ca, err := readCA(certPath, keyPath, keys)
	if err != nil {
		return nil, err
	}
	c.ca, c.stamp = ca, stamp
	return c, nil
}

func (c *CAFiles) stamps() ([2]fileStamp, error) {
	a, err := stampOf(c.certPath)
	if err != nil {
		return [2]fileStamp{}, fmt.Errorf("CA certificate: %w", err)
	}
	b, err := stampOf(c.keyPath)
	if err != nil {
		return [2]fileStamp{}, fmt.Errorf("CA key: %w", err)
	}
	return [2]fileStamp{a, b}, nil
}

// Current returns the CA, reloading it first if a file changed. Two stat
// calls per signature are cheap next to the signature itself and the API
// round trip, and mean the first request after a rotation already uses the
// new CA.
func (c *CAFiles) Current() *pki.CA {
	c.mu.Lock()
	defer c.mu.Unlock()
	stamp, err := c.stamps()
	if err != nil || stamp == c.stamp {
		if err != nil {
			c.log.Warn("CA files unreadable, signing with the CA loaded before", "cert", c.certPath, "key", c.keyPath, "err", err)
		}
		return c.ca
	}
	ca, err := readCA(c.certPath, c.keyPath, c.keys)
	if c.onReload != nil {
		c.onReload(err)
	}
	if err != nil {
		c.log.Warn("CA files changed but do not load, signing with the CA loaded before", "cert", c.certPath, "key", c.keyPath, "err", err)
		return c.ca
	}
	c.log.Info("CA reloaded", "cert", c.certPath, "subject", ca.Cert.Subject.String(), "notAfter", ca.Cert.NotAfter.UTC().Format(time.RFC3339))
	c.ca, c.stamp = ca, stamp
	return c.ca
}

// CertPath is the CA certificate file.
func (c *CAFiles) CertPath() string { return c.certPath }

// readCA reads and checks a CA pair: a CA certificate and its key.
func readCA(certPath, keyPath string, keys store.KeyPolicy) (*pki.CA, error) {
	certPEM, err := store.ReadFile(certPath, keys)
	if err != nil {
		return nil, fmt.Errorf("read CA certificate: %w", err)
	}
	cert, err := pki.ParseCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("read CA certificate %s: %w", certPath, err)
	}
	keyPEM, err := store.ReadKeyFile(keyPath, keys)
	if err != nil {
		return nil, fmt.Errorf("read CA key: %w", err)
	}
	key, err := pki.ParseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("read CA key %s: %w", keyPath, err)
	}
	if !pki.KeyMatches(cert.PublicKey, key) {
		return nil, fmt.Errorf("%s is not the key of %s", keyPath, certPath)
	}
	if !cert.IsCA {
		return nil, errors.New(certPath + " is not a CA certificate (basic constraints CA:FALSE)")
	}
	return &pki.CA{Cert: cert, Key: key}, nil
}
