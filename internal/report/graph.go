package report

import (
	"slices"
	"strings"
	"time"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/reconcile"
	"kubepki.dev/kubepki/internal/resolve"
	"kubepki.dev/kubepki/internal/wiring"
)

// NodeKind is the kind of a node of the trust graph; each kind has its
// column, left to right.
type NodeKind string

// Node kinds, in column order.
const (
	KindCA         NodeKind = "ca"
	KindCert       NodeKind = "cert"
	KindKeyPair    NodeKind = "keypair"
	KindKubeconfig NodeKind = "kubeconfig"
	KindComponent  NodeKind = "component"
	KindNode       NodeKind = "node"
)

// Column is the graph column of a kind: CAs, certificates (and bare key
// pairs), kubeconfigs, components, nodes.
func (k NodeKind) Column() int {
	switch k {
	case KindCA:
		return 0
	case KindCert, KindKeyPair:
		return 1
	case KindKubeconfig:
		return 2
	case KindComponent:
		return 3
	}
	return 4
}

// EdgeKind says what an edge of the trust graph means.
type EdgeKind string

// Edge kinds.
const (
	// Signs: a CA signed a certificate.
	Signs EdgeKind = "signs"
	// Embeds: a kubeconfig carries a certificate (and its key).
	Embeds EdgeKind = "embeds"
	// Uses: a component reads the file (its flags or config name it).
	Uses EdgeKind = "uses"
	// RunsOn: a component runs on a node.
	RunsOn EdgeKind = "runs-on"
	// InstalledOn: a node's bundle carries the file, and no component of
	// the node reads it (admin.kubeconfig for a person's kubectl).
	InstalledOn EdgeKind = "installed-on"
)

// Graph is the trust graph: CAs → certificates → kubeconfigs → components
// and nodes.
type Graph struct {
	Nodes []GraphNode `json:"nodes"`
	Edges []Edge      `json:"edges"`
}

// GraphNode is one box of the graph.
type GraphNode struct {
	// ID is unique in the graph: "<kind>:<name>", a component's
	// "component:<node>/<component>".
	ID    string   `json:"id"`
	Kind  NodeKind `json:"kind"`
	Label string   `json:"label"`
	// Detail is the box's second line.
	Detail string `json:"detail,omitempty"`
	State  State  `json:"state"`
	// Notes are what a tooltip shows: file, identity, problems.
	Notes []string `json:"notes,omitempty"`
}

// Edge is one arrow of the graph.
type Edge struct {
	From string   `json:"from"`
	To   string   `json:"to"`
	Kind EdgeKind `json:"kind"`
}

// Node returns the graph node with the ID.
func (g Graph) Node(id string) (GraphNode, bool) {
	i := slices.IndexFunc(g.Nodes, func(n GraphNode) bool { return n.ID == id })
	if i < 0 {
		return GraphNode{}, false
	}
	return g.Nodes[i], true
}

// Users are the components that use a node's item directly.
func (g Graph) Users(id string) []GraphNode {
	var out []GraphNode
	for _, e := range g.Edges {
		if e.From == id && e.Kind == Uses {
			if n, ok := g.Node(e.To); ok {
				out = append(out, n)
			}
		}
	}
	return out
}

// graphBuilder collects nodes and edges without duplicates.
type graphBuilder struct {
	g     Graph
	index map[string]int
	edges map[Edge]bool
}

func (b *graphBuilder) node(n GraphNode) {
	if _, ok := b.index[n.ID]; ok {
		return
	}
	b.index[n.ID] = len(b.g.Nodes)
	b.g.Nodes = append(b.g.Nodes, n)
}

func (b *graphBuilder) edge(from, to string, kind EdgeKind) {
	_, okFrom := b.index[from]
	_, okTo := b.index[to]
	e := Edge{From: from, To: to, Kind: kind}
	if !okFrom || !okTo || b.edges[e] {
		return
	}
	b.edges[e] = true
	b.g.Edges = append(b.g.Edges, e)
}

func certID(c catalog.CertSpec) string {
	if c.Profile.IsCA {
		return "ca:" + c.Name
	}
	return "cert:" + c.Name
}

func componentID(node string, c wiring.Component) string {
	return "component:" + node + "/" + string(c)
}

// buildGraph lays the plan out as a graph: which CA signs what, which
// kubeconfig carries which certificate, which component on which node
// reads which file (from the flags and config `kubepki wiring` gives it),
// and what else a node's bundle installs there.
func buildGraph(in Input, r *Report, idx statusIndex, perm map[string][]reconcile.Permission) Graph {
	m := in.Model
	plan := m.Plan
	b := &graphBuilder{index: map[string]int{}, edges: map[Edge]bool{}}
	certs := map[string]Certificate{}
	for _, c := range r.Certificates {
		certs[c.Name] = c
	}
	for _, ca := range plan.CAs() {
		c := certs[ca.Name]
		b.node(GraphNode{ID: certID(ca), Kind: KindCA, Label: ca.Name, Detail: "CA, " + certDetail(c, in), State: c.State, Notes: certNotes(c)})
	}
	for _, rc := range m.Certs {
		if rc.Spec.Profile.IsCA || rc.Elsewhere() {
			continue
		}
		c := certs[rc.Spec.Name]
		b.node(GraphNode{ID: certID(rc.Spec), Kind: KindCert, Label: rc.Spec.Name, Detail: certDetail(c, in), State: c.State, Notes: certNotes(c)})
		if ca, ok := plan.Cert(rc.Spec.CA); ok {
			b.edge(certID(ca), certID(rc.Spec), Signs)
		}
	}
	for _, k := range plan.Keys {
		s, _ := idx.keyPair(k.Name)
		state := stateOf(s.State, time.Time{}, in.Now, 0)
		notes := append([]string{m.Store.KeyPath(k.Path), k.Description}, s.Findings...)
		for _, p := range append(perm[m.Store.KeyPath(k.Path)], perm[m.Store.PubPath(k.Path)]...) {
			if !p.Warning {
				state = worse(state, Flagged)
				notes = append(notes, p.Path+": "+p.Problem)
			}
		}
		b.node(GraphNode{ID: "keypair:" + k.Name, Kind: KindKeyPair, Label: k.Name, Detail: "key pair (no certificate)", State: state, Notes: notes})
	}
	for _, k := range m.Kubeconfigs {
		if k.Elsewhere {
			continue
		}
		s, _ := idx.kubeconfig(k.Spec.Name)
		state := stateOf(s.State, s.NotAfter, in.Now, in.WarnWithin)
		notes := append([]string{k.Path, "user " + k.Spec.User, "server " + k.Spec.Server}, s.Findings...)
		for _, p := range perm[k.Path] {
			if !p.Warning {
				state = worse(state, Flagged)
				notes = append(notes, p.Path+": "+p.Problem)
			}
		}
		b.node(GraphNode{ID: "kubeconfig:" + k.Spec.Name, Kind: KindKubeconfig, Label: kubeconfigLabel(k), Detail: k.Spec.User, State: state, Notes: notes})
		if c, ok := plan.Cert(k.Spec.Cert); ok {
			b.edge(certID(c), "kubeconfig:"+k.Spec.Name, Embeds)
		}
	}
	externalCA := false
	if ca, ok := m.CAs["ca"]; ok {
		externalCA = ca.External()
	}
	for _, n := range in.Cluster.Nodes {
		b.node(GraphNode{ID: "node:" + n.Name, Kind: KindNode, Label: n.Name, Detail: nodeDetail(n), State: OK, Notes: append([]string{"node " + n.Name}, n.IPs...)})
		bundle, ok := plan.Bundle(n.Name)
		if !ok {
			continue
		}
		type user struct {
			id    string
			paths map[string]bool
		}
		var users []user
		for _, comp := range wiring.Components() {
			w, err := wiring.For(in.Cluster, plan, comp, n.Name, wiring.Options{ExternalCA: externalCA})
			if err != nil {
				continue // it does not run on this node (or etcd is external)
			}
			id := componentID(n.Name, comp)
			b.node(GraphNode{ID: id, Kind: KindComponent, Label: string(comp), Detail: "on " + n.Name, State: OK, Notes: []string{string(comp) + " on node " + n.Name}})
			users = append(users, user{id: id, paths: paths(w)})
		}
		for _, f := range bundle.Files {
			src := sourceID(plan, f)
			used := false
			for _, u := range users {
				if u.paths[f.Path] {
					b.edge(src, u.id, Uses)
					used = true
				}
			}
			if !used {
				b.edge(src, "node:"+n.Name, InstalledOn)
			}
		}
		for _, u := range users {
			b.edge(u.id, "node:"+n.Name, RunsOn)
		}
	}
	propagate(&b.g)
	return b.g
}

// sourceID is the graph node of a bundle file's source.
func sourceID(plan *catalog.Plan, f catalog.BundleFile) string {
	switch f.Kind {
	case catalog.SourceKubeconfig:
		return "kubeconfig:" + f.Name
	case catalog.SourcePublicKey:
		return "keypair:" + f.Name
	}
	if c, ok := plan.Cert(f.Name); ok {
		return certID(c)
	}
	return "keypair:" + f.Name
}

// paths are the files a component's wiring names: flag values (split at
// commas) and the words of its config file.
func paths(w *wiring.Wiring) map[string]bool {
	out := map[string]bool{}
	for _, f := range w.Flags {
		_, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		for _, p := range strings.Split(v, ",") {
			out[p] = true
		}
	}
	for _, word := range strings.FieldsFunc(w.Config, func(r rune) bool {
		return r == ' ' || r == '\n' || r == '\t' || r == '"' || r == '\''
	}) {
		out[word] = true
	}
	return out
}

// propagate gives each component and node the worst state of what it
// uses: a component reading an expired certificate is in trouble too.
// Edges go left to right, so one pass in column order suffices.
func propagate(g *Graph) {
	pos := map[string]int{}
	for i, n := range g.Nodes {
		pos[n.ID] = i
	}
	for col := KindComponent.Column(); col <= KindNode.Column(); col++ {
		for _, e := range g.Edges {
			to := &g.Nodes[pos[e.To]]
			if to.Kind.Column() != col || (to.Kind != KindComponent && to.Kind != KindNode) {
				continue
			}
			to.State = worse(to.State, g.Nodes[pos[e.From]].State)
		}
	}
}

func kubeconfigLabel(k *resolve.Kubeconfig) string {
	if k.Installed {
		return k.Spec.File + " (" + k.Spec.InstalledAs + ")"
	}
	return k.Spec.File
}

func nodeDetail(n cluster.Node) string {
	var roles []string
	for _, r := range n.Roles {
		roles = append(roles, string(r))
	}
	d := strings.Join(roles, ", ")
	if len(n.IPs) > 0 {
		d += " · " + n.IPs[0]
	}
	return d
}

// certDetail is a certificate box's second line: when it expires, or its
// first problem.
func certDetail(c Certificate, in Input) string {
	switch {
	case c.State == Flagged && len(c.Problems) > 0:
		return c.Problems[0]
	case c.NotAfter.IsZero():
		return string(c.Status)
	}
	return ExpiresIn(c.NotAfter, in.Now)
}

func certNotes(c Certificate) []string {
	notes := []string{c.File}
	if c.CN != "" {
		notes = append(notes, "CN "+c.CN)
	}
	if len(c.O) > 0 {
		notes = append(notes, "O "+strings.Join(c.O, ", "))
	}
	if !c.NotAfter.IsZero() {
		notes = append(notes, "expires "+c.NotAfter.Format("2006-01-02 15:04 MST"))
	}
	return append(notes, c.Problems...)
}
