// Package bundle turns a plan's per-node file lists into real files: read
// from the PKI directory, checked (no CA private key ever leaves the
// control plane), and written out as a directory tree or a tar.gz, each
// with a manifest of path, mode, owner and SHA-256.
package bundle

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"k8s.io/client-go/tools/clientcmd"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/kubeconfig"
	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/resolve"
	"kubepki.dev/kubepki/internal/store"
)

// ManifestName is the manifest's file name at the root of every bundle.
const ManifestName = "kubepki-manifest.json"

// File is one file of a bundle, with its content.
type File struct {
	Path   string      `json:"path"`
	Mode   os.FileMode `json:"-"`
	Owner  string      `json:"owner"`
	SHA256 string      `json:"sha256"`
	Size   int         `json:"size"`
	Data   []byte      `json:"-"`
}

// MarshalJSON writes the mode as octal text.
func (f File) MarshalJSON() ([]byte, error) {
	type plain File
	return json.Marshal(struct {
		plain
		Mode string `json:"mode"`
	}{plain(f), fmt.Sprintf("%04o", f.Mode.Perm())})
}

// Bundle is every file of one node.
type Bundle struct {
	Node  string `json:"node"`
	Files []File `json:"files"`
}

// Collect reads the files of a node's bundle from the store. A file that
// carries a private key goes in only if the plan says the key is this
// node's (catalog.Plan.CheckKeyOwner: a CA key never goes to a node without
// the control-plane role, another node's or a user's key never), and only
// if it verifies: the key matches its certificate (or public key), the
// certificate is signed by its CA and carries the identity the plan gives
// it. A mismatched pair on disk is an error naming the file, never packed.
func Collect(plan *catalog.Plan, st store.Store, node string) (*Bundle, error) {
	nb, ok := plan.Bundle(node)
	if !ok {
		return nil, fmt.Errorf("no node %q in the plan", node)
	}
	b := &Bundle{Node: node}
	m := resolve.Resolve(plan, st)
	for _, f := range nb.Files {
		src, err := sourcePath(m, f)
		if err != nil {
			return nil, fmt.Errorf("bundle %s: %s: %w", node, f.Path, err)
		}
		if err := plan.CheckKeyOwner(nb, f); err != nil {
			return nil, fmt.Errorf("bundle %s: refusing to put %s at %s: %w", node, src, f.Path, err)
		}
		data, err := read(st, f, src)
		if ca, ok := m.CAs[f.Name]; ok && f.Kind == catalog.SourceKey && ca.External() {
			// External-CA mode: the CA key is elsewhere, and stays there.
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("bundle %s: %w", node, err)
		}
		if err := verify(m, f, src, data); err != nil {
			return nil, fmt.Errorf("bundle %s: %w", node, err)
		}
		mode, err := strconv.ParseUint(f.Mode, 8, 32)
		if err != nil {
			return nil, fmt.Errorf("bundle %s: %s: mode %q: %w", node, f.Path, f.Mode, err)
		}
		sum := sha256.Sum256(data)
		b.Files = append(b.Files, File{
			Path: f.Path, Mode: os.FileMode(mode), Owner: f.Owner,
			SHA256: hex.EncodeToString(sum[:]), Size: len(data), Data: data,
		})
	}
	return b, nil
}

// read reads a bundle file's source as the store's key policy allows: a
// private key as a key (owner, mode, links), anything else as a regular
// file, never blocking on a FIFO.
func read(st store.Store, f catalog.BundleFile, src string) ([]byte, error) {
	if f.Kind == catalog.SourceKey {
		return st.ReadKeyFile(src)
	}
	return st.ReadFile(src)
}

// verify checks a file that carries a private key against what it pairs
// with: a key file against its certificate (or, for a bare key pair, its
// public key), a kubeconfig's client key against its client certificate;
// and the certificate against its CA and its identity in the plan.
// Certificates and public keys alone are checked with their key.
func verify(m *resolve.Model, f catalog.BundleFile, src string, data []byte) error {
	plan, st := m.Plan, m.Store
	switch f.Kind {
	case catalog.SourceKey:
		key, err := pki.ParseKey(data)
		if err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		if ca, ok := m.CAs[f.Name]; ok && len(ca.Certs) > 1 {
			// A trust bundle: the key is the one CA of it that signs.
			if ca.Signer == nil || !pki.KeyMatches(ca.Signer.Cert.PublicKey, key) {
				return fmt.Errorf("%s matches no certificate of %s: not packing a mismatched pair", src, ca.Path)
			}
			return nil
		}
		if c, ok := plan.Cert(f.Name); ok {
			certPath := st.CertPath(c.Path)
			cert, err := st.ReadCert(c.Path)
			if err != nil {
				return fmt.Errorf("%s: its certificate: %w", src, err)
			}
			if !pki.KeyMatches(cert.PublicKey, key) {
				return fmt.Errorf("%s does not match %s: not packing a mismatched pair", src, certPath)
			}
			return checkCert(plan, st, c, cert, certPath)
		}
		for _, k := range plan.Keys {
			if k.Name != f.Name {
				continue
			}
			pub, err := st.ReadPublicKey(k.Path)
			if err != nil {
				return fmt.Errorf("%s: its public key: %w", src, err)
			}
			if !pki.KeyMatches(pub, key) {
				return fmt.Errorf("%s does not match %s: not packing a mismatched pair", src, st.PubPath(k.Path))
			}
		}
	case catalog.SourceKubeconfig:
		k, _ := plan.Kubeconfig(f.Name)
		cfg, err := clientcmd.Load(data)
		if err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		cert, key, err := kubeconfig.ClientPair(cfg)
		if errors.Is(err, kubeconfig.ErrNoClientCert) {
			// It refers to files (a real kubeadm node's kubelet.conf): no
			// key travels in it.
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		if key != nil && !pki.KeyMatches(cert.PublicKey, key) {
			return fmt.Errorf("%s: client-key-data does not match client-certificate-data: not packing a mismatched pair", src)
		}
		c, _ := plan.Cert(k.Cert)
		return checkCert(plan, st, c, cert, src)
	}
	return nil
}

// checkCert checks that a leaf is signed by its CA (any certificate of the
// CA's file, which holds several during a rotation) and names the identity
// (CN and O) the plan gives it; a CA, that it signed itself.
func checkCert(plan *catalog.Plan, st store.Store, c catalog.CertSpec, cert *x509.Certificate, name string) error {
	if c.Profile.IsCA {
		if err := cert.CheckSignatureFrom(cert); err != nil {
			return fmt.Errorf("%s: CA certificate is not self-signed: %w", name, err)
		}
		return nil
	}
	caSpec, ok := plan.Cert(c.CA)
	if !ok {
		return fmt.Errorf("%s: signing CA %q not in the plan", name, c.CA)
	}
	caPath := st.CertPath(caSpec.Path)
	cas, err := st.ReadCerts(caSpec.Path)
	if err != nil {
		return fmt.Errorf("%s: its CA: %w", name, err)
	}
	if !slices.ContainsFunc(cas, func(ca *x509.Certificate) bool { return cert.CheckSignatureFrom(ca) == nil }) {
		return fmt.Errorf("%s is not signed by %s", name, caPath)
	}
	want := c.Profile.Subject
	if !pki.SubjectOf(cert.Subject).SameIdentity(want) {
		return fmt.Errorf("%s is CN=%s O=[%s], but the plan's %s is CN=%s O=[%s]", name,
			cert.Subject.CommonName, strings.Join(cert.Subject.Organization, ","), c.Name,
			want.CommonName, strings.Join(want.Organization, ","))
	}
	return nil
}

// sourcePath is the store file a bundle file is copied from: for a
// kubeconfig, the file in use (a real node's kubelet.conf).
func sourcePath(m *resolve.Model, f catalog.BundleFile) (string, error) {
	st := m.Store
	if f.Kind == catalog.SourceKubeconfig {
		k, ok := m.Kubeconfig(f.Name)
		if !ok {
			return "", fmt.Errorf("kubeconfig %q not in plan", f.Name)
		}
		return k.Path, nil
	}
	if c, ok := m.Plan.Cert(f.Name); ok {
		switch f.Kind {
		case catalog.SourceCert:
			return st.CertPath(c.Path), nil
		case catalog.SourceKey:
			return st.KeyPath(c.Path), nil
		}
	}
	for _, k := range m.Plan.Keys {
		if k.Name != f.Name {
			continue
		}
		switch f.Kind {
		case catalog.SourceKey:
			return st.KeyPath(k.Path), nil
		case catalog.SourcePublicKey:
			return st.PubPath(k.Path), nil
		}
	}
	return "", fmt.Errorf("no %s %q in plan", f.Kind, f.Name)
}

// Manifest returns the bundle's manifest as indented JSON.
func (b *Bundle) Manifest() ([]byte, error) {
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}
