package cluster

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"unicode"

	"k8s.io/apimachinery/pkg/util/validation"

	"kubepki.dev/kubepki/internal/pki"
)

// componentCert maps the CNs of the hardway profile's component
// certificates to their names in the catalog (Cluster.Components' keys).
func componentCert(cn string) (string, bool) {
	name, ok := map[string]string{
		"admin":                          "admin",
		"system:kube-proxy":              "kube-proxy",
		"system:kube-scheduler":          "kube-scheduler",
		"system:kube-controller-manager": "kube-controller-manager",
		"service-accounts":               "service-accounts",
	}[cn]
	return name, ok
}

// addComponent keeps what a component certificate declares beyond the
// catalog: serverAuth (the tutorial gives it to kube-proxy, kube-scheduler
// and kube-controller-manager) and its SANs, in the spec's components.
func (im *importer) addComponent(c *Cluster, ct *cert) {
	im.lintComponentUsage(ct)
	name, ok := componentCert(ct.cnValue())
	if !ok {
		return
	}
	x := c.Components[name]
	if ct.server && !slices.Contains(x.ExtraUsages, pki.UsageServerAuth) {
		x.ExtraUsages = append(x.ExtraUsages, pki.UsageServerAuth)
	}
	for _, s := range ct.sans {
		if s.ip.IsValid() {
			x.ExtraSANs = appendNew(x.ExtraSANs, s.ip.String())
		} else {
			x.ExtraSANs = appendNew(x.ExtraSANs, s.dns)
		}
	}
	if len(x.ExtraUsages) == 0 && len(x.ExtraSANs) == 0 {
		return
	}
	if c.Components == nil {
		c.Components = map[string]Component{}
	}
	c.Components[name] = x
}

// addNode adds (or merges into) a worker node, checking that the
// certificate is one the Node authorizer and NodeRestriction accept.
func (im *importer) addNode(c *Cluster, ct *cert) {
	cn := ct.cnValue()
	name, ok := strings.CutPrefix(cn, "system:node:")
	if !ok {
		name = strings.ToLower(ct.section.Name)
		im.errorf(im.dnField(ct, ct.cn, "CN"), "CN is %q, but the Node authorizer and NodeRestriction only recognise a kubelet as the user system:node:<nodeName>; the imported spec uses CN=system:node:%s", clip(cn), shown(name))
	}
	if groups := ct.groups(); !slices.Contains(groups, "system:nodes") {
		im.errorf(im.dnField(ct, first(ct.orgs), "O"), "O is %q, not system:nodes: the Node authorizer only authorizes kubelets in the group system:nodes, so this kubelet would be denied; the imported spec uses O=system:nodes", clip(strings.Join(groups, ", ")))
	}
	if ct.eku != nil && !ct.client {
		im.errorf(im.atEntry(ct.eku), "lacks clientAuth: the kubelet authenticates to the API server with this certificate, and the API server rejects a client certificate without clientAuth; the imported spec's kubelet certificate has both")
	}
	if ct.eku != nil && !ct.server {
		im.errorf(im.atEntry(ct.eku), "lacks serverAuth: the API server, verifying the kubelet's serving certificate for logs, exec and port-forward (--kubelet-certificate-authority), rejects one without serverAuth; the imported spec's kubelet certificate has both")
	}
	n := Node{Name: name, Roles: []Role{RoleWorker}}
	for _, s := range ct.sans {
		switch {
		case s.ip.IsValid() && s.ip != loopback:
			n.IPs = appendNew(n.IPs, s.ip.String())
		case s.dns != "" && s.dns != name:
			n.Hostnames = appendNew(n.Hostnames, s.dns)
		}
	}
	if i, ok := im.nodes[name]; ok {
		c.Nodes[i].IPs = appendNew(c.Nodes[i].IPs, n.IPs...)
		c.Nodes[i].Hostnames = appendNew(c.Nodes[i].Hostnames, n.Hostnames...)
		return
	}
	im.nodes[name] = len(c.Nodes)
	c.Nodes = append(c.Nodes, n)
}

// addUser adds a client-only certificate's identity as a User.
func (im *importer) addUser(c *Cluster, ct *cert) {
	cn := ct.cnValue()
	if im.users[cn] {
		im.warn(im.dnField(ct, ct.cn, "CN"), "user %q was already imported from an earlier section; this one is ignored", clip(cn))
		return
	}
	im.users[cn] = true
	c.Users = append(c.Users, User{Name: cn, Groups: ct.groups()})
}

// apiServer derives dnsDomain, serviceCIDR, the endpoint and the extra SANs
// from the API server certificate. It returns the endpoint's DNS name, from
// which the control-plane node is named, or "".
func (im *importer) apiServer(c *Cluster, api *cert) string {
	c.DNSDomain = DefaultDNSDomain
	if api == nil {
		im.warn(im.conf.Name, "no kube-api-server section (CN = kubernetes): the imported spec assumes serviceCIDR %s", assumedServiceCIDR)
		c.ServiceCIDR = assumedServiceCIDR
		return ""
	}
	for _, s := range api.sans {
		if d, ok := strings.CutPrefix(s.dns, "kubernetes.default.svc."); ok && strings.Contains(d, ".") && len(validation.IsDNS1123Subdomain(d)) == 0 {
			c.DNSDomain = d
			break
		}
	}
	fqdn := "kubernetes.default.svc." + c.DNSDomain
	standard := []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster", fqdn}
	var dns []string
	var ips []san
	hasFQDN, typo := false, false
	for _, s := range api.sans {
		switch {
		case s.ip.IsValid():
			if s.ip != loopback {
				ips = append(ips, s)
			}
		case slices.Contains(standard, s.dns):
			hasFQDN = hasFQDN || s.dns == fqdn
		case strings.HasPrefix(s.dns, "kubernetes.svc."):
			typo = true
			im.warn(im.atEntry(s.from), "%s is not a name of the kubernetes Service, which is kubernetes.default.svc.<domain> (<service>.<namespace>.svc.<domain>); the imported spec drops it and uses %s", shown(s.dns), fqdn)
		default:
			dns = appendNew(dns, s.dns)
		}
	}
	if !hasFQDN && !typo {
		im.warn(im.sanField(api), "lacks %s, the name Pods resolve for the kubernetes Service; the imported spec computes and adds it", fqdn)
	}

	svc, ips := pickServiceIP(ips)
	if svc == nil {
		im.warn(im.sanField(api), "names no service IP (the ClusterIP of the kubernetes Service, which Pods dial); the imported spec assumes serviceCIDR %s and adds its first address", assumedServiceCIDR)
		c.ServiceCIDR = assumedServiceCIDR
	} else {
		p := serviceCIDR(svc.ip)
		c.ServiceCIDR = p.String()
		if p.Addr().Next() == svc.ip {
			im.warn(im.atEntry(svc.from), "the SANs name the service IP %s but not the service CIDR's prefix length; the imported spec assumes %s: set serviceCIDR to kube-apiserver's --service-cluster-ip-range if it differs", svc.ip, p)
		} else {
			im.warn(im.atEntry(svc.from), "%s is not the first address of the assumed serviceCIDR %s, so the imported spec's kubernetes Service IP is %s: set serviceCIDR to kube-apiserver's --service-cluster-ip-range", svc.ip, p, p.Addr().Next())
		}
	}

	host := ""
	i := slices.IndexFunc(dns, func(d string) bool { return !strings.HasPrefix(d, "kubernetes") && !strings.HasPrefix(d, "*") })
	if i < 0 {
		i = slices.IndexFunc(dns, func(d string) bool { return !strings.HasPrefix(d, "*") })
	}
	if i >= 0 {
		host = dns[i]
		dns = slices.Delete(dns, i, i+1)
		c.APIServer.Endpoint = net.JoinHostPort(host, apiServerPort)
	} else if len(ips) > 0 {
		c.APIServer.Endpoint = net.JoinHostPort(ips[0].ip.String(), apiServerPort)
		ips = ips[1:]
	}
	c.APIServer.ExtraSANs = dns
	for _, s := range ips {
		c.APIServer.ExtraSANs = appendNew(c.APIServer.ExtraSANs, s.ip.String())
	}
	return host
}

// pickServiceIP picks the kubernetes Service's ClusterIP among the API
// server's IP SANs that are not loopback: the first that is the first
// address of its assumed service CIDR, else the first. It returns the
// others too.
func pickServiceIP(ips []san) (*san, []san) {
	usable := func(s san) bool { return !s.ip.IsLoopback() && !s.ip.IsUnspecified() }
	i := slices.IndexFunc(ips, func(s san) bool { return usable(s) && serviceCIDR(s.ip).Addr().Next() == s.ip })
	if i < 0 {
		i = slices.IndexFunc(ips, usable)
	}
	if i < 0 {
		return nil, ips
	}
	svc := ips[i]
	return &svc, slices.Delete(slices.Clone(ips), i, i+1)
}

// serviceCIDR assumes the service CIDR that a service IP is in: its /24,
// or /112 for IPv6.
func serviceCIDR(ip netip.Addr) netip.Prefix {
	bits := 24
	if ip.Is6() {
		bits = 112
	}
	p, _ := ip.Prefix(bits)
	return p
}

// addControlPlane makes the node named by the endpoint's first DNS label
// (server.kubernetes.local → server) a control plane, adding it first.
func (im *importer) addControlPlane(c *Cluster, host string, api *cert) {
	name, _, _ := strings.Cut(host, ".")
	if host == "" || len(validation.IsDNS1123Label(name)) > 0 {
		field := im.conf.Name
		if api != nil {
			field = im.sanField(api)
		}
		name, host = fallbackControlPlane, ""
		if c.APIServer.Endpoint == "" {
			c.APIServer.Endpoint = net.JoinHostPort(name, apiServerPort)
		}
		im.warn(field, "cannot tell the control-plane node from the kube-api-server SANs; the imported spec adds node %q with the control-plane role and endpoint %s", name, c.APIServer.Endpoint)
	}
	var hostnames []string
	if host != "" && host != name {
		hostnames = []string{host}
	}
	if i := slices.IndexFunc(c.Nodes, func(n Node) bool { return n.Name == name }); i >= 0 {
		c.Nodes[i].Roles = append([]Role{RoleControlPlane}, c.Nodes[i].Roles...)
		c.Nodes[i].Hostnames = appendNew(c.Nodes[i].Hostnames, hostnames...)
		return
	}
	c.Nodes = append([]Node{{Name: name, Roles: []Role{RoleControlPlane}, Hostnames: hostnames}}, c.Nodes...)
}

// appendNew appends the items not yet in list.
func appendNew(list []string, items ...string) []string {
	for _, s := range items {
		if !slices.Contains(list, s) {
			list = append(list, s)
		}
	}
	return list
}

func first[T any](list []T) T {
	var zero T
	if len(list) == 0 {
		return zero
	}
	return list[0]
}

// clip shortens a value for quoting (%q) in a finding.
func clip(s string) string {
	if len(s) <= maxShown {
		return s
	}
	return strings.ToValidUTF8(s[:maxShown], "") + "…"
}

// shown is a clipped name for a finding, its control characters replaced
// so that the finding stays one line.
func shown(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, clip(s))
}
