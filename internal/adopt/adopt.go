// Package adopt infers a Cluster spec from a PKI directory that already
// exists: one kubeadm wrote (/etc/kubernetes/pki and its kubeconfigs), one
// made with the openssl commands of "Kubernetes the Hard Way", or one
// kubepki wrote. What the certificates say is taken as the truth: the
// profile from the file names, nodes from their certificates' names and
// SANs, the service CIDR from the API server's service IP, the DNS domain
// from kubernetes.default.svc.<domain>, key algorithm and lifetimes from the
// leaves, the kubeadm era from admin.conf. What no certificate says (a
// CIDR's prefix length, a node's name the hard way never writes) is a
// guess, and each guess is a Note.
package adopt

import (
	"fmt"
	"os"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/store"
)

// Result is an inferred spec.
type Result struct {
	// Spec is defaulted and, for a directory of one of the two layouts,
	// valid (cluster.Validate).
	Spec *cluster.Cluster
	// Profile is the layout the directory follows.
	Profile catalog.Profile
	// KubeconfigDir is where the kubeconfigs were looked for.
	KubeconfigDir string
	// Notes are the guesses, one per field that no certificate settles.
	Notes []Note
}

// Note is one guess of an inference, located by the spec field it set.
type Note struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (n Note) String() string { return n.Field + ": " + n.Message }

// The files that mark a layout. An API server certificate is what
// inference needs above all (service IP, DNS domain, endpoint names), so a
// directory holds a PKI to adopt when it has one.
const (
	kubeadmAPIServer = "apiserver"
	hardwayAPIServer = "kube-api-server"
)

// Detect says which layout dir holds, and whether it holds a PKI to infer
// a spec from at all: one with an API server certificate. A directory
// with only a CA (brought for kubepki init to sign with) or nothing is no
// such PKI.
func Detect(dir string) (catalog.Profile, bool) {
	st := store.Store{Dir: dir}
	switch {
	case store.Exists(st.CertPath(kubeadmAPIServer)):
		return catalog.Kubeadm, true
	case store.Exists(st.CertPath(hardwayAPIServer)):
		return catalog.Hardway, true
	}
	return "", false
}

// Infer reads the PKI in dir and the kubeconfigs in kubeconfigDir (""
// for the profile's own place: dir itself for the hard way, its parent for
// kubeadm) and returns the spec they follow.
func Infer(dir, kubeconfigDir string) (*Result, error) {
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("infer spec: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("infer spec: %s is not a directory", dir)
	}
	profile, ok := Detect(dir)
	if !ok {
		return nil, fmt.Errorf("infer spec: %s holds no API server certificate (apiserver.crt as kubeadm writes it, kube-api-server.crt as the hard way does)", dir)
	}
	if kubeconfigDir == "" {
		kubeconfigDir = profile.KubeconfigDir(dir)
	}
	in := &reader{st: store.Store{Dir: dir, KubeconfigDir: kubeconfigDir, Keys: store.KeyPolicy{Insecure: true}}}
	r := &Result{Profile: profile, KubeconfigDir: kubeconfigDir}
	var err error
	switch profile {
	case catalog.Kubeadm:
		r.Spec, err = inferKubeadm(in)
	default:
		r.Spec, err = inferHardway(in)
	}
	if err != nil {
		return nil, err
	}
	cluster.SetDefaults(r.Spec)
	if profile == catalog.Hardway {
		if err := in.components(r.Spec); err != nil {
			return nil, err
		}
	}
	r.Notes = in.notes
	for _, f := range catalog.Validate(r.Spec) {
		if f.Severity == cluster.Error {
			return nil, fmt.Errorf("infer spec from %s: the inferred spec is not valid: %s", dir, f)
		}
	}
	return r, nil
}
