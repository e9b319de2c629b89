package adopt

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/kubeconfig"
	"kubepki.dev/kubepki/internal/openssltest"
	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/pkitest"
	"kubepki.dev/kubepki/internal/reconcile"
	"kubepki.dev/kubepki/internal/store"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestServiceCIDR(t *testing.T) {
	tests := []struct {
		ip, cidr, why, err string
	}{
		{"10.96.0.1", "10.96.0.0/12", "kubeadm", ""},
		{"10.32.0.1", "10.32.0.0/24", "Hard Way", ""},
		{"172.20.0.1", "172.20.0.0/24", "smallest network", ""},
		{"10.100.0.1", "10.100.0.0/24", "smallest network", ""},
		{"10.0.0.129", "10.0.0.128/25", "smallest network", ""},
		{"10.0.0.5", "10.0.0.4/30", "smallest network", ""},
		{"fd00:10:96::1", "fd00:10:96::/112", "smallest network", ""},
		{"10.0.0.0", "", "", "first address of no network"},
		{"10.0.0.4", "", "", "first address of no network"},
		{"0.0.0.0", "", "", "first address of no network"},
	}
	for _, tc := range tests {
		t.Run(tc.ip, func(t *testing.T) {
			cidr, why, err := ServiceCIDR(net.ParseIP(tc.ip))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || cidr != tc.cidr || !strings.Contains(why, tc.why) {
				t.Fatalf("ServiceCIDR = %q, %q, %v; want %q, %q", cidr, why, err, tc.cidr, tc.why)
			}
			// The guess must give back the address it came from.
			if got, err := cluster.ServiceIP(cidr); err != nil || !got.Equal(net.ParseIP(tc.ip)) {
				t.Errorf("ServiceIP(%s) = %v, %v; want %s", cidr, got, err, tc.ip)
			}
		})
	}
}

func TestLifetime(t *testing.T) {
	start := now.Add(-pki.Backdate)
	tests := []struct {
		name string
		life time.Duration
		want time.Duration
	}{
		{"kubeadm leaf, backdated 5m", 365*24*time.Hour + pki.Backdate, 365 * 24 * time.Hour},
		{"openssl -days 3653", 3653 * 24 * time.Hour, 3653 * 24 * time.Hour},
		{"ten years less a minute", 87600*time.Hour - time.Minute, 87600 * time.Hour},
		{"a few hours", 36*time.Hour + 30*time.Minute + pki.Backdate, 37 * time.Hour},
		{"whole hours", 12 * time.Hour, 12 * time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := pkitest.Issue(t, pkitest.CA(t, "ca", 100*365*24*time.Hour, start), pkitest.Key(t, pki.ECDSAP256).Public(),
				pki.Profile{Subject: pki.Subject{CommonName: "x"}, Validity: time.Hour}, start)
			c.NotBefore, c.NotAfter = start, start.Add(tc.life)
			if got := Lifetime(c); got != tc.want {
				t.Errorf("Lifetime = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestControlPlaneName(t *testing.T) {
	tests := []struct {
		endpoint string
		names    []string
		want     string
	}{
		{"server.kubernetes.local", []string{"server.kubernetes.local", "api-server.kubernetes.local"}, "server"},
		{"10.0.0.10", []string{"cp1.example.com"}, "cp1"},
		{"kubernetes.example.com", []string{"master.example.com"}, "master"},
		{"10.0.0.10", nil, "control-plane"},
		{"Bad_Name.example", nil, "control-plane"},
	}
	for _, tc := range tests {
		t.Run(tc.endpoint, func(t *testing.T) {
			if got := controlPlaneName(tc.endpoint, tc.names); got != tc.want {
				t.Errorf("controlPlaneName = %q, want %q", got, tc.want)
			}
		})
	}
}

// apply writes the plan of spec in profile's layout under a new root and
// returns the store.
func apply(t *testing.T, profile catalog.Profile, spec *cluster.Cluster) store.Store {
	t.Helper()
	plan, err := catalog.New(spec, profile)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := pkitest.Store(t, profile)
	if _, err := reconcile.Apply(context.Background(), plan, st, now, reconcile.Options{}); err != nil {
		t.Fatal(err)
	}
	return st
}

// assertClean examines st against the plan of the inferred spec: every
// item of it is valid.
func assertClean(t *testing.T, r *Result, st store.Store) {
	t.Helper()
	plan, err := catalog.New(r.Spec, r.Profile)
	if err != nil {
		t.Fatalf("plan of the inferred spec: %v", err)
	}
	for _, s := range reconcile.Examine(plan, st, now) {
		if s.State != reconcile.Valid {
			t.Errorf("%s: %s: %v", s.Path, s.State, s.Findings)
		}
	}
}

// TestInferKubepkiDirectories: a directory kubepki wrote from a spec gives
// back a spec whose plan examines clean against it, with the values that
// matter read back.
func TestInferKubepkiDirectories(t *testing.T) {
	off := false
	tests := []struct {
		name    string
		profile catalog.Profile
		mutate  func(*cluster.Cluster)
		check   func(t *testing.T, got *cluster.Cluster)
	}{
		{"hardway default", catalog.Hardway, nil, func(t *testing.T, got *cluster.Cluster) {
			want := cluster.Default()
			eq(t, "name", got.Name, want.Name)
			eq(t, "serviceCIDR", got.ServiceCIDR, "10.32.0.0/24")
			eq(t, "endpoint", got.APIServer.Endpoint, want.APIServer.Endpoint)
			eq(t, "nodes", nodeNames(got), "server[control-plane] node-0[worker] node-1[worker]")
			eq(t, "node-0 ips", strings.Join(got.Nodes[1].IPs, ","), "192.168.10.101")
			eq(t, "node-0 hostnames", strings.Join(got.Nodes[1].Hostnames, ","), "node-0.kubernetes.local")
			eq(t, "server ips", strings.Join(got.Nodes[0].IPs, ","), "192.168.10.100")
			eq(t, "subject", got.Subject, want.Subject)
			eq(t, "validity", got.Validity, want.Validity)
			eq(t, "extraSANs", strings.Join(got.APIServer.ExtraSANs, ","), "api-server.kubernetes.local")
		}},
		{"hardway custom", catalog.Hardway, func(c *cluster.Cluster) {
			c.Name = "prod"
			c.DNSDomain = "corp.example"
			c.ServiceCIDR = "172.20.0.0/16"
			c.APIServer.Endpoint = "10.0.0.10:443"
			c.APIServer.ExtraSANs = []string{"api.example.com"}
			c.KeyAlgorithm = "RSA-2048"
			c.Subject = cluster.Subject{Organization: "Example"}
			c.Users = []cluster.User{{Name: "jane", Groups: []string{"developers", "oncall"}}}
		}, func(t *testing.T, got *cluster.Cluster) {
			eq(t, "name", got.Name, "prod")
			eq(t, "dnsDomain", got.DNSDomain, "corp.example")
			eq(t, "serviceCIDR", got.ServiceCIDR, "172.20.0.0/24") // the prefix is a guess
			eq(t, "keyAlgorithm", got.KeyAlgorithm, "RSA-2048")
			eq(t, "subject", got.Subject, cluster.Subject{Organization: "Example"})
			eq(t, "users", got.Users, []cluster.User{{Name: "jane", Groups: []string{"developers", "oncall"}}})
		}},
		{"kubeadm default", catalog.Kubeadm, nil, func(t *testing.T, got *cluster.Cluster) {
			eq(t, "nodes", nodeNames(got), "server[control-plane] node-0[worker] node-1[worker]")
			eq(t, "server ips", strings.Join(got.Nodes[0].IPs, ","), "192.168.10.100")
			eq(t, "kubernetesVersion", got.KubernetesVersion, "")
			eq(t, "separate CAs", got.SeparateEtcdCA() && got.SeparateFrontProxyCA(), true)
		}},
		{"kubeadm two control planes, one CA, Ed25519, v1.28", catalog.Kubeadm, func(c *cluster.Cluster) {
			c.CertificateAuthorities.Etcd, c.CertificateAuthorities.FrontProxy = &off, &off
			c.KeyAlgorithm = "Ed25519"
			c.KubernetesVersion = "v1.28"
			c.ServiceCIDR = "10.96.0.0/12"
			c.Nodes[1].Roles = []cluster.Role{cluster.RoleControlPlane}
		}, func(t *testing.T, got *cluster.Cluster) {
			eq(t, "nodes", nodeNames(got), "server[control-plane] node-0[control-plane] node-1[worker]")
			eq(t, "node-0 ips", strings.Join(got.Nodes[1].IPs, ","), "192.168.10.101")
			eq(t, "kubernetesVersion", got.KubernetesVersion, "v1.28")
			eq(t, "keyAlgorithm", got.KeyAlgorithm, "Ed25519")
			eq(t, "serviceCIDR", got.ServiceCIDR, "10.96.0.0/12")
			eq(t, "separate CAs", got.SeparateEtcdCA() || got.SeparateFrontProxyCA(), false)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := apply(t, tc.profile, pkitest.Spec(tc.mutate))
			r, err := Infer(st.Dir, "")
			if err != nil {
				t.Fatal(err)
			}
			if r.Profile != tc.profile {
				t.Fatalf("profile = %s, want %s", r.Profile, tc.profile)
			}
			assertClean(t, r, st)
			tc.check(t, r.Spec)
			if !slices.ContainsFunc(r.Notes, func(n Note) bool { return n.Field == "serviceCIDR" }) {
				t.Errorf("no note on the guessed serviceCIDR prefix: %v", r.Notes)
			}
		})
	}
}

// TestInferKubeadmEra: admin.conf re-issued into system:masters and
// super-admin.conf gone is kubeadm before v1.29; with super-admin.conf
// still there, or admin.conf in kubeadm:cluster-admins, it is not.
func TestInferKubeadmEra(t *testing.T) {
	tests := []struct {
		name        string
		masters     bool
		removeSuper bool
		want        string
	}{
		{"current", false, false, ""},
		{"pre-1.29", true, true, "v1.28"},
		{"admin in system:masters beside super-admin.conf", true, false, ""},
		{"no super-admin.conf, admin in kubeadm:cluster-admins", false, true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := apply(t, catalog.Kubeadm, cluster.Default())
			if tc.masters {
				reissueAdmin(t, st, "system:masters")
			}
			if tc.removeSuper {
				if err := os.Remove(st.KubeconfigPath("super-admin.conf")); err != nil {
					t.Fatal(err)
				}
			}
			r, err := Infer(st.Dir, "")
			if err != nil {
				t.Fatal(err)
			}
			eq(t, "kubernetesVersion", r.Spec.KubernetesVersion, tc.want)
			if tc.masters == tc.removeSuper {
				assertClean(t, r, st)
			}
		})
	}
}

// reissueAdmin re-issues admin.conf's client certificate from the cluster
// CA with the groups given, as kubeadm before v1.29 wrote it.
func reissueAdmin(t *testing.T, st store.Store, groups ...string) {
	t.Helper()
	ca, err := st.ReadCA("ca")
	if err != nil {
		t.Fatal(err)
	}
	path := st.KubeconfigPath("admin.conf")
	cfg, err := kubeconfig.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	key := pkitest.Key(t, pki.ECDSAP256)
	cert := pkitest.Issue(t, ca, key.Public(), pki.Profile{
		Subject: pki.Subject{CommonName: "kubernetes-admin", Organization: groups}, Usages: []pki.Usage{pki.UsageClientAuth}, Validity: 365 * 24 * time.Hour,
	}, now)
	if err := kubeconfig.SetClientPair(cfg, pki.EncodeCert(ca.Cert), pki.EncodeCert(cert), pkitest.EncodeKey(t, key)); err != nil {
		t.Fatal(err)
	}
	if err := kubeconfig.Replace(path, cfg); err != nil {
		t.Fatal(err)
	}
}

func TestDetect(t *testing.T) {
	dir := t.TempDir()
	if _, ok := Detect(dir); ok {
		t.Error("an empty directory holds a PKI")
	}
	if _, ok := Detect(filepath.Join(dir, "absent")); ok {
		t.Error("an absent directory holds a PKI")
	}
	pkitest.WriteCA(t, dir, "ca", pkitest.CA(t, "ca", time.Hour, now))
	if _, ok := Detect(dir); ok {
		t.Error("a directory of only a CA holds a PKI to infer from")
	}
	if _, err := Infer(dir, ""); err == nil || !strings.Contains(err.Error(), "no API server certificate") {
		t.Errorf("Infer on a CA only: %v", err)
	}
	for _, p := range catalog.Profiles() {
		st := apply(t, p, cluster.Default())
		if got, ok := Detect(st.Dir); !ok || got != p {
			t.Errorf("Detect(%s dir) = %s, %v", p, got, ok)
		}
	}
}

func nodeNames(c *cluster.Cluster) string {
	var out []string
	for _, n := range c.Nodes {
		var roles []string
		for _, r := range n.Roles {
			roles = append(roles, string(r))
		}
		out = append(out, n.Name+"["+strings.Join(roles, ",")+"]")
	}
	return strings.Join(out, " ")
}

func eq[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if g, w := fmtAny(got), fmtAny(want); g != w {
		t.Errorf("%s = %s, want %s", what, g, w)
	}
}

func fmtAny(v any) string { return fmt.Sprintf("%+v", v) }

// TestInferTutorialCertificates: the certificates the hard way's openssl
// commands make from the tutorial's ca.conf, before any kubeconfig exists.
// The endpoint then comes from the API server's first name, a noted guess;
// the tutorial's kubernetes.svc.cluster.local is left out, noted.
func TestInferTutorialCertificates(t *testing.T) {
	dir := t.TempDir()
	conf, err := filepath.Abs("../cluster/testdata/caconf/kthw.conf")
	if err != nil {
		t.Fatal(err)
	}
	openssltest.HardWay(t, dir, conf, 2048, "admin", "node-0", "node-1", "kube-proxy", "kube-scheduler", "kube-controller-manager", "kube-api-server", "service-accounts")
	r, err := Infer(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	c := r.Spec
	eq(t, "profile", r.Profile, catalog.Hardway)
	eq(t, "nodes", nodeNames(c), "server[control-plane] node-0[worker] node-1[worker]")
	eq(t, "node-0 ips", len(c.Nodes[1].IPs), 0) // the tutorial's node certificates name 127.0.0.1 only
	eq(t, "server hostnames", strings.Join(c.Nodes[0].Hostnames, ","), "server.kubernetes.local")
	eq(t, "endpoint", c.APIServer.Endpoint, "server.kubernetes.local:6443")
	eq(t, "extraSANs", strings.Join(c.APIServer.ExtraSANs, ","), "api-server.kubernetes.local")
	eq(t, "serviceCIDR", c.ServiceCIDR, "10.32.0.0/24")
	eq(t, "dnsDomain", c.DNSDomain, "cluster.local")
	eq(t, "keyAlgorithm", c.KeyAlgorithm, "RSA-2048")
	eq(t, "subject", c.Subject, cluster.Subject{Country: "US", Province: "Washington", Locality: "Seattle"})
	eq(t, "validity", c.Validity.CA.Duration == 3653*24*time.Hour && c.Validity.Leaf == c.Validity.CA, true)
	for _, field := range []string{"apiServer.endpoint", "apiServer.extraSANs", "dnsDomain", "serviceCIDR", "nodes"} {
		if !slices.ContainsFunc(r.Notes, func(n Note) bool { return n.Field == field }) {
			t.Errorf("no note on %s: %v", field, r.Notes)
		}
	}
}

// TestInferErrors: a file inference needs that is there but unreadable is
// an error naming it, not a guess.
func TestInferErrors(t *testing.T) {
	tests := []struct {
		name    string
		profile catalog.Profile
		file    string // relative to the kubeconfig directory's parent for kubeadm
		data    string
		want    string
	}{
		{"apiserver.crt not PEM", catalog.Kubeadm, "pki/apiserver.crt", "garbage", "pki/apiserver.crt"},
		{"node certificate not PEM", catalog.Hardway, "pki/node-0.crt", "garbage", "pki/node-0.crt"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := apply(t, tc.profile, cluster.Default())
			root := filepath.Dir(st.Dir)
			if err := os.WriteFile(filepath.Join(root, tc.file), []byte(tc.data), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Infer(st.Dir, "")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Infer: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestInferSkipsUnreadableKubeconfig: one kubeconfig that cannot be read
// (its client certificate a file that is no certificate, a FIFO, a
// directory; the kubeconfig itself not YAML or with no server URL) does
// not disable inference: it is skipped with a note naming it, and the rest
// give the same spec as the intact directory.
func TestInferSkipsUnreadableKubeconfig(t *testing.T) {
	// refer is admin.conf as it is, its client certificate and key
	// referring to target.
	refer := func(t *testing.T, root, target string) string {
		path := filepath.Join(root, "admin.conf")
		cfg, err := kubeconfig.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		_, user, err := kubeconfig.Current(cfg)
		if err != nil {
			t.Fatal(err)
		}
		user.ClientCertificateData, user.ClientKeyData = nil, nil
		user.ClientCertificate, user.ClientKey = target, target
		data, err := kubeconfig.Encode(path, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, root string) string // admin.conf's content
	}{
		{"client-certificate not a certificate", func(t *testing.T, root string) string {
			pkitest.WriteFile(t, filepath.Join(root, "shadow"), []byte("root:*:19000:0:99999:7:::\n"), 0o600)
			return refer(t, root, filepath.Join(root, "shadow"))
		}},
		{"client-certificate a FIFO", func(t *testing.T, root string) string {
			if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o600); err != nil {
				t.Fatal(err)
			}
			return refer(t, root, filepath.Join(root, "fifo"))
		}},
		{"client-certificate a directory", func(t *testing.T, root string) string {
			return refer(t, root, root)
		}},
		{"not YAML", func(*testing.T, string) string { return "{" }},
		{"server not a URL", func(*testing.T, string) string {
			return "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://'}}]\nusers: [{name: u, user: {}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n"
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := apply(t, catalog.Kubeadm, cluster.Default())
			intact, err := Infer(st.Dir, "")
			if err != nil {
				t.Fatal(err)
			}
			root := filepath.Dir(st.Dir)
			pkitest.WriteFile(t, filepath.Join(root, "admin.conf"), []byte(tc.setup(t, root)), 0o600)
			r, err := Infer(st.Dir, "")
			if err != nil {
				t.Fatalf("Infer: %v, want the spec inferred from the other files", err)
			}
			if !slices.ContainsFunc(r.Notes, func(n Note) bool { return n.Field == "admin.conf" }) {
				t.Errorf("no note naming admin.conf: %v", r.Notes)
			}
			if !reflect.DeepEqual(r.Spec, intact.Spec) {
				t.Errorf("spec differs from the intact directory's:\n%+v\nwant\n%+v", r.Spec, intact.Spec)
			}
		})
	}
}
