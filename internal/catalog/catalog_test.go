package catalog

import (
	"flag"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"sigs.k8s.io/yaml"

	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/pki"
)

var update = flag.Bool("update", false, "rewrite golden files")

func specWith(t *testing.T, mutate func(*cluster.Cluster)) *cluster.Cluster {
	t.Helper()
	c := cluster.Default()
	if mutate != nil {
		mutate(c)
	}
	return c
}

func TestGolden(t *testing.T) {
	off := false
	tests := []struct {
		name    string
		profile Profile
		mutate  func(*cluster.Cluster)
	}{
		{"hardway-default", Hardway, nil},
		{"kubeadm-default", Kubeadm, nil},
		{"kubeadm-single-ca", Kubeadm, func(c *cluster.Cluster) {
			c.CertificateAuthorities.Etcd, c.CertificateAuthorities.FrontProxy = &off, &off
		}},
		{"kubeadm-ed25519", Kubeadm, func(c *cluster.Cluster) { c.KeyAlgorithm = "Ed25519" }},
		// Before v1.29 kubeadm's admin.conf is in system:masters and there is
		// no super-admin.conf.
		{"kubeadm-v1.28", Kubeadm, func(c *cluster.Cluster) { c.KubernetesVersion = "v1.28" }},
		// kubeadm's own defaults (init --profile kubeadm with no spec) for
		// a fixed host: 10.96.0.1, no C/ST/L/O, RSA-2048, one year and ten.
		{"kubeadm-own-defaults", Kubeadm, func(c *cluster.Cluster) {
			*c = *cluster.KubeadmDefault(cluster.Host{Name: "cp1", IPs: []string{"192.0.2.10"}})
		}},
		{"hardway-custom", Hardway, func(c *cluster.Cluster) {
			c.DNSDomain = "corp.example"
			c.ServiceCIDR = "172.20.0.0/16"
			c.APIServer.Endpoint = "10.0.0.10:443"
			c.APIServer.ExtraSANs = []string{"api.example.com"}
			c.KeyAlgorithm = "RSA-2048"
			c.Users = []cluster.User{{Name: "jane", Groups: []string{"developers", "oncall"}}}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := New(specWith(t, tc.mutate), tc.profile)
			if err != nil {
				t.Fatal(err)
			}
			got, err := yaml.Marshal(plan)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tc.name+".golden.yaml")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if string(got) != string(want) {
				t.Errorf("plan differs from %s (run go test -update and review the diff):\n%s", path, got)
			}
		})
	}
}

// The golden files pin everything; these spell out the rules that matter
// most so that an -update cannot quietly accept a wrong identity.
func TestIdentities(t *testing.T) {
	hw, err := New(cluster.Default(), Hardway)
	if err != nil {
		t.Fatal(err)
	}
	ka, err := New(cluster.Default(), Kubeadm)
	if err != nil {
		t.Fatal(err)
	}
	client, server := pki.UsageClientAuth, pki.UsageServerAuth
	tests := []struct {
		plan   *Plan
		name   string
		ca     string
		cn     string
		groups []string
		usages []pki.Usage
	}{
		{hw, "admin", "ca", "admin", []string{"system:masters"}, []pki.Usage{client}},
		{hw, "node-0", "ca", "system:node:node-0", []string{"system:nodes"}, []pki.Usage{client, server}},
		{hw, "node-1", "ca", "system:node:node-1", []string{"system:nodes"}, []pki.Usage{client, server}},
		{hw, "kube-proxy", "ca", "system:kube-proxy", []string{"system:node-proxier"}, []pki.Usage{client}},
		{hw, "kube-scheduler", "ca", "system:kube-scheduler", []string{"system:kube-scheduler"}, []pki.Usage{client}},
		{hw, "kube-controller-manager", "ca", "system:kube-controller-manager", []string{"system:kube-controller-manager"}, []pki.Usage{client}},
		{hw, "kube-api-server", "ca", "kubernetes", nil, []pki.Usage{client, server}},
		{hw, "service-accounts", "ca", "service-accounts", nil, []pki.Usage{client}},
		{ka, "apiserver", "ca", "kube-apiserver", nil, []pki.Usage{server}},
		{ka, "apiserver-kubelet-client", "ca", "kube-apiserver-kubelet-client", nil, []pki.Usage{client}},
		{ka, "front-proxy-client", "front-proxy-ca", "front-proxy-client", nil, []pki.Usage{client}},
		{ka, "etcd-server", "etcd-ca", "server", nil, []pki.Usage{server, client}},
		{ka, "etcd-peer", "etcd-ca", "server", nil, []pki.Usage{server, client}},
		{ka, "etcd-healthcheck-client", "etcd-ca", "kube-etcd-healthcheck-client", nil, []pki.Usage{client}},
		{ka, "apiserver-etcd-client", "etcd-ca", "kube-apiserver-etcd-client", nil, []pki.Usage{client}},
	}
	for _, tc := range tests {
		t.Run(string(tc.plan.Profile)+"/"+tc.name, func(t *testing.T) {
			c, ok := tc.plan.Cert(tc.name)
			if !ok {
				t.Fatalf("no certificate %q in plan", tc.name)
			}
			if c.CA != tc.ca || c.Profile.Subject.CommonName != tc.cn || !slices.Equal(c.Profile.Subject.Organization, tc.groups) || !slices.Equal(c.Profile.Usages, tc.usages) {
				t.Errorf("got CA=%s CN=%s O=%v usages=%v, want CA=%s CN=%s O=%v usages=%v",
					c.CA, c.Profile.Subject.CommonName, c.Profile.Subject.Organization, c.Profile.Usages, tc.ca, tc.cn, tc.groups, tc.usages)
			}
			if c.Profile.IsCA {
				t.Error("leaf marked as CA")
			}
		})
	}
}

func TestAPIServerSANs(t *testing.T) {
	c := cluster.Default()
	c.ServiceCIDR = "10.96.0.0/12"
	c.DNSDomain = "k8s.internal"
	for _, p := range Profiles() {
		plan, err := New(c, p)
		if err != nil {
			t.Fatal(err)
		}
		name := map[Profile]string{Hardway: "kube-api-server", Kubeadm: "apiserver"}[p]
		api, _ := plan.Cert(name)
		for _, want := range []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.k8s.internal", "server.kubernetes.local", "api-server.kubernetes.local"} {
			if !slices.Contains(api.Profile.DNSNames, want) {
				t.Errorf("%s: DNS SAN %s missing from %v", p, want, api.Profile.DNSNames)
			}
		}
		if slices.Contains(api.Profile.DNSNames, "kubernetes.svc.cluster.local") {
			t.Errorf("%s: carries the tutorial's wrong name kubernetes.svc.cluster.local", p)
		}
		if !containsIP(api.Profile.IPs, net.ParseIP("10.96.0.1")) {
			t.Errorf("%s: service IP 10.96.0.1 missing from %v", p, api.Profile.IPs)
		}
	}
}

func TestLeavesNeverOutliveCAs(t *testing.T) {
	for _, p := range Profiles() {
		plan, err := New(cluster.Default(), p)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range plan.Leaves() {
			ca, ok := plan.Cert(c.CA)
			if !ok || !ca.Profile.IsCA {
				t.Errorf("%s/%s: signing CA %q not in plan", p, c.Name, c.CA)
				continue
			}
			if c.Profile.Validity > ca.Profile.Validity {
				t.Errorf("%s/%s: validity %s exceeds CA's %s", p, c.Name, c.Profile.Validity, ca.Profile.Validity)
			}
		}
	}
}

func TestEd25519TokenKeyFallsBack(t *testing.T) {
	c := cluster.Default()
	c.KeyAlgorithm = "Ed25519"
	plan, err := New(c, Kubeadm)
	if err != nil {
		t.Fatal(err)
	}
	if got := plan.Keys[0].KeyAlgorithm; got != pki.ECDSAP256 {
		t.Errorf("sa key algorithm = %s, want ECDSA-P256 (apiserver cannot verify Ed25519 tokens)", got)
	}
}

func TestInvalidSpecRefused(t *testing.T) {
	c := cluster.Default()
	c.ServiceCIDR = "10.32.0.1/24"
	if _, err := New(c, Hardway); err == nil {
		t.Fatal("New accepted a service CIDR with host bits set")
	}
}

// TestKubeadmEtcd: etcd.local's extra SANs reach etcd's serving and peer
// certificates (and nothing else), and an external etcd means no etcd CA,
// no etcd certificate and no apiserver-etcd-client, as kubeadm's
// GetCertsWithoutEtcd.
func TestKubeadmEtcd(t *testing.T) {
	c := specWith(t, func(c *cluster.Cluster) {
		c.Etcd.ServerCertSANs = []string{"etcd.example.com", "10.9.9.9"}
		c.Etcd.PeerCertSANs = []string{"peer.example.com"}
	})
	plan, err := New(c, Kubeadm)
	if err != nil {
		t.Fatal(err)
	}
	server, _ := plan.Cert("etcd-server")
	peer, _ := plan.Cert("etcd-peer")
	if !slices.Contains(server.Profile.DNSNames, "etcd.example.com") || !containsIP(server.Profile.IPs, net.ParseIP("10.9.9.9")) ||
		slices.Contains(server.Profile.DNSNames, "peer.example.com") {
		t.Errorf("etcd-server SANs %v %v: want etcd.example.com and 10.9.9.9, not the peer's", server.Profile.DNSNames, server.Profile.IPs)
	}
	if !slices.Contains(peer.Profile.DNSNames, "peer.example.com") || slices.Contains(peer.Profile.DNSNames, "etcd.example.com") {
		t.Errorf("etcd-peer SANs %v: want peer.example.com only among the extras", peer.Profile.DNSNames)
	}

	c = specWith(t, func(c *cluster.Cluster) {
		c.Etcd.External = &cluster.ExternalEtcd{Endpoints: []string{"https://10.0.0.9:2379"}}
	})
	plan, err = New(c, Kubeadm)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, cs := range plan.Certs {
		if !cs.Embedded {
			names = append(names, cs.Name)
		}
	}
	want := []string{"ca", "front-proxy-ca", "apiserver", "apiserver-kubelet-client", "front-proxy-client"}
	if !slices.Equal(names, want) {
		t.Errorf("with external etcd the PKI holds %v, want %v", names, want)
	}
}

// TestServesAt: a kubeconfig may dial the API server by any name its
// certificate holds, on the same port over https; anything else is drift.
func TestServesAt(t *testing.T) {
	for _, profile := range Profiles() {
		plan, err := New(cluster.Default(), profile)
		if err != nil {
			t.Fatal(err)
		}
		admin, _ := plan.Kubeconfig("admin")
		if profile == Kubeadm {
			admin, _ = plan.Kubeconfig("admin.conf")
		}
		tests := []struct {
			server string
			want   bool
		}{
			{admin.Server, true},
			{"https://127.0.0.1:6443", profile == Hardway}, // kubeadm's certificate does not name loopback
			{"https://server.kubernetes.local:6443", true},
			{"https://SERVER.kubernetes.local:6443/", true},
			{"https://kubernetes.default.svc.cluster.local:6443", true},
			{"https://10.32.0.1:6443", true},
			{"https://127.0.0.1:6444", false},        // another port
			{"http://127.0.0.1:6443", false},         // not TLS
			{"https://evil.example.com:6443", false}, // not a name of the API server
			{"https://10.0.0.99:6443", false},        // not an address of it
			{"https://127.0.0.1:6443/proxy", false},  // a path: another endpoint
			{"https://user@127.0.0.1:6443", false},   // credentials in the URL
			{"https://127.0.0.1:6443?x=1", false},    // a query
			{"::not a url", false},
		}
		for _, tc := range tests {
			if got := plan.ServesAt(admin, tc.server); got != tc.want {
				t.Errorf("%s: ServesAt(%q) = %v, want %v", profile, tc.server, got, tc.want)
			}
		}
	}
}
