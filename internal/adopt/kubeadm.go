package adopt

import (
	"crypto/x509"
	"fmt"
	"net"
	"slices"
	"strings"

	"kubepki.dev/kubepki/internal/cluster"
)

// inferKubeadm reads kubeadm's layout: /etc/kubernetes/pki and the
// kubeconfigs beside it, as `kubeadm init` writes them (or kubepki's
// kubeadm profile, which adds kubelet-<node>.conf for every node).
func inferKubeadm(r *reader) (*cluster.Cluster, error) {
	c := &cluster.Cluster{}
	api, err := r.common(c, "apiserver")
	if err != nil {
		return nil, err
	}
	etcdCA, err := r.cert("etcd/ca")
	if err != nil {
		return nil, err
	}
	frontProxyCA, err := r.cert("front-proxy-ca")
	if err != nil {
		return nil, err
	}
	etcdServer, err := r.cert("etcd/server")
	if err != nil {
		return nil, err
	}
	off := false
	if etcdCA == nil {
		c.CertificateAuthorities.Etcd = &off
		if etcdServer == nil {
			r.note("certificateAuthorities.etcd", "no etcd CA and no etcd/server.crt: an external etcd? the plan still lists etcd's certificates, signed by the cluster CA")
		}
	}
	if frontProxyCA == nil {
		c.CertificateAuthorities.FrontProxy = &off
	}
	kc := map[string]*kubeconfigInfo{}
	for _, f := range []string{"admin.conf", "super-admin.conf", "controller-manager.conf", "scheduler.conf", "kubelet.conf"} {
		if kc[f], err = r.kubeconfig(f); err != nil {
			return nil, err
		}
	}

	// Name and endpoint: admin.conf's cluster entry and server, which
	// kubeadm writes from clusterName and controlPlaneEndpoint (or the
	// advertise address).
	admin := kc["admin.conf"]
	if admin == nil {
		admin = kc["super-admin.conf"]
	}

	// The API server's node: etcd's serving certificate is issued to it
	// by name (kubeadm sets its CN to the node name), and so is the
	// kubelet.conf of that node.
	node := cluster.Node{Roles: []cluster.Role{cluster.RoleControlPlane}}
	switch name, ok := nodeOf(certOf(kc["kubelet.conf"])); {
	case etcdServer != nil && etcdServer.Subject.CommonName != "":
		node.Name = etcdServer.Subject.CommonName
	case ok:
		node.Name = name
	default:
		for _, d := range api.DNSNames {
			if !slices.Contains(kubernetesNames, d) && !strings.HasPrefix(d, serviceDNSPrefix) {
				node.Name = d
				break
			}
		}
		r.note("nodes[0].name", "neither etcd/server.crt nor kubelet.conf names the control-plane node; took %q from the API server certificate's DNS names", node.Name)
	}
	if node.Name == "" {
		return nil, fmt.Errorf("infer spec from %s: no certificate names the control-plane node (etcd/server.crt, kubelet.conf, apiserver.crt's DNS names)", r.st.Dir)
	}

	// Its addresses: the advertise address controller-manager.conf and
	// scheduler.conf dial, first, then every other address both the API
	// server and etcd serve on (kubeadm puts the advertise address in
	// both; etcd's own extra SANs are etcd's alone).
	for _, f := range []string{"controller-manager.conf", "scheduler.conf"} {
		if k := kc[f]; k != nil && net.ParseIP(hostOf(k.Server)) != nil {
			node.IPs = appendNew(node.IPs, net.ParseIP(hostOf(k.Server)).String())
			break
		}
	}
	if etcdServer != nil {
		for _, ip := range etcdServer.IPAddresses {
			if !ip.IsLoopback() && slices.ContainsFunc(api.IPAddresses, ip.Equal) {
				node.IPs = appendNew(node.IPs, ip.String())
			}
		}
	}
	c.Nodes = append(c.Nodes, node)

	if admin != nil {
		c.Name, c.APIServer.Endpoint = admin.Cluster, admin.Server
	} else {
		c.Name = "kubernetes"
		host := "127.0.0.1"
		if len(node.IPs) > 0 {
			host = node.IPs[0]
		}
		c.APIServer.Endpoint = net.JoinHostPort(host, "6443")
		r.note("apiServer.endpoint", "no admin.conf or super-admin.conf in %s; assumed %s, kubeadm's advertise address and port", r.st.KubeconfigPath(""), c.APIServer.Endpoint)
	}

	// The kubernetes Service's ClusterIP is the API server's first IP SAN
	// that is no node's address (kubeadm lists it first).
	var svc net.IP
	for _, ip := range api.IPAddresses {
		if !ip.IsLoopback() && !slices.Contains(node.IPs, ip.String()) {
			svc = ip
			break
		}
	}
	r.setServiceCIDR(c, svc, "10.96.0.0/12", "apiserver.crt")
	r.setDNSDomain(c, api.DNSNames, false)

	// What the catalog does not put in apiserver.crt by itself is an extra
	// SAN (kubeadm's apiServer.certSANs).
	endpointHost := hostOf(c.APIServer.Endpoint)
	explained := append([]string{node.Name, endpointHost, serviceDNSPrefix + c.DNSDomain}, kubernetesNames...)
	for _, d := range api.DNSNames {
		if !slices.Contains(explained, d) {
			c.APIServer.ExtraSANs = appendNew(c.APIServer.ExtraSANs, d)
		}
	}
	c.APIServer.ExtraSANs = appendNew(c.APIServer.ExtraSANs, ipStrings(api.IPAddresses, func(ip net.IP) bool {
		return ip.Equal(svc) || slices.Contains(node.IPs, ip.String()) || sameHost(ip.String(), endpointHost)
	})...)

	if err := r.kubeadmNodes(c, node.Name); err != nil {
		return nil, err
	}
	if err := r.users(c); err != nil {
		return nil, err
	}

	// kubeadm v1.29 split the administrator in two: admin.conf in
	// kubeadm:cluster-admins and super-admin.conf in system:masters.
	// Before, admin.conf was in system:masters and was the only one.
	if a := kc["admin.conf"]; a != nil && hasGroup(a.Cert, "system:masters") && kc["super-admin.conf"] == nil {
		c.KubernetesVersion = "v1.28"
		r.note("kubernetesVersion", "admin.conf is in system:masters and there is no super-admin.conf: the layout of kubeadm before v1.29, kept as it is (renewing admin.conf keeps its group)")
	}
	return c, nil
}

// kubeadmNodes adds the nodes of kubepki's kubelet-<node>.conf files (a
// real node has only its own kubelet.conf). A kubelet of a control-plane
// node dials its own API server, at the node's address; a worker's dials
// the endpoint.
func (r *reader) kubeadmNodes(c *cluster.Cluster, apiNode string) error {
	files, err := r.kubeconfigFiles(".conf")
	if err != nil {
		return err
	}
	workers := false
	for _, f := range files {
		stem, ok := strings.CutPrefix(strings.TrimSuffix(f, ".conf"), "kubelet-")
		if !ok {
			continue
		}
		k, err := r.kubeconfig(f)
		if err != nil {
			return err
		}
		if k == nil {
			continue // removed since the directory was listed
		}
		name, ok := nodeOf(certOf(k))
		if !ok {
			name = stem
		}
		if name == apiNode || slices.ContainsFunc(c.Nodes, func(n cluster.Node) bool { return n.Name == name }) {
			continue
		}
		n := cluster.Node{Name: name, Roles: []cluster.Role{cluster.RoleWorker}}
		if host := hostOf(k.Server); !sameHost(host, hostOf(c.APIServer.Endpoint)) {
			n.Roles = []cluster.Role{cluster.RoleControlPlane}
			if ip := net.ParseIP(host); ip != nil && !ip.IsLoopback() {
				n.IPs = []string{ip.String()}
			}
		} else {
			workers = true
		}
		c.Nodes = append(c.Nodes, n)
	}
	if workers {
		r.note("nodes", "no kubeadm certificate names a worker's addresses; add its ips for kubepki distribute")
	}
	return nil
}

// users adds the client certificates in users/: CN the name, O the groups.
func (r *reader) users(c *cluster.Cluster) error {
	stems, err := r.stems("users")
	if err != nil {
		return err
	}
	for _, s := range stems {
		u, err := r.cert(s)
		if err != nil {
			return err
		}
		// A certificate's O is a DER SET, whose order is the encoding's, not
		// the issuer's: sort for a stable spec.
		groups := slices.Clone(u.Subject.Organization)
		slices.Sort(groups)
		c.Users = append(c.Users, cluster.User{Name: u.Subject.CommonName, Groups: groups})
	}
	return nil
}

// setDNSDomain takes the domain of kubernetes.default.svc.<domain>. The
// hard way's catalog also names kubernetes.default.svc.cluster (as the
// tutorial does), so there "cluster" counts only when alone, and alone it
// is the tutorial's, whose cluster's domain is cluster.local.
func (r *reader) setDNSDomain(c *cluster.Cluster, dns []string, hardway bool) {
	doms := dnsDomains(dns)
	if hardway {
		if i := slices.Index(doms, "cluster"); i >= 0 && len(doms) > 1 {
			doms = slices.Delete(doms, i, i+1)
		} else if i >= 0 {
			doms = nil
		}
	}
	switch len(doms) {
	case 0:
		c.DNSDomain = cluster.DefaultDNSDomain
		r.note("dnsDomain", "the API server certificate names no kubernetes.default.svc.<domain>; assumed %s (the kubelets' clusterDomain)", c.DNSDomain)
	case 1:
		c.DNSDomain = doms[0]
	default:
		c.DNSDomain = doms[0]
		r.note("dnsDomain", "the API server certificate names kubernetes.default.svc in several domains (%s); took %s, the others are extra SANs", strings.Join(doms, ", "), doms[0])
	}
}

func certOf(k *kubeconfigInfo) *x509.Certificate {
	if k == nil {
		return nil
	}
	return k.Cert
}
