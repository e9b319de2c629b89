package resolve

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"kubepki.dev/kubepki/internal/kubeconfig"
	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/store"
)

// Writer stages new certificates and keys, each where it lives, into one
// store.Transaction: nothing is replaced until the caller commits, and
// every replaced file is backed up then.
type Writer struct {
	tx  *store.Transaction
	now time.Time
	// staged are the absolute paths staged so far: a hard-way kubeconfig
	// that refers to the certificate's own files shares them.
	staged map[string]bool
	// files are what the current Write staged.
	files []string
	// caPEM and server are what the current Write puts in kubeconfigs.
	caPEM  []byte
	server string
}

// NewWriter stages into tx; now names the kubelet's rotated files.
func NewWriter(tx *store.Transaction, now time.Time) *Writer {
	return &Writer{tx: tx, now: now, staged: map[string]bool{}}
}

// WriteOptions tune Write.
type WriteOptions struct {
	// Server: also set each kubeconfig's server to the plan's.
	Server bool
}

// Write stages a new certificate and key for c where c lives, in the
// style it has there (embedded stays embedded, referenced files are
// rewritten and the references kept, the kubelet's rotated PEM gets a new
// file and its link swung), and in every kubeconfig that carries a copy,
// each with its CA's whole bundle as certificate-authority-data. A
// kubeconfig of c that does not exist yet is created. It returns the files
// the commit will replace.
func (w *Writer) Write(c *Cert, cert *x509.Certificate, key crypto.Signer, opts WriteOptions) ([]string, error) {
	w.files, w.caPEM = nil, nil
	if c.CA != nil {
		w.caPEM = c.CA.BundlePEM()
	}
	if c.Kubeconfig != nil && c.Kubeconfig.Missing() {
		if err := w.create(c.Kubeconfig, cert, key); err != nil {
			return nil, err
		}
	} else {
		w.server = ""
		if opts.Server && c.Kubeconfig != nil {
			w.server = c.Kubeconfig.Spec.Server
		}
		if err := c.Location.stage(w, cert, key); err != nil {
			return nil, err
		}
	}
	for _, k := range c.Copies {
		if k.Missing() {
			continue // init creates it
		}
		if k.Err != nil {
			return nil, k.Err
		}
		w.server = ""
		if opts.Server {
			w.server = k.Spec.Server
		}
		if err := k.Location.stage(w, cert, key); err != nil {
			return nil, err
		}
	}
	return w.files, nil
}

// file stages a file once.
func (w *Writer) file(path string, data []byte, mode os.FileMode) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("stage %s: %w", path, err)
	}
	if w.staged[abs] {
		return nil
	}
	if err := w.tx.Stage(path, data, mode); err != nil {
		return err
	}
	w.staged[abs] = true
	w.files = append(w.files, path)
	return nil
}

// link stages a symbolic link swing.
func (w *Writer) link(path, target string) error {
	if err := w.tx.StageSymlink(path, target); err != nil {
		return err
	}
	w.files = append(w.files, path)
	return nil
}

// kubeconfig stages a kubeconfig with its CA data refreshed (when it
// embeds its CA), the server set if asked, and the user changed by set;
// the rest of the file is kept. A file that would not change is left.
func (w *Writer) kubeconfig(k *Kubeconfig, set func(*userEntry)) error {
	if k.Config == nil {
		return k.Err
	}
	cfg := k.Config.DeepCopy()
	cl, user, err := kubeconfig.Current(cfg)
	if err != nil {
		return fmt.Errorf("%s: %w", k.Path, err)
	}
	changed := false
	if len(w.caPEM) > 0 && cl.CertificateAuthority == "" && !bytes.Equal(cl.CertificateAuthorityData, w.caPEM) {
		cl.CertificateAuthorityData, changed = w.caPEM, true
	}
	if w.server != "" && cl.Server != w.server {
		cl.Server, changed = w.server, true
	}
	if set != nil {
		set(user)
		changed = true
	}
	if !changed {
		return nil
	}
	data, err := kubeconfig.Encode(k.Path, cfg)
	if err != nil {
		return err
	}
	return w.file(k.Path, data, store.KeyMode)
}

// create stages a new kubeconfig of the plan that embeds cert and key.
func (w *Writer) create(k *Kubeconfig, cert *x509.Certificate, key crypto.Signer) error {
	keyPEM, err := pki.EncodeKey(key)
	if err != nil {
		return err
	}
	s := k.Spec
	cfg := kubeconfig.New(kubeconfig.Params{
		Cluster: s.Cluster, User: s.User, Context: s.Context(), Server: s.Server,
		CA: w.caPEM, Cert: pki.EncodeCert(cert), Key: keyPEM,
	})
	data, err := kubeconfig.Encode(k.Path, cfg)
	if err != nil {
		return err
	}
	return w.file(k.Path, data, store.KeyMode)
}
