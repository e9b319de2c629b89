package catalog

import (
	"fmt"
	"path"
	"strings"

	"kubepki.dev/kubepki/internal/cluster"
)

// Node names share a namespace with the catalog's own files: the hard way
// gives a worker's certificate the node's name as its name and file stem,
// so a worker called "admin" would be issued, bundled and shipped as the
// system:masters admin certificate. These functions keep node, user and
// component names apart.

// Validate checks a defaulted spec as cluster.Validate does, and adds what
// only the catalog knows: a node named like one of the catalog's
// certificates, key pairs, kubeconfigs or directories (in either profile),
// or like a user's certificate, is an error.
func Validate(c *cluster.Cluster) []cluster.Finding {
	fs := cluster.Validate(c)
	reserved := reservedNames()
	for i, n := range c.Nodes {
		field := fmt.Sprintf("nodes[%d].name", i)
		if what, ok := reserved[n.Name]; ok {
			fs = append(fs, cluster.Finding{Severity: cluster.Error, Field: field,
				Message: fmt.Sprintf("%q collides with the catalog's %s", n.Name, what)})
		}
		for j, u := range c.Users {
			if n.Name == userCertName(u.Name) {
				fs = append(fs, cluster.Finding{Severity: cluster.Error, Field: field,
					Message: fmt.Sprintf("%q collides with the certificate of users[%d] %q", n.Name, j, u.Name)})
			}
		}
	}
	return fs
}

// The nodes and user of the spec reservedNames builds plans from: anything
// of the plan that mentions them belongs to a node or a user, the rest to
// the catalog.
const (
	probeControlPlane = "kubepki-probe-control-plane"
	probeWorker       = "kubepki-probe-worker"
	probeUser         = "kubepki-probe-user"
)

// reservedNames maps every name the catalogs use for something other than
// a node or a user — certificate and key pair names, file stems and the
// directories they sit in, kubeconfig names and file stems — to what uses
// it ("admin certificate"). It is derived from the catalogs themselves,
// applied to a spec whose node names cannot be mistaken for anything
// else, so a certificate added to a catalog is reserved without a second
// list to keep in step.
func reservedNames() map[string]string {
	c := cluster.Default()
	c.Users = []cluster.User{{Name: probeUser}}
	c.Nodes = []cluster.Node{
		{Name: probeControlPlane, Roles: []cluster.Role{cluster.RoleControlPlane}, IPs: []string{"192.0.2.1"}},
		{Name: probeWorker, Roles: []cluster.Role{cluster.RoleWorker}, IPs: []string{"192.0.2.2"}},
	}
	in, err := newInputs(c)
	if err != nil {
		panic(fmt.Sprintf("catalog: probe spec: %v", err)) // the embedded default is tested
	}
	out := map[string]string{}
	reserve := func(name, what string) {
		if name == "" || strings.Contains(name, probeControlPlane) || strings.Contains(name, probeWorker) || strings.Contains(name, probeUser) {
			return
		}
		if _, ok := out[name]; !ok {
			out[name] = what
		}
	}
	reservePath := func(p, what string) {
		reserve(p, what)
		for d := path.Dir(p); d != "." && d != "/"; d = path.Dir(d) {
			reserve(d, d+"/ directory")
		}
	}
	for _, plan := range []*Plan{buildHardway(c, in), buildKubeadm(c, in)} {
		plan.Certs = append(plan.Certs, users(in)...)
		for _, cs := range plan.Certs {
			what := cs.Name + " certificate"
			reserve(cs.Name, what)
			if !cs.Embedded {
				reservePath(cs.Path, what)
			}
		}
		for _, k := range plan.Keys {
			what := k.Name + " key pair"
			reserve(k.Name, what)
			reservePath(k.Path, what)
		}
		for _, k := range plan.Kubeconfigs {
			what := k.Name + " kubeconfig"
			reserve(k.Name, what)
			reserve(strings.TrimSuffix(k.File, path.Ext(k.File)), what)
		}
	}
	return out
}

// userCertName is the plan name of a user's client certificate.
func userCertName(user string) string { return "user-" + user }

// checkUnique refuses a plan in which two items share a name or a file:
// Plan.Cert returns the first of two certificates of one name, and two
// items of one file overwrite each other, so either would hand one
// identity's key to another. Validate keeps such specs out; this is the
// defence in depth whatever the cause.
func checkUnique(p *Plan) error {
	names := map[string]string{}
	files := map[string]string{}
	claim := func(seen map[string]string, key, owner, kind string) error {
		if prev, ok := seen[key]; ok {
			return fmt.Errorf("%s plan: %s %q belongs to both %s and %s", p.Profile, kind, key, prev, owner)
		}
		seen[key] = owner
		return nil
	}
	for _, c := range p.Certs {
		owner := "certificate " + c.Name
		if err := claim(names, c.Name, owner, "name"); err != nil {
			return err
		}
		if c.Embedded {
			continue
		}
		for _, f := range []string{c.Path + ".crt", c.Path + ".key"} {
			if err := claim(files, f, owner, "file"); err != nil {
				return err
			}
		}
	}
	for _, k := range p.Keys {
		owner := "key pair " + k.Name
		if err := claim(names, k.Name, owner, "name"); err != nil {
			return err
		}
		for _, f := range []string{k.Path + ".key", k.Path + ".pub"} {
			if err := claim(files, f, owner, "file"); err != nil {
				return err
			}
		}
	}
	kubeconfigs := map[string]string{}
	for _, k := range p.Kubeconfigs {
		owner := "kubeconfig " + k.Name
		if err := claim(kubeconfigs, k.Name, owner, "kubeconfig name"); err != nil {
			return err
		}
		if err := claim(files, k.File, owner, "file"); err != nil {
			return err
		}
	}
	nodes := map[string]string{}
	for _, b := range p.Bundles {
		if err := claim(nodes, b.Node, "node "+b.Node, "bundle"); err != nil {
			return err
		}
	}
	return nil
}
