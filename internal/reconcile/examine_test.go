package reconcile

import (
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/pkitest"
	"kubepki.dev/kubepki/internal/store"
)

// TestApplyLeavesDriftAlone: after a spec change, Examine reports the exact
// drift and Apply touches nothing.
func TestApplyLeavesDriftAlone(t *testing.T) {
	// A kubeconfig may dial any name of the API server's certificate, so
	// the finding says so after the spec's address.
	const anyName = " (or another name of the API server certificate on that port)"
	addSAN := func(c *cluster.Cluster) { c.APIServer.ExtraSANs = append(c.APIServer.ExtraSANs, "api.example.com") }
	moveNode := func(node, ip string) func(*cluster.Cluster) {
		return func(c *cluster.Cluster) {
			for i := range c.Nodes {
				if c.Nodes[i].Name == node {
					c.Nodes[i].IPs = []string{ip}
				}
			}
		}
	}
	ipDrift := []string{"SAN IP:192.168.10.201 required by spec, absent", "SAN IP:192.168.10.101 present, not in spec"}
	cpDrift := []string{"SAN IP:192.168.10.200 required by spec, absent", "SAN IP:192.168.10.100 present, not in spec"}
	tests := []struct {
		name    string
		profile catalog.Profile
		change  func(*cluster.Cluster)
		want    map[string][]string // drifted item → exact findings
	}{
		{"hardway extra SAN", catalog.Hardway, addSAN, map[string][]string{
			"cert/kube-api-server": {"SAN DNS:api.example.com required by spec, absent"}}},
		{"kubeadm extra SAN", catalog.Kubeadm, addSAN, map[string][]string{
			"cert/apiserver": {"SAN DNS:api.example.com required by spec, absent"}}},
		{"hardway extra SAN as IP", catalog.Hardway, func(c *cluster.Cluster) { c.APIServer.ExtraSANs = append(c.APIServer.ExtraSANs, "203.0.113.7") }, map[string][]string{
			"cert/kube-api-server": {"SAN IP:203.0.113.7 required by spec, absent"}}},
		{"hardway SAN removed", catalog.Hardway, func(c *cluster.Cluster) { c.APIServer.ExtraSANs = c.APIServer.ExtraSANs[:1] }, map[string][]string{
			"cert/kube-api-server": {"SAN DNS:api-server.kubernetes.local present, not in spec"}}},
		{"hardway worker IP", catalog.Hardway, moveNode("node-0", "192.168.10.201"), map[string][]string{"cert/node-0": ipDrift}},
		{"kubeadm control-plane IP", catalog.Kubeadm, moveNode("server", "192.168.10.200"), map[string][]string{
			"cert/apiserver": cpDrift, "cert/etcd-server": cpDrift, "cert/etcd-peer": cpDrift,
			// kubeadm's controller-manager.conf, scheduler.conf and the
			// control plane's kubelet.conf dial the node's advertise address.
			"kubeconfig/controller-manager.conf": {"server is https://192.168.10.100:6443, want https://192.168.10.200:6443" + anyName},
			"kubeconfig/scheduler.conf":          {"server is https://192.168.10.100:6443, want https://192.168.10.200:6443" + anyName},
			"kubeconfig/kubelet-server.conf":     {"server is https://192.168.10.100:6443, want https://192.168.10.200:6443" + anyName}}},
		// A CA's subject is not an identity: changing the spec's
		// organisation does not make existing CAs drift.
		{"hardway CA organization", catalog.Hardway, func(c *cluster.Cluster) { c.Subject.Organization = "Acme" }, map[string][]string{}},
		{"kubeadm CA organization", catalog.Kubeadm, func(c *cluster.Cluster) { c.Subject.Organization = "Acme" }, map[string][]string{}},
		{"hardway endpoint moved", catalog.Hardway, func(c *cluster.Cluster) { c.APIServer.Endpoint = "server.kubernetes.local:8443" }, map[string][]string{
			"kubeconfig/node-0":                  {"server is https://server.kubernetes.local:6443, want https://server.kubernetes.local:8443" + anyName},
			"kubeconfig/node-1":                  {"server is https://server.kubernetes.local:6443, want https://server.kubernetes.local:8443" + anyName},
			"kubeconfig/kube-proxy":              {"server is https://server.kubernetes.local:6443, want https://server.kubernetes.local:8443" + anyName},
			"kubeconfig/kube-controller-manager": {"server is https://127.0.0.1:6443, want https://127.0.0.1:8443" + anyName},
			"kubeconfig/kube-scheduler":          {"server is https://127.0.0.1:6443, want https://127.0.0.1:8443" + anyName},
			"kubeconfig/admin":                   {"server is https://server.kubernetes.local:6443, want https://server.kubernetes.local:8443" + anyName}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st, root := pkitest.Store(t, tc.profile)
			mustApply(t, pkitest.Plan(t, tc.profile, nil), st, testNow, Options{})
			ageFiles(t, root)
			before := snapshot(t, root)

			changed := pkitest.Plan(t, tc.profile, tc.change)
			wantStates := map[string]State{}
			wantActions := map[string]Action{}
			for n := range tc.want {
				wantStates[n], wantActions[n] = Drifted, Untouched
			}
			ss := Examine(changed, st, testNow)
			checkStates(t, ss, Valid, wantStates)
			for _, s := range ss {
				if want, ok := tc.want[id(s)]; ok && !slices.Equal(s.Findings, want) {
					t.Errorf("%s: findings\n%q\nwant\n%q", id(s), s.Findings, want)
				}
			}

			rs := mustApply(t, changed, st, testNow, Options{})
			checkStates(t, statuses(rs), Valid, wantStates)
			checkActions(t, rs, Kept, wantActions)
			for _, r := range rs {
				if want, ok := tc.want[id(r.Status)]; ok && !slices.Equal(r.Findings, want) {
					t.Errorf("Apply %s: findings %q, want %q", id(r.Status), r.Findings, want)
				}
			}
			assertUnchanged(t, before, snapshot(t, root))
		})
	}
}

// TestApplyExternalCA: with a CA's key absent, what it would have to sign
// fails with an explanation, what exists is kept, and nothing is written.
func TestApplyExternalCA(t *testing.T) {
	tests := []struct {
		name    string
		profile catalog.Profile
		ca      string
		remove  func(plan *catalog.Plan, st store.Store) []string // files to delete
		failed  string                                            // kind/name of the item that fails
		// created lists items Apply can still make without the CA key.
		created  []string
		otherCAs []string
	}{
		{
			name: "hardway leaf", profile: catalog.Hardway, ca: "ca", failed: "cert/admin",
			remove: func(_ *catalog.Plan, st store.Store) []string {
				return []string{st.CertPath("admin"), st.KeyPath("admin")}
			},
		},
		{
			name: "hardway leaf, key kept", profile: catalog.Hardway, ca: "ca", failed: "cert/node-1",
			remove: func(_ *catalog.Plan, st store.Store) []string { return []string{st.CertPath("node-1")} },
		},
		{
			name: "kubeadm etcd leaf", profile: catalog.Kubeadm, ca: "etcd-ca", failed: "cert/etcd-server",
			remove: func(_ *catalog.Plan, st store.Store) []string {
				return []string{st.CertPath("etcd/server"), st.KeyPath("etcd/server")}
			},
			otherCAs: []string{"ca/ca", "ca/front-proxy-ca"},
		},
		{
			name: "kubeadm front-proxy leaf, key kept", profile: catalog.Kubeadm, ca: "front-proxy-ca", failed: "cert/front-proxy-client",
			remove:   func(_ *catalog.Plan, st store.Store) []string { return []string{st.CertPath("front-proxy-client")} },
			otherCAs: []string{"ca/ca", "ca/etcd-ca"},
		},
		{
			// kubeadm's kubeconfig certificates live only in the kubeconfig:
			// a missing one needs the CA key.
			name: "kubeadm kubeconfig with embedded certificate", profile: catalog.Kubeadm, ca: "ca", failed: "kubeconfig/admin.conf",
			remove: func(_ *catalog.Plan, st store.Store) []string { return []string{st.KubeconfigPath("admin.conf")} },
		},
		{
			// A hard-way kubeconfig embeds the certificate on disk: it can
			// be rebuilt without the CA key.
			name: "hardway kubeconfig of an existing certificate", profile: catalog.Hardway, ca: "ca",
			remove:  func(_ *catalog.Plan, st store.Store) []string { return []string{st.KubeconfigPath("admin.kubeconfig")} },
			created: []string{"kubeconfig/admin"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			plan := pkitest.Plan(t, tc.profile, nil)
			st, root := pkitest.Store(t, tc.profile)
			mustApply(t, plan, st, testNow, Options{})
			caSpec, _ := plan.Cert(tc.ca)
			mustRemove(t, st.KeyPath(caSpec.Path))
			mustRemove(t, tc.remove(plan, st)...)
			ageFiles(t, root)
			before := snapshot(t, root)

			ss := byID(Examine(plan, st, testNow))
			if s := ss["ca/"+tc.ca]; s.State != External || s.KeyPresent ||
				!slices.Equal(s.Findings, []string{"CA key absent: external CA, certificates it signs cannot be issued here"}) {
				t.Errorf("CA: state %s, KeyPresent %v, findings %q", s.State, s.KeyPresent, s.Findings)
			}
			missing := append([]string{tc.failed}, tc.created...)
			for _, m := range missing {
				if m == "" {
					continue
				}
				if s := ss[m]; s.State != Missing {
					t.Errorf("%s: state %s before Apply, want missing", m, s.State)
				}
			}

			rs := mustApply(t, plan, st, testNow, Options{})
			states := map[string]State{"ca/" + tc.ca: External}
			actions := map[string]Action{}
			if tc.failed != "" {
				states[tc.failed], actions[tc.failed] = Invalid, Failed
			}
			for _, c := range tc.created {
				actions[c] = Created
			}
			checkStates(t, statuses(rs), Valid, states)
			checkActions(t, rs, Kept, actions)
			if tc.failed != "" {
				r := byID(rs)[tc.failed]
				_, name, _ := strings.Cut(tc.failed, "/")
				if len(r.Findings) != 1 || !containsAll(r.Findings[0], "external CA", st.KeyPath(caSpec.Path)+" is absent", "generate-csr "+name) {
					t.Errorf("%s findings %q, want one naming the external CA, its absent key and the CSR route", tc.failed, r.Findings)
				}
			}
			for _, ca := range tc.otherCAs {
				if s := byID(rs)[ca]; s.State != Valid || !s.KeyPresent {
					t.Errorf("%s: state %s", ca, s.State)
				}
			}
			after := snapshot(t, root)
			for _, c := range tc.created {
				_, name, _ := strings.Cut(c, "/")
				k, _ := plan.Kubeconfig(name)
				rel := strings.TrimPrefix(st.KubeconfigPath(k.File), root+"/")
				if _, ok := after[rel]; !ok {
					t.Errorf("%s not created", rel)
				}
				delete(after, rel)
			}
			// Nothing else written: no half pair for the failed item.
			assertUnchanged(t, before, after)
			if len(tc.created) > 0 {
				checkStates(t, Examine(plan, st, testNow), Valid, map[string]State{"ca/" + tc.ca: External})
			}
		})
	}
}

// TestExamineExpired: time alone makes certificates expired, or not yet
// valid; Apply then leaves them.
func TestExamineExpired(t *testing.T) {
	plan := pkitest.Plan(t, catalog.Kubeadm, nil)
	st, root := pkitest.Store(t, catalog.Kubeadm)
	mustApply(t, plan, st, testNow, Options{})

	// Every item with a certificate: CAs, leaves, and the kubeconfigs that
	// carry kubeadm's embedded certificates.
	allCerts, leaves := map[string]State{}, map[string]State{}
	notAfter, notBefore := map[string]time.Time{}, map[string]time.Time{}
	for _, s := range Examine(plan, st, testNow) {
		if s.Kind == KindKeyPair {
			continue
		}
		allCerts[id(s)] = Expired
		if s.Kind != KindCA {
			leaves[id(s)] = Expired
		}
		notAfter[id(s)] = s.NotAfter
		var c *x509.Certificate
		if s.Kind == KindKubeconfig {
			k, _ := plan.Kubeconfig(s.Name)
			c, _, _ = kubeconfigPair(t, st, k)
		} else {
			spec, _ := plan.Cert(s.Name)
			c = readCert(t, st, spec.Path)
		}
		notBefore[id(s)] = c.NotBefore
	}
	// Not yet valid is a wrong clock or a wrong certificate, not expiry.
	notYet := map[string]State{}
	for n := range allCerts {
		notYet[n] = Invalid
	}
	expiredOn := func(n string) string { return "expired on " + notAfter[n].UTC().Format(time.RFC3339) }

	tests := []struct {
		name    string
		now     time.Time
		want    map[string]State
		finding func(n string) string
	}{
		{"far future", testNow.AddDate(50, 0, 0), allCerts, expiredOn},
		{"leaves expired, CAs not", testNow.Add(366 * 24 * time.Hour), leaves, expiredOn},
		{"last second of validity", testNow.Add(365 * 24 * time.Hour), nil, nil},
		{"within the backdate", testNow.Add(-4 * time.Minute), nil, nil},
		{"before NotBefore", testNow.Add(-time.Hour), notYet, func(n string) string {
			return "not yet valid: valid from " + notBefore[n].UTC().Format(time.RFC3339) + " (is this host's clock right?)"
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ss := Examine(plan, st, tc.now)
			checkStates(t, ss, Valid, tc.want)
			for _, s := range ss {
				if _, ok := tc.want[id(s)]; !ok {
					continue
				}
				if want := []string{tc.finding(id(s))}; !slices.Equal(s.Findings, want) {
					t.Errorf("%s: findings %q, want %q", id(s), s.Findings, want)
				}
			}
		})
	}

	t.Run("Apply in the far future", func(t *testing.T) {
		ageFiles(t, root)
		before := snapshot(t, root)
		rs := mustApply(t, plan, st, testNow.AddDate(50, 0, 0), Options{})
		checkStates(t, statuses(rs), Valid, allCerts)
		acts := map[string]Action{}
		for n := range allCerts {
			acts[n] = Untouched
		}
		checkActions(t, rs, Kept, acts) // only sa, a bare key pair, is kept
		assertUnchanged(t, before, snapshot(t, root))
	})

	t.Run("missing leaf under an expired CA", func(t *testing.T) {
		spec, _ := plan.Cert("apiserver-kubelet-client")
		mustRemove(t, st.CertPath(spec.Path), st.KeyPath(spec.Path))
		r := byID(mustApply(t, plan, st, testNow.AddDate(50, 0, 0), Options{}))["cert/apiserver-kubelet-client"]
		if r.Action != Failed || len(r.Findings) != 1 || !strings.Contains(r.Findings[0], `CA "kubernetes" expired on`) {
			t.Errorf("action %s, findings %q; want failed because the CA expired", r.Action, r.Findings)
		}
		if store.Exists(st.KeyPath(spec.Path)) || store.Exists(st.CertPath(spec.Path)) {
			t.Error("files written for a certificate that could not be issued")
		}
	})
}

// TestExamineExpiredHardwayKubeconfig: a hard-way kubeconfig embeds a copy
// of a certificate file, and says so when it expires.
func TestExamineExpiredHardwayKubeconfig(t *testing.T) {
	plan := pkitest.Plan(t, catalog.Hardway, nil)
	st, _ := pkitest.Store(t, catalog.Hardway)
	mustApply(t, plan, st, testNow, Options{})
	admin := readCert(t, st, "admin")
	s := byID(Examine(plan, st, testNow.Add(400*24*time.Hour)))["kubeconfig/admin"]
	want := []string{"embedded client certificate expired on " + admin.NotAfter.UTC().Format(time.RFC3339)}
	if s.State != Expired || !slices.Equal(s.Findings, want) {
		t.Errorf("state %s, findings %q; want expired, %q", s.State, s.Findings, want)
	}
}

// TestExamineInvalid covers the ways a present item is broken, and checks
// that Apply leaves every one of them as it is.
func TestExamineInvalid(t *testing.T) {
	hardwayLeaves := func(state State) map[string]State {
		m := map[string]State{}
		for _, c := range pkitest.Plan(t, catalog.Hardway, nil).Leaves() {
			m["cert/"+c.Name] = state
		}
		return m
	}
	hardwayKubeconfigs := func(m map[string]State, state State) map[string]State {
		for _, k := range pkitest.Plan(t, catalog.Hardway, nil).Kubeconfigs {
			m["kubeconfig/"+k.Name] = state
		}
		return m
	}
	tests := []struct {
		name    string
		profile catalog.Profile
		breakIt func(t *testing.T, plan *catalog.Plan, st store.Store)
		want    map[string]State
		// findings per item; {dir} is replaced by st.Dir.
		findings map[string][]string
		// actions other than Untouched for broken items and Kept for others.
		actions map[string]Action
	}{
		{
			name: "leaf signed by another CA", profile: catalog.Hardway,
			breakIt: func(t *testing.T, plan *catalog.Plan, st store.Store) {
				// Same name, same profile, different key: only the signature tells.
				spec, _ := plan.Cert("service-accounts")
				caSpec, _ := plan.Cert("ca")
				other, err := pki.NewCA(pkitest.Key(t, pki.ECDSAP256), caSpec.Profile, testNow)
				if err != nil {
					t.Fatal(err)
				}
				key := pkitest.Key(t, pki.ECDSAP256)
				cert, err := other.Issue(key.Public(), spec.Profile, testNow)
				if err != nil {
					t.Fatal(err)
				}
				writePair(t, st, spec.Path, cert, key)
			},
			want:     map[string]State{"cert/service-accounts": Invalid},
			findings: map[string][]string{"cert/service-accounts": {"not signed by CA ca (ca.crt)"}},
		},
		{
			// The kubeconfig embedding the replaced certificate notices too.
			name: "leaf with a kubeconfig replaced by another CA's", profile: catalog.Hardway,
			breakIt: func(t *testing.T, plan *catalog.Plan, st store.Store) {
				spec, _ := plan.Cert("admin")
				caSpec, _ := plan.Cert("ca")
				other, err := pki.NewCA(pkitest.Key(t, pki.ECDSAP256), caSpec.Profile, testNow)
				if err != nil {
					t.Fatal(err)
				}
				key := pkitest.Key(t, pki.ECDSAP256)
				cert, err := other.Issue(key.Public(), spec.Profile, testNow)
				if err != nil {
					t.Fatal(err)
				}
				writePair(t, st, spec.Path, cert, key)
			},
			want: map[string]State{"cert/admin": Invalid, "kubeconfig/admin": Drifted},
			findings: map[string][]string{
				"cert/admin":       {"not signed by CA ca (ca.crt)"},
				"kubeconfig/admin": {"embedded client certificate is not the current {dir}/admin.crt"},
			},
		},
		{
			name: "etcd leaf signed by the cluster CA", profile: catalog.Kubeadm,
			breakIt: func(t *testing.T, plan *catalog.Plan, st store.Store) {
				spec, _ := plan.Cert("etcd-peer")
				caSpec, _ := plan.Cert("ca")
				ca, err := st.ReadCA(caSpec.Path)
				if err != nil {
					t.Fatal(err)
				}
				key := readKey(t, st, spec.Path)
				cert, err := ca.Issue(key.Public(), spec.Profile, testNow)
				if err != nil {
					t.Fatal(err)
				}
				pkitest.WriteFile(t, st.CertPath(spec.Path), pki.EncodeCert(cert), 0o644)
			},
			want:     map[string]State{"cert/etcd-peer": Invalid},
			findings: map[string][]string{"cert/etcd-peer": {"not signed by CA etcd-ca (etcd/ca.crt)"}},
		},
		{
			name: "leaf key mismatch", profile: catalog.Hardway,
			breakIt: func(t *testing.T, plan *catalog.Plan, st store.Store) {
				pkitest.WriteFile(t, st.KeyPath("kube-api-server"), pkitest.EncodeKey(t, pkitest.Key(t, pki.ECDSAP256)), 0o600)
			},
			want:     map[string]State{"cert/kube-api-server": Invalid},
			findings: map[string][]string{"cert/kube-api-server": {"private key does not match the certificate"}},
		},
		{
			name: "kubeconfig key mismatch", profile: catalog.Kubeadm,
			breakIt: func(t *testing.T, plan *catalog.Plan, st store.Store) {
				k, _ := plan.Kubeconfig("scheduler.conf")
				cert, _, _ := kubeconfigPair(t, st, k)
				rewriteKubeconfigKey(t, st, k, cert, pkitest.Key(t, pki.ECDSAP256))
			},
			want:     map[string]State{"kubeconfig/scheduler.conf": Invalid},
			findings: map[string][]string{"kubeconfig/scheduler.conf": {"private key does not match the certificate"}},
		},
		{
			name: "CA key mismatch", profile: catalog.Kubeadm,
			breakIt: func(t *testing.T, plan *catalog.Plan, st store.Store) {
				pkitest.WriteFile(t, st.KeyPath("front-proxy-ca"), pkitest.EncodeKey(t, pkitest.Key(t, pki.ECDSAP256)), 0o600)
				// And a leaf of that CA is missing: it cannot be issued.
				mustRemove(t, st.CertPath("front-proxy-client"), st.KeyPath("front-proxy-client"))
			},
			want: map[string]State{"ca/front-proxy-ca": Invalid, "cert/front-proxy-client": Missing},
			findings: map[string][]string{
				"ca/front-proxy-ca":       {"private key does not match the certificate"},
				"cert/front-proxy-client": {"certificate missing"},
			},
			actions: map[string]Action{"cert/front-proxy-client": Failed},
		},
		{
			name: "leaf key absent", profile: catalog.Hardway,
			breakIt: func(t *testing.T, plan *catalog.Plan, st store.Store) {
				mustRemove(t, st.KeyPath("kube-scheduler"))
			},
			want:     map[string]State{"cert/kube-scheduler": Invalid},
			findings: map[string][]string{"cert/kube-scheduler": {"private key {dir}/kube-scheduler.key missing"}},
		},
		{
			name: "unreadable certificate", profile: catalog.Hardway,
			breakIt: func(t *testing.T, plan *catalog.Plan, st store.Store) {
				pkitest.WriteFile(t, st.CertPath("admin"), []byte("not PEM"), 0o644)
			},
			want:     map[string]State{"cert/admin": Invalid},
			findings: map[string][]string{"cert/admin": {"read {dir}/admin.crt: no PEM certificate found"}},
		},
		{
			name: "unreadable key, certificate missing", profile: catalog.Hardway,
			breakIt: func(t *testing.T, plan *catalog.Plan, st store.Store) {
				mustRemove(t, st.CertPath("admin"))
				pkitest.WriteFile(t, st.KeyPath("admin"), []byte("not PEM"), 0o600)
			},
			want:     map[string]State{"cert/admin": Invalid},
			findings: map[string][]string{"cert/admin": {"read {dir}/admin.key: no PEM private key found"}},
		},
		{
			name: "unreadable kubeconfig", profile: catalog.Kubeadm,
			breakIt: func(t *testing.T, plan *catalog.Plan, st store.Store) {
				pkitest.WriteFile(t, st.KubeconfigPath("admin.conf"), []byte("{not yaml: ["), 0o600)
			},
			want: map[string]State{"kubeconfig/admin.conf": Invalid},
		},
		{
			name: "sa.pub does not match sa.key", profile: catalog.Kubeadm,
			breakIt: func(t *testing.T, plan *catalog.Plan, st store.Store) {
				pub, err := pki.EncodePublicKey(pkitest.Key(t, pki.ECDSAP256).Public())
				if err != nil {
					t.Fatal(err)
				}
				pkitest.WriteFile(t, st.PubPath("sa"), pub, 0o644)
			},
			want:     map[string]State{"keypair/sa": Invalid},
			findings: map[string][]string{"keypair/sa": {"{dir}/sa.pub does not match {dir}/sa.key"}},
		},
		{
			name: "CA not self-signed", profile: catalog.Hardway,
			breakIt: func(t *testing.T, plan *catalog.Plan, st store.Store) {
				// The CA's own key and profile, but signed by someone else.
				caSpec, _ := plan.Cert("ca")
				key := readKey(t, st, caSpec.Path)
				root, err := pki.NewCA(pkitest.Key(t, pki.ECDSAP256), caSpec.Profile, testNow)
				if err != nil {
					t.Fatal(err)
				}
				cert, err := root.Issue(key.Public(), caSpec.Profile, testNow)
				if err != nil {
					t.Fatal(err)
				}
				pkitest.WriteFile(t, st.CertPath(caSpec.Path), pki.EncodeCert(cert), 0o644)
			},
			// The kubeconfigs carry the old CA certificate.
			want: hardwayKubeconfigs(map[string]State{"ca/ca": Invalid}, Drifted),
			findings: map[string][]string{
				"ca/ca":            {"CA certificate is not self-signed"},
				"kubeconfig/admin": {"certificate-authority-data does not contain CA ca"},
			},
		},
		{
			name: "leaf outlives its CA", profile: catalog.Hardway,
			breakIt: func(t *testing.T, plan *catalog.Plan, st store.Store) {
				// Re-make the CA certificate, same key and name, valid 30 days:
				// the leaves still chain but outlive it.
				caSpec, _ := plan.Cert("ca")
				p := caSpec.Profile
				p.Validity = 30 * 24 * time.Hour
				ca, err := pki.NewCA(readKey(t, st, caSpec.Path), p, testNow)
				if err != nil {
					t.Fatal(err)
				}
				pkitest.WriteFile(t, st.CertPath(caSpec.Path), pki.EncodeCert(ca.Cert), 0o644)
			},
			want: hardwayKubeconfigs(hardwayLeaves(Drifted), Drifted),
			findings: map[string][]string{
				"cert/admin": {fmt.Sprintf("outlives its CA: NotAfter %s is after the CA's %s",
					testNow.Add(365*24*time.Hour).Format(time.RFC3339), testNow.Add(30*24*time.Hour).Format(time.RFC3339))},
				"kubeconfig/admin": {"certificate-authority-data does not contain CA ca"},
			},
		},
		{
			name: "CA certificate missing, leaves present", profile: catalog.Hardway,
			breakIt: func(t *testing.T, plan *catalog.Plan, st store.Store) {
				mustRemove(t, st.CertPath("ca"))
			},
			want: func() map[string]State {
				m := hardwayLeaves(Invalid)
				m["ca/ca"] = Missing
				return m
			}(),
			findings: map[string][]string{
				"ca/ca":      {"certificate missing; existing key {dir}/ca.key will be reused"},
				"cert/admin": {"signing CA ca.crt unreadable or missing"},
			},
			// Apply makes a CA certificate for the old key; the leaves are left,
			// and the kubeconfigs, whose CA data is now stale, are reported in
			// the same run.
			actions: map[string]Action{"ca/ca": Created,
				"kubeconfig/node-0": Untouched, "kubeconfig/node-1": Untouched, "kubeconfig/kube-proxy": Untouched,
				"kubeconfig/kube-controller-manager": Untouched, "kubeconfig/kube-scheduler": Untouched, "kubeconfig/admin": Untouched},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			plan := pkitest.Plan(t, tc.profile, nil)
			st, root := pkitest.Store(t, tc.profile)
			mustApply(t, plan, st, testNow, Options{})
			tc.breakIt(t, plan, st)

			ss := Examine(plan, st, testNow)
			checkStates(t, ss, Valid, tc.want)
			for _, s := range ss {
				want, ok := tc.findings[id(s)]
				if !ok {
					continue
				}
				var w []string
				for _, f := range want {
					w = append(w, strings.ReplaceAll(f, "{dir}", st.Dir))
				}
				if !slices.Equal(s.Findings, w) {
					t.Errorf("%s: findings\n%q\nwant\n%q", id(s), s.Findings, w)
				}
			}

			ageFiles(t, root)
			before := snapshot(t, root)
			rs := mustApply(t, plan, st, testNow, Options{})
			acts := map[string]Action{}
			for n := range tc.want {
				acts[n] = Untouched
			}
			for n, a := range tc.actions {
				acts[n] = a
			}
			checkActions(t, rs, Kept, acts)
			after := snapshot(t, root)
			// Only what Apply reports as created may have appeared.
			for _, r := range rs {
				if r.Action == Created {
					spec, _ := plan.Cert(r.Name)
					delete(after, strings.TrimPrefix(st.CertPath(spec.Path), root+"/"))
				}
			}
			assertUnchanged(t, before, after)
			for _, r := range rs {
				if r.Action == Failed {
					if len(r.Findings) != 1 || !strings.Contains(r.Findings[0], "is unusable") {
						t.Errorf("%s: failed with %q, want the CA named unusable", id(r.Status), r.Findings)
					}
				}
			}
		})
	}
}

// TestRank: a status shows its worst finding, and a status not yet given
// a state takes the state of its first finding.
func TestRank(t *testing.T) {
	order := []State{"", Valid, External, Missing, Drifted, Expired, Invalid}
	for i := 1; i < len(order); i++ {
		if rank(order[i-1]) >= rank(order[i]) {
			t.Errorf("rank(%q) = %d, not below rank(%q) = %d", order[i-1], rank(order[i-1]), order[i], rank(order[i]))
		}
	}
	for _, first := range order[1:] {
		var s Status
		s.bad(first, "first")
		if s.State != first {
			t.Errorf("fresh status after bad(%s): state %q", first, s.State)
		}
		s.bad(Valid, "milder")
		if s.State != first {
			t.Errorf("bad(valid) lowered %s to %s", first, s.State)
		}
		if !slices.Equal(s.Findings, []string{"first", "milder"}) {
			t.Errorf("findings %q", s.Findings)
		}
	}
}
