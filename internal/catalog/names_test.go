package catalog

import (
	"strings"
	"testing"

	"kubepki.dev/kubepki/internal/cluster"
)

// A node named like a catalog item would be issued (and bundled) as that
// item. Each case is a spec an attacker, or a careless edit, could write.
func TestNodeNameCollisions(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*cluster.Cluster)
		field  string
		phrase string
	}{
		{"worker admin (hardway system:masters)", func(c *cluster.Cluster) { c.Nodes[1].Name = "admin" },
			"nodes[1].name", `"admin" collides with the catalog's admin certificate`},
		{"worker service-accounts (token signing key)", func(c *cluster.Cluster) { c.Nodes[2].Name = "service-accounts" },
			"nodes[2].name", `"service-accounts" collides with the catalog's service-accounts certificate`},
		{"worker ca", func(c *cluster.Cluster) { c.Nodes[1].Name = "ca" },
			"nodes[1].name", "ca certificate"},
		{"worker kube-proxy", func(c *cluster.Cluster) { c.Nodes[1].Name = "kube-proxy" },
			"nodes[1].name", "kube-proxy certificate"},
		{"worker kube-api-server", func(c *cluster.Cluster) { c.Nodes[1].Name = "kube-api-server" },
			"nodes[1].name", "kube-api-server certificate"},
		{"control plane kube-scheduler", func(c *cluster.Cluster) { c.Nodes[0].Name = "kube-scheduler" },
			"nodes[0].name", "kube-scheduler certificate"},
		{"kubeadm apiserver", func(c *cluster.Cluster) { c.Nodes[1].Name = "apiserver" },
			"nodes[1].name", "apiserver certificate"},
		{"kubeadm front-proxy-client", func(c *cluster.Cluster) { c.Nodes[1].Name = "front-proxy-client" },
			"nodes[1].name", "front-proxy-client certificate"},
		{"kubeadm sa", func(c *cluster.Cluster) { c.Nodes[1].Name = "sa" },
			"nodes[1].name", "sa key pair"},
		{"kubeadm etcd directory", func(c *cluster.Cluster) { c.Nodes[1].Name = "etcd" },
			"nodes[1].name", "etcd/ directory"},
		{"kubeadm super-admin kubeconfig", func(c *cluster.Cluster) { c.Nodes[1].Name = "super-admin" },
			"nodes[1].name", "super-admin.conf kubeconfig"},
		{"users directory", func(c *cluster.Cluster) { c.Nodes[1].Name = "users" },
			"nodes[1].name", "users/ directory"},
		{"worker named like a user's certificate", func(c *cluster.Cluster) {
			c.Users = []cluster.User{{Name: "jane", Groups: []string{"developers"}}}
			c.Nodes[1].Name = "user-jane"
		}, "nodes[1].name", `collides with the certificate of users[0] "jane"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := cluster.Default()
			tc.mutate(c)
			found := false
			for _, f := range Validate(c) {
				if f.Severity == cluster.Error && f.Field == tc.field && strings.Contains(f.Message, tc.phrase) {
					found = true
				}
			}
			if !found {
				t.Errorf("no error on %s containing %q; got %v", tc.field, tc.phrase, Validate(c))
			}
			for _, p := range Profiles() {
				if plan, err := New(c, p); err == nil {
					t.Errorf("%s: New built a plan of %d certificates from a colliding spec", p, len(plan.Certs))
				} else if !strings.Contains(err.Error(), tc.field) {
					t.Errorf("%s: New error %q does not name %s", p, err, tc.field)
				}
			}
		})
	}
}

// Names a node may well have are not reserved.
func TestNodeNamesAllowed(t *testing.T) {
	for _, name := range []string{"node-7", "worker-admin", "kubelet", "etcd-0", "controller", "ca-1"} {
		c := cluster.Default()
		c.Nodes[1].Name = name
		if fs := Validate(c); cluster.HasErrors(fs) {
			t.Errorf("node %q refused: %v", name, fs)
		}
	}
}

// The reserved list comes from the catalogs: every certificate, key pair
// and kubeconfig of the default plans that is not a node's or a user's is
// in it.
func TestReservedNamesCoverCatalog(t *testing.T) {
	reserved := reservedNames()
	for _, p := range Profiles() {
		plan, err := New(cluster.Default(), p)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range plan.Certs {
			if c.Node != "" && strings.Contains(c.Name, c.Node) {
				continue
			}
			if _, ok := reserved[c.Name]; !ok {
				t.Errorf("%s: certificate %s is not reserved", p, c.Name)
			}
		}
		for _, k := range plan.Keys {
			if _, ok := reserved[k.Name]; !ok {
				t.Errorf("%s: key pair %s is not reserved", p, k.Name)
			}
		}
	}
}

// checkUnique is the defence in depth: a plan with two items of one name
// or one file is refused, whatever made it. The plans here are built
// without Validate, as a future catalog bug could.
func TestCheckUnique(t *testing.T) {
	build := func(p Profile, mutate func(*cluster.Cluster)) *Plan {
		c := cluster.Default()
		mutate(c)
		in, err := newInputs(c)
		if err != nil {
			t.Fatal(err)
		}
		var plan *Plan
		if p == Hardway {
			plan = buildHardway(c, in)
		} else {
			plan = buildKubeadm(c, in)
		}
		plan.Certs = append(plan.Certs, users(in)...)
		return plan
	}
	tests := []struct {
		name    string
		profile Profile
		mutate  func(*cluster.Cluster)
		plan    func(*Plan)
		want    string
	}{
		{"worker admin", Hardway, func(c *cluster.Cluster) { c.Nodes[1].Name = "admin" }, nil,
			`name "admin" belongs to both certificate admin and certificate admin`},
		{"worker service-accounts", Hardway, func(c *cluster.Cluster) { c.Nodes[2].Name = "service-accounts" }, nil,
			`"service-accounts" belongs to both`},
		{"node named like a user", Hardway, func(c *cluster.Cluster) {
			c.Users = []cluster.User{{Name: "jane"}}
			c.Nodes[1].Name = "user-jane"
		}, nil, `name "user-jane"`},
		{"two certificates, one file", Kubeadm, func(*cluster.Cluster) {}, func(p *Plan) {
			for i := range p.Certs {
				if p.Certs[i].Name == "apiserver-etcd-client" {
					p.Certs[i].Path = "apiserver"
				}
			}
		}, `file "apiserver.crt"`},
		{"key pair on a certificate's file", Kubeadm, func(*cluster.Cluster) {}, func(p *Plan) {
			p.Keys[0].Path = "apiserver"
		}, `file "apiserver.key"`},
		{"two kubeconfigs, one file", Kubeadm, func(*cluster.Cluster) {}, func(p *Plan) {
			p.Kubeconfigs[1].File = p.Kubeconfigs[0].File
		}, `file "admin.conf"`},
		{"two bundles, one node", Hardway, func(*cluster.Cluster) {}, func(p *Plan) {
			p.Bundles = append(p.Bundles, p.Bundles[1])
		}, `bundle "node-0"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plan := build(tc.profile, tc.mutate)
			if tc.plan != nil {
				tc.plan(plan)
			}
			err := checkUnique(plan)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("checkUnique = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	for _, p := range Profiles() {
		if err := checkUnique(build(p, func(c *cluster.Cluster) { c.Users = []cluster.User{{Name: "jane"}} })); err != nil {
			t.Errorf("%s: default plan refused: %v", p, err)
		}
	}
}
