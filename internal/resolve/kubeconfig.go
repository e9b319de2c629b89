package resolve

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	api "k8s.io/client-go/tools/clientcmd/api"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/kubeconfig"
	"kubepki.dev/kubepki/internal/store"
)

// KubeletConf is the kubelet's kubeconfig on a real node
// (/etc/kubernetes/kubelet.conf); kubepki's kubeadm layout names it
// kubelet-<node>.conf, one per node (catalog.KubeconfigSpec.InstalledAs).
const KubeletConf = "kubelet.conf"

type userEntry = api.AuthInfo

// Kubeconfig is one kubeconfig of the plan as the store holds it.
type Kubeconfig struct {
	Spec catalog.KubeconfigSpec
	// Path is the file in use: the plan's file, or the name a real node
	// installs it under (kubelet.conf) when that is the one present.
	Path string
	// Installed: Path is the node's installed name, not the plan's.
	Installed bool
	// Elsewhere: the directory is one node's (it holds a plain
	// kubelet.conf), and this is another node's kubelet kubeconfig: it
	// lives on that node, not here.
	Elsewhere bool
	// Config is the file's content; nil when Err is set.
	Config *api.Config
	// Err says why the file could not be read (fs.ErrNotExist: missing).
	Err error
	// Location is where its client certificate lives, by the style of the
	// file: embedded data, referenced files, or the kubelet's rotated PEM.
	Location Location
}

// Missing reports whether the file does not exist.
func (k *Kubeconfig) Missing() bool { return errors.Is(k.Err, fs.ErrNotExist) }

func (k *Kubeconfig) loaded() error { return k.Err }

// current returns the current context's cluster and user, naming the file
// in errors.
func (k *Kubeconfig) current() (*api.Cluster, *api.AuthInfo, error) {
	if k.Config == nil {
		return nil, nil, k.Err
	}
	cl, user, err := kubeconfig.Current(k.Config)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", k.Path, err)
	}
	return cl, user, nil
}

// Cluster returns the current context's cluster entry.
func (k *Kubeconfig) Cluster() (*api.Cluster, error) {
	cl, _, err := k.current()
	return cl, err
}

// loadKubeconfig reads a kubeconfig file and finds its client identity's
// location from its style.
func loadKubeconfig(spec catalog.KubeconfigSpec, path string, st store.Store) *Kubeconfig {
	k := &Kubeconfig{Spec: spec, Path: path}
	k.Config, k.Err = kubeconfig.Load(path)
	k.Location = locate(k, st)
	return k
}

// locate tells the style of a kubeconfig's current user: embedded data (or
// nothing yet: a kubeconfig to create embeds), files it refers to, or one
// PEM file with both (the kubelet's rotated certificate). Relative paths
// are relative to the kubeconfig's directory, as clientcmd resolves them.
func locate(k *Kubeconfig, st store.Store) Location {
	if k.Config == nil {
		return embeddedLocation{k}
	}
	_, user, err := k.current()
	if err != nil || len(user.ClientCertificateData) > 0 || user.ClientCertificate == "" {
		return embeddedLocation{k}
	}
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(filepath.Dir(k.Path), p)
	}
	certFile, keyFile := abs(user.ClientCertificate), abs(user.ClientKey)
	if keyFile == certFile {
		return rotatedLocation{k: k, file: certFile, st: st}
	}
	return referencedLocation{k: k, certFile: certFile, keyFile: keyFile, st: st}
}

// CertificateAuthorityFile is the CA file a kubeconfig's cluster refers to
// instead of embedding it ("" when it embeds).
func (k *Kubeconfig) CertificateAuthorityFile() string {
	cl, err := k.Cluster()
	if err != nil || cl.CertificateAuthority == "" {
		return ""
	}
	if filepath.IsAbs(cl.CertificateAuthority) {
		return cl.CertificateAuthority
	}
	return filepath.Join(filepath.Dir(k.Path), cl.CertificateAuthority)
}
