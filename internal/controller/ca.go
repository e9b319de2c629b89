package controller

import (
	"crypto/x509"
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
// ..data symlink), so that a rotated CA is used without a restart.
//
// A change that does not load — not PEM, a truncated file caught mid-write,
// a key that is not the certificate's, a certificate that is not a CA or
// has expired, a file gone — keeps the CA loaded before: the controller
// goes on signing with the last whole pair, never with a mismatched one.
// Such a change is logged and reported to onReload once, not on every
// signature, and Stale says so until a later change loads.
//
// The files are opened by path, following symbolic links that stay inside
// the key's directory (store.KeyPolicy's SecretVolume rule): a Secret volume
// is a link farm (ca.crt -> ..data/ca.crt, ..data -> ..2024_01_02_…), and
// kubelet updates it by pointing ..data at a new directory in one rename,
// which changes the inode both paths resolve to.
type CAFiles struct {
	certPath, keyPath string
	keys              store.KeyPolicy
	log               *slog.Logger
	onReload          func(err error)

	mu     sync.Mutex
	ca     *pki.CA
	loaded [2]fileStamp // the files ca was read from
	seen   [2]fileStamp // the files last tried; zero after a stat error
	err    error        // why the files on disk are not in use; nil when they are
	since  time.Time    // when err began
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

// readAttempts bounds the re-reads of a pair that changed while it was
// read (a Secret volume swapped between the certificate and the key).
const readAttempts = 3

// LoadCAFiles reads the CA pair, the key as keys allows; it must load now. onReload, if not nil,
// is told the outcome of every later reload: once per change on disk (nil
// when the new pair loaded), not once per signature.
func LoadCAFiles(certPath, keyPath string, keys store.KeyPolicy, log *slog.Logger, onReload func(error)) (*CAFiles, error) {
	c := &CAFiles{certPath: certPath, keyPath: keyPath, keys: keys, log: log, onReload: onReload}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.onReload == nil {
		c.onReload = func(error) {}
	}
	stamp, ca, err := c.read()
	if err != nil {
		return nil, err
	}
	c.ca, c.loaded, c.seen = ca, stamp, stamp
	return c, nil
}

// read stats and reads the pair, again if the files changed meanwhile.
func (c *CAFiles) read() ([2]fileStamp, *pki.CA, error) {
	var (
		ca  *pki.CA
		err error
	)
	stamp, serr := c.stamps()
	if serr != nil {
		return stamp, nil, serr
	}
	for range readAttempts {
		ca, err = readCA(c.certPath, c.keyPath, c.keys, time.Now())
		after, serr := c.stamps()
		if serr != nil {
			return [2]fileStamp{}, nil, serr
		}
		if after == stamp {
			return stamp, ca, err
		}
		// Changed under us: what was read may be half old, half new.
		stamp = after
	}
	// Still changing: a zero stamp makes the next call read again.
	return [2]fileStamp{}, ca, err
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
// new CA. It never returns nil.
func (c *CAFiles) Current() *pki.CA {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refresh()
	return c.ca
}

// Stale reports whether the files on disk hold something other than the CA
// in use, because it did not load: why, and since when. It checks the
// files first, like Current.
func (c *CAFiles) Stale() (stale bool, since time.Time, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refresh()
	return c.err != nil, c.since, c.err
}

// refresh reloads the pair if the files changed since they were last tried.
// c.mu is held.
func (c *CAFiles) refresh() {
	stamp, err := c.stamps()
	if err != nil {
		// A file missing or unreadable: report it once per distinct
		// error, and try a whole read as soon as both stat again.
		c.seen = [2]fileStamp{}
		if c.err == nil || c.err.Error() != err.Error() {
			c.failed(err)
		}
		return
	}
	if stamp == c.seen {
		return
	}
	if stamp == c.loaded {
		// Back to the very files in use (a file that was briefly gone).
		c.seen, c.err = stamp, nil
		c.onReload(nil)
		c.log.Info("CA files readable again; signing with the CA loaded before", "cert", c.certPath)
		return
	}
	stamp, ca, err := c.read()
	c.seen = stamp
	if err != nil {
		c.failed(err)
		return
	}
	c.ca, c.loaded, c.err = ca, stamp, nil
	c.onReload(nil)
	c.log.Info("CA reloaded", "cert", c.certPath, "subject", ca.Cert.Subject.String(),
		"notAfter", ca.Cert.NotAfter.UTC().Format(time.RFC3339))
}

// failed records and reports a change that did not load. c.mu is held.
func (c *CAFiles) failed(err error) {
	if c.err == nil {
		c.since = time.Now()
	}
	c.err = err
	c.onReload(err)
	c.log.Warn("CA files changed but do not load; signing with the CA loaded before", "cert", c.certPath, "key", c.keyPath,
		"subject", c.ca.Cert.Subject.String(), "err", err)
}

// CertPath is the CA certificate file.
func (c *CAFiles) CertPath() string { return c.certPath }

// readCA reads and checks a CA pair: a CA certificate, valid at now and
// allowed to sign certificates, and its key.
func readCA(certPath, keyPath string, keys store.KeyPolicy, now time.Time) (*pki.CA, error) {
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
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, errors.New(certPath + " may not sign certificates (key usage lacks keyCertSign)")
	}
	if now.After(cert.NotAfter) {
		return nil, fmt.Errorf("%s expired at %s", certPath, cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return &pki.CA{Cert: cert, Key: key}, nil
}
