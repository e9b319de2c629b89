package report

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/lifecycle"
	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/pkitest"
	"kubepki.dev/kubepki/internal/reconcile"
	"kubepki.dev/kubepki/internal/resolve"
	"kubepki.dev/kubepki/internal/store"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// pkiDir makes the whole PKI of the default spec in a profile, at now.
func pkiDir(t *testing.T, profile catalog.Profile) (*cluster.Cluster, *catalog.Plan, store.Store) {
	t.Helper()
	c := pkitest.Spec(nil)
	plan, err := catalog.New(c, profile)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := pkitest.Store(t, profile)
	if _, err := reconcile.Apply(context.Background(), plan, st, testNow, reconcile.Options{}); err != nil {
		t.Fatal(err)
	}
	return c, plan, st
}

// build reports on a directory as kubepki report does.
func build(t *testing.T, c *cluster.Cluster, plan *catalog.Plan, st store.Store, extra ...Finding) *Report {
	t.Helper()
	audit := st
	audit.Keys = store.KeyPolicy{Insecure: true}
	return Build(Input{
		Cluster: c, Model: resolve.Resolve(plan, audit),
		Statuses:    reconcile.Examine(plan, st, testNow),
		Permissions: reconcile.Permissions(plan, st),
		Findings:    extra, Now: testNow, WarnWithin: lifecycle.DefaultWarnWithin,
	})
}

// reissue replaces a certificate of the store with one its CA signs for
// the same key, changed by mutate (a short validity, another CN).
func reissue(t *testing.T, st store.Store, name, caName string, plan *catalog.Plan, mutate func(*pki.Profile)) {
	t.Helper()
	spec, _ := plan.Cert(name)
	ca, err := st.ReadCA(caName)
	if err != nil {
		t.Fatal(err)
	}
	key, err := st.ReadKey(spec.Path)
	if err != nil {
		t.Fatal(err)
	}
	p := spec.Profile
	mutate(&p)
	cert := pkitest.Issue(t, ca, key.Public(), p, testNow)
	if err := store.Replace(st.CertPath(spec.Path), pki.EncodeCert(cert), 0o644); err != nil {
		t.Fatal(err)
	}
}

// realistic is the default hard-way PKI with one certificate expiring in
// 11 days (kube-scheduler, renewed short) and one key that is not its
// certificate's (kube-proxy).
func realistic(t *testing.T) (*cluster.Cluster, *catalog.Plan, store.Store) {
	t.Helper()
	c, plan, st := pkiDir(t, catalog.Hardway)
	// Renewed as kubepki certs renew --validity 11d does: the certificate
	// and the kubeconfig that carries it.
	if _, err := lifecycle.Renew(plan, st, lifecycle.RenewOptions{Names: []string{"kube-scheduler"}, Validity: 11 * 24 * time.Hour, Now: testNow}); err != nil {
		t.Fatal(err)
	}
	other := pkitest.Key(t, pki.ECDSAP256)
	if err := store.Replace(st.KeyPath("kube-proxy"), pkitest.EncodeKey(t, other), 0o600); err != nil {
		t.Fatal(err)
	}
	return c, plan, st
}

func ids(g Graph) []string {
	var out []string
	for _, n := range g.Nodes {
		out = append(out, n.ID)
	}
	return out
}

func TestGraph(t *testing.T) {
	tests := []struct {
		profile catalog.Profile
		nodes   []string
		edges   []Edge
		// absent are edges that must not be there.
		absent []Edge
	}{
		{
			profile: catalog.Hardway,
			nodes: []string{"ca:ca", "cert:admin", "cert:node-0", "cert:node-1", "cert:kube-proxy", "cert:kube-scheduler",
				"cert:kube-controller-manager", "cert:kube-api-server", "cert:service-accounts",
				"kubeconfig:node-0", "kubeconfig:node-1", "kubeconfig:kube-proxy", "kubeconfig:kube-controller-manager",
				"kubeconfig:kube-scheduler", "kubeconfig:admin",
				"component:server/etcd", "component:server/kube-apiserver", "component:server/kube-controller-manager",
				"component:server/kube-scheduler", "component:node-0/kubelet", "component:node-0/kube-proxy",
				"component:node-1/kubelet", "component:node-1/kube-proxy",
				"node:server", "node:node-0", "node:node-1"},
			edges: []Edge{
				{"ca:ca", "cert:kube-scheduler", Signs},
				{"cert:kube-scheduler", "kubeconfig:kube-scheduler", Embeds},
				{"kubeconfig:kube-scheduler", "component:server/kube-scheduler", Uses},
				{"cert:kube-api-server", "component:server/kube-apiserver", Uses},
				// The hard way's etcd serves with the API server's certificate.
				{"cert:kube-api-server", "component:server/etcd", Uses},
				{"cert:service-accounts", "component:server/kube-controller-manager", Uses},
				{"ca:ca", "component:node-0/kubelet", Uses},
				{"cert:node-0", "component:node-0/kubelet", Uses},
				{"kubeconfig:kube-proxy", "component:node-1/kube-proxy", Uses},
				{"component:server/kube-apiserver", "node:server", RunsOn},
				{"component:node-1/kubelet", "node:node-1", RunsOn},
				// A person's kubectl: on the node, read by no component.
				{"kubeconfig:admin", "node:server", InstalledOn},
			},
			absent: []Edge{
				{"cert:node-0", "component:node-1/kubelet", Uses},
				{"kubeconfig:admin", "component:server/kube-apiserver", Uses},
			},
		},
		{
			profile: catalog.Kubeadm,
			nodes: []string{"ca:ca", "ca:etcd-ca", "ca:front-proxy-ca", "cert:apiserver", "cert:apiserver-kubelet-client",
				"cert:front-proxy-client", "cert:etcd-server", "cert:etcd-peer", "cert:etcd-healthcheck-client",
				"cert:apiserver-etcd-client", "cert:admin.conf", "cert:super-admin.conf", "cert:controller-manager.conf",
				"cert:scheduler.conf", "cert:kubelet-server.conf", "keypair:sa",
				"kubeconfig:admin.conf", "kubeconfig:scheduler.conf", "kubeconfig:kubelet-node-0.conf",
				"component:server/etcd", "component:server/kube-apiserver", "component:server/kubelet", "component:node-0/kubelet",
				"node:server", "node:node-0", "node:node-1"},
			edges: []Edge{
				{"ca:etcd-ca", "cert:etcd-server", Signs},
				{"ca:front-proxy-ca", "cert:front-proxy-client", Signs},
				{"ca:ca", "cert:admin.conf", Signs},
				{"cert:admin.conf", "kubeconfig:admin.conf", Embeds},
				{"cert:etcd-server", "component:server/etcd", Uses},
				{"cert:apiserver-etcd-client", "component:server/kube-apiserver", Uses},
				{"ca:front-proxy-ca", "component:server/kube-apiserver", Uses},
				{"keypair:sa", "component:server/kube-apiserver", Uses},
				{"keypair:sa", "component:server/kube-controller-manager", Uses},
				{"kubeconfig:scheduler.conf", "component:server/kube-scheduler", Uses},
				{"kubeconfig:kubelet-node-0.conf", "component:node-0/kubelet", Uses},
				{"kubeconfig:super-admin.conf", "node:server", InstalledOn},
			},
			absent: []Edge{
				{"cert:etcd-server", "component:server/kube-apiserver", Uses},
				{"kubeconfig:kubelet-node-0.conf", "component:server/kubelet", Uses},
			},
		},
	}
	for _, tc := range tests {
		t.Run(string(tc.profile), func(t *testing.T) {
			c, plan, st := pkiDir(t, tc.profile)
			r := build(t, c, plan, st)
			got := ids(r.Graph)
			for _, id := range tc.nodes {
				if !slices.Contains(got, id) {
					t.Errorf("graph has no node %s; it has %v", id, got)
				}
			}
			for _, e := range tc.edges {
				if !slices.Contains(r.Graph.Edges, e) {
					t.Errorf("graph has no edge %s -%s-> %s", e.From, e.Kind, e.To)
				}
			}
			for _, e := range tc.absent {
				if slices.Contains(r.Graph.Edges, e) {
					t.Errorf("graph has edge %s -%s-> %s", e.From, e.Kind, e.To)
				}
			}
			for _, e := range r.Graph.Edges {
				f, _ := r.Graph.Node(e.From)
				to, _ := r.Graph.Node(e.To)
				if f.Kind.Column() >= to.Kind.Column() {
					t.Errorf("edge %s -> %s does not go left to right", e.From, e.To)
				}
			}
			for _, n := range r.Graph.Nodes {
				if n.State != OK {
					t.Errorf("fresh PKI: %s is %s", n.ID, n.State)
				}
			}
			if r.Counts.Findings != 0 || r.Counts.OK != len(r.Certificates) {
				t.Errorf("fresh PKI: counts %+v for %d certificates; findings %v", r.Counts, len(r.Certificates), r.Findings)
			}
		})
	}
}

// TestStates: an expiring certificate and a key mismatch are counted,
// coloured, propagated to what uses them, and each has its fix.
func TestStates(t *testing.T) {
	c, plan, st := realistic(t)
	r := build(t, c, plan, st)
	want := Counts{OK: 7, Expiring: 1, Findings: 1, Warnings: 1}
	if r.Counts != want {
		t.Errorf("counts %+v, want %+v", r.Counts, want)
	}
	states := map[string]State{
		"cert:kube-scheduler":             Expiring,
		"kubeconfig:kube-scheduler":       Expiring, // renew rewrote its copy
		"component:server/kube-scheduler": Expiring,
		"cert:kube-proxy":                 Flagged,
		"cert:admin":                      OK,
		"ca:ca":                           OK,
	}
	for id, want := range states {
		n, _ := r.Graph.Node(id)
		if n.State != want {
			t.Errorf("%s is %q, want %q", id, n.State, want)
		}
	}
	var fixes []string
	for _, f := range r.Findings {
		fixes = append(fixes, f.Source+"|"+f.Subject+"|"+f.Message+"|"+f.Fix)
	}
	joined := strings.Join(fixes, "\n")
	for _, want := range []string{
		"verify|" + st.CertPath("kube-proxy") + "|invalid: private key does not match the certificate|",
		"kubepki certs renew kube-proxy --dir " + st.Dir,
		"restart kube-proxy on node-0, kube-proxy on node-1",
		"expiry|" + st.CertPath("kube-scheduler") + "|expires ",
		"kubepki certs renew kube-scheduler --dir " + st.Dir,
		"restart kube-scheduler on server",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("findings lack %q:\n%s", want, joined)
		}
	}
	if r.Findings[0].Warning || !r.Findings[len(r.Findings)-1].Warning {
		t.Errorf("findings are not before warnings: %+v", r.Findings)
	}

	// An expired leaf: state expired, and what uses it turns red.
	r = Build(Input{Cluster: c, Model: resolve.Resolve(plan, st), Statuses: reconcile.Examine(plan, st, testNow.Add(12*24*time.Hour)),
		Now: testNow.Add(12 * 24 * time.Hour), WarnWithin: lifecycle.DefaultWarnWithin})
	for id, want := range map[string]State{"cert:kube-scheduler": Expired, "component:server/kube-scheduler": Expired, "node:server": Expired} {
		n, _ := r.Graph.Node(id)
		if n.State != want {
			t.Errorf("12 days on: %s is %q, want %q", id, n.State, want)
		}
	}
	if r.Counts.Expired != 1 {
		t.Errorf("12 days on: counts %+v, want 1 expired", r.Counts)
	}
}

// TestPropagation: a component that reads a troubled kubeconfig, and its
// node, take its state.
func TestPropagation(t *testing.T) {
	c, plan, st := pkiDir(t, catalog.Hardway)
	// The kube-scheduler kubeconfig's embedded certificate, expired.
	later := testNow.Add(400 * 24 * time.Hour)
	r := Build(Input{Cluster: c, Model: resolve.Resolve(plan, st), Statuses: reconcile.Examine(plan, st, later),
		Now: later, WarnWithin: lifecycle.DefaultWarnWithin})
	for id, want := range map[string]State{
		"kubeconfig:kube-scheduler":       Expired,
		"component:server/kube-scheduler": Expired,
		"node:server":                     Expired,
		"ca:ca":                           OK,
	} {
		n, _ := r.Graph.Node(id)
		if n.State != want {
			t.Errorf("%s is %q, want %q", id, n.State, want)
		}
	}
}

func TestTimelineOrder(t *testing.T) {
	c, plan, st := realistic(t)
	r := build(t, c, plan, st)
	rows := timelineRows(r.Certificates)
	if len(rows) != len(r.Certificates) {
		t.Fatalf("%d timeline rows for %d certificates", len(rows), len(r.Certificates))
	}
	if rows[0].Name != "kube-scheduler" || rows[len(rows)-1].Name != "ca" {
		t.Errorf("timeline from %s to %s, want kube-scheduler (soonest) to ca", rows[0].Name, rows[len(rows)-1].Name)
	}
	for i := 1; i < len(rows); i++ {
		if rows[i].NotAfter.Before(rows[i-1].NotAfter) {
			t.Errorf("row %d (%s) expires before row %d (%s)", i, rows[i].Name, i-1, rows[i-1].Name)
		}
	}
	l := layoutTimeline(r.Certificates, testNow)
	if l.NowX <= l.AxisLeft || l.NowX >= l.AxisRight {
		t.Errorf("now at %.1f, outside the axis %.1f–%.1f", l.NowX, l.AxisLeft, l.AxisRight)
	}
	last := l.Rows[len(l.Rows)-1]
	if !last.Clipped || last.X1 > l.AxisRight {
		t.Errorf("the CA's bar (10 years) should be clipped at the axis end: %+v", last)
	}
	if len(l.Ticks) < 3 || len(l.Ticks) > 11 {
		t.Errorf("%d ticks: %+v", len(l.Ticks), l.Ticks)
	}
}

// TestEscaping: a certificate whose CN is markup, and a finding from
// another source with markup, stay text in the page.
func TestEscaping(t *testing.T) {
	c, plan, st := pkiDir(t, catalog.Hardway)
	const cn = `<script>alert("cn")</script>`
	reissue(t, st, "admin", "ca", plan, func(p *pki.Profile) { p.Subject.CommonName = cn })
	r := build(t, c, plan, st, Finding{Source: "live", Subject: `<img src=x onerror=alert(1)>`, Message: `</td><b>bold</b>`, Fix: `"><script>alert(2)</script>`})
	var buf bytes.Buffer
	if err := HTML(&buf, r); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, bad := range []string{"<script", "<img", "<b>bold"} {
		if strings.Contains(strings.ToLower(page), bad) {
			i := strings.Index(strings.ToLower(page), bad)
			t.Errorf("page holds %q unescaped: …%s…", bad, page[max(0, i-80):min(len(page), i+80)])
		}
	}
	for _, want := range []string{"&lt;script&gt;alert(&#34;cn&#34;)&lt;/script&gt;", "&lt;img src=x onerror=alert(1)&gt;"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks the escaped text %q", want)
		}
	}
}

// TestNoPrivateKey: neither the page nor the model holds a private key,
// in PEM or as any part of a key file's base64 body, or a kubeconfig's
// client-key-data.
func TestNoPrivateKey(t *testing.T) {
	for _, profile := range catalog.Profiles() {
		t.Run(string(profile), func(t *testing.T) {
			c, plan, st := pkiDir(t, profile)
			r := build(t, c, plan, st)
			var page bytes.Buffer
			if err := HTML(&page, r); err != nil {
				t.Fatal(err)
			}
			model, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			secrets := keyMaterial(t, filepath.Dir(st.Dir))
			if len(secrets) == 0 {
				t.Fatal("found no key material to look for")
			}
			for name, out := range map[string][]byte{"page": page.Bytes(), "model": model} {
				if bytes.Contains(out, []byte("PRIVATE KEY")) {
					t.Errorf("%s holds a PEM private key", name)
				}
				for _, s := range secrets {
					if bytes.Contains(out, []byte(s)) {
						t.Errorf("%s holds key material %q…", name, s[:16])
					}
				}
			}
		})
	}
}

var keyDataRe = regexp.MustCompile(`client-key-data: (\S+)`)

// keyMaterial is every 24-character run of the base64 bodies of the key
// files under root, and of the kubeconfigs' client-key-data.
func keyMaterial(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	chunks := func(s string) {
		for i := 0; i+24 <= len(s); i += 24 {
			out = append(out, s[i:i+24])
		}
	}
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		switch {
		case strings.HasSuffix(path, ".key"):
			var body strings.Builder
			for _, l := range strings.Split(string(data), "\n") {
				if !strings.HasPrefix(l, "-----") {
					body.WriteString(l)
				}
			}
			chunks(body.String())
		default:
			for _, m := range keyDataRe.FindAllStringSubmatch(string(data), -1) {
				chunks(m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestExpiresIn(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{364 * 24 * time.Hour, "in 364 days"},
		{30 * time.Hour, "in 30 h"},
		{-3 * 24 * time.Hour, "expired 3 days ago"},
		{10 * time.Minute, "in 10 min"},
	}
	for _, tc := range tests {
		if got := ExpiresIn(testNow.Add(tc.d), testNow); got != tc.want {
			t.Errorf("ExpiresIn(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}
