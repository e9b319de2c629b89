package exporter

import (
	"os"
	"path/filepath"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/resolve"
	"kubepki.dev/kubepki/internal/store"
)

// source is one file the exporter reads each scrape (through the cache).
type source struct {
	path string
	kind fileKind
	// keyPath is the certificate's private key file, "" if none.
	keyPath string
	// caPath is the file of the CA that must have signed the certificate
	// (the plan's); "" lets any CA the exporter knows do.
	caPath string
	// required: a missing file is a read error (a --watch-kubeconfig
	// named on the command line), not a file that went away.
	required bool
	// wantCert: the plan's certificate file (or CA file), which must
	// hold a certificate; a watched file may hold a key only.
	wantCert bool
}

// Directory is a PKI directory read through the plan: kubeadm's
// /etc/kubernetes/pki with its kubeconfigs in /etc/kubernetes (kubelet.conf
// on the kubelet's kubelet-client-current.pem included), the hard way's, or
// kubepki's.
type Directory struct {
	Plan  *catalog.Plan
	Store store.Store
}

// dirs are the directories whose listing decides the layout: a file
// created, removed or renamed in them changes their stamp, and the plan is
// resolved again.
func (d *Directory) dirs() []string {
	out := []string{d.Store.Dir, filepath.Join(d.Store.Dir, "etcd")}
	if kd := d.Store.KubeconfigDir; kd != "" && kd != d.Store.Dir {
		out = append(out, kd)
	}
	return out
}

// sources resolves the plan against the directory (resolve.Resolve, as
// every command does) and lists what exists: each CA and certificate with
// its own files (and its key), and each kubeconfig, whose embedded or
// referenced certificates are read from it. A certificate that lives in a
// kubeconfig only, or on another node, is not a file of its own here.
func (d *Directory) sources() []source {
	m := resolve.Resolve(d.Plan, d.Store)
	var out []source
	exists := func(p string) bool {
		_, err := os.Stat(p)
		return p != "" && err == nil
	}
	keyIf := func(p string) string {
		if exists(p) {
			return p
		}
		return ""
	}
	for _, spec := range d.Plan.CAs() {
		ca := m.CAs[spec.Name]
		if ca != nil && exists(ca.Path) {
			out = append(out, source{path: ca.Path, kind: kindPEM, keyPath: keyIf(ca.KeyPath), caPath: ca.Path, wantCert: true})
		}
	}
	for _, c := range m.Certs {
		if c.Spec.Profile.IsCA || c.Elsewhere() || c.Location.Kind() != resolve.Files {
			continue
		}
		if !exists(c.Location.Path()) {
			continue
		}
		s := source{path: c.Location.Path(), kind: kindPEM, keyPath: keyIf(resolve.KeyFile(c.Location)), wantCert: true}
		if c.CA != nil {
			s.caPath = c.CA.Path
		}
		out = append(out, s)
	}
	kubeconfigs := m.Kubeconfigs
	if m.KubeletConf != nil {
		kubeconfigs = append(kubeconfigs, m.KubeletConf)
	}
	for _, k := range kubeconfigs {
		if k.Elsewhere || !exists(k.Path) {
			continue
		}
		out = append(out, source{path: k.Path, kind: kindKubeconfig})
	}
	return out
}

// dirStamps stats the directories of the layout; a missing one has the
// zero stamp.
func dirStamps(dirs []string) []stamp {
	out := make([]stamp, len(dirs))
	for i, d := range dirs {
		if fi, err := os.Stat(d); err == nil {
			out[i] = stampOf(fi)
		}
	}
	return out
}
