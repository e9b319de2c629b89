// Package wiring derives, from the spec and the plan, the flags and config
// files each Kubernetes component needs to use the PKI: the same paths the
// node bundles install, so that what `kubepki bundle` writes is exactly what
// the components read.
package wiring

import (
	"fmt"
	"net"
	"path"
	"slices"
	"strings"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/cluster"
)

// Component names a Kubernetes component.
type Component string

// The components kubepki wires.
const (
	Etcd                  Component = "etcd"
	KubeAPIServer         Component = "kube-apiserver"
	KubeControllerManager Component = "kube-controller-manager"
	KubeScheduler         Component = "kube-scheduler"
	Kubelet               Component = "kubelet"
	KubeProxy             Component = "kube-proxy"
)

// Components lists every component in start-up order.
func Components() []Component {
	return []Component{Etcd, KubeAPIServer, KubeControllerManager, KubeScheduler, Kubelet, KubeProxy}
}

// Wiring is how one component on one node is started.
type Wiring struct {
	Component Component `json:"component"`
	Node      string    `json:"node"`
	// Flags are the command-line flags, --name=value, in a stable order.
	Flags []string `json:"flags"`
	// ConfigPath and Config are the component's config file (kubelet,
	// kube-proxy): where --config points, and its YAML.
	ConfigPath string `json:"configPath,omitempty"`
	Config     string `json:"config,omitempty"`
}

// Ports the control plane listens on (the components' defaults).
const (
	EtcdClientPort = "2379"
	EtcdPeerPort   = "2380"
)

// Options adjust a wiring to the installation.
type Options struct {
	// Root, if set, is prefixed to every path, for a node tree installed
	// under a directory (kubepki bundle --out).
	Root string
	// ExternalCA is set when the cluster CA's key is absent: nothing in the
	// cluster signs with it (kube-controller-manager's signer is off).
	ExternalCA bool
}

// For returns the wiring of a component on a node. node "" picks the
// spec's only node when it has one (kubeadm's default: one control plane
// that also runs the kubelet), else the first control-plane node for
// control-plane components and the first worker for kubelet and kube-proxy
// (in the kubeadm layout, where every node runs them, the first node when
// there is no worker).
func For(c *cluster.Cluster, plan *catalog.Plan, comp Component, node string, opts Options) (*Wiring, error) {
	if !slices.Contains(Components(), comp) {
		return nil, fmt.Errorf("unknown component %q (want one of %s)", comp, joinComponents())
	}
	if x := c.Etcd.External; comp == Etcd && x != nil {
		return nil, fmt.Errorf("etcd is external (etcd.external in the spec: %s): kubepki does not wire it; kube-apiserver's --etcd-* flags point at it", strings.Join(x.Endpoints, ","))
	}
	n, err := pickNode(c, plan.Profile, comp, node)
	if err != nil {
		return nil, err
	}
	if err := runsOn(plan.Profile, comp, n); err != nil {
		return nil, err
	}
	b, ok := plan.Bundle(n.Name)
	if !ok {
		return nil, fmt.Errorf("no bundle for node %s", n.Name)
	}
	w := &wirer{c: c, plan: plan, node: n, bundle: b, root: opts.Root, externalCA: opts.ExternalCA, out: &Wiring{Component: comp, Node: n.Name}}
	switch comp {
	case Etcd:
		err = w.etcd()
	case KubeAPIServer:
		err = w.apiServer()
	case KubeControllerManager:
		err = w.controllerManager()
	case KubeScheduler:
		err = w.scheduler()
	case Kubelet:
		err = w.kubelet()
	case KubeProxy:
		err = w.kubeProxy()
	}
	if err != nil {
		return nil, fmt.Errorf("%s on %s: %w", comp, n.Name, err)
	}
	return w.out, nil
}

func joinComponents() string {
	var s []string
	for _, c := range Components() {
		s = append(s, string(c))
	}
	return strings.Join(s, ", ")
}

func pickNode(c *cluster.Cluster, p catalog.Profile, comp Component, name string) (cluster.Node, error) {
	if name != "" {
		for _, n := range c.Nodes {
			if n.Name == name {
				return n, nil
			}
		}
		return cluster.Node{}, fmt.Errorf("no node %q in the spec", name)
	}
	switch len(c.Nodes) {
	case 0:
		return cluster.Node{}, fmt.Errorf("the spec has no nodes")
	case 1:
		return c.Nodes[0], nil
	}
	role, candidates := cluster.RoleControlPlane, c.ControlPlanes()
	if comp == Kubelet || comp == KubeProxy {
		role, candidates = cluster.RoleWorker, c.Workers()
		if len(candidates) == 0 && p == catalog.Kubeadm {
			// kubeadm runs a kubelet (and kube-proxy) on every node,
			// control planes included (runsOn).
			candidates = c.Nodes
		}
	}
	if len(candidates) == 0 {
		names := make([]string, len(c.Nodes))
		for i, n := range c.Nodes {
			names[i] = n.Name
		}
		return cluster.Node{}, fmt.Errorf("no %s node to run %s on by default; pass --node (one of %s)", role, comp, strings.Join(names, ", "))
	}
	return candidates[0], nil
}

// runsOn says whether a component runs on a node of the layout: the
// control plane's components on control-plane nodes; the kubelet and
// kube-proxy on workers (and, in the kubeadm layout, on every node).
func runsOn(p catalog.Profile, comp Component, n cluster.Node) error {
	switch comp {
	case Kubelet, KubeProxy:
		if n.Has(cluster.RoleWorker) || p == catalog.Kubeadm {
			return nil
		}
		return fmt.Errorf("%s does not run on node %s in the %s layout: it has no worker role", comp, n.Name, p)
	}
	if !n.Has(cluster.RoleControlPlane) {
		return fmt.Errorf("%s runs on control-plane nodes; %s is not one", comp, n.Name)
	}
	return nil
}

// wirer builds one Wiring; its helpers look paths up in the node's bundle.
type wirer struct {
	c      *cluster.Cluster
	plan   *catalog.Plan
	node   cluster.Node
	bundle catalog.NodeBundle
	root   string
	out    *Wiring
	err    error
	// externalCA: the cluster CA's key is not on the node.
	externalCA bool
}

func (w *wirer) flag(name, value string) {
	w.out.Flags = append(w.out.Flags, "--"+name+"="+value)
}

// file returns the installed path of a source, failing the wiring if the
// node's bundle does not carry it.
func (w *wirer) file(kind catalog.SourceKind, name string) string {
	p := w.bundle.Path(kind, name)
	if p == "" && w.err == nil {
		w.err = fmt.Errorf("node %s's bundle has no %s %q", w.node.Name, kind, name)
	}
	return w.path(p)
}

// path applies the root prefix.
func (w *wirer) path(p string) string {
	if w.root == "" || p == "" {
		return p
	}
	return path.Join(w.root, p)
}

// nodeIP is the node's first address, or 127.0.0.1.
func (w *wirer) nodeIP() string {
	if len(w.node.IPs) > 0 {
		return w.node.IPs[0]
	}
	return "127.0.0.1"
}

func (w *wirer) hardway() bool { return w.plan.Profile == catalog.Hardway }

// ca names the CA of a kind in the layout: kubeadm has separate etcd and
// front-proxy CAs when the spec asks; the hard way has one CA.
func (w *wirer) ca(name string) string {
	if w.hardway() {
		return "ca"
	}
	if _, ok := w.plan.Cert(name); ok {
		return name
	}
	return "ca"
}

func url(host, port string) string { return "https://" + net.JoinHostPort(host, port) }

func (w *wirer) etcdURLs(port string) string {
	urls := []string{url("127.0.0.1", port)}
	if ip := w.nodeIP(); ip != "127.0.0.1" {
		urls = append(urls, url(ip, port))
	}
	return strings.Join(urls, ",")
}
