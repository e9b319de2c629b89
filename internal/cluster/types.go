// Package cluster owns the Cluster spec: the YAML document a user writes (or
// the embedded default, or one imported from a ca.conf), its defaults and
// its validation.
package cluster

import (
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"time"

	"kubepki.dev/kubepki/internal/duration"
	"kubepki.dev/kubepki/internal/pki"
)

// The spec's type identity.
const (
	APIVersion = "kubepki.dev/v1alpha1"
	Kind       = "Cluster"
)

// Cluster describes a Kubernetes cluster as far as its PKI needs to know it.
type Cluster struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// Name names the cluster in kubeconfigs.
	Name string `json:"name"`
	// KubernetesVersion is the Kubernetes (kubeadm) version whose PKI layout
	// the directory follows, as vMAJOR.MINOR[.PATCH] ("v1.28"); empty means
	// the current layout (v1.29 and later). Before v1.29 kubeadm's admin.conf
	// is in system:masters and there is no super-admin.conf.
	KubernetesVersion string `json:"kubernetesVersion,omitempty"`
	// DNSDomain is the cluster's DNS domain (default cluster.local); the API
	// server certificate names kubernetes.default.svc.<DNSDomain>.
	DNSDomain string `json:"dnsDomain,omitempty"`
	// ServiceCIDR is the Service IP range; its first usable address is the
	// ClusterIP of the kubernetes Service, so the API server cert names it.
	ServiceCIDR string `json:"serviceCIDR"`
	// PodCIDR is the Pod IP range (for kube-controller-manager and kube-proxy).
	PodCIDR string `json:"podCIDR,omitempty"`
	// APIServer says how clients reach the API server.
	APIServer APIServer `json:"apiServer"`
	// Subject holds the C, ST, L and O given to the CAs; leaves get C, ST and
	// L only, since a leaf's O is its Kubernetes group list.
	Subject Subject `json:"subject,omitempty"`
	// KeyAlgorithm is one of RSA-2048, RSA-3072, RSA-4096, ECDSA-P256 (default),
	// ECDSA-P384, Ed25519.
	KeyAlgorithm string `json:"keyAlgorithm,omitempty"`
	// Validity is how long CAs and leaves are valid.
	Validity Validity `json:"validity,omitempty"`
	// CertificateAuthorities chooses separate CAs for etcd and the front proxy.
	CertificateAuthorities CertificateAuthorities `json:"certificateAuthorities,omitempty"`
	// Nodes are the cluster's machines.
	Nodes []Node `json:"nodes"`
	// Users are extra people or bots that get a client certificate.
	Users []User `json:"users,omitempty"`
	// Components adds to a component certificate of the hardway profile what
	// a PKI made by hand declares beyond kubepki's catalog, keyed by the
	// certificate's name (see ComponentNames): the ca.conf of "Kubernetes
	// the Hard Way" gives kube-proxy, kube-scheduler and
	// kube-controller-manager serverAuth and SANs, and `config
	// import-openssl` keeps them here so that verify accepts what the
	// tutorial's openssl commands make.
	Components map[string]Component `json:"components,omitempty"`
	// Etcd is how etcd is run, as far as its certificates go (kubeadm
	// profile).
	Etcd EtcdSpec `json:"etcd,omitzero"`
}

// Component is what one component certificate has beyond the catalog's.
type Component struct {
	// ExtraUsages are extended key usages added to the catalog's: "server
	// auth" or "client auth".
	ExtraUsages []pki.Usage `json:"extraUsages,omitempty"`
	// ExtraSANs are DNS names or IPs the certificate also names.
	ExtraSANs []string `json:"extraSANs,omitempty"`
}

// ComponentNames are the keys Cluster.Components takes: the hardway
// profile's component certificates whose identity the catalog fixes.
func ComponentNames() []string {
	return []string{"admin", "kube-proxy", "kube-scheduler", "kube-controller-manager", "service-accounts"}
}

// EtcdSpec is etcd as kubeadm's ClusterConfiguration describes it.
type EtcdSpec struct {
	// ServerCertSANs and PeerCertSANs are extra DNS names or IPs of etcd's
	// serving and peer certificates (kubeadm's etcd.local.serverCertSANs
	// and peerCertSANs), for clients and peers that dial etcd by another
	// name than the node's.
	ServerCertSANs []string `json:"serverCertSANs,omitempty"`
	PeerCertSANs   []string `json:"peerCertSANs,omitempty"`
	// External is an etcd cluster run and certified outside this PKI
	// (kubeadm's etcd.external): as kubeadm does, no etcd CA, no etcd
	// certificates and no apiserver-etcd-client are made; kube-apiserver
	// uses the files named here.
	External *ExternalEtcd `json:"external,omitempty"`
}

// ExternalEtcd is where an external etcd is and which files kube-apiserver
// authenticates to it with.
type ExternalEtcd struct {
	Endpoints []string `json:"endpoints"`
	CAFile    string   `json:"caFile,omitempty"`
	CertFile  string   `json:"certFile,omitempty"`
	KeyFile   string   `json:"keyFile,omitempty"`
}

// APIServer is how the API server is reached.
type APIServer struct {
	// Endpoint is host:port of the API server (a load balancer or the control
	// plane node) that kubeconfigs point at; the host is a SAN.
	Endpoint string `json:"endpoint"`
	// ExtraSANs are more DNS names or IPs for the serving certificate.
	ExtraSANs []string `json:"extraSANs,omitempty"`
	// BindAddress is kube-apiserver's --bind-address (default all
	// interfaces). Control-plane components reach it on 127.0.0.1, so it
	// must be 0.0.0.0, :: or a loopback address for them to work.
	BindAddress string `json:"bindAddress,omitempty"`
	// BindPort is kube-apiserver's --secure-port, which components on a
	// control-plane node dial (kubeadm's localAPIEndpoint.bindPort);
	// default the endpoint's port. A load balancer's endpoint may listen
	// on another port than the API servers behind it.
	BindPort int `json:"bindPort,omitempty"`
}

// SecurePort is the port kube-apiserver listens on: BindPort, or the
// endpoint's port.
func (a APIServer) SecurePort() string {
	if a.BindPort != 0 {
		return strconv.Itoa(a.BindPort)
	}
	_, port, _ := net.SplitHostPort(a.Endpoint)
	return port
}

// Subject holds the distinguished-name defaults.
type Subject struct {
	Country      string `json:"country,omitempty"`
	Province     string `json:"province,omitempty"`
	Locality     string `json:"locality,omitempty"`
	Organization string `json:"organization,omitempty"`
}

// Validity holds certificate lifetimes, as Go durations ("87660h") or
// days ("3650d").
type Validity struct {
	CA   Duration `json:"ca,omitempty"`
	Leaf Duration `json:"leaf,omitempty"`
}

// Duration is a lifetime in a spec: written as a Go duration, read as one
// or as days (duration.Parse).
type Duration struct{ time.Duration }

// UnmarshalJSON reads a Go duration or days.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration string such as 8760h or 365d")
	}
	v, err := duration.Parse(s)
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalJSON writes the Go spelling ("8760h0m0s").
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.Duration.String()) }

// CertificateAuthorities turns the separate etcd and front-proxy CAs on or
// off. Both default to on, as kubeadm does; off means the cluster CA signs.
type CertificateAuthorities struct {
	Etcd       *bool `json:"etcd,omitempty"`
	FrontProxy *bool `json:"frontProxy,omitempty"`
}

// Role is what a node runs.
type Role string

// Node roles.
const (
	RoleControlPlane Role = "control-plane"
	RoleWorker       Role = "worker"
)

// Node is one machine.
type Node struct {
	// Name is the node's Kubernetes name, a DNS label; kubelet's user is
	// system:node:<Name>.
	Name string `json:"name"`
	// Roles the node plays; default worker.
	Roles []Role `json:"roles,omitempty"`
	// IPs are the node's addresses; the API server dials the kubelet by IP,
	// so they are SANs of the kubelet serving certificate.
	IPs []string `json:"ips,omitempty"`
	// Hostnames are extra DNS names of the node.
	Hostnames []string `json:"hostnames,omitempty"`
	// SSH is how `kubepki distribute` reaches the node.
	SSH SSH `json:"ssh,omitzero"`
}

// SSH is an SSH destination.
type SSH struct {
	// Address is host or host:port; default the node's first IP, port 22.
	Address string `json:"address,omitempty"`
	// User defaults to root: the files go to root-owned paths.
	User string `json:"user,omitempty"`
}

// User is an extra client identity.
type User struct {
	Name   string   `json:"name"`
	Groups []string `json:"groups,omitempty"`
}

// Has reports whether the node plays role r.
func (n Node) Has(r Role) bool {
	for _, x := range n.Roles {
		if x == r {
			return true
		}
	}
	return false
}

// ControlPlanes returns the control-plane nodes in spec order.
func (c *Cluster) ControlPlanes() []Node { return c.nodes(RoleControlPlane) }

// Workers returns the worker nodes in spec order.
func (c *Cluster) Workers() []Node { return c.nodes(RoleWorker) }

func (c *Cluster) nodes(r Role) []Node {
	var out []Node
	for _, n := range c.Nodes {
		if n.Has(r) {
			out = append(out, n)
		}
	}
	return out
}

// Before reports whether the spec's KubernetesVersion is set and older than
// major.minor; an empty or malformed version is the current layout, never
// older.
func (c *Cluster) Before(major, minor int) bool {
	ma, mi, err := ParseVersion(c.KubernetesVersion)
	if err != nil {
		return false
	}
	return ma < major || (ma == major && mi < minor)
}

// SeparateEtcdCA reports whether etcd has its own CA.
func (c *Cluster) SeparateEtcdCA() bool { return boolOr(c.CertificateAuthorities.Etcd, true) }

// SeparateFrontProxyCA reports whether the front proxy has its own CA.
func (c *Cluster) SeparateFrontProxyCA() bool {
	return boolOr(c.CertificateAuthorities.FrontProxy, true)
}

func boolOr(b *bool, def bool) bool {
	if b == nil {
		return def
	}
	return *b
}
