package live

import (
	"fmt"
	"net"
	"slices"
	"strings"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/wiring"
)

// Components whose endpoints are probed. etcd has two: clients (2379) and
// peers (2380), with their own certificate in the kubeadm layout.
const (
	APIServer         = string(wiring.KubeAPIServer)
	Etcd              = string(wiring.Etcd)
	EtcdPeer          = "etcd-peer"
	Kubelet           = string(wiring.Kubelet)
	Scheduler         = string(wiring.KubeScheduler)
	ControllerManager = string(wiring.KubeControllerManager)
)

// The secure ports the components listen on by default (the ports
// `kubepki wiring` leaves at their defaults).
const (
	KubeletPort           = "10250"
	SchedulerPort         = "10259"
	ControllerManagerPort = "10257"
)

// EndpointComponents lists the component names an Endpoint (and an
// --endpoint override) takes.
func EndpointComponents() []string {
	return []string{APIServer, Etcd, EtcdPeer, Kubelet, Scheduler, ControllerManager}
}

// Endpoint is one TLS server of the cluster and what it must serve.
type Endpoint struct {
	// Component is one of EndpointComponents.
	Component string `json:"component"`
	// Node is the node it runs on; "" for the spec's API endpoint (a load
	// balancer, or the one control plane under another name).
	Node string `json:"node,omitempty"`
	// Addr is host:port to dial.
	Addr string `json:"addr"`
	// ServerName is sent as SNI ("" when Addr's host is an IP).
	ServerName string `json:"serverName,omitempty"`
	// Cert is the plan item whose certificate file the component serves;
	// "" when no file of this directory is wired: with CA also "", the
	// component serves a certificate it makes itself in memory
	// (kube-scheduler and kube-controller-manager without --tls-cert-file);
	// with CA set, one that CA signs but that lives elsewhere (the kubelet's
	// serving certificate from the Certificates API, another control-plane
	// node's kube-apiserver certificate).
	Cert string `json:"cert,omitempty"`
	// CA is the plan's CA that must sign what is served.
	CA string `json:"ca,omitempty"`
}

// Subject names the endpoint for a person: "kube-scheduler@server", or
// "kube-apiserver (endpoint)" for the spec's API endpoint.
func (e Endpoint) Subject() string {
	if e.Node == "" {
		return e.Component + " (endpoint)"
	}
	return e.Component + "@" + e.Node
}

// Process is the component to restart for the endpoint: etcd for its
// peer port.
func (e Endpoint) Process() string {
	if e.Component == EtcdPeer {
		return Etcd
	}
	return e.Component
}

// Override moves an endpoint to another address: --endpoint
// COMPONENT[@NODE]=HOST:PORT.
type Override struct {
	Component string
	Node      string
	Addr      string
}

// ParseOverride parses COMPONENT[@NODE]=HOST:PORT.
func ParseOverride(s string) (Override, error) {
	target, addr, ok := strings.Cut(s, "=")
	if !ok {
		return Override{}, fmt.Errorf("--endpoint %q: want COMPONENT[@NODE]=HOST:PORT", s)
	}
	comp, node, _ := strings.Cut(target, "@")
	if !slices.Contains(EndpointComponents(), comp) {
		return Override{}, fmt.Errorf("--endpoint %q: unknown component %q (want one of %s)", s, comp, strings.Join(EndpointComponents(), ", "))
	}
	if host, port, err := net.SplitHostPort(addr); err != nil || host == "" || port == "" {
		return Override{}, fmt.Errorf("--endpoint %q: %q is not HOST:PORT", s, addr)
	}
	return Override{Component: comp, Node: node, Addr: addr}, nil
}

// Endpoints lists every TLS endpoint of the spec's components, as
// `kubepki wiring` makes them listen, then applies the overrides:
//   - kube-apiserver on each control-plane node's first address and its
//     secure port, and the spec's API endpoint when it is another address;
//   - etcd's client (2379) and peer (2380) ports on each control-plane node,
//     unless etcd is external;
//   - the kubelet (10250) on every node that runs one;
//   - kube-scheduler (10259) and kube-controller-manager (10257) on
//     127.0.0.1, where they bind: from the first control-plane node (run
//     verify --live on another one, or give --endpoint, to see its own).
//
// An override names a component and, when the component has several
// endpoints, its node; an override that matches nothing is an error.
func Endpoints(c *cluster.Cluster, plan *catalog.Plan, overrides []Override) ([]Endpoint, error) {
	var out []Endpoint
	add := func(e Endpoint) {
		if slices.ContainsFunc(out, func(o Endpoint) bool { return o.Addr == e.Addr }) {
			return
		}
		if host, _, err := net.SplitHostPort(e.Addr); err == nil && net.ParseIP(host) == nil {
			e.ServerName = host
		}
		out = append(out, e)
	}
	hardway := plan.Profile == catalog.Hardway
	api, _ := plan.APIServerCert()
	cps := c.ControlPlanes()
	for _, n := range cps {
		cert, ca := servedBy(api, n.Name)
		add(Endpoint{Component: APIServer, Node: n.Name, Addr: net.JoinHostPort(nodeIP(n), c.APIServer.SecurePort()), Cert: cert, CA: ca})
	}
	if c.APIServer.Endpoint != "" {
		add(Endpoint{Component: APIServer, Addr: c.APIServer.Endpoint, CA: api.CA})
	}
	if c.Etcd.External == nil {
		server, local := plan.Cert("etcd-server")
		peer, _ := plan.Cert("etcd-peer")
		if hardway {
			// The hard way's etcd serves kube-apiserver's certificate
			// (wiring.etcd).
			server, peer, local = api, api, true
		}
		if local {
			for _, n := range cps {
				cert, ca := servedBy(server, n.Name)
				add(Endpoint{Component: Etcd, Node: n.Name, Addr: net.JoinHostPort(nodeIP(n), wiring.EtcdClientPort), Cert: cert, CA: ca})
				cert, ca = servedBy(peer, n.Name)
				add(Endpoint{Component: EtcdPeer, Node: n.Name, Addr: net.JoinHostPort(nodeIP(n), wiring.EtcdPeerPort), Cert: cert, CA: ca})
			}
		}
	}
	for _, n := range c.Nodes {
		switch {
		case hardway && n.Has(cluster.RoleWorker):
			cert, _ := plan.Cert(n.Name)
			add(Endpoint{Component: Kubelet, Node: n.Name, Addr: net.JoinHostPort(nodeIP(n), KubeletPort), Cert: cert.Name, CA: cert.CA})
		case !hardway:
			// serverTLSBootstrap: the cluster CA signs it through the
			// Certificates API; no file here holds it (wiring.kubelet).
			add(Endpoint{Component: Kubelet, Node: n.Name, Addr: net.JoinHostPort(nodeIP(n), KubeletPort), CA: "ca"})
		}
	}
	if len(cps) > 0 {
		for _, x := range []struct{ comp, port string }{{Scheduler, SchedulerPort}, {ControllerManager, ControllerManagerPort}} {
			e := Endpoint{Component: x.comp, Node: cps[0].Name, Addr: net.JoinHostPort("127.0.0.1", x.port)}
			if cert, ok := wiring.ServingCert(plan, wiring.Component(x.comp)); ok {
				e.Cert, e.CA = cert.Name, cert.CA
			}
			out = append(out, e) // 127.0.0.1 is shared with nothing else on this port
		}
	}
	for _, o := range overrides {
		if err := override(out, o); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// servedBy says what a control-plane node serves of a node-specific
// certificate: the file itself on its node (or everywhere, for one with no
// node), and on another node a certificate of the same CA made there.
func servedBy(c catalog.CertSpec, node string) (cert, ca string) {
	if c.Name == "" {
		return "", ""
	}
	if c.Node == "" || c.Node == node {
		return c.Name, c.CA
	}
	return "", c.CA
}

func nodeIP(n cluster.Node) string {
	if len(n.IPs) > 0 {
		return n.IPs[0]
	}
	return "127.0.0.1"
}

func override(eps []Endpoint, o Override) error {
	var match []int
	for i, e := range eps {
		if e.Component == o.Component && (o.Node == "" || e.Node == o.Node) {
			match = append(match, i)
		}
	}
	if o.Node == "" && len(match) > 1 {
		// kube-apiserver without a node: the spec's endpoint.
		if i := slices.IndexFunc(match, func(i int) bool { return eps[i].Node == "" }); i >= 0 {
			match = match[i : i+1]
		}
	}
	switch {
	case len(match) == 0 && o.Node != "":
		return fmt.Errorf("--endpoint %s@%s: no %s on node %s in the spec", o.Component, o.Node, o.Component, o.Node)
	case len(match) == 0:
		return fmt.Errorf("--endpoint %s: the spec has no %s endpoint", o.Component, o.Component)
	case len(match) > 1:
		var nodes []string
		for _, i := range match {
			nodes = append(nodes, eps[i].Node)
		}
		return fmt.Errorf("--endpoint %s: %d nodes run it; name one: %s@NODE (one of %s)", o.Component, len(match), o.Component, strings.Join(nodes, ", "))
	}
	e := &eps[match[0]]
	e.Addr, e.ServerName = o.Addr, ""
	if host, _, _ := net.SplitHostPort(o.Addr); net.ParseIP(host) == nil {
		e.ServerName = host
	}
	return nil
}
