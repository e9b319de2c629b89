package adopt

import (
	"fmt"
	"net"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/pki"
)

// hardwayExtraService is the name "Kubernetes the Hard Way" gives the API
// server besides the Service's; kubepki's hard-way catalog keeps it.
const hardwayExtraService = "kubernetes.default.svc.cluster"

// inferHardway reads the flat directory of "Kubernetes the Hard Way": one
// CA, a certificate per worker (CN system:node:<name>), kube-api-server.crt
// and <name>.kubeconfig files beside them.
func inferHardway(r *reader) (*cluster.Cluster, error) {
	c := &cluster.Cluster{}
	api, err := r.common(c, hardwayAPIServer)
	if err != nil {
		return nil, err
	}

	// Workers: every certificate issued to system:node:<name>. The kubelet
	// serving certificate names the node's hostnames and IPs.
	stems, err := r.stems("")
	if err != nil {
		return nil, err
	}
	var workerIPs []string
	for _, s := range stems {
		cert, err := r.cert(s)
		if err != nil {
			return nil, err
		}
		name, ok := nodeOf(cert)
		if !ok || cert.IsCA {
			continue
		}
		n := cluster.Node{Name: name, Roles: []cluster.Role{cluster.RoleWorker}}
		for _, d := range cert.DNSNames {
			if d != name {
				n.Hostnames = appendNew(n.Hostnames, d)
			}
		}
		n.IPs = ipStrings(cert.IPAddresses, isLoopback)
		workerIPs = append(workerIPs, n.IPs...)
		c.Nodes = append(c.Nodes, n)
	}

	// Name and endpoint: the kubeconfigs of what runs away from the
	// control plane (kubelets, kube-proxy, admin) name the endpoint; the
	// control plane's own dial 127.0.0.1.
	kc, err := r.hardwayEndpointKubeconfig()
	if err != nil {
		return nil, err
	}

	// The service IP: the first IP SAN of kube-api-server that is no
	// loopback and no worker's.
	var svc net.IP
	for _, ip := range api.IPAddresses {
		if !ip.IsLoopback() && !slices.Contains(workerIPs, ip.String()) {
			svc = ip
			break
		}
	}
	r.setServiceCIDR(c, svc, "10.32.0.0/24", hardwayAPIServer+".crt")
	r.setDNSDomain(c, api.DNSNames, true)

	// Names of the API server that are not the Service's.
	var names []string
	for _, d := range api.DNSNames {
		switch {
		case slices.Contains(kubernetesNames, d), d == hardwayExtraService, d == serviceDNSPrefix+c.DNSDomain:
		case strings.HasPrefix(d, "kubernetes.svc."):
			// The tutorial's kubernetes.svc.cluster.local is no name of the
			// Service (<service>.<namespace>.svc.<domain>).
			r.note("apiServer.extraSANs", "%s.crt names %s, which is no name of the kubernetes Service; left out (kubernetes.default.svc.%s is the name)", hardwayAPIServer, d, c.DNSDomain)
		default:
			names = append(names, d)
		}
	}

	switch {
	case kc != nil:
		c.Name, c.APIServer.Endpoint = kc.Cluster, kc.Server
	case len(names) > 0:
		c.Name, c.APIServer.Endpoint = "kubernetes", net.JoinHostPort(names[0], "6443")
		r.note("apiServer.endpoint", "no kubeconfig in %s names the API server; assumed %s, the API server certificate's first name", r.st.KubeconfigPath(""), c.APIServer.Endpoint)
	default:
		return nil, fmt.Errorf("infer spec from %s: no kubeconfig names the API server and %s.crt has no name to reach it by", r.st.Dir, hardwayAPIServer)
	}
	endpointHost := hostOf(c.APIServer.Endpoint)

	// The control-plane node: the hard way writes no certificate in its
	// name, so it is a guess from the name the endpoint (or the API
	// server) is reached by: server.kubernetes.local is "server".
	cp := cluster.Node{Name: controlPlaneName(endpointHost, names), Roles: []cluster.Role{cluster.RoleControlPlane}}
	for _, d := range names {
		if d == cp.Name || strings.HasPrefix(d, cp.Name+".") {
			cp.Hostnames = appendNew(cp.Hostnames, d)
		} else if d != endpointHost {
			c.APIServer.ExtraSANs = appendNew(c.APIServer.ExtraSANs, d)
		}
	}
	cp.IPs = ipStrings(api.IPAddresses, func(ip net.IP) bool {
		return ip.IsLoopback() || ip.Equal(svc) || slices.Contains(workerIPs, ip.String()) || sameHost(ip.String(), endpointHost)
	})
	r.note("nodes", "the hard way writes no certificate for the control-plane node; named it %q after %s, with the API server's other names and addresses as its own", cp.Name, endpointHost)
	if i := slices.IndexFunc(c.Nodes, func(n cluster.Node) bool { return n.Name == cp.Name }); i >= 0 {
		// A worker of that name also runs the control plane.
		c.Nodes[i].Roles = []cluster.Role{cluster.RoleControlPlane, cluster.RoleWorker}
		c.Nodes[i].Hostnames = appendNew(c.Nodes[i].Hostnames, cp.Hostnames...)
		c.Nodes[i].IPs = appendNew(c.Nodes[i].IPs, cp.IPs...)
		cpNode := c.Nodes[i]
		c.Nodes = append([]cluster.Node{cpNode}, slices.Delete(c.Nodes, i, i+1)...)
	} else {
		c.Nodes = append([]cluster.Node{cp}, c.Nodes...)
	}
	if err := r.users(c); err != nil {
		return nil, err
	}
	return c, nil
}

// hardwayEndpointKubeconfig returns the kubeconfig that best says how the
// cluster is reached: a kubelet's, then kube-proxy's, then admin's, then
// any whose server is not on loopback; nil if there is none.
func (r *reader) hardwayEndpointKubeconfig() (*kubeconfigInfo, error) {
	files, err := r.kubeconfigFiles(".kubeconfig")
	if err != nil {
		return nil, err
	}
	var best *kubeconfigInfo
	bestRank := 99
	for _, f := range files {
		k, err := r.kubeconfig(f)
		if err != nil {
			return nil, err
		}
		if k == nil {
			continue // removed since the directory was listed
		}
		if ip := net.ParseIP(hostOf(k.Server)); ip != nil && ip.IsLoopback() {
			if best == nil {
				best, bestRank = k, 98
			}
			continue
		}
		rank := 3
		switch _, node := nodeOf(k.Cert); {
		case node:
			rank = 0
		case f == "kube-proxy.kubeconfig":
			rank = 1
		case f == "admin.kubeconfig":
			rank = 2
		}
		if rank < bestRank {
			best, bestRank = k, rank
		}
	}
	return best, nil
}

// controlPlaneName is the first label of the name the API server is
// reached by, if it is a DNS label other than "kubernetes"; else the first
// such label of the API server's other names; else "control-plane".
func controlPlaneName(endpointHost string, names []string) string {
	for _, n := range append([]string{endpointHost}, names...) {
		if net.ParseIP(n) != nil {
			continue
		}
		label, _, _ := strings.Cut(n, ".")
		if label != "kubernetes" && len(validation.IsDNS1123Label(label)) == 0 {
			return label
		}
	}
	return "control-plane"
}

// components keeps what a hard-way component certificate has beyond the
// catalog's (cluster.Cluster.Components): the tutorial's ca.conf gives
// kube-proxy, kube-scheduler and kube-controller-manager serverAuth and
// SANs, and a spec that leaves them out would call its own directory
// drifted. Identities (CN, O) are never added: a wrong group stays a
// finding.
func (r *reader) components(c *cluster.Cluster) error {
	plan, err := catalog.New(c, catalog.Hardway)
	if err != nil {
		return fmt.Errorf("infer spec from %s: %w", r.st.Dir, err)
	}
	for _, name := range cluster.ComponentNames() {
		cs, ok := plan.Cert(name)
		if !ok {
			continue
		}
		cert, err := r.cert(cs.Path)
		if err != nil {
			return err
		}
		if cert == nil {
			continue
		}
		var x cluster.Component
		for _, u := range pki.UsagesOf(cert) {
			if (u == pki.UsageServerAuth || u == pki.UsageClientAuth) && !slices.Contains(cs.Profile.Usages, u) {
				x.ExtraUsages = append(x.ExtraUsages, u)
			}
		}
		for _, d := range cert.DNSNames {
			if !slices.Contains(cs.Profile.DNSNames, d) {
				x.ExtraSANs = append(x.ExtraSANs, d)
			}
		}
		for _, ip := range cert.IPAddresses {
			if !slices.ContainsFunc(cs.Profile.IPs, ip.Equal) {
				x.ExtraSANs = append(x.ExtraSANs, ip.String())
			}
		}
		if len(x.ExtraUsages) == 0 && len(x.ExtraSANs) == 0 {
			continue
		}
		if c.Components == nil {
			c.Components = map[string]cluster.Component{}
		}
		c.Components[name] = x
		r.note("components."+name, "%s.crt has %s beyond the catalog's certificate; kept", cs.Path, describeExtras(x))
	}
	return nil
}

func describeExtras(x cluster.Component) string {
	var parts []string
	for _, u := range x.ExtraUsages {
		parts = append(parts, string(u))
	}
	if len(x.ExtraSANs) > 0 {
		parts = append(parts, "SANs "+strings.Join(x.ExtraSANs, ", "))
	}
	return strings.Join(parts, " and ")
}
