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
	"kubepki.dev/kubepki/internal/kubeconfig"
	"kubepki.dev/kubepki/internal/pki"
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
	Now      time.Time
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
}

// target is a certificate about to be renewed.
type target struct {
	spec    catalog.CertSpec
	cert    *x509.Certificate
	key     crypto.Signer
	profile pki.Profile
	alg     pki.KeyAlgorithm
}

// Renew reissues certificates with their local CA, by the plan's rules:
// a leaf is never a CA, and its identity, SANs and usages stay within what
// the plan gives it (see copyProfile). A certificate that its CA never
// signed is refused, not renewed.
//
// Nothing is written unless every certificate could be issued, except that
// certificates of an external CA are skipped and listed. The new files are
// then committed as one store.Transaction: every replaced file is first
// copied to Dir/.backup/<timestamp>/ (with the transaction's journal), and
// a crash at any moment leaves a journal that the next kubepki run
// finishes (store.Store.Recover): never a certificate beside another
// certificate's key, never a kubeconfig with a stale certificate.
func Renew(plan *catalog.Plan, st store.Store, opts RenewOptions) (*RenewReport, error) {
	specs, err := selectCerts(plan, opts.Names)
	if err != nil {
		return nil, err
	}
	rep := &RenewReport{}
	cas := map[string]*pki.CA{}
	bundles := map[string][]*x509.Certificate{}
	var targets []target
	for _, c := range specs {
		ca, err := readCA(plan, st, c.CA, cas)
		if err != nil {
			return nil, err
		}
		if ca.Key == nil {
			rep.External = append(rep.External, c.Name)
			continue
		}
		bundle, err := readCABundle(plan, st, c.CA, bundles)
		if err != nil {
			return nil, err
		}
		t, err := loadTarget(plan, st, c, bundle, opts)
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
		reuse := opts.ReuseKey || signsTokens(plan, t.spec)
		key, newKey := t.key, !reuse || t.key == nil
		if newKey {
			if key, err = pki.GenerateKey(t.alg); err != nil {
				return nil, fmt.Errorf("renew %s: %w", t.spec.Name, err)
			}
		}
		cert, err := cas[t.spec.CA].Issue(key.Public(), t.profile, opts.Now)
		if err != nil {
			return nil, fmt.Errorf("renew %s: %w", t.spec.Name, err)
		}
		outs[i] = output{cert, key, newKey}
	}

	tx := st.NewTransaction()
	defer tx.Abort()
	for i, t := range targets {
		r := Renewed{Name: t.spec.Name, NotAfter: outs[i].cert.NotAfter, NewKey: outs[i].newKey}
		r.Files, err = stage(tx, plan, st, t.spec, pki.EncodeCert(cas[t.spec.CA].Cert), outs[i].cert, outs[i].key, opts.FromSpec)
		if err != nil {
			return nil, err
		}
		rep.Renewed = append(rep.Renewed, r)
	}
	if rep.Backup, err = tx.Commit(opts.Now); err != nil {
		return nil, err
	}
	return rep, nil
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

// selectCerts resolves names to the plan's non-CA certificates; a
// kubeconfig name stands for the certificate it embeds.
func selectCerts(plan *catalog.Plan, names []string) ([]catalog.CertSpec, error) {
	if len(names) == 0 || slices.Contains(names, "all") {
		return plan.Leaves(), nil
	}
	var out []catalog.CertSpec
	for _, n := range names {
		c, ok := plan.Cert(n)
		if !ok {
			k, isKubeconfig := plan.Kubeconfig(n)
			if !isKubeconfig {
				return nil, fmt.Errorf("no certificate or kubeconfig %q in the %s plan", n, plan.Profile)
			}
			c, _ = plan.Cert(k.Cert)
		}
		if c.Profile.IsCA {
			return nil, fmt.Errorf("%s is a CA: renewing a CA re-signs the whole cluster; that is CA rotation, not renewal", n)
		}
		if !slices.ContainsFunc(out, func(x catalog.CertSpec) bool { return x.Name == c.Name }) {
			out = append(out, c)
		}
	}
	return out, nil
}

func readCA(plan *catalog.Plan, st store.Store, name string, cache map[string]*pki.CA) (*pki.CA, error) {
	if ca, ok := cache[name]; ok {
		return ca, nil
	}
	spec, ok := plan.Cert(name)
	if !ok {
		return nil, fmt.Errorf("CA %q not in plan", name)
	}
	ca, err := st.ReadCA(spec.Path)
	if err != nil {
		return nil, fmt.Errorf("read CA %s: %w", name, err)
	}
	cache[name] = ca
	return ca, nil
}

// readCABundle reads every certificate of a CA's file: a leaf signed by any
// of them (the old CA during a rotation) is the cluster's.
func readCABundle(plan *catalog.Plan, st store.Store, name string, cache map[string][]*x509.Certificate) ([]*x509.Certificate, error) {
	if b, ok := cache[name]; ok {
		return b, nil
	}
	spec, _ := plan.Cert(name)
	b, err := st.ReadCerts(spec.Path)
	if err != nil {
		return nil, fmt.Errorf("read CA %s: %w", name, err)
	}
	cache[name] = b
	return b, nil
}

// loadTarget reads the certificate to renew and works out what the new
// one says. A certificate that none of its CA's certificates signed is
// refused: copying it would turn whatever was planted in the directory
// into a certificate the cluster trusts.
func loadTarget(plan *catalog.Plan, st store.Store, c catalog.CertSpec, caBundle []*x509.Certificate, opts RenewOptions) (target, error) {
	cert, key, err := ReadPair(plan, st, c)
	if err != nil {
		return target{}, fmt.Errorf("renew %s: %w (run kubepki init to create it)", c.Name, err)
	}
	file := pathOf(plan, st, c)
	caSpec, _ := plan.Cert(c.CA)
	signed := slices.ContainsFunc(caBundle, func(ca *x509.Certificate) bool { return cert.CheckSignatureFrom(ca) == nil })
	notSigned := fmt.Sprintf("%s is not signed by CA %s (%s)", file, c.CA, st.CertPath(caSpec.Path))
	keepsKey := opts.ReuseKey || signsTokens(plan, c)
	switch {
	case !signed && !opts.FromSpec:
		return target{}, fmt.Errorf("renew %s: %s: renewal copies only certificates the CA signed; reissue it from the plan with --from-spec", c.Name, notSigned)
	case !signed && opts.ReuseKey:
		return target{}, fmt.Errorf("renew %s --reuse-key: %s, so its key is not one the cluster gave out; renew it without --reuse-key", c.Name, notSigned)
	case !signed && keepsKey:
		return target{}, fmt.Errorf("renew %s: %s, and renewal keeps its key (the service-account signing key); restore %s from a backup", c.Name, notSigned, file)
	}
	t := target{spec: c, cert: cert, key: key, alg: c.KeyAlgorithm}
	if opts.FromSpec {
		t.profile = c.Profile
	} else {
		if t.profile, err = copyProfile(file, c, cert); err != nil {
			return target{}, fmt.Errorf("renew %s: %w", c.Name, err)
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
		return target{}, fmt.Errorf("renew %s --reuse-key: its private key is missing", c.Name)
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

// pathOf is the file that holds a certificate: its .crt, or the kubeconfig
// it is embedded in.
func pathOf(plan *catalog.Plan, st store.Store, c catalog.CertSpec) string {
	if c.Embedded {
		k, _ := plan.KubeconfigOf(c.Name)
		return st.KubeconfigPath(k.File)
	}
	return st.CertPath(c.Path)
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

// ReadPair reads a certificate of the plan and its key, from the PKI
// directory or from the kubeconfig it is embedded in.
func ReadPair(plan *catalog.Plan, st store.Store, c catalog.CertSpec) (*x509.Certificate, crypto.Signer, error) {
	if c.Embedded {
		k, _ := plan.KubeconfigOf(c.Name)
		cfg, err := kubeconfig.Load(st.KubeconfigPath(k.File))
		if err != nil {
			return nil, nil, err
		}
		cert, key, err := kubeconfig.ClientPair(cfg)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", st.KubeconfigPath(k.File), err)
		}
		return cert, key, nil
	}
	cert, err := st.ReadCert(c.Path)
	if err != nil {
		return nil, nil, err
	}
	key, err := st.ReadKey(c.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return cert, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

// kubeconfigsOf are the kubeconfigs that embed a certificate.
func kubeconfigsOf(plan *catalog.Plan, name string) []catalog.KubeconfigSpec {
	var out []catalog.KubeconfigSpec
	for _, k := range plan.Kubeconfigs {
		if k.Cert == name {
			out = append(out, k)
		}
	}
	return out
}

// stage adds a new certificate and key to tx: the PKI files, and the
// client credentials of every kubeconfig that embeds it (CA data
// refreshed, the rest of the file kept; with fromSpec the server URL is
// the plan's too). It returns the files the commit will replace.
func stage(tx *store.Transaction, plan *catalog.Plan, st store.Store, c catalog.CertSpec, caPEM []byte, cert *x509.Certificate, key crypto.Signer, fromSpec bool) ([]string, error) {
	keyPEM, err := pki.EncodeKey(key)
	if err != nil {
		return nil, err
	}
	var files []string
	if !c.Embedded {
		if err := tx.Stage(st.KeyPath(c.Path), keyPEM, store.KeyMode); err != nil {
			return nil, err
		}
		if err := tx.Stage(st.CertPath(c.Path), pki.EncodeCert(cert), store.CertMode); err != nil {
			return nil, err
		}
		files = append(files, st.CertPath(c.Path), st.KeyPath(c.Path))
	}
	for _, k := range kubeconfigsOf(plan, c.Name) {
		path := st.KubeconfigPath(k.File)
		cfg, err := kubeconfig.Load(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // created by init (or by Install, for an embedded one)
		}
		if err != nil {
			return nil, err
		}
		if err := kubeconfig.SetClientPair(cfg, caPEM, pki.EncodeCert(cert), keyPEM); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if fromSpec {
			cl, _, _ := kubeconfig.Current(cfg)
			cl.Server = k.Server
		}
		data, err := kubeconfig.Encode(path, cfg)
		if err != nil {
			return nil, err
		}
		if err := tx.Stage(path, data, store.KeyMode); err != nil {
			return nil, err
		}
		files = append(files, path)
	}
	return files, nil
}
