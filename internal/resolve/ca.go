package resolve

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/store"
)

// CA is the state of one CA of the plan in the store: its certificate
// file, which may be a trust bundle of several CAs (during a rotation), and
// which of them can sign here.
type CA struct {
	Spec catalog.CertSpec
	// Path is the CA's certificate file.
	Path string
	// Certs are every certificate of the file, in file order; empty when
	// the file is missing or unreadable (Err).
	Certs []*x509.Certificate
	// Signer is the CA that issues here: the certificate of the bundle
	// whose key is present and matches, with that key. Nil when the key is
	// absent (external CA) or unusable (Err).
	Signer *pki.CA
	// KeyPath is the CA's key file; KeyPresent says whether it exists.
	KeyPath    string
	KeyPresent bool
	// Err says why the certificate or the key cannot be used.
	Err error
}

// Missing reports whether the CA's certificate file does not exist.
func (ca *CA) Missing() bool { return len(ca.Certs) == 0 && errors.Is(ca.Err, fs.ErrNotExist) }

// External reports whether the CA's certificate is here without its key:
// it verifies, and what it signs comes from outside (kubepki certs
// generate-csr, install).
func (ca *CA) External() bool { return len(ca.Certs) > 0 && !ca.KeyPresent }

// CanIssue reports whether the CA can sign certificates here.
func (ca *CA) CanIssue() bool { return ca.Signer != nil && ca.Signer.Key != nil }

// Primary is the certificate that identifies the CA: the signer's, or the
// first of the file.
func (ca *CA) Primary() *x509.Certificate {
	if ca.Signer != nil {
		return ca.Signer.Cert
	}
	if len(ca.Certs) > 0 {
		return ca.Certs[0]
	}
	return nil
}

// BundlePEM is every certificate of the CA file, in order: what a
// kubeconfig's certificate-authority-data and a node bundle must hold so
// that a leaf signed by any of them is trusted.
func (ca *CA) BundlePEM() []byte {
	var b bytes.Buffer
	for _, c := range ca.Certs {
		b.Write(pki.EncodeCert(c))
	}
	return b.Bytes()
}

// SignerOf returns the certificate of the bundle that signed cert.
func (ca *CA) SignerOf(cert *x509.Certificate) (*x509.Certificate, bool) {
	for _, c := range ca.Certs {
		if cert.CheckSignatureFrom(c) == nil {
			return c, true
		}
	}
	return nil, false
}

// Index is the 1-based position of c in the CA's file, 0 when it is not
// there: "CA #2" of a trust bundle.
func (ca *CA) Index(c *x509.Certificate) int {
	for i, b := range ca.Certs {
		if b.Equal(c) {
			return i + 1
		}
	}
	return 0
}

// KeyHere reports whether the key of c, a certificate of the CA's file, is
// in the directory: c is the CA that signs here.
func (ca *CA) KeyHere(c *x509.Certificate) bool {
	return ca.CanIssue() && ca.Signer.Cert.Equal(c)
}

// SameSubjects names every two CAs of the file with one subject. Such a
// bundle is invalid: a client building a chain picks its issuer by
// subject and cannot tell them apart, so a CA planted beside the real one
// under its name goes unseen. A rotation's new CA has a subject of its
// own ("Manual Rotation of CA Certificates").
func (ca *CA) SameSubjects() []string {
	var out []string
	for i, a := range ca.Certs {
		for j := i + 1; j < len(ca.Certs); j++ {
			if b := ca.Certs[j]; sameName(a, b) {
				out = append(out, fmt.Sprintf("CA #%d (%s) and CA #%d (%s) have the same subject %q: chain building cannot tell them apart; remove the one that does not belong",
					i+1, Describe(a), j+1, Describe(b), a.Subject.String()))
			}
		}
	}
	return out
}

// sameName reports whether two certificates have one subject as a chain
// builder sees it: openssl compares names canonically (string types and
// case folded), so a UTF8String CN=Kubernetes matches a PrintableString
// CN=kubernetes although their bytes differ.
func sameName(a, b *x509.Certificate) bool {
	return bytes.Equal(a.RawSubject, b.RawSubject) || strings.EqualFold(a.Subject.String(), b.Subject.String())
}

// DescribeSigner names the CA of the file that signed a certificate: its
// place in a trust bundle and, when it cannot sign here, that its key is
// not here.
func (ca *CA) DescribeSigner(c *x509.Certificate) string {
	d := Describe(c)
	if len(ca.Certs) > 1 {
		d = fmt.Sprintf("CA #%d %s", ca.Index(c), d)
	}
	if !ca.KeyHere(c) {
		d += ", whose key is not here"
	}
	return d
}

// Describe names one CA certificate for a person: "CN=kubernetes serial
// 1f… sha256 ab12…".
func Describe(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return fmt.Sprintf("CN=%s serial %s sha256:%s", c.Subject.CommonName, c.SerialNumber.Text(16), hex.EncodeToString(sum[:8]))
}

// resolveCA reads a CA's certificate bundle and key under st's key policy.
func resolveCA(spec catalog.CertSpec, st store.Store) *CA {
	ca := &CA{Spec: spec, Path: st.CertPath(spec.Path), KeyPath: st.KeyPath(spec.Path)}
	certs, err := st.ReadCerts(spec.Path)
	if err != nil {
		ca.Err = err
		ca.KeyPresent = store.Exists(ca.KeyPath)
		return ca
	}
	ca.Certs = certs
	key, err := st.ReadKey(spec.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		ca.Signer = &pki.CA{Cert: certs[0]}
		return ca
	case err != nil:
		ca.KeyPresent = true
		ca.Err = err
		return ca
	}
	ca.KeyPresent = true
	for _, c := range certs {
		if pki.KeyMatches(c.PublicKey, key) {
			ca.Signer = &pki.CA{Cert: c, Key: key}
			return ca
		}
	}
	if len(certs) == 1 {
		ca.Err = fmt.Errorf("%s does not match %s", ca.KeyPath, ca.Path)
	} else {
		ca.Err = fmt.Errorf("%s matches none of the %d certificates of %s", ca.KeyPath, len(certs), ca.Path)
	}
	return ca
}
