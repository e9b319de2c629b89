package lifecycle_test

import (
	"crypto"
	"crypto/x509"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/kubeconfig"
	"kubepki.dev/kubepki/internal/lifecycle"
	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/pkitest"
	"kubepki.dev/kubepki/internal/reconcile"
	"kubepki.dev/kubepki/internal/store"
)

// rnPlant puts cert and key where the plan keeps the certificate name: its
// files, or the kubeconfig it is embedded in.
func rnPlant(t *testing.T, plan *catalog.Plan, st store.Store, name string, cert *x509.Certificate, key crypto.Signer) {
	t.Helper()
	c, _ := plan.Cert(name)
	keyPEM, err := pki.EncodeKey(key)
	rnMust(t, err)
	if c.Embedded {
		k, _ := plan.KubeconfigOf(name)
		cfg, err := kubeconfig.Load(st.KubeconfigPath(k.File))
		rnMust(t, err)
		cl, _, err := kubeconfig.Current(cfg)
		rnMust(t, err)
		rnMust(t, kubeconfig.SetClientPair(cfg, cl.CertificateAuthorityData, pki.EncodeCert(cert), keyPEM))
		rnMust(t, kubeconfig.Replace(st.KubeconfigPath(k.File), cfg))
		return
	}
	rnMust(t, store.Replace(st.KeyPath(c.Path), keyPEM, store.KeyMode))
	rnMust(t, store.Replace(st.CertPath(c.Path), pki.EncodeCert(cert), store.CertMode))
}

// rnIssue signs a certificate with the profile, by the cluster's CA of the
// certificate name, or self-signed when selfSigned.
func rnIssue(t *testing.T, plan *catalog.Plan, st store.Store, name string, p pki.Profile, selfSigned bool) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key, err := pki.GenerateKey(pki.ECDSAP256)
	rnMust(t, err)
	if p.Validity == 0 {
		p.Validity = 24 * time.Hour
	}
	if selfSigned {
		ca, err := pki.NewCA(key, p, rnNow)
		rnMust(t, err)
		return ca.Cert, key
	}
	c, _ := plan.Cert(name)
	caSpec, _ := plan.Cert(c.CA)
	ca, err := st.ReadCA(caSpec.Path)
	rnMust(t, err)
	cert, err := ca.Issue(key.Public(), p, rnNow)
	rnMust(t, err)
	return cert, key
}

// TestRenewRefusesWhatThePlanDoesNotGive: a certificate its CA never signed
// (a planted admin certificate with CA:TRUE and *.evil.com), or one the CA
// signed with more than the plan gives, is refused by a copy renewal,
// naming the file and --from-spec, and nothing is written. --from-spec
// replaces it with what the plan says, unless it is asked to keep the
// planted key.
func TestRenewRefusesWhatThePlanDoesNotGive(t *testing.T) {
	tests := []struct {
		name       string
		cert       string // the certificate replaced
		selfSigned bool   // signed by no CA of the cluster
		change     func(p *pki.Profile)
		opts       lifecycle.RenewOptions
		want       []string // in the error, with the file's name
		// fromSpecFixes: a renewal with --from-spec then succeeds.
		fromSpecFixes bool
	}{
		{
			name: "planted CA:TRUE *.evil.com admin", cert: "admin", selfSigned: true,
			change: func(p *pki.Profile) { p.IsCA, p.DNSNames = true, []string{"*.evil.com"} },
			want:   []string{"is not signed by CA ca", "--from-spec"}, fromSpecFixes: true,
		},
		{
			name: "planted admin, --from-spec --reuse-key", cert: "admin", selfSigned: true,
			change: func(p *pki.Profile) { p.IsCA, p.DNSNames = true, []string{"*.evil.com"} },
			opts:   lifecycle.RenewOptions{FromSpec: true, ReuseKey: true},
			want:   []string{"is not signed by CA ca", "its key is not one the cluster gave out"},
		},
		{
			name: "planted kubelet client among all", cert: "node-0", selfSigned: true,
			opts: lifecycle.RenewOptions{Names: []string{"all"}},
			want: []string{"is not signed by CA ca"}, fromSpecFixes: true,
		},
		{
			name: "CA-signed CA:TRUE", cert: "admin",
			change: func(p *pki.Profile) { p.IsCA = true },
			want:   []string{"CA:TRUE", "--from-spec"}, fromSpecFixes: true,
		},
		{
			name: "CA-signed wildcard SAN", cert: "admin",
			change: func(p *pki.Profile) { p.DNSNames = []string{"*.evil.com"} },
			want:   []string{"SAN DNS:*.evil.com"}, fromSpecFixes: true,
		},
		{
			name: "API server SAN added by hand", cert: "apiserver",
			change: func(p *pki.Profile) { p.DNSNames = append(slices.Clone(p.DNSNames), "lb.example.com") },
			want:   []string{"SAN DNS:lb.example.com", "add what it needs to the spec"}, fromSpecFixes: true,
		},
		{
			name: "extra IP SAN", cert: "apiserver",
			change: func(p *pki.Profile) { p.IPs = append(slices.Clone(p.IPs), net.ParseIP("203.0.113.9")) },
			want:   []string{"SAN IP:203.0.113.9"}, fromSpecFixes: true,
		},
		{
			name: "extra group", cert: "scheduler",
			change: func(p *pki.Profile) {
				p.Subject.Organization = append(slices.Clone(p.Subject.Organization), "system:masters")
			},
			want: []string{`group (O) "system:masters"`}, fromSpecFixes: true,
		},
		{
			name: "server auth on a client certificate", cert: "admin",
			change: func(p *pki.Profile) { p.Usages = []pki.Usage{pki.UsageClientAuth, pki.UsageServerAuth} },
			want:   []string{"usage server auth"}, fromSpecFixes: true,
		},
		{
			name: "another CN", cert: "kube-proxy",
			change: func(p *pki.Profile) { p.Subject.CommonName = "system:node:node-0" },
			want:   []string{`CN "system:node:node-0"`}, fromSpecFixes: true,
		},
	}
	for _, tc := range tests {
		for _, profile := range rnProfiles {
			plan := pkitest.Plan(t, profile, nil)
			name := rnName(profile, tc.cert)
			if _, ok := plan.Cert(name); !ok {
				continue
			}
			t.Run(tc.name+"/"+string(profile), func(t *testing.T) {
				st, root := pkitest.Store(t, profile)
				rnApply(t, plan, st, rnNow)
				c, _ := plan.Cert(name)
				p := c.Profile
				if tc.change != nil {
					tc.change(&p)
				}
				cert, key := rnIssue(t, plan, st, name, p, tc.selfSigned)
				rnPlant(t, plan, st, name, cert, key)
				before := rnTree(t, root)

				opts := tc.opts
				if opts.Names == nil {
					opts.Names = []string{name}
				}
				opts.Now = rnNow.Add(time.Hour)
				rep, err := lifecycle.Renew(plan, st, opts)
				if err == nil {
					t.Fatalf("Renew = %+v, want a refusal", rep)
				}
				file := st.CertPath(c.Path)
				if c.Embedded {
					k, _ := plan.KubeconfigOf(name)
					file = st.KubeconfigPath(k.File)
				}
				for _, w := range append([]string{file}, tc.want...) {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not say %q", err, w)
					}
				}
				rnSameTree(t, "refused renewal", rnTree(t, root), before)
				rnNoBackup(t, st)
				rnNoTempFiles(t, root)

				if !tc.fromSpecFixes {
					return
				}
				opts.FromSpec = true
				if _, err := lifecycle.Renew(plan, st, opts); err != nil {
					t.Fatalf("Renew --from-spec: %v", err)
				}
				got := rnPair(t, plan, st, name)
				if got.IsCA {
					t.Errorf("%s renewed from the spec is a CA", name)
				}
				if d := pki.Diff(got, c.Profile); len(d) > 0 {
					t.Errorf("%s renewed from the spec differs from the plan: %v", name, d)
				}
				rnAllValid(t, plan, st, opts.Now)
			})
		}
	}
}

// rnName is a certificate's name in the profile's plan.
func rnName(profile catalog.Profile, name string) string {
	if profile == catalog.Hardway {
		if n, ok := map[string]string{"apiserver": "kube-api-server", "scheduler": "kube-scheduler"}[name]; ok {
			return n
		}
		return name
	}
	return map[string]string{
		"admin": "admin.conf", "node-0": "kubelet-node-0.conf", "apiserver": "apiserver",
		"scheduler": "scheduler.conf", "kube-proxy": "kube-proxy",
	}[name]
}

// TestRenewCopyStaysWithinPlan: what a copy renewal keeps from a
// certificate the CA signed, when it is within the plan.
func TestRenewCopyStaysWithinPlan(t *testing.T) {
	tests := []struct {
		name    string
		cert    string
		change  func(p *pki.Profile)
		check   func(t *testing.T, spec catalog.CertSpec, got *x509.Certificate)
		drifted bool // verify calls the result drift (it lacks what the spec now asks)
	}{
		{
			name: "fewer SANs are kept, not filled in", cert: "apiserver",
			change: func(p *pki.Profile) { p.DNSNames = p.DNSNames[:1] },
			check: func(t *testing.T, spec catalog.CertSpec, got *x509.Certificate) {
				if !slices.Equal(got.DNSNames, spec.Profile.DNSNames[:1]) {
					t.Errorf("DNS SANs %q, want the old %q", got.DNSNames, spec.Profile.DNSNames[:1])
				}
			},
			drifted: true,
		},
		{
			name: "DNS SANs compare case-insensitively, the plan's spelling wins", cert: "apiserver",
			change: func(p *pki.Profile) {
				p.DNSNames = slices.Clone(p.DNSNames)
				p.DNSNames[0] = strings.ToUpper(p.DNSNames[0])
			},
			check: func(t *testing.T, spec catalog.CertSpec, got *x509.Certificate) {
				if !slices.Equal(got.DNSNames, spec.Profile.DNSNames) {
					t.Errorf("DNS SANs %q, want the plan's %q", got.DNSNames, spec.Profile.DNSNames)
				}
			},
		},
		{
			name: "fewer usages are kept", cert: "etcd-server",
			change: func(p *pki.Profile) { p.Usages = []pki.Usage{pki.UsageServerAuth} },
			check: func(t *testing.T, _ catalog.CertSpec, got *x509.Certificate) {
				if u := pki.UsagesOf(got); !slices.Equal(u, []pki.Usage{pki.UsageServerAuth}) {
					t.Errorf("usages %q, want the old [server auth]", u)
				}
			},
			drifted: true,
		},
		{
			name: "no extended usage (any) becomes the plan's", cert: "admin",
			change: func(p *pki.Profile) { p.Usages = nil },
			check: func(t *testing.T, spec catalog.CertSpec, got *x509.Certificate) {
				if u := pki.UsagesOf(got); !slices.Equal(u, spec.Profile.Usages) {
					t.Errorf("usages %q, want the plan's %q", u, spec.Profile.Usages)
				}
			},
		},
		{
			name: "cosmetic subject fields are kept", cert: "admin",
			change: func(p *pki.Profile) { p.Subject.Country, p.Subject.Locality = []string{"NL"}, []string{"Delft"} },
			check: func(t *testing.T, _ catalog.CertSpec, got *x509.Certificate) {
				if !slices.Equal(got.Subject.Country, []string{"NL"}) || !slices.Equal(got.Subject.Locality, []string{"Delft"}) {
					t.Errorf("subject %s: C and L not kept", got.Subject)
				}
			},
		},
	}
	for _, tc := range tests {
		for _, profile := range rnProfiles {
			plan := pkitest.Plan(t, profile, nil)
			name := tc.cert
			if n := rnName(profile, tc.cert); n != "" {
				name = n
			}
			spec, ok := plan.Cert(name)
			if !ok {
				continue
			}
			t.Run(tc.name+"/"+string(profile), func(t *testing.T) {
				st, _ := pkitest.Store(t, profile)
				rnApply(t, plan, st, rnNow)
				p := spec.Profile
				tc.change(&p)
				cert, key := rnIssue(t, plan, st, name, p, false)
				rnPlant(t, plan, st, name, cert, key)
				later := rnNow.Add(time.Hour)
				if _, err := lifecycle.Renew(plan, st, lifecycle.RenewOptions{Names: []string{name}, Now: later}); err != nil {
					t.Fatalf("Renew: %v", err)
				}
				got := rnPair(t, plan, st, name)
				if got.Equal(cert) || got.IsCA {
					t.Fatalf("%s: not renewed as a leaf", name)
				}
				tc.check(t, spec, got)
				for _, s := range reconcile.Examine(plan, st, later) {
					bad := s.State != reconcile.Valid
					if tc.drifted && s.Name == name {
						bad = s.State != reconcile.Drifted
					}
					if bad {
						t.Errorf("Examine: %s %s is %s: %v", s.Kind, s.Name, s.State, s.Findings)
					}
				}
			})
		}
	}
}

// TestRenewAcceptsTheOldCAOfABundle: during a CA rotation ca.crt holds the
// new CA and the old one; a leaf the old one signed is the cluster's.
func TestRenewAcceptsTheOldCAOfABundle(t *testing.T) {
	plan := pkitest.Plan(t, catalog.Hardway, nil)
	st, _ := pkitest.Store(t, catalog.Hardway)
	rnApply(t, plan, st, rnNow)
	old := rnForeignCA(t)
	spec, _ := plan.Cert("kube-proxy")
	key, err := pki.GenerateKey(pki.ECDSAP256)
	rnMust(t, err)
	cert, err := old.Issue(key.Public(), spec.Profile, rnNow)
	rnMust(t, err)
	rnPlant(t, plan, st, "kube-proxy", cert, key)

	rnMust(t, os.Remove(st.KubeconfigPath("kube-proxy.kubeconfig"))) // it would name only the new CA
	opts := lifecycle.RenewOptions{Names: []string{"kube-proxy"}, Now: rnNow.Add(time.Hour)}
	if _, err := lifecycle.Renew(plan, st, opts); err == nil || !strings.Contains(err.Error(), "is not signed by CA ca") {
		t.Fatalf("Renew of a leaf of a CA not in ca.crt = %v, want a refusal", err)
	}
	caPEM, err := os.ReadFile(st.CertPath("ca"))
	rnMust(t, err)
	rnMust(t, store.Replace(st.CertPath("ca"), append(caPEM, pki.EncodeCert(old.Cert)...), store.CertMode))
	if _, err := lifecycle.Renew(plan, st, opts); err != nil {
		t.Fatalf("Renew of a leaf of the bundle's second CA: %v", err)
	}
	if err := rnPair(t, plan, st, "kube-proxy").CheckSignatureFrom(rnCA(t, plan, st, "ca")); err != nil {
		t.Errorf("renewed kube-proxy is not signed by the current CA: %v", err)
	}
}
