// Package reconcile compares a Plan with a PKI directory and brings the
// directory in line: it creates what is missing, keeps what is valid, and
// reports — never overwrites — what drifted from the spec.
package reconcile

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/resolve"
	"kubepki.dev/kubepki/internal/store"
)

// State is what the directory holds for one plan item.
type State string

// States, from best to worst.
const (
	// Valid: present, matches the spec, chains to its CA, in its validity window.
	Valid State = "valid"
	// External: a CA certificate without its key (external-CA mode).
	External State = "external"
	// Missing: no certificate (its key may already exist and will be reused).
	Missing State = "missing"
	// Drifted: valid but no longer what the spec asks (a SAN, a group, a usage).
	Drifted State = "drifted"
	// Expired: past NotAfter, or not yet valid.
	Expired State = "expired"
	// Invalid: unreadable, key mismatch, missing key, or not signed by its CA.
	Invalid State = "invalid"
	// Unsafe: a file's mode, owner or type (see Permissions).
	Unsafe State = "unsafe"
	// Elsewhere: another node's kubelet kubeconfig, which lives on that
	// node (the directory is a real node's, with its own kubelet.conf).
	Elsewhere State = "elsewhere"
)

// Kind is the kind of a plan item.
type Kind string

// Item kinds.
const (
	KindCA         Kind = "ca"
	KindCert       Kind = "cert"
	KindKeyPair    Kind = "keypair"
	KindKubeconfig Kind = "kubeconfig"
	// KindPermissions: the mode, owner or type of a file or directory.
	KindPermissions Kind = "permissions"
)

// Status is the state of one item of the plan.
type Status struct {
	Name     string    `json:"name"`
	Kind     Kind      `json:"kind"`
	Path     string    `json:"path"`
	IsCA     bool      `json:"isCA,omitempty"`
	State    State     `json:"state"`
	NotAfter time.Time `json:"notAfter,omitzero"`
	// KeyPresent says whether the private key exists.
	KeyPresent bool `json:"keyPresent"`
	// SignedBy names the CA certificate of the CA's bundle that signed it
	// (CN, serial, fingerprint).
	SignedBy string `json:"signedBy,omitempty"`
	// Findings explain every state but Valid, one line each.
	Findings []string `json:"findings,omitempty"`
}

// bad records a finding and raises the state to at least state.
func (s *Status) bad(state State, format string, args ...any) {
	if rank(state) > rank(s.State) {
		s.State = state
	}
	s.Findings = append(s.Findings, fmt.Sprintf(format, args...))
}

// Examine reads the directory and reports every item of the plan in order:
// certificates with files, key pairs, then kubeconfigs (which include the
// certificates that live only in them).
//
// It reads every key whatever its mode, owner or links, to check what it
// can: Examine only audits, and Permissions reports what is unsafe. What
// signs with a key reads it through st's KeyPolicy.
func Examine(plan *catalog.Plan, st store.Store, now time.Time) []Status {
	st.Keys = store.KeyPolicy{Insecure: true}
	return examine(resolve.Resolve(plan, st), now)
}

// examine reports every item of a resolved plan, in Examine's order.
func examine(m *resolve.Model, now time.Time) []Status {
	var out []Status
	for _, c := range m.Certs {
		if c.Kubeconfig == nil {
			out = append(out, examineCert(c, now))
		}
	}
	for _, k := range m.Plan.Keys {
		out = append(out, examineKeyPair(k, m.Store))
	}
	for _, k := range m.Kubeconfigs {
		out = append(out, examineKubeconfig(m, k, now))
	}
	return out
}

func examineCert(c *resolve.Cert, now time.Time) Status {
	spec, loc := c.Spec, c.Location
	s := Status{Name: spec.Name, Kind: KindCert, Path: loc.Path(), IsCA: spec.Profile.IsCA}
	if s.IsCA {
		s.Kind = KindCA
	}
	keyPath := fileKeyPath(loc)
	cert, key, err := loc.Read()
	s.KeyPresent = store.Exists(keyPath)
	switch {
	case errors.Is(err, fs.ErrNotExist) && !store.Exists(loc.Path()):
		s.State = Missing
		_, keyErr := readKeyOnly(loc)
		switch {
		case s.KeyPresent && keyErr != nil:
			s.bad(Invalid, "%v", keyErr)
		case s.KeyPresent:
			s.Findings = append(s.Findings, fmt.Sprintf("certificate missing; existing key %s will be reused", keyPath))
		default:
			s.Findings = append(s.Findings, "certificate missing")
		}
		return s
	case err != nil:
		s.bad(Invalid, "%v", err)
		return s
	}
	if s.IsCA && c.CA.Signer != nil && c.CA.Signer.Key != nil {
		// A trust bundle: the CA is the certificate its key matches.
		cert = c.CA.Signer.Cert
	}
	s.State = Valid
	switch {
	case !s.KeyPresent && s.IsCA:
		s.State = External
		s.Findings = append(s.Findings, "CA key absent: external CA, certificates it signs cannot be issued here")
	case !s.KeyPresent:
		s.bad(Invalid, "private key %s missing", keyPath)
	}
	checkCert(&s, c, cert, key, now)
	if s.IsCA {
		for _, d := range c.CA.SameSubjects() {
			s.bad(Invalid, "%s", d)
		}
	}
	return s
}

// fileKeyPath is the key file of a certificate with its own files.
func fileKeyPath(loc resolve.Location) string {
	return strings.TrimSuffix(loc.Path(), ".crt") + ".key"
}

// readKeyOnly reads the key of a certificate whose certificate is missing.
func readKeyOnly(loc resolve.Location) (crypto.Signer, error) {
	path := fileKeyPath(loc)
	data, err := store.ReadKeyFile(path, store.KeyPolicy{Insecure: true})
	if err != nil {
		return nil, err
	}
	key, err := pki.ParseKey(data)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return key, nil
}

// outliveTolerance is how far past its CA a leaf may run before it counts
// as drift: openssl issues a leaf with the CA's own -days seconds after the
// CA, which is harmless.
const outliveTolerance = 24 * time.Hour

// checkCert adds the findings of a certificate (and its key, if known)
// against its spec and CA: any CA of the CA's trust bundle may have signed
// it, and SignedBy says which.
func checkCert(s *Status, c *resolve.Cert, cert *x509.Certificate, key crypto.Signer, now time.Time) {
	spec := c.Spec
	s.NotAfter = cert.NotAfter
	if key != nil && !pki.KeyMatches(cert.PublicKey, key) {
		s.bad(Invalid, "private key does not match the certificate")
	}
	if spec.CA != "" {
		var signer *x509.Certificate
		ok := c.CA != nil && len(c.CA.Certs) > 0
		if ok {
			signer, ok = c.CA.SignerOf(cert)
		}
		switch {
		case c.CA == nil || len(c.CA.Certs) == 0:
			s.bad(Invalid, "signing CA %s unreadable or missing", caFile(c))
		case !ok:
			s.bad(Invalid, "not signed by CA %s (%s)", spec.CA, caFile(c))
		default:
			s.SignedBy = c.CA.DescribeSigner(signer)
			if cert.NotAfter.After(signer.NotAfter.Add(outliveTolerance)) {
				s.bad(Drifted, "outlives its CA: NotAfter %s is after the CA's %s", cert.NotAfter.UTC().Format(time.RFC3339), signer.NotAfter.UTC().Format(time.RFC3339))
			}
		}
	} else if cert.CheckSignatureFrom(cert) != nil {
		s.bad(Invalid, "CA certificate is not self-signed")
	}
	for _, d := range pki.Diff(cert, spec.Profile) {
		s.bad(Drifted, "%s", d)
	}
	if now.After(cert.NotAfter) {
		s.bad(Expired, "expired on %s", cert.NotAfter.UTC().Format(time.RFC3339))
	} else if now.Before(cert.NotBefore) {
		s.bad(Invalid, "not yet valid: valid from %s (is this host's clock right?)", cert.NotBefore.UTC().Format(time.RFC3339))
	}
}

// caFile is the CA's certificate file relative to the PKI directory.
func caFile(c *resolve.Cert) string {
	if c.CA != nil {
		return c.CA.Spec.Path + ".crt"
	}
	return c.Spec.CA + ".crt"
}

func examineKeyPair(k catalog.KeySpec, st store.Store) Status {
	s := Status{Name: k.Name, Kind: KindKeyPair, Path: st.KeyPath(k.Path), State: Valid}
	key, err := st.ReadKey(k.Path)
	s.KeyPresent = !errors.Is(err, fs.ErrNotExist)
	switch {
	case !s.KeyPresent:
		s.State = Missing
		s.Findings = append(s.Findings, "key pair missing")
		return s
	case err != nil:
		s.bad(Invalid, "%v", err)
		return s
	}
	pub, err := st.ReadPublicKey(k.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		s.State = Missing
		s.Findings = append(s.Findings, fmt.Sprintf("public key %s missing; it will be derived from the private key", st.PubPath(k.Path)))
	case err != nil:
		s.bad(Invalid, "%v", err)
	case !pki.KeyMatches(pub, key):
		s.bad(Invalid, "%s does not match %s", st.PubPath(k.Path), st.KeyPath(k.Path))
	}
	return s
}

// examineKubeconfig checks a kubeconfig's server, CA data and client
// certificate, read where it lives (embedded, referenced files, the
// kubelet's rotated PEM): for a certificate that lives only there
// everything a certificate file gets; otherwise that it is the current
// certificate of the PKI directory.
func examineKubeconfig(m *resolve.Model, k *resolve.Kubeconfig, now time.Time) Status {
	s := Status{Name: k.Spec.Name, Kind: KindKubeconfig, Path: k.Path, State: Valid}
	switch {
	case k.Elsewhere:
		s.State = Elsewhere
		s.Findings = append(s.Findings, fmt.Sprintf("installed as %s on node %s; this directory is another node's", k.Spec.InstalledAs, k.Spec.Node))
		return s
	case k.Missing():
		s.State = Missing
		s.Findings = append(s.Findings, "kubeconfig missing")
		return s
	case k.Err != nil:
		s.bad(Invalid, "%v", k.Err)
		return s
	}
	cl, err := k.Cluster()
	if err != nil {
		s.bad(Invalid, "%v", err)
		return s
	}
	if !m.Plan.ServesAt(k.Spec, cl.Server) {
		s.bad(Drifted, "server is %s, want %s (or another name of the API server certificate on that port)", cl.Server, k.Spec.Server)
	}
	c, _ := m.Cert(k.Spec.Cert)
	if ca := c.CA; ca != nil && ca.Primary() != nil && cl.CertificateAuthority == "" && !containsCert(cl.CertificateAuthorityData, ca.Primary()) {
		s.bad(Drifted, "certificate-authority-data does not contain CA %s", c.Spec.CA)
	}
	cert, key, err := k.Location.Read()
	if err != nil {
		s.bad(Invalid, "%v", err)
		return s
	}
	s.KeyPresent = key != nil
	if key == nil {
		s.bad(Invalid, "%s missing", keyWord(k))
	}
	if c.Kubeconfig == k {
		checkCert(&s, c, cert, key, now)
		return s
	}
	s.NotAfter = cert.NotAfter
	if onDisk, _, err := c.Location.Read(); err == nil && !onDisk.Equal(cert) {
		s.bad(Drifted, "%s client certificate is not the current %s", styleWord(k), c.Location.Path())
	}
	if key != nil && !pki.KeyMatches(cert.PublicKey, key) {
		s.bad(Invalid, "%s does not match the client certificate", keyWord(k))
	}
	if now.After(cert.NotAfter) {
		s.bad(Expired, "%s client certificate expired on %s", styleWord(k), cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return s
}

// keyWord names a kubeconfig's client key as the file spells it.
func keyWord(k *resolve.Kubeconfig) string {
	if k.Location.Kind() == resolve.Embedded {
		return "client-key-data"
	}
	return "client-key"
}

// styleWord says how a kubeconfig holds its client certificate.
func styleWord(k *resolve.Kubeconfig) string {
	if k.Location.Kind() == resolve.Embedded {
		return "embedded"
	}
	return "referenced"
}

func containsCert(pemData []byte, want *x509.Certificate) bool {
	certs, err := pki.ParseCerts(pemData)
	if err != nil {
		return false
	}
	for _, c := range certs {
		if bytes.Equal(c.Raw, want.Raw) {
			return true
		}
	}
	return false
}

// rank orders states by severity, so a status shows its worst finding.
func rank(s State) int {
	switch s {
	case "":
		// Not yet examined: any finding raises it (an unreadable
		// certificate's Status has no state before bad).
		return -1
	case Valid, Elsewhere:
		return 0
	case External:
		return 1
	case Missing:
		return 2
	case Drifted:
		return 3
	case Expired:
		return 4
	}
	return 5
}
