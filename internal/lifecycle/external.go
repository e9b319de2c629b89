package lifecycle

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/resolve"
	"kubepki.dev/kubepki/internal/store"
)

// csrStem is where a certificate's key and CSR go in a CSR directory: its
// PKI path, or its kubeconfig's file name for one that lives in a
// kubeconfig (admin.conf → admin.conf.key, admin.conf.csr, as kubeadm
// names them; kubelet.conf on a real node).
func csrStem(c *resolve.Cert) string {
	if k := c.Kubeconfig; k != nil {
		if k.Installed {
			return filepath.Base(k.Path)
		}
		return k.Spec.File
	}
	return c.Spec.Path
}

// CSRFile is one generated request.
type CSRFile struct {
	Name string `json:"name"`
	Key  string `json:"key"`
	CSR  string `json:"csr"`
}

// GenerateCSRs writes, for each named leaf of the plan ("all" or none for
// every one), a new private key (0600) and a CSR carrying the subject, SANs
// and usages the plan asks for, into dir, for an external CA to sign. It
// never overwrites a file.
func GenerateCSRs(plan *catalog.Plan, st store.Store, names []string, dir string) ([]CSRFile, error) {
	certs, err := resolve.Resolve(plan, st).Select(names)
	if err != nil {
		return nil, err
	}
	out := make([]CSRFile, 0, len(certs))
	csrDir := store.Store{Dir: dir}
	for _, rc := range certs {
		c, stem := rc.Spec, csrStem(rc)
		csrPath := filepath.Join(dir, stem+".csr")
		if store.Exists(csrPath) || store.Exists(csrDir.KeyPath(stem)) {
			return out, fmt.Errorf("%s: %s.key or .csr already exists; not overwriting it", c.Name, filepath.Join(dir, stem))
		}
		key, err := pki.GenerateKey(c.KeyAlgorithm)
		if err != nil {
			return out, fmt.Errorf("%s: %w", c.Name, err)
		}
		der, err := pki.CreateCSR(key, c.Profile)
		if err != nil {
			return out, fmt.Errorf("%s: %w", c.Name, err)
		}
		if err := csrDir.CreateKey(stem, key); err != nil {
			return out, err
		}
		if err := store.Create(csrPath, pki.EncodeCSR(der), store.CertMode); err != nil {
			return out, err
		}
		out = append(out, CSRFile{Name: c.Name, Key: csrDir.KeyPath(stem), CSR: csrPath})
	}
	return out, nil
}

// Installed is one certificate taken from the external CA.
type Installed struct {
	Name     string    `json:"name"`
	NotAfter time.Time `json:"notAfter"`
	Files    []string  `json:"files"`
}

// InstallReport is the outcome of Install.
type InstallReport struct {
	Installed []Installed `json:"installed"`
	Backup    string      `json:"backup,omitempty"`
}

// Install takes the certificates an external CA signed (signedDir/<stem>.crt
// for each key in csrDir) and installs them with their keys, after checking
// each one: it matches its key, chains to the cluster's CA certificate, is
// within its validity, and says what the plan asks (subject, SANs, usages).
// Any failed check refuses the whole install; the files are replaced in
// one store.Transaction (backed up first, crash-safe).
func Install(plan *catalog.Plan, st store.Store, csrDir, signedDir string, now time.Time) (*InstallReport, error) {
	type pending struct {
		c    *resolve.Cert
		cert *x509.Certificate
		key  []byte
	}
	var todo []pending
	keys := store.Store{Dir: csrDir}
	m := resolve.Resolve(plan, st)
	for _, rc := range m.Leaves() {
		c, stem := rc.Spec, csrStem(rc)
		keyPEM, err := store.ReadKeyFile(keys.KeyPath(stem), st.Keys)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		cert, err := (store.Store{Dir: signedDir}).ReadCert(stem)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: signed certificate %s missing", c.Name, filepath.Join(signedDir, stem+".crt"))
		}
		if err != nil {
			return nil, err
		}
		if err := checkSigned(rc, cert, keyPEM, now); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", c.Name, filepath.Join(signedDir, stem+".crt"), err)
		}
		todo = append(todo, pending{rc, cert, keyPEM})
	}
	if len(todo) == 0 {
		return nil, fmt.Errorf("no keys of the plan's certificates in %s (run kubepki certs generate-csr first)", csrDir)
	}
	rep := &InstallReport{}
	tx := st.NewTransaction()
	defer tx.Abort()
	w := resolve.NewWriter(tx, now)
	for _, p := range todo {
		key, _ := pki.ParseKey(p.key)
		staged, err := w.Write(p.c, p.cert, key, resolve.WriteOptions{})
		if err != nil {
			return nil, err
		}
		rep.Installed = append(rep.Installed, Installed{Name: p.c.Spec.Name, NotAfter: p.cert.NotAfter, Files: staged})
	}
	var err error
	if rep.Backup, err = tx.Commit(now); err != nil {
		return nil, err
	}
	return rep, nil
}

// checkSigned is what Install demands of a certificate from outside: its
// key, a CA of the cluster's bundle, validity now, and the plan's identity.
func checkSigned(c *resolve.Cert, cert *x509.Certificate, keyPEM []byte, now time.Time) error {
	key, err := pki.ParseKey(keyPEM)
	if err != nil {
		return err
	}
	if !pki.KeyMatches(cert.PublicKey, key) {
		return errors.New("certificate is not for the key generated with its CSR")
	}
	if c.CA == nil || len(c.CA.Certs) == 0 {
		return fmt.Errorf("read CA %s: %w", c.Spec.CA, c.CA.Err)
	}
	if _, ok := c.CA.SignerOf(cert); !ok {
		return fmt.Errorf("not signed by the cluster's CA %s", c.CA.Path)
	}
	if now.After(cert.NotAfter) || now.Before(cert.NotBefore) {
		return fmt.Errorf("not valid now (valid %s to %s)", cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if diff := pki.Diff(cert, c.Spec.Profile); len(diff) > 0 {
		return fmt.Errorf("not what the plan asks: %s", diff[0])
	}
	return nil
}
