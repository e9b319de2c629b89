// Package reconcile compares a Plan with a PKI directory and brings the
// directory in line: it creates what is missing, keeps what is valid, and
// reports — never overwrites — what drifted from the spec.
package reconcile

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"kubepki.dev/kubepki/internal/catalog"
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
)

// Status is the state of one certificate or key pair of the plan.
type Status struct {
	Name     string    `json:"name"`
	Path     string    `json:"path"`
	IsCA     bool      `json:"isCA,omitempty"`
	State    State     `json:"state"`
	NotAfter time.Time `json:"notAfter,omitzero"`
	// KeyPresent says whether the private key file exists.
	KeyPresent bool `json:"keyPresent"`
	// Findings explain every state but Valid, one line each.
	Findings []string `json:"findings,omitempty"`
}

// Examine reads the directory and reports every item of the plan in order.
func Examine(plan *catalog.Plan, st store.Store, now time.Time) []Status {
	cas := map[string]*x509.Certificate{}
	var out []Status
	for _, c := range plan.Certs {
		s, cert := examineCert(plan, c, st, cas, now)
		if c.Profile.IsCA && cert != nil {
			cas[c.Name] = cert
		}
		out = append(out, s)
	}
	for _, k := range plan.Keys {
		out = append(out, examineKeyPair(k, st))
	}
	return out
}

func examineCert(plan *catalog.Plan, c catalog.CertSpec, st store.Store, cas map[string]*x509.Certificate, now time.Time) (Status, *x509.Certificate) {
	s := Status{Name: c.Name, Path: st.CertPath(c.Path), IsCA: c.Profile.IsCA}
	key, keyErr := st.ReadKey(c.Path)
	s.KeyPresent = !errors.Is(keyErr, fs.ErrNotExist)
	cert, err := st.ReadCert(c.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		s.State = Missing
		if s.KeyPresent && keyErr == nil {
			s.Findings = append(s.Findings, fmt.Sprintf("certificate missing; existing key %s will be reused", st.KeyPath(c.Path)))
		} else {
			s.Findings = append(s.Findings, "certificate missing")
		}
		if keyErr != nil && s.KeyPresent {
			s.State = Invalid
			s.Findings = append(s.Findings, keyErr.Error())
		}
		return s, nil
	case err != nil:
		s.State = Invalid
		s.Findings = append(s.Findings, err.Error())
		return s, nil
	}
	s.NotAfter = cert.NotAfter
	bad := func(state State, format string, args ...any) {
		if rank(state) > rank(s.State) {
			s.State = state
		}
		s.Findings = append(s.Findings, fmt.Sprintf(format, args...))
	}
	s.State = Valid
	switch {
	case !s.KeyPresent && c.Profile.IsCA:
		s.State = External
		s.Findings = append(s.Findings, "CA key absent: external CA, certificates it signs cannot be issued here")
	case !s.KeyPresent:
		bad(Invalid, "private key %s missing", st.KeyPath(c.Path))
	case keyErr != nil:
		bad(Invalid, "%v", keyErr)
	case !pki.KeyMatches(cert.PublicKey, key):
		bad(Invalid, "private key %s does not match the certificate", st.KeyPath(c.Path))
	}
	if c.CA != "" {
		ca, ok := cas[c.CA]
		caSpec, _ := plan.Cert(c.CA)
		switch {
		case !ok:
			bad(Invalid, "signing CA %s unreadable or missing", st.CertPath(caSpec.Path))
		case cert.CheckSignatureFrom(ca) != nil:
			bad(Invalid, "not signed by CA %s (%s)", c.CA, st.CertPath(caSpec.Path))
		case cert.NotAfter.After(ca.NotAfter):
			bad(Drifted, "outlives its CA: NotAfter %s is after the CA's %s", cert.NotAfter.UTC().Format(time.RFC3339), ca.NotAfter.UTC().Format(time.RFC3339))
		}
	} else if cert.CheckSignatureFrom(cert) != nil {
		bad(Invalid, "CA certificate is not self-signed")
	}
	for _, d := range pki.Diff(cert, c.Profile) {
		bad(Drifted, "%s", d)
	}
	if now.After(cert.NotAfter) {
		bad(Expired, "expired on %s", cert.NotAfter.UTC().Format(time.RFC3339))
	} else if now.Before(cert.NotBefore) {
		bad(Expired, "not valid before %s", cert.NotBefore.UTC().Format(time.RFC3339))
	}
	return s, cert
}

func examineKeyPair(k catalog.KeySpec, st store.Store) Status {
	s := Status{Name: k.Name, Path: st.KeyPath(k.Path), State: Valid}
	key, err := st.ReadKey(k.Path)
	s.KeyPresent = !errors.Is(err, fs.ErrNotExist)
	switch {
	case !s.KeyPresent:
		s.State = Missing
		s.Findings = append(s.Findings, "key pair missing")
		return s
	case err != nil:
		s.State = Invalid
		s.Findings = append(s.Findings, err.Error())
		return s
	}
	pub, err := st.ReadPublicKey(k.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		s.State = Missing
		s.Findings = append(s.Findings, fmt.Sprintf("public key %s missing; it will be derived from the private key", st.PubPath(k.Path)))
	case err != nil:
		s.State = Invalid
		s.Findings = append(s.Findings, err.Error())
	case !pki.KeyMatches(pub, key):
		s.State = Invalid
		s.Findings = append(s.Findings, fmt.Sprintf("%s does not match %s", st.PubPath(k.Path), st.KeyPath(k.Path)))
	}
	return s
}

// rank orders states by severity, so a status shows its worst finding.
func rank(s State) int {
	switch s {
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
