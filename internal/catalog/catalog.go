// Package catalog knows which certificates a Kubernetes cluster needs: one
// table per profile (hardway, kubeadm) that, applied to a Cluster spec,
// gives the Plan — every CA, certificate and key pair with its identity,
// usages, SANs, lifetime and file.
package catalog

import (
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/pki"
)

// Profile names a PKI layout.
type Profile string

// The supported layouts.
const (
	// Hardway is the flat directory of "Kubernetes the Hard Way": ca.crt,
	// admin.crt, node-0.crt, kube-api-server.crt, … all signed by one CA.
	Hardway Profile = "hardway"
	// Kubeadm is kubeadm's /etc/kubernetes/pki: separate etcd and
	// front-proxy CAs, etcd/ subdirectory, sa.key and sa.pub.
	Kubeadm Profile = "kubeadm"
)

// Profiles lists the supported layouts.
func Profiles() []Profile { return []Profile{Hardway, Kubeadm} }

// KubeconfigDir is where a profile keeps its kubeconfigs for a PKI
// directory: beside the certificates in the hard way, in its parent in
// kubeadm's layout (/etc/kubernetes holds /etc/kubernetes/pki).
func (p Profile) KubeconfigDir(pkiDir string) string {
	if p == Kubeadm {
		return filepath.Dir(filepath.Clean(pkiDir))
	}
	return pkiDir
}

// ParseProfile checks a profile name.
func ParseProfile(s string) (Profile, error) {
	for _, p := range Profiles() {
		if string(p) == s {
			return p, nil
		}
	}
	return "", fmt.Errorf("unknown profile %q (want hardway or kubeadm)", s)
}

// CertSpec is one certificate of the plan.
type CertSpec struct {
	// Name identifies the certificate in commands and reports ("apiserver").
	Name string `json:"name"`
	// Description says in one line what the certificate is for.
	Description string `json:"description"`
	// CA is the Name of the signing CA; empty for a self-signed CA.
	CA string `json:"ca,omitempty"`
	// Path is the file stem relative to the PKI directory: the certificate
	// is Path+".crt" and its key Path+".key".
	Path string `json:"path"`
	// KeyAlgorithm is the algorithm of a newly generated key.
	KeyAlgorithm pki.KeyAlgorithm `json:"keyAlgorithm"`
	// Node is set for certificates that belong to one node.
	Node string `json:"node,omitempty"`
	// Embedded certificates have no files in the PKI directory: they live
	// only inside their kubeconfig (Plan.KubeconfigOf), as kubeadm's
	// admin.conf and kubelet.conf client certificates do.
	Embedded bool `json:"embedded,omitempty"`
	// Profile is what the certificate must say.
	Profile pki.Profile `json:"profile"`
}

// KeySpec is a bare key pair with no certificate: kubeadm's service-account
// signing key, written as Path+".key" and Path+".pub".
type KeySpec struct {
	Name         string           `json:"name"`
	Description  string           `json:"description"`
	Path         string           `json:"path"`
	KeyAlgorithm pki.KeyAlgorithm `json:"keyAlgorithm"`
}

// Plan is the catalog of one profile applied to one spec.
type Plan struct {
	Profile Profile    `json:"profile"`
	Certs   []CertSpec `json:"certificates"`
	Keys    []KeySpec  `json:"keyPairs,omitempty"`
	// Kubeconfigs embed client certificates of Certs.
	Kubeconfigs []KubeconfigSpec `json:"kubeconfigs,omitempty"`
	// Bundles say which files go to which node, at which paths.
	Bundles []NodeBundle `json:"bundles,omitempty"`
}

// Cert returns the certificate of the plan with the given name.
func (p *Plan) Cert(name string) (CertSpec, bool) {
	i := slices.IndexFunc(p.Certs, func(c CertSpec) bool { return c.Name == name })
	if i < 0 {
		return CertSpec{}, false
	}
	return p.Certs[i], true
}

// CAs returns the plan's CAs in order.
func (p *Plan) CAs() []CertSpec {
	var out []CertSpec
	for _, c := range p.Certs {
		if c.Profile.IsCA {
			out = append(out, c)
		}
	}
	return out
}

// Leaves returns the plan's non-CA certificates in order.
func (p *Plan) Leaves() []CertSpec {
	var out []CertSpec
	for _, c := range p.Certs {
		if !c.Profile.IsCA {
			out = append(out, c)
		}
	}
	return out
}

// Names returns the names of every certificate and key pair, in plan order.
func (p *Plan) Names() []string {
	var out []string
	for _, c := range p.Certs {
		out = append(out, c.Name)
	}
	for _, k := range p.Keys {
		out = append(out, k.Name)
	}
	return out
}

// New applies a profile's catalog to a validated spec. It refuses a spec
// with errors (Validate) and, whatever the cause, a plan in which two items
// share a name or a file.
func New(c *cluster.Cluster, profile Profile) (*Plan, error) {
	for _, f := range Validate(c) {
		if f.Severity == cluster.Error {
			return nil, fmt.Errorf("invalid cluster spec: %s", f)
		}
	}
	if profile != Hardway && len(c.Components) > 0 {
		return nil, fmt.Errorf("invalid cluster spec: components: the %s profile has no component certificates to add to (only hardway honours components)", profile)
	}
	in, err := newInputs(c)
	if err != nil {
		return nil, err
	}
	var plan *Plan
	switch profile {
	case Hardway:
		plan = buildHardway(c, in)
	case Kubeadm:
		plan = buildKubeadm(c, in)
	default:
		return nil, fmt.Errorf("unknown profile %q", profile)
	}
	plan.Certs = append(plan.Certs, users(in)...)
	if err := checkUnique(plan); err != nil {
		return nil, err
	}
	return plan, nil
}

// buildHardway and buildKubeadm are a profile's whole catalog but the
// spec's users, unchecked.
func buildHardway(c *cluster.Cluster, in inputs) *Plan {
	plan := hardway(in)
	hardwayKubeconfigs(in, plan)
	hardwayBundles(c, plan)
	return plan
}

func buildKubeadm(c *cluster.Cluster, in inputs) *Plan {
	plan := kubeadm(in)
	kubeadmKubeconfigs(in, plan)
	kubeadmBundles(c, plan)
	return plan
}

// UserCert is the client certificate of an extra user issued on demand
// (kubepki kubeconfig user): CN is the user name, O the groups, signed by
// the cluster CA, valid for ttl.
func UserCert(c *cluster.Cluster, name string, groups []string, ttl time.Duration, alg pki.KeyAlgorithm) CertSpec {
	in := inputs{c: c, alg: alg, leafValidity: ttl}
	return in.leaf(userCertName(name), "ca", usersDir+"/"+name, "client certificate of user "+name,
		in.leafSubject(name, groups...), pki.UsageClientAuth)
}

// users are the spec's extra people and bots: client certificates signed by
// the cluster CA, in users/<name>, in both layouts.
func users(in inputs) []CertSpec {
	var out []CertSpec
	for _, u := range in.c.Users {
		out = append(out, in.leaf(userCertName(u.Name), "ca", usersDir+"/"+u.Name, "client certificate of user "+u.Name,
			in.leafSubject(u.Name, u.Groups...), pki.UsageClientAuth))
	}
	return out
}
