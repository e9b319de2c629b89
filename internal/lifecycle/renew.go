// Package lifecycle keeps an existing PKI alive: expiration reports,
// renewal (certificates and the client certificates inside kubeconfigs),
// CSRs for an external CA and the installation of what it signed.
package lifecycle

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"slices"
	"strings"
	"time"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/resolve"
	"kubepki.dev/kubepki/internal/store"
)

// RenewOptions choose what Renew does.
type RenewOptions struct {
	// Names are plan certificate or kubeconfig names; "all" or empty means
	// every non-CA certificate of the plan.
	Names []string
	// ReuseKey keeps each certificate's key instead of generating one. The
	// service-account signing key is always kept (see signsTokens).
	ReuseKey bool
	// Validity overrides the plan's leaf validity.
	Validity time.Duration
	// FromSpec reissues from the plan (fixing drift: new SANs, groups)
	// instead of copying the existing certificate's subject, SANs and usages.
	FromSpec bool
	// NewKey gives the kubelet's rotated pair (kubelet-client-current.pem)
	// a new key; by default renewal keeps the node's key there.
	NewKey bool
	Now    time.Time
}

// Renewed is one reissued certificate.
type Renewed struct {
	Name     string    `json:"name"`
	NotAfter time.Time `json:"notAfter"`
	NewKey   bool      `json:"newKey"`
	// Files are every file rewritten for it: certificate, key, and the
	// kubeconfigs that embed it.
	Files []string `json:"files"`
}

// RenewReport is the outcome of Renew.
type RenewReport struct {
	Renewed []Renewed `json:"renewed"`
	// Backup is the directory holding the replaced files.
	Backup string `json:"backup,omitempty"`
	// External lists certificates not renewed because their CA's key is
	// absent: they need the external CA (kubepki certs generate-csr).
	External []string `json:"external,omitempty"`
	// Trust lists, for each CA whose trust bundle of several CAs was
	// written into kubeconfigs (certificate-authority-data), those CAs:
	// a CA nobody expected is visible there.
	Trust []TrustBundle `json:"trust,omitempty"`
}

// TrustBundle is a CA file of several CAs that a renewal wrote into
// kubeconfigs.
type TrustBundle struct {
	CA   string   `json:"ca"`
	Path string   `json:"path"`
	CAs  []string `json:"cas"`
}

// target is a certificate about to be renewed.
type target struct {
	c       *resolve.Cert
	cert    *x509.Certificate
	key     crypto.Signer
	profile pki.Profile
	alg     pki.KeyAlgorithm
	// keepKey: reissue for the key it has.
	keepKey bool
}

// Renew reissues certificates with their local CA, by the plan's rules:
// a leaf is never a CA, and its identity, SANs and usages stay within what
// the plan gives it (see copyProfile). A certificate that no CA of its
// CA's bundle signed is refused, not renewed. Each certificate is read and
// written where it lives (resolve.Location): a kubeconfig keeps its style,
// and the kubelet's rotated kubelet-client-current.pem gets a new file and
// its link swung, with the node's key kept (RenewOptions.NewKey) — even
// when it has already expired, which the kubelet cannot recover from alone.
//
// Nothing is written unless every certificate could be issued, except that
// certificates of an external CA are skipped and listed. The new files are
// then committed as one store.Transaction: every replaced file is first
// copied to Dir/.backup/<timestamp>/ (with the transaction's journal), and
// a crash at any moment leaves a journal that the next kubepki run
// finishes (store.Store.Recover): never a certificate beside another
// certificate's key, never a kubeconfig with a stale certificate.
func Renew(plan *catalog.Plan, st store.Store, opts RenewOptions) (*RenewReport, error) {
	m := resolve.Resolve(plan, st)
	certs, err := m.Select(opts.Names)
	if err != nil {
		return nil, err
	}
	rep := &RenewReport{}
	var targets []target
	for _, c := range certs {
		if c.CA == nil {
			return nil, fmt.Errorf("CA %q not in plan", c.Spec.CA)
		}
		if c.CA.Err != nil {
			return nil, fmt.Errorf("read CA %s: %w", c.Spec.CA, c.CA.Err)
		}
		if c.CA.External() {
			rep.External = append(rep.External, c.Spec.Name)
			continue
		}
		if same := c.CA.SameSubjects(); len(same) > 0 {
			return nil, fmt.Errorf("renew %s: %s is not a valid trust bundle: %s", c.Spec.Name, c.CA.Path, same[0])
		}
		t, err := loadTarget(plan, c, opts)
		if err != nil {
			return nil, err
		}
		targets = append(targets, t)
	}

	// Issue everything in memory first: a failure leaves the disk untouched.
	type output struct {
		cert   *x509.Certificate
		key    crypto.Signer
		newKey bool
	}
	outs := make([]output, len(targets))
	for i, t := range targets {
		key, newKey := t.key, !t.keepKey || t.key == nil
		if newKey {
			if key, err = pki.GenerateKey(t.alg); err != nil {
				return nil, fmt.Errorf("renew %s: %w", t.c.Spec.Name, err)
			}
		}
		cert, err := t.c.CA.Signer.Issue(key.Public(), t.profile, opts.Now)
		if err != nil {
			return nil, fmt.Errorf("renew %s: %w", t.c.Spec.Name, err)
		}
		outs[i] = output{cert, key, newKey}
	}

	tx := st.NewTransaction()
	defer tx.Abort()
	w := resolve.NewWriter(tx, opts.Now)
	for i, t := range targets {
		r := Renewed{Name: t.c.Spec.Name, NotAfter: outs[i].cert.NotAfter, NewKey: outs[i].newKey}
		r.Files, err = w.Write(t.c, outs[i].cert, outs[i].key, resolve.WriteOptions{Server: opts.FromSpec})
		if err != nil {
			return nil, err
		}
		rep.Renewed = append(rep.Renewed, r)
	}
	rep.Trust = trustWritten(targets)
	if rep.Backup, err = tx.Commit(opts.Now); err != nil {
		return nil, err
	}
	return rep, nil
}

// trustWritten lists the trust bundles of several CAs that the renewal of
// targets writes into kubeconfigs.
func trustWritten(targets []target) []TrustBundle {
	var out []TrustBundle
	seen := map[string]bool{}
	for _, t := range targets {
		ca := t.c.CA
		if len(ca.Certs) < 2 || seen[ca.Spec.Name] || (t.c.Kubeconfig == nil && len(t.c.Copies) == 0) {
			continue
		}
		seen[ca.Spec.Name] = true
		b := TrustBundle{CA: ca.Spec.Name, Path: ca.Path}
		for i, c := range ca.Certs {
			key := "key here"
			if !ca.KeyHere(c) {
				key = "key not here"
			}
			b.CAs = append(b.CAs, fmt.Sprintf("#%d %s (%s)", i+1, resolve.Describe(c), key))
		}
		out = append(out, b)
	}
	return out
}

// signsTokens says whether a certificate only carries the service-account
// token signing key (the hard way's service-accounts.crt, which
// kube-apiserver reads for --service-account-key-file). Renewal keeps that
// key: a new one would invalidate every service-account token in the
// cluster, which is a key rotation, not a renewal (kubeadm never renews
// sa.key either).
func signsTokens(plan *catalog.Plan, c catalog.CertSpec) bool {
	return plan.Profile == catalog.Hardway && c.Name == "service-accounts"
}

// loadTarget reads the certificate to renew and works out what the new
// one says. A certificate that none of its CA's certificates signed is
// refused: copying it would turn whatever was planted in the directory
// into a certificate the cluster trusts.
func loadTarget(plan *catalog.Plan, c *resolve.Cert, opts RenewOptions) (target, error) {
	spec := c.Spec
	cert, key, err := c.Location.Read()
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return target{}, fmt.Errorf("renew %s: %w (run kubepki init to create it)", spec.Name, err)
	case err != nil:
		return target{}, fmt.Errorf("renew %s: %w", spec.Name, err)
	}
	// Renewal writes beside the file it read: never through a link that
	// leads out of its directory.
	if err := resolve.LinkOutside(c.Location); err != nil {
		return target{}, fmt.Errorf("renew %s: %w", spec.Name, err)
	}
	file := c.Location.Path()
	_, signed := c.CA.SignerOf(cert)
	notSigned := fmt.Sprintf("%s is not signed by CA %s (%s)", file, spec.CA, c.CA.Path)
	// The kubelet's rotated pair keeps the node's key: it is the one the
	// kubelet holds, and renewing it is recovering the node's identity.
	rotated := c.Location.Kind() == resolve.KubeletRotated && !opts.NewKey
	keepsKey := opts.ReuseKey || signsTokens(plan, spec) || rotated
	switch {
	case !signed && !opts.FromSpec:
		return target{}, fmt.Errorf("renew %s: %s: renewal copies only certificates the CA signed; reissue it from the plan with --from-spec", spec.Name, notSigned)
	case !signed && opts.ReuseKey:
		return target{}, fmt.Errorf("renew %s --reuse-key: %s, so its key is not one the cluster gave out; renew it without --reuse-key", spec.Name, notSigned)
	case !signed && keepsKey:
		return target{}, fmt.Errorf("renew %s: %s, and renewal keeps its key; restore %s from a backup", spec.Name, notSigned, file)
	}
	t := target{c: c, cert: cert, key: key, alg: spec.KeyAlgorithm, keepKey: keepsKey}
	if opts.FromSpec {
		t.profile = spec.Profile
	} else {
		if t.profile, err = copyProfile(file, spec, cert); err != nil {
			return target{}, fmt.Errorf("renew %s: %w", spec.Name, err)
		}
		// A new key of the same kind as the old one, unless asked otherwise.
		if alg, err := pki.ParseKeyAlgorithm(string(pki.AlgorithmOf(cert.PublicKey))); err == nil {
			t.alg = alg
		}
	}
	if opts.Validity > 0 {
		t.profile.Validity = opts.Validity
	}
	if opts.ReuseKey && key == nil {
		return target{}, fmt.Errorf("renew %s --reuse-key: its private key is missing", spec.Name)
	}
	return t, nil
}

// copyProfile is what a renewal without --from-spec issues: the plan's
// rules, keeping from the old certificate only what stays within them.
//
// Kept: the subject's cosmetic fields (C, ST, L), and the groups (O),
// extended usages and SANs (spelt as the plan spells them, DNS names
// compared without case) when each is a subset of the plan's — a
// certificate that lacks a SAN the spec now names keeps lacking it until
// --from-spec, so a renewal never changes what a server answers to behind
// the operator's back. Never kept: CA:TRUE (a leaf is always CA:FALSE),
// another CN, a group, usage or SAN the plan does not give — not even a
// SAN someone added to the API server certificate by hand, which the spec
// must name (apiServer.extraSANs) to survive. Such a certificate is
// refused rather than narrowed, since dropping a SAN silently could cut
// clients off: the error names the file and what is outside the plan, and
// points at --from-spec. An old certificate without extended usages (any
// usage) gets the plan's.
func copyProfile(file string, c catalog.CertSpec, cert *x509.Certificate) (pki.Profile, error) {
	want := c.Profile
	old := ProfileOf(cert)
	var outside []string
	if cert.IsCA {
		outside = append(outside, "CA:TRUE")
	}
	if cert.Subject.CommonName != want.Subject.CommonName {
		outside = append(outside, fmt.Sprintf("CN %q (the plan's is %q)", cert.Subject.CommonName, want.Subject.CommonName))
	}
	for _, g := range old.Subject.Organization {
		if !slices.Contains(want.Subject.Organization, g) {
			outside = append(outside, fmt.Sprintf("group (O) %q", g))
		}
	}
	for _, u := range old.Usages {
		if !slices.Contains(want.Usages, u) {
			outside = append(outside, fmt.Sprintf("usage %s", u))
		}
	}
	wantSANs := normalSANs(want.DNSNames, want.IPs)
	for _, s := range normalSANs(old.DNSNames, old.IPs) {
		if !slices.Contains(wantSANs, s) {
			outside = append(outside, "SAN "+s)
		}
	}
	if len(outside) > 0 {
		return pki.Profile{}, fmt.Errorf("%s has what the plan does not give it: %s; renewal keeps only what is within the plan: reissue it from the plan with --from-spec (or add what it needs to the spec)",
			file, strings.Join(outside, ", "))
	}
	p := want
	p.Subject = old.Subject
	p.Subject.CommonName = want.Subject.CommonName
	if len(old.Usages) > 0 {
		p.Usages = old.Usages
	}
	// The SANs the old certificate has, as the plan spells them.
	oldSANs := normalSANs(old.DNSNames, old.IPs)
	p.DNSNames = slices.DeleteFunc(slices.Clone(want.DNSNames), func(d string) bool {
		return !slices.Contains(oldSANs, normalSANs([]string{d}, nil)[0])
	})
	p.IPs = slices.DeleteFunc(slices.Clone(want.IPs), func(ip net.IP) bool {
		return !slices.Contains(oldSANs, normalSANs(nil, []net.IP{ip})[0])
	})
	return p, nil
}

// normalSANs renders SANs for comparison: DNS names are case-insensitive.
func normalSANs(dns []string, ips []net.IP) []string {
	lower := make([]string, len(dns))
	for i, d := range dns {
		lower[i] = strings.ToLower(d)
	}
	return pki.SANs(lower, ips)
}

// ProfileOf is what an existing certificate says: renewal keeps it.
func ProfileOf(cert *x509.Certificate) pki.Profile {
	return pki.Profile{
		Subject:  pki.SubjectOf(cert.Subject),
		IsCA:     cert.IsCA,
		Usages:   pki.UsagesOf(cert),
		DNSNames: cert.DNSNames,
		IPs:      cert.IPAddresses,
		Validity: cert.NotAfter.Sub(cert.NotBefore),
	}
}

// ReadPair reads a certificate of the plan and its key where it lives
// (resolve.Location): its files, or the kubeconfig it is in.
func ReadPair(plan *catalog.Plan, st store.Store, c catalog.CertSpec) (*x509.Certificate, crypto.Signer, error) {
	rc, ok := resolve.Resolve(plan, st).Cert(c.Name)
	if !ok {
		return nil, nil, fmt.Errorf("no certificate %q in the plan", c.Name)
	}
	return rc.Location.Read()
}
