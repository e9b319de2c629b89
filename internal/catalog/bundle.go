package catalog

import (
	"path"
	"slices"
	"strings"

	"kubepki.dev/kubepki/internal/cluster"
)

// SourceKind says which file of the store a bundle file is.
type SourceKind string

// Source kinds.
const (
	SourceCert       SourceKind = "cert"
	SourceKey        SourceKind = "key"
	SourcePublicKey  SourceKind = "pub"
	SourceKubeconfig SourceKind = "kubeconfig"
)

// BundleFile is one file installed on a node.
type BundleFile struct {
	// Path is where the node's components read it.
	Path string `json:"path"`
	// Mode is the permission bits, as octal text ("0600").
	Mode  string `json:"mode"`
	Owner string `json:"owner"`
	// Kind and Name select the source: the certificate, key or public key of
	// the plan item Name, or the kubeconfig Name.
	Kind SourceKind `json:"kind"`
	Name string     `json:"name"`
}

// NodeBundle is every file one node needs, at the paths its components read.
type NodeBundle struct {
	Node  string       `json:"node"`
	Roles []string     `json:"roles"`
	Files []BundleFile `json:"files"`
}

// Bundle returns the bundle of a node.
func (p *Plan) Bundle(node string) (NodeBundle, bool) {
	i := slices.IndexFunc(p.Bundles, func(b NodeBundle) bool { return b.Node == node })
	if i < 0 {
		return NodeBundle{}, false
	}
	return p.Bundles[i], true
}

// Path returns where the bundle installs a source, or "".
func (b NodeBundle) Path(kind SourceKind, name string) string {
	for _, f := range b.Files {
		if f.Kind == kind && f.Name == name {
			return f.Path
		}
	}
	return ""
}

// bundleBuilder collects a node's files, skipping duplicates.
type bundleBuilder struct{ b NodeBundle }

func (bb *bundleBuilder) add(p string, kind SourceKind, name string) {
	mode := "0644"
	if kind == SourceKey || kind == SourceKubeconfig {
		mode = "0600"
	}
	if slices.ContainsFunc(bb.b.Files, func(f BundleFile) bool { return f.Path == p }) {
		return
	}
	bb.b.Files = append(bb.b.Files, BundleFile{Path: p, Mode: mode, Owner: "root:root", Kind: kind, Name: name})
}

func (bb *bundleBuilder) pair(dir, base, name string) {
	bb.add(path.Join(dir, base+".crt"), SourceCert, name)
	bb.add(path.Join(dir, base+".key"), SourceKey, name)
}

func newBundle(n cluster.Node) *bundleBuilder {
	var roles []string
	for _, r := range n.Roles {
		roles = append(roles, string(r))
	}
	return &bundleBuilder{b: NodeBundle{Node: n.Name, Roles: roles}}
}

// Where the hard way's components read their files (Kubernetes the Hard
// Way's bootstrapping chapters).
const (
	hardwayControlPlaneDir = "/var/lib/kubernetes"
	hardwayKubeletDir      = "/var/lib/kubelet"
	hardwayKubeProxyDir    = "/var/lib/kube-proxy"
	hardwayAdminDir        = "/root"
)

// hardwayBundles: workers get ca.crt and their own kubelet pair and
// kubeconfig; the control plane gets the CA pair, the API server and
// service-account pairs, and the controller-manager, scheduler and admin
// kubeconfigs.
func hardwayBundles(c *cluster.Cluster, p *Plan) {
	for _, n := range c.Nodes {
		bb := newBundle(n)
		if n.Has(cluster.RoleControlPlane) {
			bb.pair(hardwayControlPlaneDir, "ca", hardwayCA)
			bb.pair(hardwayControlPlaneDir, "kube-api-server", "kube-api-server")
			bb.pair(hardwayControlPlaneDir, "service-accounts", "service-accounts")
			bb.add(path.Join(hardwayControlPlaneDir, "kube-controller-manager.kubeconfig"), SourceKubeconfig, "kube-controller-manager")
			bb.add(path.Join(hardwayControlPlaneDir, "kube-scheduler.kubeconfig"), SourceKubeconfig, "kube-scheduler")
			bb.add(path.Join(hardwayAdminDir, "admin.kubeconfig"), SourceKubeconfig, "admin")
		}
		if n.Has(cluster.RoleWorker) {
			bb.add(path.Join(hardwayKubeletDir, "ca.crt"), SourceCert, hardwayCA)
			bb.pair(hardwayKubeletDir, "kubelet", n.Name)
			bb.add(path.Join(hardwayKubeletDir, "kubeconfig"), SourceKubeconfig, n.Name)
			bb.add(path.Join(hardwayKubeProxyDir, "kubeconfig"), SourceKubeconfig, "kube-proxy")
		}
		p.Bundles = append(p.Bundles, bb.b)
	}
}

// Where kubeadm's components read their files.
const (
	kubeadmDir    = "/etc/kubernetes"
	kubeadmPKIDir = "/etc/kubernetes/pki"
)

// kubeadmBundles: every control-plane node gets the shared PKI (CAs with
// their keys, sa, front-proxy client) and the control-plane kubeconfigs; the
// first one also its node-specific certificates, which other control-plane
// nodes make at `kubeadm join --control-plane` from the shared CAs. Every
// node gets ca.crt and its kubelet.conf.
func kubeadmBundles(c *cluster.Cluster, p *Plan) {
	for _, n := range c.Nodes {
		bb := newBundle(n)
		if n.Has(cluster.RoleControlPlane) {
			for _, cert := range p.Certs {
				if cert.Embedded || (cert.Node != "" && cert.Node != n.Name) || strings.HasPrefix(cert.Path, "users/") {
					continue
				}
				bb.pair(kubeadmPKIDir, cert.Path, cert.Name)
			}
			for _, k := range p.Keys {
				bb.add(path.Join(kubeadmPKIDir, k.Path+".key"), SourceKey, k.Name)
				bb.add(path.Join(kubeadmPKIDir, k.Path+".pub"), SourcePublicKey, k.Name)
			}
			for _, k := range []string{"admin.conf", "super-admin.conf", "controller-manager.conf", "scheduler.conf"} {
				bb.add(path.Join(kubeadmDir, k), SourceKubeconfig, k)
			}
		}
		bb.add(path.Join(kubeadmPKIDir, "ca.crt"), SourceCert, "ca")
		bb.add(path.Join(kubeadmDir, "kubelet.conf"), SourceKubeconfig, "kubelet-"+n.Name+".conf")
		p.Bundles = append(p.Bundles, bb.b)
	}
}
