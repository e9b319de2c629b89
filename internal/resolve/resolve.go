// Package resolve answers, once per plan and store, the two questions
// every command asks of each certificate: where does it live (its own
// files, a kubeconfig that embeds it, a kubeconfig that refers to files,
// the kubelet's rotated kubelet-client-current.pem, kubeadm's plain
// kubelet.conf) and who signs it (a CA with its key, an external CA, a
// trust bundle of several CAs). Examine, apply, renew, expiration,
// generate-csr and install, bundle and plan all read this one answer.
package resolve

import (
	"crypto/x509"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/store"
)

// Model is a plan resolved against a store.
type Model struct {
	Plan  *catalog.Plan
	Store store.Store
	// CAs are the plan's CAs by name.
	CAs map[string]*CA
	// Certs are the plan's certificates, in plan order.
	Certs []*Cert
	// Kubeconfigs are the plan's kubeconfigs, in plan order.
	Kubeconfigs []*Kubeconfig
	// KubeletConf is a plain kubelet.conf of the kubeconfig directory
	// that no kubeconfig of the plan claims (its node is not in the spec),
	// or nil.
	KubeletConf *Kubeconfig
}

// Cert is one certificate of the plan as the store holds it.
type Cert struct {
	Spec catalog.CertSpec
	// CA is the signing CA's state; for a CA, its own.
	CA *CA
	// Location is where the certificate and its key live.
	Location Location
	// Kubeconfig is the kubeconfig the certificate lives in, for one that
	// has no files of its own (catalog.CertSpec.Embedded); nil otherwise.
	Kubeconfig *Kubeconfig
	// Copies are the kubeconfigs that carry a copy of a certificate with
	// its own files (the hard way's).
	Copies []*Kubeconfig
}

// Elsewhere reports whether the certificate lives on another node.
func (c *Cert) Elsewhere() bool { return c.Kubeconfig != nil && c.Kubeconfig.Elsewhere }

// Issuable reports whether kubepki can issue the certificate here: a CA
// (self-signed), or a leaf whose CA has its key. A leaf of an external CA
// comes from outside (generate-csr, install).
func (c *Cert) Issuable() bool {
	if c.Spec.Profile.IsCA {
		return true
	}
	return c.CA != nil && c.CA.CanIssue()
}

// Resolve resolves every item of the plan against the store. It reads
// keys under st.Keys: a key the policy refuses is the CA's Err, or the
// error of its location's Read.
func Resolve(plan *catalog.Plan, st store.Store) *Model {
	m := &Model{Plan: plan, Store: st, CAs: map[string]*CA{}}
	for _, c := range plan.CAs() {
		m.CAs[c.Name] = resolveCA(c, st)
	}
	m.resolveKubeconfigs()
	for _, spec := range plan.Certs {
		c := &Cert{Spec: spec, CA: m.CAs[spec.CA]}
		if spec.Profile.IsCA {
			c.CA = m.CAs[spec.Name]
		}
		for _, k := range m.Kubeconfigs {
			if k.Spec.Cert != spec.Name {
				continue
			}
			if spec.Embedded && c.Kubeconfig == nil {
				c.Kubeconfig = k
			} else {
				c.Copies = append(c.Copies, k)
			}
		}
		if c.Kubeconfig != nil {
			c.Location = c.Kubeconfig.Location
		} else {
			c.Location = fileLocation{st: st, stem: spec.Path}
		}
		m.Certs = append(m.Certs, c)
	}
	return m
}

// resolveKubeconfigs loads the plan's kubeconfigs and gives a real node's
// plain kubelet.conf to the node whose identity it holds.
func (m *Model) resolveKubeconfigs() {
	var plain *Kubeconfig
	path := m.Store.KubeconfigPath(KubeletConf)
	claimed := slices.ContainsFunc(m.Plan.Kubeconfigs, func(k catalog.KubeconfigSpec) bool { return k.File == KubeletConf })
	if !claimed && store.Exists(path) {
		plain = loadKubeconfig(catalog.KubeconfigSpec{Name: KubeletConf, File: KubeletConf}, path, m.Store)
	}
	plainCN := ""
	if plain != nil && plain.Err == nil {
		if cert, _, err := plain.Location.Read(); err == nil {
			plainCN = cert.Subject.CommonName
		} else if cert := readCertOnly(plain); cert != nil {
			plainCN = cert.Subject.CommonName
		}
	}
	matched := false
	for _, spec := range m.Plan.Kubeconfigs {
		k := loadKubeconfig(spec, m.Store.KubeconfigPath(spec.File), m.Store)
		if k.Missing() && spec.InstalledAs == KubeletConf && plain != nil {
			if plainCN == spec.User && !matched {
				plain.Spec, plain.Installed, matched = spec, true, true
				k = plain
			} else {
				k.Elsewhere = true
			}
		}
		m.Kubeconfigs = append(m.Kubeconfigs, k)
	}
	if plain != nil && !matched {
		m.KubeletConf = plain
	}
}

// readCertOnly reads a kubeconfig's client certificate when its key cannot
// be read (a policy refusal): enough to tell whose it is.
func readCertOnly(k *Kubeconfig) *x509.Certificate {
	rl, ok := k.Location.(rotatedLocation)
	if !ok {
		return nil
	}
	insecure := rl
	insecure.st.Keys = store.KeyPolicy{Insecure: true}
	cert, _, err := insecure.Read()
	if err != nil {
		return nil
	}
	return cert
}

// Cert returns the resolved certificate of the plan with the given name.
func (m *Model) Cert(name string) (*Cert, bool) {
	i := slices.IndexFunc(m.Certs, func(c *Cert) bool { return c.Spec.Name == name })
	if i < 0 {
		return nil, false
	}
	return m.Certs[i], true
}

// Kubeconfig returns the resolved kubeconfig with the given plan name, or
// the one installed under that file name on this node (kubelet.conf).
func (m *Model) Kubeconfig(name string) (*Kubeconfig, bool) {
	for _, k := range m.Kubeconfigs {
		if k.Spec.Name == name || k.Spec.File == name || (k.Installed && filepath.Base(k.Path) == name) {
			return k, true
		}
	}
	return nil, false
}

// UnknownNameError is Select's error for a name that is neither a
// certificate nor a kubeconfig of the plan.
type UnknownNameError struct {
	Name    string
	Profile catalog.Profile
	// Valid are the names Select accepts, "all" first.
	Valid []string
}

func (e *UnknownNameError) Error() string {
	return fmt.Sprintf("no certificate or kubeconfig %q in the %s plan; valid: %s", e.Name, e.Profile, strings.Join(e.Valid, ", "))
}

// Names are the names Select accepts: "all", then the non-CA
// certificates' and the kubeconfigs' names (and a plain kubelet.conf
// installed here), sorted.
func (m *Model) Names() []string {
	var names []string
	for _, c := range m.Certs {
		if !c.Spec.Profile.IsCA {
			names = append(names, c.Spec.Name)
		}
	}
	for _, k := range m.Kubeconfigs {
		names = append(names, k.Spec.Name)
		if k.Installed {
			names = append(names, filepath.Base(k.Path))
		}
	}
	slices.Sort(names)
	return append([]string{"all"}, slices.Compact(names)...)
}

// Leaves are the non-CA certificates that live here (not on another node).
func (m *Model) Leaves() []*Cert {
	var out []*Cert
	for _, c := range m.Certs {
		if !c.Spec.Profile.IsCA && !c.Elsewhere() {
			out = append(out, c)
		}
	}
	return out
}

// Select resolves names given on a command line to non-CA certificates:
// a certificate's name, a kubeconfig's (which stands for its client
// certificate), or the file a real node installs it as (kubelet.conf);
// "all" or none means every leaf that lives here.
func (m *Model) Select(names []string) ([]*Cert, error) {
	if len(names) == 0 || slices.Contains(names, "all") {
		return m.Leaves(), nil
	}
	var out []*Cert
	for _, n := range names {
		c, ok := m.Cert(n)
		if !ok {
			k, isKubeconfig := m.Kubeconfig(n)
			switch {
			case isKubeconfig:
				c, _ = m.Cert(k.Spec.Cert)
			case n == KubeletConf && m.KubeletConf != nil:
				return nil, fmt.Errorf("%s is the kubelet kubeconfig of no node of the spec: its client certificate is not of a node the spec names (system:node:<name>)", m.KubeletConf.Path)
			default:
				return nil, &UnknownNameError{Name: n, Profile: m.Plan.Profile, Valid: m.Names()}
			}
		}
		if c.Spec.Profile.IsCA {
			return nil, fmt.Errorf("%s is a CA: renewing a CA re-signs the whole cluster; that is CA rotation, not renewal", n)
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out, nil
}
