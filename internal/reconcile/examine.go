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
	"time"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/kubeconfig"
	"kubepki.dev/kubepki/internal/pki"
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
// certificates embedded only in them).
//
// It reads every key whatever its mode, owner or links, to check what it
// can: Examine only audits, and Permissions reports what is unsafe. What
// signs with a key reads it through st's KeyPolicy.
func Examine(plan *catalog.Plan, st store.Store, now time.Time) []Status {
	st.Keys = store.KeyPolicy{Insecure: true}
	cas := map[string]*x509.Certificate{}
	var out []Status
	for _, c := range plan.Certs {
		if c.Embedded {
			continue
		}
		s, cert := examineCert(plan, c, st, cas, now)
		if c.Profile.IsCA && cert != nil {
			cas[c.Name] = cert
		}
		out = append(out, s)
	}
	for _, k := range plan.Keys {
		out = append(out, examineKeyPair(k, st))
	}
	for _, k := range plan.Kubeconfigs {
		out = append(out, examineKubeconfig(plan, k, st, cas, now))
	}
	return out
}

func examineCert(plan *catalog.Plan, c catalog.CertSpec, st store.Store, cas map[string]*x509.Certificate, now time.Time) (Status, *x509.Certificate) {
	s := Status{Name: c.Name, Kind: KindCert, Path: st.CertPath(c.Path), IsCA: c.Profile.IsCA}
	if c.Profile.IsCA {
		s.Kind = KindCA
	}
	key, keyErr := st.ReadKey(c.Path)
	s.KeyPresent = !errors.Is(keyErr, fs.ErrNotExist)
	cert, err := st.ReadCert(c.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		s.State = Missing
		switch {
		case s.KeyPresent && keyErr != nil:
			s.bad(Invalid, "%v", keyErr)
		case s.KeyPresent:
			s.Findings = append(s.Findings, fmt.Sprintf("certificate missing; existing key %s will be reused", st.KeyPath(c.Path)))
		default:
			s.Findings = append(s.Findings, "certificate missing")
		}
		return s, nil
	case err != nil:
		s.bad(Invalid, "%v", err)
		return s, nil
	}
	s.State = Valid
	switch {
	case !s.KeyPresent && c.Profile.IsCA:
		s.State = External
		s.Findings = append(s.Findings, "CA key absent: external CA, certificates it signs cannot be issued here")
	case !s.KeyPresent:
		s.bad(Invalid, "private key %s missing", st.KeyPath(c.Path))
	case keyErr != nil:
		s.bad(Invalid, "%v", keyErr)
	}
	checkCert(&s, plan, c, cert, key, cas, now)
	return s, cert
}

// outliveTolerance is how far past its CA a leaf may run before it counts
// as drift: openssl issues a leaf with the CA's own -days seconds after the
// CA, which is harmless.
const outliveTolerance = 24 * time.Hour

// checkCert adds the findings of a certificate (and its key, if known)
// against its spec and CA.
func checkCert(s *Status, plan *catalog.Plan, c catalog.CertSpec, cert *x509.Certificate, key crypto.Signer, cas map[string]*x509.Certificate, now time.Time) {
	s.NotAfter = cert.NotAfter
	if key != nil && !pki.KeyMatches(cert.PublicKey, key) {
		s.bad(Invalid, "private key does not match the certificate")
	}
	if c.CA != "" {
		ca, ok := cas[c.CA]
		caSpec, _ := plan.Cert(c.CA)
		switch {
		case !ok:
			s.bad(Invalid, "signing CA %s unreadable or missing", caSpec.Path+".crt")
		case cert.CheckSignatureFrom(ca) != nil:
			s.bad(Invalid, "not signed by CA %s (%s.crt)", c.CA, caSpec.Path)
		case cert.NotAfter.After(ca.NotAfter.Add(outliveTolerance)):
			s.bad(Drifted, "outlives its CA: NotAfter %s is after the CA's %s", cert.NotAfter.UTC().Format(time.RFC3339), ca.NotAfter.UTC().Format(time.RFC3339))
		}
	} else if cert.CheckSignatureFrom(cert) != nil {
		s.bad(Invalid, "CA certificate is not self-signed")
	}
	for _, d := range pki.Diff(cert, c.Profile) {
		s.bad(Drifted, "%s", d)
	}
	if now.After(cert.NotAfter) {
		s.bad(Expired, "expired on %s", cert.NotAfter.UTC().Format(time.RFC3339))
	} else if now.Before(cert.NotBefore) {
		s.bad(Invalid, "not yet valid: valid from %s (is this host's clock right?)", cert.NotBefore.UTC().Format(time.RFC3339))
	}
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
// certificate: for an embedded-only certificate everything a certificate
// file gets; otherwise that it is the current certificate of the PKI
// directory.
func examineKubeconfig(plan *catalog.Plan, k catalog.KubeconfigSpec, st store.Store, cas map[string]*x509.Certificate, now time.Time) Status {
	path := st.KubeconfigPath(k.File)
	cfg, err := kubeconfig.Load(path)
	if errors.Is(err, fs.ErrNotExist) && k.InstalledAs != "" {
		// A node's own directory (kubeadm's /etc/kubernetes) holds its
		// kubelet kubeconfig under the installed name; it counts if it is
		// this node's.
		if alt, altErr := kubeconfig.Load(st.KubeconfigPath(k.InstalledAs)); altErr == nil {
			if cert, _, pairErr := kubeconfig.ClientPair(alt); pairErr == nil && cert.Subject.CommonName == k.User {
				path, cfg, err = st.KubeconfigPath(k.InstalledAs), alt, nil
			}
		}
	}
	s := Status{Name: k.Name, Kind: KindKubeconfig, Path: path, State: Valid}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		s.State = Missing
		s.Findings = append(s.Findings, "kubeconfig missing")
		return s
	case err != nil:
		s.bad(Invalid, "%v", err)
		return s
	}
	cl, _, err := kubeconfig.Current(cfg)
	if err != nil {
		s.bad(Invalid, "%v", err)
		return s
	}
	if cl.Server != k.Server {
		s.bad(Drifted, "server is %s, want %s", cl.Server, k.Server)
	}
	c, _ := plan.Cert(k.Cert)
	if ca, ok := cas[c.CA]; ok && !containsCert(cl.CertificateAuthorityData, ca) {
		s.bad(Drifted, "certificate-authority-data does not contain CA %s", c.CA)
	}
	cert, key, err := kubeconfig.ClientPair(cfg)
	if err != nil {
		s.bad(Invalid, "%v", err)
		return s
	}
	s.KeyPresent = key != nil
	if key == nil {
		s.bad(Invalid, "client-key-data missing")
	}
	if c.Embedded {
		checkCert(&s, plan, c, cert, key, cas, now)
		return s
	}
	s.NotAfter = cert.NotAfter
	if onDisk, err := st.ReadCert(c.Path); err == nil && !onDisk.Equal(cert) {
		s.bad(Drifted, "embedded client certificate is not the current %s", st.CertPath(c.Path))
	}
	if key != nil && !pki.KeyMatches(cert.PublicKey, key) {
		s.bad(Invalid, "client-key-data does not match client-certificate-data")
	}
	if now.After(cert.NotAfter) {
		s.bad(Expired, "embedded client certificate expired on %s", cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return s
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
	case Valid:
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
