package lifecycle_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/kubeconfig"
	"kubepki.dev/kubepki/internal/lifecycle"
	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/pkitest"
	"kubepki.dev/kubepki/internal/reconcile"
	"kubepki.dev/kubepki/internal/store"
)

// rnNow is when the test PKIs are created; renewals happen later.
var rnNow = time.Date(2026, time.March, 14, 15, 9, 26, 0, time.UTC)

// rnProfiles are the layouts every renewal test runs on.
var rnProfiles = []catalog.Profile{catalog.Hardway, catalog.Kubeadm}

// rnApply creates the whole PKI with reconcile.Apply and checks it is valid.
func rnApply(t *testing.T, plan *catalog.Plan, st store.Store, now time.Time) {
	t.Helper()
	rs, err := reconcile.Apply(context.Background(), plan, st, now, reconcile.Options{})
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	for _, r := range rs {
		if r.Action != reconcile.Created {
			t.Fatalf("Apply: %s %s: %s %v", r.Kind, r.Name, r.Action, r.Findings)
		}
	}
	rnAllValid(t, plan, st, now)
}

// rnAllValid fails unless Examine finds every item valid.
func rnAllValid(t *testing.T, plan *catalog.Plan, st store.Store, now time.Time) {
	t.Helper()
	for _, s := range reconcile.Examine(plan, st, now) {
		if s.State != reconcile.Valid {
			t.Errorf("Examine: %s %s is %s: %v", s.Kind, s.Name, s.State, s.Findings)
		}
	}
}

// rnFile is a file's content and mode.
type rnFile struct {
	data []byte
	mode fs.FileMode
}

// rnTree reads every regular file under root (relative path → content and
// mode), skipping the .backup directory.
func rnTree(t *testing.T, root string) map[string]rnFile {
	t.Helper()
	out := map[string]rnFile{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".backup" {
			return filepath.SkipDir
		}
		if d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out[rel] = rnFile{data, fi.Mode()}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// rnSameTree fails if the trees differ in any file, content or mode.
func rnSameTree(t *testing.T, what string, got, want map[string]rnFile) {
	t.Helper()
	for _, p := range slices.Sorted(maps.Keys(want)) {
		g, ok := got[p]
		switch {
		case !ok:
			t.Errorf("%s: %s disappeared", what, p)
		case !bytes.Equal(g.data, want[p].data):
			t.Errorf("%s: %s changed", what, p)
		case g.mode != want[p].mode:
			t.Errorf("%s: %s mode %v, was %v", what, p, g.mode, want[p].mode)
		}
	}
	for _, p := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: %s appeared", what, p)
		}
	}
}

// rnNoBackup fails if Dir/.backup exists.
func rnNoBackup(t *testing.T, st store.Store) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(st.Dir, ".backup")); err == nil {
		t.Errorf("%s/.backup exists: something was about to be replaced", st.Dir)
	}
}

// rnNoTempFiles fails if an atomic write left its temporary file behind.
func rnNoTempFiles(t *testing.T, root string) {
	t.Helper()
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", p)
		}
		return nil
	})
}

// rnPair reads a leaf of the plan, from its files or its kubeconfig.
func rnPair(t *testing.T, plan *catalog.Plan, st store.Store, name string) *x509.Certificate {
	t.Helper()
	c, ok := plan.Cert(name)
	if !ok {
		t.Fatalf("no %s in plan", name)
	}
	cert, _, err := lifecycle.ReadPair(plan, st, c)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return cert
}

// rnLeaves reads every leaf of the plan.
func rnLeaves(t *testing.T, plan *catalog.Plan, st store.Store) map[string]*x509.Certificate {
	t.Helper()
	out := map[string]*x509.Certificate{}
	for _, c := range plan.Leaves() {
		out[c.Name] = rnPair(t, plan, st, c.Name)
	}
	return out
}

func rnCA(t *testing.T, plan *catalog.Plan, st store.Store, name string) *x509.Certificate {
	t.Helper()
	spec, _ := plan.Cert(name)
	ca, err := st.ReadCert(spec.Path)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func rnPub(t *testing.T, c *x509.Certificate) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(c.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// rnShape is what renewal must copy from the old certificate.
func rnShape(c *x509.Certificate) string {
	return strings.Join([]string{
		"subject=" + c.Subject.String(),
		"sans=" + strings.Join(pki.SANs(c.DNSNames, c.IPAddresses), ","),
		"eku=" + strings.Join(func() []string {
			var s []string
			for _, u := range pki.UsagesOf(c) {
				s = append(s, string(u))
			}
			return s
		}(), ","),
		"ku=" + strings.Join(pki.KeyUsageNames(c.KeyUsage), ","),
		"ca=" + map[bool]string{true: "true", false: "false"}[c.IsCA],
		"alg=" + string(pki.AlgorithmOf(c.PublicKey)),
	}, " ")
}

func rnNames(rep *lifecycle.RenewReport) []string {
	var out []string
	for _, r := range rep.Renewed {
		out = append(out, r.Name)
	}
	return out
}

func rnLeafNames(plan *catalog.Plan) []string {
	var out []string
	for _, c := range plan.Leaves() {
		out = append(out, c.Name)
	}
	return out
}

// rnAdminKubeconfig is the administrator's kubeconfig of the layout.
func rnAdminKubeconfig(plan *catalog.Plan) catalog.KubeconfigSpec {
	name := "admin"
	if plan.Profile == catalog.Kubeadm {
		name = "admin.conf"
	}
	k, _ := plan.Kubeconfig(name)
	return k
}

// rnForeignCA is a CA that has nothing to do with the cluster.
func rnForeignCA(t *testing.T) *pki.CA {
	t.Helper()
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.NewCA(key, pki.Profile{Subject: pki.Subject{CommonName: "somebody else's CA"}, Validity: 24 * time.Hour}, rnNow)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// TestRenewAll renews every leaf of a fresh PKI, in both layouts, and
// checks what renewal promises: valid, new keys, the old certificates'
// shape, kubeconfigs renewed in place with everything else kept, backups
// that restore the old tree byte for byte, modes, no temporary files.
func TestRenewAll(t *testing.T) {
	for _, profile := range rnProfiles {
		t.Run(string(profile), func(t *testing.T) {
			plan := pkitest.Plan(t, profile, nil)
			st, root := pkitest.Store(t, profile)
			rnApply(t, plan, st, rnNow)

			// The administrator's kubeconfig gets what a person adds to it:
			// another cluster, user and context, preferences, a namespace, and
			// a CA bundle that holds a foreign CA too.
			admin := rnAdminKubeconfig(plan)
			adminPath := st.KubeconfigPath(admin.File)
			cfg, err := kubeconfig.Load(adminPath)
			if err != nil {
				t.Fatal(err)
			}
			foreign := pki.EncodeCert(rnForeignCA(t).Cert)
			cfg.Clusters["elsewhere"] = &clientcmdapi.Cluster{Server: "https://elsewhere.example:6443", CertificateAuthorityData: foreign}
			cfg.AuthInfos["robot"] = &clientcmdapi.AuthInfo{Token: "s3cr3t-token"}
			cfg.Contexts["robot@elsewhere"] = &clientcmdapi.Context{Cluster: "elsewhere", AuthInfo: "robot", Namespace: "robots"}
			cfg.Contexts[cfg.CurrentContext].Namespace = "kube-system"
			cfg.Preferences.Colors = true
			cl, _, err := kubeconfig.Current(cfg)
			if err != nil {
				t.Fatal(err)
			}
			cl.CertificateAuthorityData = append(slices.Clone(foreign), cl.CertificateAuthorityData...)
			currentContext := cfg.CurrentContext
			if err := kubeconfig.Replace(adminPath, cfg); err != nil {
				t.Fatal(err)
			}

			before := rnTree(t, root)
			old := rnLeaves(t, plan, st)
			later := rnNow.Add(48 * time.Hour)
			rep, err := lifecycle.Renew(plan, st, lifecycle.RenewOptions{Names: []string{"all"}, Now: later})
			if err != nil {
				t.Fatalf("Renew: %v", err)
			}
			if got, want := rnNames(rep), rnLeafNames(plan); !slices.Equal(got, want) {
				t.Errorf("renewed %q, want every leaf %q", got, want)
			}
			if len(rep.External) != 0 {
				t.Errorf("External = %q with every CA key present", rep.External)
			}
			if want := filepath.Join(st.Dir, ".backup", "20260316T150926Z"); rep.Backup != want {
				t.Errorf("Backup = %q, want %q", rep.Backup, want)
			}
			rnAllValid(t, plan, st, later)

			renewed := rnLeaves(t, plan, st)
			for _, c := range plan.Leaves() {
				o, n := old[c.Name], renewed[c.Name]
				if o.SerialNumber.Cmp(n.SerialNumber) == 0 {
					t.Errorf("%s: serial unchanged", c.Name)
				}
				if keepsKey := c.Name == "service-accounts"; bytes.Equal(rnPub(t, o), rnPub(t, n)) != keepsKey {
					t.Errorf("%s: public key kept %v, want %v", c.Name, !keepsKey, keepsKey)
				}
				if rnShape(o) != rnShape(n) {
					t.Errorf("%s: renewal changed the certificate's shape\nold %s\nnew %s", c.Name, rnShape(o), rnShape(n))
				}
				if want := later.Add(-pki.Backdate); !n.NotBefore.Equal(want) {
					t.Errorf("%s: NotBefore %v, want %v", c.Name, n.NotBefore, want)
				}
				if want := later.Add(c.Profile.Validity); !n.NotAfter.Equal(want) {
					t.Errorf("%s: NotAfter %v, want %v", c.Name, n.NotAfter, want)
				}
				if err := n.CheckSignatureFrom(rnCA(t, plan, st, c.CA)); err != nil {
					t.Errorf("%s: not signed by %s: %v", c.Name, c.CA, err)
				}
			}
			for _, r := range rep.Renewed {
				if want := r.Name != "service-accounts"; r.NewKey != want {
					t.Errorf("%s: NewKey %v, want %v", r.Name, r.NewKey, want)
				}
				if len(r.Files) == 0 {
					t.Errorf("%s: no files reported", r.Name)
				}
			}

			// Every kubeconfig embeds the renewed certificate and exactly the
			// current CA.
			for _, k := range plan.Kubeconfigs {
				cfg, err := kubeconfig.Load(st.KubeconfigPath(k.File))
				if err != nil {
					t.Fatal(err)
				}
				cert, key, err := kubeconfig.ClientPair(cfg)
				if err != nil {
					t.Fatalf("%s: %v", k.File, err)
				}
				if !cert.Equal(renewed[k.Cert]) {
					t.Errorf("%s: embeds serial %x, want the renewed %s (serial %x)", k.File, cert.SerialNumber, k.Cert, renewed[k.Cert].SerialNumber)
				}
				if cert.Equal(old[k.Cert]) {
					t.Errorf("%s: still embeds the old certificate", k.File)
				}
				if key == nil || !pki.KeyMatches(cert.PublicKey, key) {
					t.Errorf("%s: client-key-data does not match the certificate", k.File)
				}
				c, _ := plan.Cert(k.Cert)
				cl, _, _ := kubeconfig.Current(cfg)
				if want := pki.EncodeCert(rnCA(t, plan, st, c.CA)); !bytes.Equal(cl.CertificateAuthorityData, want) {
					t.Errorf("%s: certificate-authority-data is not exactly CA %s", k.File, c.CA)
				}
			}
			if profile == catalog.Hardway {
				// node-0's kubeconfig embeds node-0.crt as now on disk.
				cfg, _ := kubeconfig.Load(st.KubeconfigPath("node-0.kubeconfig"))
				cert, _, _ := kubeconfig.ClientPair(cfg)
				onDisk, err := st.ReadCert("node-0")
				if err != nil {
					t.Fatal(err)
				}
				if !cert.Equal(onDisk) || onDisk.Equal(old["node-0"]) {
					t.Errorf("node-0.kubeconfig does not embed the renewed node-0.crt")
				}
			} else {
				if renewed["kubelet-node-0.conf"].Equal(old["kubelet-node-0.conf"]) {
					t.Errorf("kubelet-node-0.conf not renewed")
				}
			}

			// The rest of the administrator's kubeconfig is kept.
			cfg, err = kubeconfig.Load(adminPath)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.CurrentContext != currentContext {
				t.Errorf("current context %q, was %q", cfg.CurrentContext, currentContext)
			}
			if c := cfg.Clusters["elsewhere"]; c == nil || c.Server != "https://elsewhere.example:6443" || !bytes.Equal(c.CertificateAuthorityData, foreign) {
				t.Errorf("extra cluster lost or changed: %+v", c)
			}
			if u := cfg.AuthInfos["robot"]; u == nil || u.Token != "s3cr3t-token" {
				t.Errorf("extra user lost or changed: %+v", u)
			}
			if c := cfg.Contexts["robot@elsewhere"]; c == nil || c.Cluster != "elsewhere" || c.AuthInfo != "robot" || c.Namespace != "robots" {
				t.Errorf("extra context lost or changed: %+v", c)
			}
			if c := cfg.Contexts[currentContext]; c == nil || c.Namespace != "kube-system" {
				t.Errorf("current context's namespace lost: %+v", c)
			}
			if !cfg.Preferences.Colors {
				t.Errorf("preferences lost")
			}
			if len(cfg.Clusters) != 2 || len(cfg.AuthInfos) != 2 || len(cfg.Contexts) != 2 {
				t.Errorf("kubeconfig has %d clusters, %d users, %d contexts; want 2 each", len(cfg.Clusters), len(cfg.AuthInfos), len(cfg.Contexts))
			}

			// Modes: keys and kubeconfigs 0600, certificates and public keys
			// 0644; nothing left half-written.
			after := rnTree(t, root)
			for p, f := range after {
				want := fs.FileMode(0o644)
				if strings.HasSuffix(p, ".key") || strings.HasSuffix(p, ".conf") || strings.HasSuffix(p, ".kubeconfig") {
					want = 0o600
				}
				if f.mode.Perm() != want {
					t.Errorf("%s: mode %04o, want %04o", p, f.mode.Perm(), want)
				}
			}
			rnNoTempFiles(t, root)

			// Only the leaves' files changed: CAs, sa and users are as they were.
			var changed []string
			for p := range before {
				if !bytes.Equal(before[p].data, after[p].data) {
					changed = append(changed, p)
				}
			}
			slices.Sort(changed)
			for _, p := range changed {
				base := filepath.Base(p)
				if strings.HasPrefix(base, "ca.") || strings.HasPrefix(base, "front-proxy-ca.") || strings.HasPrefix(base, "sa.") {
					t.Errorf("renew all changed %s", p)
				}
			}
			if len(after) != len(before) {
				t.Errorf("renew all left %d files, there were %d", len(after), len(before))
			}

			// The backup holds every replaced file with its old bytes and
			// mode; copying it back restores the tree exactly.
			var backedUp []string
			err = filepath.WalkDir(rep.Backup, func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				if p == filepath.Join(rep.Backup, store.JournalFile) {
					return nil // the record of the commit, checked below
				}
				rel, _ := filepath.Rel(rep.Backup, p)
				backedUp = append(backedUp, rel)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			origin := func(rel string) string {
				// Files under Dir keep their relative path; kubeadm's
				// kubeconfigs (outside Dir) their base name.
				if p := filepath.Join(st.Dir, rel); store.Exists(p) {
					return p
				}
				return st.KubeconfigPath(rel)
			}
			// Every file renew reports rewriting, and those alone; they
			// include every file whose content changed.
			var wantBackedUp []string
			backupName := func(abs string) string {
				rel, _ := filepath.Rel(st.Dir, abs)
				if strings.HasPrefix(rel, "..") {
					rel = filepath.Base(abs)
				}
				return rel
			}
			for _, r := range rep.Renewed {
				for _, f := range r.Files {
					wantBackedUp = append(wantBackedUp, backupName(f))
				}
			}
			for _, p := range changed {
				if name := backupName(filepath.Join(root, p)); !slices.Contains(wantBackedUp, name) {
					t.Errorf("%s changed, but renew does not report rewriting it", p)
				}
			}
			slices.Sort(backedUp)
			slices.Sort(wantBackedUp)
			if !slices.Equal(backedUp, wantBackedUp) {
				t.Errorf("backup holds\n%q\nwant exactly the replaced files\n%q", backedUp, wantBackedUp)
			}
			for _, rel := range backedUp {
				src := filepath.Join(rep.Backup, rel)
				data, err := os.ReadFile(src)
				if err != nil {
					t.Fatal(err)
				}
				fi, _ := os.Stat(src)
				dst := origin(rel)
				relRoot, _ := filepath.Rel(root, dst)
				if fi.Mode() != before[relRoot].mode {
					t.Errorf("backup of %s has mode %v, the original %v", relRoot, fi.Mode(), before[relRoot].mode)
				}
				if err := os.WriteFile(dst, data, fi.Mode().Perm()); err != nil {
					t.Fatal(err)
				}
			}
			rnSameTree(t, "after restoring the backup", rnTree(t, root), before)
			if j := rnJournalState(t, rep.Backup); j != "committed" {
				t.Errorf("journal of the renewal is in state %q, want committed", j)
			}
		})
	}
}

// TestRenewReuseKey keeps every key and still issues new certificates.
func TestRenewReuseKey(t *testing.T) {
	for _, profile := range rnProfiles {
		t.Run(string(profile), func(t *testing.T) {
			plan := pkitest.Plan(t, profile, nil)
			st, root := pkitest.Store(t, profile)
			rnApply(t, plan, st, rnNow)
			old := rnLeaves(t, plan, st)
			later := rnNow.Add(time.Hour)
			rep, err := lifecycle.Renew(plan, st, lifecycle.RenewOptions{ReuseKey: true, Now: later})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := rnNames(rep), rnLeafNames(plan); !slices.Equal(got, want) {
				t.Errorf("renewed %q, want %q", got, want)
			}
			for _, r := range rep.Renewed {
				if r.NewKey {
					t.Errorf("%s: NewKey with ReuseKey", r.Name)
				}
			}
			for name, n := range rnLeaves(t, plan, st) {
				if !bytes.Equal(rnPub(t, old[name]), rnPub(t, n)) {
					t.Errorf("%s: key changed with ReuseKey", name)
				}
				if old[name].SerialNumber.Cmp(n.SerialNumber) == 0 {
					t.Errorf("%s: not reissued", name)
				}
			}
			rnAllValid(t, plan, st, later)
			rnNoTempFiles(t, root)
		})
	}
}

// TestRenewCopiesOldCertificate: by default renewal copies the existing
// certificate (subject, SANs, usages) even when the spec changed or the
// certificate says something the spec does not; FromSpec reissues from the
// spec.
func TestRenewCopiesOldCertificate(t *testing.T) {
	const newSAN = "api.renewed.example"
	for _, profile := range rnProfiles {
		t.Run(string(profile), func(t *testing.T) {
			plan := pkitest.Plan(t, profile, nil)
			st, _ := pkitest.Store(t, profile)
			rnApply(t, plan, st, rnNow)
			api, admin := "kube-api-server", "admin"
			if profile == catalog.Kubeadm {
				api, admin = "apiserver", "admin.conf"
			}

			// The administrator's certificate is replaced by one the spec
			// would not make, though within what the plan allows: another
			// kind of key and another locality.
			adminSpec, _ := plan.Cert(admin)
			caSpec, _ := plan.Cert(adminSpec.CA)
			ca, err := st.ReadCA(caSpec.Path)
			if err != nil {
				t.Fatal(err)
			}
			odd := adminSpec.Profile
			odd.Subject.Country, odd.Subject.Locality = []string{"NL"}, []string{"Delft"}
			key, err := pki.GenerateKey(pki.ECDSAP384)
			if err != nil {
				t.Fatal(err)
			}
			oddCert, err := ca.Issue(key.Public(), odd, rnNow)
			if err != nil {
				t.Fatal(err)
			}
			keyPEM, _ := pki.EncodeKey(key)
			if adminSpec.Embedded {
				k, _ := plan.KubeconfigOf(admin)
				cfg, _ := kubeconfig.Load(st.KubeconfigPath(k.File))
				if err := kubeconfig.SetClientPair(cfg, pki.EncodeCert(ca.Cert), pki.EncodeCert(oddCert), keyPEM); err != nil {
					t.Fatal(err)
				}
				if err := kubeconfig.Replace(st.KubeconfigPath(k.File), cfg); err != nil {
					t.Fatal(err)
				}
			} else {
				_ = os.Remove(st.CertPath(adminSpec.Path))
				_ = os.Remove(st.KeyPath(adminSpec.Path))
				if err := st.CreateKey(adminSpec.Path, key); err != nil {
					t.Fatal(err)
				}
				if err := st.CreateCert(adminSpec.Path, oddCert); err != nil {
					t.Fatal(err)
				}
			}

			// Someone pointed the administrator's kubeconfig elsewhere.
			adminKubeconfig := rnAdminKubeconfig(plan)
			adminPath := st.KubeconfigPath(adminKubeconfig.File)
			serverOf := func() string {
				t.Helper()
				cfg, err := kubeconfig.Load(adminPath)
				rnMust(t, err)
				cl, _, err := kubeconfig.Current(cfg)
				rnMust(t, err)
				return cl.Server
			}
			{
				cfg, err := kubeconfig.Load(adminPath)
				rnMust(t, err)
				cl, _, err := kubeconfig.Current(cfg)
				rnMust(t, err)
				cl.Server = "https://lb.example:443"
				rnMust(t, kubeconfig.Replace(adminPath, cfg))
			}

			// The spec now wants a new API server SAN.
			newPlan := pkitest.Plan(t, profile, func(c *cluster.Cluster) {
				c.APIServer.ExtraSANs = append(c.APIServer.ExtraSANs, newSAN)
			})
			oldAPI := rnPair(t, newPlan, st, api)
			later := rnNow.Add(time.Hour)
			if _, err := lifecycle.Renew(newPlan, st, lifecycle.RenewOptions{Names: []string{api, admin}, Now: later}); err != nil {
				t.Fatal(err)
			}
			copied := rnPair(t, newPlan, st, api)
			if slices.Contains(copied.DNSNames, newSAN) {
				t.Errorf("%s: copy renewal took the new SAN from the spec", api)
			}
			if rnShape(copied) != rnShape(oldAPI) || copied.Equal(oldAPI) {
				t.Errorf("%s: copy renewal did not copy the old certificate\nold %s\nnew %s", api, rnShape(oldAPI), rnShape(copied))
			}
			renewedAdmin := rnPair(t, newPlan, st, admin)
			if rnShape(renewedAdmin) != rnShape(oddCert) || renewedAdmin.Equal(oddCert) {
				t.Errorf("%s: copy renewal did not keep the old subject, usages, SANs and key type\nold %s\nnew %s", admin, rnShape(oddCert), rnShape(renewedAdmin))
			}
			if got := serverOf(); got != "https://lb.example:443" {
				t.Errorf("copy renewal changed the kubeconfig's server to %s", got)
			}
			if pki.AlgorithmOf(renewedAdmin.PublicKey) != pki.ECDSAP384 {
				t.Errorf("%s: new key is %s, want one of the old kind %s", admin, pki.AlgorithmOf(renewedAdmin.PublicKey), pki.ECDSAP384)
			}

			// From the spec: the new SAN appears, the odd admin certificate is
			// back to what the catalog says, and the PKI has no drift left.
			if _, err := lifecycle.Renew(newPlan, st, lifecycle.RenewOptions{Names: []string{api, admin}, FromSpec: true, Now: later.Add(time.Second)}); err != nil {
				t.Fatal(err)
			}
			if got := serverOf(); got != adminKubeconfig.Server {
				t.Errorf("FromSpec renewal left the kubeconfig's server at %s, want the plan's %s", got, adminKubeconfig.Server)
			}
			fromSpec := rnPair(t, newPlan, st, api)
			if !slices.Contains(fromSpec.DNSNames, newSAN) {
				t.Errorf("%s: FromSpec renewal lacks the spec's new SAN: %v", api, fromSpec.DNSNames)
			}
			apiSpec, _ := newPlan.Cert(api)
			if d := pki.Diff(fromSpec, apiSpec.Profile); len(d) > 0 {
				t.Errorf("%s: FromSpec renewal differs from the spec: %v", api, d)
			}
			if d := pki.Diff(rnPair(t, newPlan, st, admin), adminSpec.Profile); len(d) > 0 {
				t.Errorf("%s: FromSpec renewal differs from the spec: %v", admin, d)
			}
			rnAllValid(t, newPlan, st, later.Add(time.Second))
		})
	}
}

// TestRenewValidity: an override sets the lifetime; nothing outlives its
// CA, with or without an override.
func TestRenewValidity(t *testing.T) {
	for _, profile := range rnProfiles {
		t.Run(string(profile), func(t *testing.T) {
			plan := pkitest.Plan(t, profile, nil)
			st, _ := pkitest.Store(t, profile)
			rnApply(t, plan, st, rnNow)
			later := rnNow.Add(time.Hour)

			if _, err := lifecycle.Renew(plan, st, lifecycle.RenewOptions{Validity: 72 * time.Hour, Now: later}); err != nil {
				t.Fatal(err)
			}
			for name, c := range rnLeaves(t, plan, st) {
				if want := later.Add(72 * time.Hour); !c.NotAfter.Equal(want) {
					t.Errorf("%s: NotAfter %v with Validity 72h, want %v", name, c.NotAfter, want)
				}
			}

			if _, err := lifecycle.Renew(plan, st, lifecycle.RenewOptions{Validity: 100 * 365 * 24 * time.Hour, Now: later}); err != nil {
				t.Fatal(err)
			}
			for _, c := range plan.Leaves() {
				got, ca := rnPair(t, plan, st, c.Name), rnCA(t, plan, st, c.CA)
				if !got.NotAfter.Equal(ca.NotAfter) {
					t.Errorf("%s: NotAfter %v with a 100-year validity, want the CA's %v", c.Name, got.NotAfter, ca.NotAfter)
				}
			}

			// A month before the CA expires, the plan's year is capped too.
			ca := rnCA(t, plan, st, "ca")
			late := ca.NotAfter.Add(-30 * 24 * time.Hour)
			if _, err := lifecycle.Renew(plan, st, lifecycle.RenewOptions{Now: late}); err != nil {
				t.Fatal(err)
			}
			for _, c := range plan.Leaves() {
				got, ca := rnPair(t, plan, st, c.Name), rnCA(t, plan, st, c.CA)
				if got.NotAfter.After(ca.NotAfter) {
					t.Errorf("%s: NotAfter %v is past CA %s's %v", c.Name, got.NotAfter, c.CA, ca.NotAfter)
				}
			}
			rnAllValid(t, plan, st, late)
		})
	}
}

// TestRenewRefuses: CAs, key pairs and unknown names are refused before
// anything is written.
func TestRenewRefuses(t *testing.T) {
	tests := []struct {
		profile catalog.Profile
		names   []string
		want    string
	}{
		{catalog.Hardway, []string{"ca"}, "is a CA"},
		{catalog.Hardway, []string{"admin", "ca"}, "is a CA"},
		{catalog.Kubeadm, []string{"etcd-ca"}, "is a CA"},
		{catalog.Kubeadm, []string{"front-proxy-ca"}, "is a CA"},
		{catalog.Kubeadm, []string{"apiserver", "nope"}, `no certificate or kubeconfig "nope"`},
		{catalog.Kubeadm, []string{"sa"}, `no certificate or kubeconfig "sa"`},
		{catalog.Hardway, []string{"apiserver"}, `no certificate or kubeconfig "apiserver" in the hardway plan`},
	}
	for _, tc := range tests {
		t.Run(string(tc.profile)+"/"+strings.Join(tc.names, ","), func(t *testing.T) {
			plan := pkitest.Plan(t, tc.profile, nil)
			st, root := pkitest.Store(t, tc.profile)
			rnApply(t, plan, st, rnNow)
			before := rnTree(t, root)
			rep, err := lifecycle.Renew(plan, st, lifecycle.RenewOptions{Names: tc.names, Now: rnNow.Add(time.Hour)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Renew(%q) = %v, want an error saying %q", tc.names, err, tc.want)
			}
			if rep != nil {
				t.Errorf("Renew(%q) reported %+v with its error", tc.names, rep)
			}
			rnSameTree(t, "refused renewal", rnTree(t, root), before)
			rnNoBackup(t, st)
		})
	}
}

// TestRenewExternalCA: without ca.key, the certificates ca signs are listed
// as External and left alone; those of CAs with their key are renewed.
func TestRenewExternalCA(t *testing.T) {
	for _, profile := range rnProfiles {
		t.Run(string(profile), func(t *testing.T) {
			plan := pkitest.Plan(t, profile, nil)
			st, root := pkitest.Store(t, profile)
			rnApply(t, plan, st, rnNow)
			if err := os.Remove(st.KeyPath("ca")); err != nil {
				t.Fatal(err)
			}
			before := rnTree(t, root)
			old := rnLeaves(t, plan, st)
			rep, err := lifecycle.Renew(plan, st, lifecycle.RenewOptions{Now: rnNow.Add(time.Hour)})
			if err != nil {
				t.Fatalf("Renew with an external CA: %v", err)
			}
			var wantExternal, wantRenewed []string
			for _, c := range plan.Leaves() {
				if c.CA == "ca" {
					wantExternal = append(wantExternal, c.Name)
				} else {
					wantRenewed = append(wantRenewed, c.Name)
				}
			}
			if !slices.Equal(rep.External, wantExternal) {
				t.Errorf("External = %q, want %q", rep.External, wantExternal)
			}
			if got := rnNames(rep); !slices.Equal(got, wantRenewed) {
				t.Errorf("renewed %q, want %q", got, wantRenewed)
			}
			now := rnLeaves(t, plan, st)
			for _, name := range wantExternal {
				if !now[name].Equal(old[name]) {
					t.Errorf("%s (external CA) was rewritten", name)
				}
			}
			for _, name := range wantRenewed {
				if now[name].Equal(old[name]) {
					t.Errorf("%s (its CA has its key) was not renewed", name)
				}
			}
			after := rnTree(t, root)
			if profile == catalog.Hardway {
				// Every hard-way certificate is the cluster CA's: nothing at all.
				rnSameTree(t, "renewal with the only CA external", after, before)
				rnNoBackup(t, st)
				if rep.Backup != "" {
					t.Errorf("Backup = %q with nothing renewed", rep.Backup)
				}
			} else {
				for _, k := range plan.Kubeconfigs {
					rel, _ := filepath.Rel(root, st.KubeconfigPath(k.File))
					if !bytes.Equal(after[rel].data, before[rel].data) {
						t.Errorf("%s rewritten though its certificate's CA is external", rel)
					}
				}
				for _, stem := range []string{"apiserver", "apiserver-kubelet-client"} {
					for _, ext := range []string{".crt", ".key"} {
						rel := filepath.Join("pki", stem+ext)
						if !bytes.Equal(after[rel].data, before[rel].data) {
							t.Errorf("%s rewritten though its CA is external", rel)
						}
					}
				}
			}
		})
	}
}

// TestRenewFailureWritesNothing: when one certificate cannot be renewed,
// none is, and no backup is made.
func TestRenewFailureWritesNothing(t *testing.T) {
	tests := []struct {
		name    string
		profile catalog.Profile
		breakIt func(t *testing.T, st store.Store)
		opts    lifecycle.RenewOptions
		want    string
	}{
		{
			name: "missing key with ReuseKey", profile: catalog.Hardway,
			breakIt: func(t *testing.T, st store.Store) { rnMust(t, os.Remove(st.KeyPath("kube-proxy"))) },
			opts:    lifecycle.RenewOptions{ReuseKey: true}, want: "renew kube-proxy --reuse-key: its private key is missing",
		},
		{
			name: "missing key with ReuseKey", profile: catalog.Kubeadm,
			breakIt: func(t *testing.T, st store.Store) { rnMust(t, os.Remove(st.KeyPath("etcd/peer"))) },
			opts:    lifecycle.RenewOptions{ReuseKey: true}, want: "renew etcd-peer --reuse-key",
		},
		{
			name: "kubeconfig without client key, ReuseKey", profile: catalog.Kubeadm,
			breakIt: func(t *testing.T, st store.Store) {
				path := st.KubeconfigPath("scheduler.conf")
				cfg, err := kubeconfig.Load(path)
				rnMust(t, err)
				_, user, err := kubeconfig.Current(cfg)
				rnMust(t, err)
				user.ClientKeyData = nil
				rnMust(t, kubeconfig.Replace(path, cfg))
			},
			opts: lifecycle.RenewOptions{ReuseKey: true}, want: "renew scheduler.conf --reuse-key",
		},
		{
			name: "unreadable certificate", profile: catalog.Hardway,
			breakIt: func(t *testing.T, st store.Store) {
				rnMust(t, os.WriteFile(st.CertPath("kube-scheduler"), []byte("not a certificate\n"), 0o644))
			},
			want: "renew kube-scheduler",
		},
		{
			name: "missing certificate", profile: catalog.Kubeadm,
			breakIt: func(t *testing.T, st store.Store) { rnMust(t, os.Remove(st.CertPath("front-proxy-client"))) },
			want:    "renew front-proxy-client",
		},
	}
	for _, tc := range tests {
		t.Run(string(tc.profile)+"/"+tc.name, func(t *testing.T) {
			plan := pkitest.Plan(t, tc.profile, nil)
			st, root := pkitest.Store(t, tc.profile)
			rnApply(t, plan, st, rnNow)
			tc.breakIt(t, st)
			before := rnTree(t, root)
			tc.opts.Now = rnNow.Add(time.Hour)
			rep, err := lifecycle.Renew(plan, st, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Renew = %+v, %v; want an error saying %q", rep, err, tc.want)
			}
			rnSameTree(t, "failed renewal", rnTree(t, root), before)
			rnNoBackup(t, st)
			rnNoTempFiles(t, root)
		})
	}
}

// rnJournalState is the state of the journal in a backup directory.
func rnJournalState(t *testing.T, backup string) string {
	t.Helper()
	var j struct {
		State string `json:"state"`
	}
	data, err := os.ReadFile(filepath.Join(backup, store.JournalFile))
	rnMust(t, err)
	rnMust(t, json.Unmarshal(data, &j))
	return j.State
}

func rnMust(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestRenewKeepsServiceAccountKey: the hard way's service-accounts
// certificate only carries the token signing key; renewing it, alone or
// with everything, from the old certificate or from the spec, keeps the key
// (a new one would invalidate every service-account token).
func TestRenewKeepsServiceAccountKey(t *testing.T) {
	for _, opts := range []lifecycle.RenewOptions{
		{},
		{Names: []string{"service-accounts"}},
		{Names: []string{"service-accounts"}, FromSpec: true},
	} {
		t.Run(strings.Join(opts.Names, ",")+map[bool]string{true: "/from-spec"}[opts.FromSpec], func(t *testing.T) {
			plan := pkitest.Plan(t, catalog.Hardway, nil)
			st, _ := pkitest.Store(t, catalog.Hardway)
			rnApply(t, plan, st, rnNow)
			oldKey, err := os.ReadFile(st.KeyPath("service-accounts"))
			rnMust(t, err)
			old := rnPair(t, plan, st, "service-accounts")
			opts.Now = rnNow.Add(time.Hour)
			rep, err := lifecycle.Renew(plan, st, opts)
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(rep.Renewed, func(r lifecycle.Renewed) bool { return r.Name == "service-accounts" })
			if i < 0 || rep.Renewed[i].NewKey {
				t.Fatalf("Renew: %+v, want service-accounts renewed with its key", rep.Renewed)
			}
			renewed := rnPair(t, plan, st, "service-accounts")
			if renewed.Equal(old) || !bytes.Equal(rnPub(t, renewed), rnPub(t, old)) {
				t.Errorf("service-accounts: want a new certificate for the same key")
			}
			if key, _ := os.ReadFile(st.KeyPath("service-accounts")); !bytes.Equal(key, oldKey) {
				t.Errorf("service-accounts.key rewritten with another key")
			}
			rnAllValid(t, plan, st, opts.Now)
		})
	}
}

// TestRenewTwiceInOneSecond: a second renewal in the same second gets its
// own backup; the first backup still holds the original files.
func TestRenewTwiceInOneSecond(t *testing.T) {
	plan := pkitest.Plan(t, catalog.Kubeadm, nil)
	st, root := pkitest.Store(t, catalog.Kubeadm)
	rnApply(t, plan, st, rnNow)
	original := rnTree(t, root)
	later := rnNow.Add(time.Hour)
	first, err := lifecycle.Renew(plan, st, lifecycle.RenewOptions{Names: []string{"apiserver", "admin.conf"}, Now: later})
	rnMust(t, err)
	second, err := lifecycle.Renew(plan, st, lifecycle.RenewOptions{Names: []string{"apiserver", "admin.conf"}, Now: later})
	rnMust(t, err)
	if first.Backup == "" || first.Backup == second.Backup {
		t.Fatalf("backups %q and %q: want two", first.Backup, second.Backup)
	}
	for _, f := range []struct{ backup, original string }{
		{"apiserver.crt", "pki/apiserver.crt"}, {"apiserver.key", "pki/apiserver.key"}, {"admin.conf", "admin.conf"},
	} {
		data, err := os.ReadFile(filepath.Join(first.Backup, f.backup))
		rnMust(t, err)
		if !bytes.Equal(data, original[f.original].data) {
			t.Errorf("first backup's %s is not the original", f.backup)
		}
		data, err = os.ReadFile(filepath.Join(second.Backup, f.backup))
		rnMust(t, err)
		if bytes.Equal(data, original[f.original].data) {
			t.Errorf("second backup's %s is the original, want the first renewal's", f.backup)
		}
	}
	rnAllValid(t, plan, st, later)
}
