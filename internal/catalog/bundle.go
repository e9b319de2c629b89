package catalog

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/pki"
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

// ControlPlane reports whether the node has the control-plane role.
func (b NodeBundle) ControlPlane() bool {
	return slices.Contains(b.Roles, string(cluster.RoleControlPlane))
}

// CheckKeyOwner says whether a bundle file that carries a private key (a
// key file, or a kubeconfig with its client key) may go to the bundle's
// node, from what the plan says the key is: a certificate of another node,
// or of a user, never; a CA key, a bare key pair (the token-signing key),
// or a component's own key pair, only to a control-plane node; a component
// kubeconfig (kube-proxy's, which runs on every worker) to any node, unless
// it is in system:masters. Public files (certificates, public keys) may go
// anywhere. A catalog bug that resolves a node's file to the wrong item
// stops here, before a key leaves the PKI directory.
func (p *Plan) CheckKeyOwner(b NodeBundle, f BundleFile) error {
	switch f.Kind {
	case SourceCert, SourcePublicKey:
		return nil
	case SourceKey:
		if c, ok := p.Cert(f.Name); ok {
			return checkCertOwner(c, b, false)
		}
		if slices.ContainsFunc(p.Keys, func(k KeySpec) bool { return k.Name == f.Name }) {
			if !b.ControlPlane() {
				return fmt.Errorf("key pair %s is the control plane's; node %s is not a control-plane node", f.Name, b.Node)
			}
			return nil
		}
		return fmt.Errorf("no key %q in the plan", f.Name)
	case SourceKubeconfig:
		k, ok := p.Kubeconfig(f.Name)
		if !ok {
			return fmt.Errorf("no kubeconfig %q in the plan", f.Name)
		}
		if k.Node != "" && k.Node != b.Node {
			return fmt.Errorf("kubeconfig %s belongs to node %s, not %s", k.Name, k.Node, b.Node)
		}
		c, ok := p.Cert(k.Cert)
		if !ok {
			return fmt.Errorf("kubeconfig %s: no certificate %q in the plan", k.Name, k.Cert)
		}
		return checkCertOwner(c, b, true)
	}
	return fmt.Errorf("unknown source kind %q", f.Kind)
}

func checkCertOwner(c CertSpec, b NodeBundle, inKubeconfig bool) error {
	switch {
	case c.Node != "" && c.Node != b.Node:
		return fmt.Errorf("the key of %s belongs to node %s, not %s", c.Name, c.Node, b.Node)
	case isUserCert(c):
		return fmt.Errorf("the key of %s belongs to a user, not to node %s", c.Name, b.Node)
	case c.Node != "" || b.ControlPlane():
		return nil
	case c.Profile.IsCA:
		return fmt.Errorf("the key of CA %s goes to control-plane nodes only; %s is not one", c.Name, b.Node)
	case !inKubeconfig:
		return fmt.Errorf("the key of %s is a control-plane component's; %s is not a control-plane node", c.Name, b.Node)
	case slices.Contains(c.Profile.Subject.Organization, "system:masters"):
		return fmt.Errorf("the key of %s is in system:masters; it goes to control-plane nodes only, and %s is not one", c.Name, b.Node)
	}
	return nil
}

// usersDir holds the users' certificates, in both layouts.
const usersDir = "users"

func isUserCert(c CertSpec) bool { return strings.HasPrefix(c.Path, usersDir+"/") }

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
			for _, name := range []string{"kube-controller-manager", "kube-scheduler"} {
				// A scheduler or controller manager with serverAuth (the
				// tutorial's ca.conf) serves its own certificate on its
				// secure port: the pair goes beside its kubeconfig.
				if c, ok := p.Cert(name); ok && slices.Contains(c.Profile.Usages, pki.UsageServerAuth) {
					bb.pair(hardwayControlPlaneDir, name, name)
				}
			}
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
				if cert.Embedded || (cert.Node != "" && cert.Node != n.Name) || isUserCert(cert) {
					continue
				}
				bb.pair(kubeadmPKIDir, cert.Path, cert.Name)
			}
			for _, k := range p.Keys {
				bb.add(path.Join(kubeadmPKIDir, k.Path+".key"), SourceKey, k.Name)
				bb.add(path.Join(kubeadmPKIDir, k.Path+".pub"), SourcePublicKey, k.Name)
			}
			for _, k := range p.Kubeconfigs {
				if k.Node == "" {
					bb.add(path.Join(kubeadmDir, k.File), SourceKubeconfig, k.Name)
				}
			}
		}
		bb.add(path.Join(kubeadmPKIDir, "ca.crt"), SourceCert, "ca")
		bb.add(path.Join(kubeadmDir, "kubelet.conf"), SourceKubeconfig, "kubelet-"+n.Name+".conf")
		p.Bundles = append(p.Bundles, bb.b)
	}
}
