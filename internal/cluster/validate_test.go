package cluster

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDefaultIsValid(t *testing.T) {
	c := Default()
	if fs := Validate(c); len(fs) != 0 {
		t.Fatalf("embedded default has findings: %v", fs)
	}
	if c.Name == "" || c.DNSDomain != "cluster.local" || c.ServiceCIDR != "10.32.0.0/24" || c.PodCIDR != "10.200.0.0/16" {
		t.Errorf("default spec lost the seed topology: %+v", c)
	}
	var names []string
	for _, n := range c.Nodes {
		names = append(names, n.Name)
	}
	if got := strings.Join(names, ","); got != "server,node-0,node-1" {
		t.Errorf("default nodes = %s, want server,node-0,node-1", got)
	}
	if len(c.ControlPlanes()) != 1 || c.ControlPlanes()[0].Name != "server" {
		t.Errorf("default control plane = %v, want server", c.ControlPlanes())
	}
}

func TestServiceIP(t *testing.T) {
	tests := []struct {
		cidr, want, err string
	}{
		{"10.32.0.0/24", "10.32.0.1", ""},
		{"10.96.0.0/12", "10.96.0.1", ""},
		{"fd00:10:96::/112", "fd00:10:96::1", ""},
		{"10.32.0.1/24", "", "host bits set"},
		{"10.32.0.0/32", "", "no usable address"},
		{"banana", "", "not a CIDR"},
	}
	for _, tc := range tests {
		t.Run(tc.cidr, func(t *testing.T) {
			ip, err := ServiceIP(tc.cidr)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || ip.String() != tc.want {
				t.Fatalf("ServiceIP = %v, %v; want %s", ip, err, tc.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Cluster)
		field  string
		sev    Severity
		phrase string
	}{
		{"bad service cidr", func(c *Cluster) { c.ServiceCIDR = "10.32.0.0/33" }, "serviceCIDR", Error, "not a CIDR"},
		{"bad pod cidr", func(c *Cluster) { c.PodCIDR = "x" }, "podCIDR", Error, "not a CIDR"},
		{"overlapping cidrs", func(c *Cluster) { c.PodCIDR = "10.32.0.0/16" }, "podCIDR", Error, "overlaps"},
		{"endpoint without port", func(c *Cluster) { c.APIServer.Endpoint = "server" }, "apiServer.endpoint", Error, "host:port"},
		{"endpoint bad port", func(c *Cluster) { c.APIServer.Endpoint = "server:99999" }, "apiServer.endpoint", Error, "1-65535"},
		{"bad extra SAN", func(c *Cluster) { c.APIServer.ExtraSANs = []string{"not a name"} }, "apiServer.extraSANs[0]", Error, "neither an IP nor a DNS name"},
		{"bad bind port", func(c *Cluster) { c.APIServer.BindPort = 70000 }, "apiServer.bindPort", Error, "not a port"},
		{"bad etcd SAN", func(c *Cluster) { c.Etcd.PeerCertSANs = []string{"ok.example", "not a name"} }, "etcd.peerCertSANs[1]", Error, "neither an IP nor a DNS name"},
		{"external etcd without endpoints", func(c *Cluster) { c.Etcd.External = &ExternalEtcd{} }, "etcd.external.endpoints", Error, "at least one"},
		{"external etcd with SANs", func(c *Cluster) {
			c.Etcd.External = &ExternalEtcd{Endpoints: []string{"https://e:2379"}}
			c.Etcd.ServerCertSANs = []string{"e"}
		}, "etcd.external", Error, "cannot apply"},
		{"bad key algorithm", func(c *Cluster) { c.KeyAlgorithm = "DSA-1024" }, "keyAlgorithm", Error, "unknown key algorithm"},
		{"leaf outlives CA", func(c *Cluster) { c.Validity.Leaf = Duration{20 * 365 * 24 * time.Hour} }, "validity.leaf", Error, "longer than the CA"},
		{"negative validity", func(c *Cluster) { c.Validity.CA = Duration{-time.Hour} }, "validity.ca", Error, "positive"},
		{"duplicate node", func(c *Cluster) { c.Nodes[2].Name = "node-0" }, "nodes[2].name", Error, "duplicate node name"},
		{"node name not a label", func(c *Cluster) { c.Nodes[1].Name = "Node_0" }, "nodes[1].name", Error, "not a DNS label"},
		{"node bad IP", func(c *Cluster) { c.Nodes[1].IPs = []string{"300.1.1.1"} }, "nodes[1].ips[0]", Error, "not an IP"},
		{"unknown role", func(c *Cluster) { c.Nodes[1].Roles = []Role{"etcd"} }, "nodes[1].roles[0]", Error, "unknown role"},
		{"no control plane", func(c *Cluster) { c.Nodes[0].Roles = []Role{RoleWorker} }, "nodes", Error, "control-plane"},
		{"no nodes", func(c *Cluster) { c.Nodes = nil }, "nodes", Error, "at least one node"},
		{"bad dns domain", func(c *Cluster) { c.DNSDomain = "-bad-" }, "dnsDomain", Error, "-bad-"},
		{"user in masters", func(c *Cluster) { c.Users = []User{{Name: "jane", Groups: []string{"system:masters"}}} }, "users[0].groups", Warning, "bypasses RBAC"},
		{"user name with slash", func(c *Cluster) { c.Users = []User{{Name: "../etc/passwd"}} }, "users[0].name", Error, "cannot name a file"},
		{"user name with trailing space", func(c *Cluster) { c.Users = []User{{Name: "jane "}} }, "users[0].name", Error, "leading or trailing white space"},
		{"user name with a tab inside", func(c *Cluster) { c.Users = []User{{Name: "ja\tne"}} }, "users[0].name", Error, "does not print"},
		{"user name with a zero-width space", func(c *Cluster) { c.Users = []User{{Name: "ja\u200bne"}} }, "users[0].name", Error, "does not print"},
		{"duplicate user", func(c *Cluster) { c.Users = []User{{Name: "jane"}, {Name: "jane"}} }, "users[1].name", Error, "duplicate user"},
		{"20,000 apiserver SANs", func(c *Cluster) { c.APIServer.ExtraSANs = manyNames(20000) }, "apiServer.extraSANs", Warning, "20000 SANs (more than 100)"},
		{"101 etcd server SANs", func(c *Cluster) { c.Etcd.ServerCertSANs = manyNames(101) }, "etcd.serverCertSANs", Warning, "101 SANs"},
		{"101 component SANs", func(c *Cluster) {
			c.Components = map[string]Component{"kube-scheduler": {ExtraSANs: manyNames(101)}}
		}, "components.kube-scheduler.extraSANs", Warning, "101 SANs"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.mutate(c)
			for _, f := range Validate(c) {
				if f.Field == tc.field && f.Severity == tc.sev && strings.Contains(f.Message, tc.phrase) {
					return
				}
			}
			t.Errorf("no %s finding on %s containing %q; got %v", tc.sev, tc.field, tc.phrase, Validate(c))
		})
	}
}

func TestParseStrict(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"unknown field", "apiVersion: kubepki.dev/v1alpha1\nkind: Cluster\nserviceCidr: 10.0.0.0/24\n", `unknown field "serviceCidr"`},
		{"nested unknown field", "apiVersion: kubepki.dev/v1alpha1\nkind: Cluster\nnodes:\n- name: a\n  ip: [1.2.3.4]\n", `unknown field "nodes[0].ip"`},
		{"wrong kind", "apiVersion: kubepki.dev/v1alpha1\nkind: Config\n", `want "kubepki.dev/v1alpha1"/"Cluster"`},
		{"bad duration", "apiVersion: kubepki.dev/v1alpha1\nkind: Cluster\nvalidity:\n  ca: 10y\n", "10y"},
		{"not yaml", "\t:\t- [", "spec.yaml"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc), "spec.yaml")
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "spec.yaml") {
				t.Fatalf("err = %v, want it to name spec.yaml and contain %q", err, tc.want)
			}
		})
	}
}

func TestDefaultsFilled(t *testing.T) {
	c, err := Parse([]byte("apiVersion: kubepki.dev/v1alpha1\nkind: Cluster\nserviceCIDR: 10.0.0.0/24\napiServer: {endpoint: 'cp:6443'}\nnodes: [{name: cp, roles: [control-plane]}, {name: w1}]\n"), "x")
	if err != nil {
		t.Fatal(err)
	}
	if c.DNSDomain != DefaultDNSDomain || c.KeyAlgorithm != "ECDSA-P256" || c.Validity.CA.Duration != DefaultCAValidity || c.Validity.Leaf.Duration != DefaultLeafValidity {
		t.Errorf("defaults not applied: %+v", c)
	}
	if !c.Nodes[1].Has(RoleWorker) {
		t.Errorf("node without roles should default to worker, got %v", c.Nodes[1].Roles)
	}
	if !c.SeparateEtcdCA() || !c.SeparateFrontProxyCA() {
		t.Error("separate etcd and front-proxy CAs should default to on")
	}
	if fs := Validate(c); HasErrors(fs) {
		t.Errorf("minimal spec invalid: %v", fs)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	data, err := Marshal(Default())
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(data, "roundtrip")
	if err != nil {
		t.Fatalf("marshalled default does not parse back: %v\n%s", err, data)
	}
	if len(c.Nodes) != 3 || c.APIServer.Endpoint != Default().APIServer.Endpoint {
		t.Errorf("round trip lost data: %+v", c)
	}
}

func TestKubernetesVersion(t *testing.T) {
	tests := []struct {
		version    string
		valid      bool
		before1_29 bool
	}{
		{"", true, false},
		{"v1.28", true, true},
		{"v1.28.15", true, true},
		{"v1.29", true, false},
		{"v1.37.2", true, false},
		{"v0.99", true, true},
		{"v2.0", true, false},
		{"1.28", false, false},
		{"v1", false, false},
		{"v1.28-rc.0", false, false},
		{"v1.28.", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.version, func(t *testing.T) {
			c := Default()
			c.KubernetesVersion = tc.version
			fs := Validate(c)
			if got := !HasErrors(fs); got != tc.valid {
				t.Errorf("valid = %v, want %v (%v)", got, tc.valid, fs)
			}
			if !tc.valid && (len(fs) != 1 || fs[0].Field != "kubernetesVersion") {
				t.Errorf("findings = %v, want one on kubernetesVersion", fs)
			}
			if got := c.Before(1, 29); got != tc.before1_29 {
				t.Errorf("Before(1, 29) = %v, want %v", got, tc.before1_29)
			}
		})
	}
}

// manyNames is n distinct DNS names.
func manyNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("h%d.example.com", i)
	}
	return out
}

// TestValidateSANCountBoundary: MaxSANs extra SANs are fine, one more warns
// (and only warns: the spec is still usable).
func TestValidateSANCountBoundary(t *testing.T) {
	for n, want := range map[int]bool{MaxSANs: false, MaxSANs + 1: true} {
		c := Default()
		c.APIServer.ExtraSANs = manyNames(n)
		fs := Validate(c)
		got := slices.ContainsFunc(fs, func(f Finding) bool { return f.Field == "apiServer.extraSANs" && f.Severity == Warning })
		if got != want || HasErrors(fs) {
			t.Errorf("%d SANs: warning %v, want %v; findings %v", n, got, want, fs)
		}
	}
}
