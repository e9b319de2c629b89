package cluster

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"k8s.io/apimachinery/pkg/util/validation"

	"kubepki.dev/kubepki/internal/pki"
)

// Severity says whether a finding stops kubepki from using the spec.
type Severity string

// Finding severities.
const (
	Error   Severity = "error"
	Warning Severity = "warning"
)

// Finding is one problem in a spec, located by its field path.
type Finding struct {
	Severity Severity `json:"severity"`
	Field    string   `json:"field"`
	Message  string   `json:"message"`
}

func (f Finding) String() string {
	return fmt.Sprintf("%s: %s: %s", f.Severity, f.Field, f.Message)
}

// HasErrors reports whether any finding is an error.
func HasErrors(fs []Finding) bool {
	return slices.ContainsFunc(fs, func(f Finding) bool { return f.Severity == Error })
}

// Validate checks a defaulted spec and returns every finding, errors and
// warnings, in field order.
func Validate(c *Cluster) []Finding {
	var fs []Finding
	add := func(sev Severity, field, format string, args ...any) {
		fs = append(fs, Finding{Severity: sev, Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if c.Name == "" {
		add(Error, "name", "must not be empty")
	}
	if c.KubernetesVersion != "" {
		if _, _, err := ParseVersion(c.KubernetesVersion); err != nil {
			add(Error, "kubernetesVersion", "%v", err)
		}
	}
	for _, msg := range validation.IsDNS1123Subdomain(c.DNSDomain) {
		add(Error, "dnsDomain", "%q: %s", c.DNSDomain, msg)
	}
	if c.ServiceCIDR == "" {
		add(Error, "serviceCIDR", "required: the Service IP range (its first address goes into the API server certificate)")
	} else if _, err := ServiceIP(c.ServiceCIDR); err != nil {
		add(Error, "serviceCIDR", "%v", err)
	}
	if c.PodCIDR != "" {
		pod, err := netip.ParsePrefix(c.PodCIDR)
		if err != nil {
			add(Error, "podCIDR", "%q is not a CIDR", c.PodCIDR)
		} else if svc, err := netip.ParsePrefix(c.ServiceCIDR); err == nil && pod.Overlaps(svc) {
			add(Error, "podCIDR", "%s overlaps serviceCIDR %s", c.PodCIDR, c.ServiceCIDR)
		}
	}
	if c.APIServer.Endpoint == "" {
		add(Error, "apiServer.endpoint", "must be host:port")
	} else if host, port, err := net.SplitHostPort(c.APIServer.Endpoint); err != nil {
		add(Error, "apiServer.endpoint", "%q is not host:port", c.APIServer.Endpoint)
	} else {
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			add(Error, "apiServer.endpoint", "port %q is not a number in 1-65535", port)
		}
		if err := checkSAN(host); err != nil {
			add(Error, "apiServer.endpoint", "%v", err)
		}
	}
	if b := c.APIServer.BindAddress; b != "" {
		if ip := net.ParseIP(b); ip == nil {
			add(Error, "apiServer.bindAddress", "%q is not an IP address", b)
		} else if !ip.IsUnspecified() && !ip.IsLoopback() {
			add(Warning, "apiServer.bindAddress", "%s is not loopback: kube-controller-manager and kube-scheduler, which dial https://127.0.0.1, will not reach the API server", b)
		}
	}
	if p := c.APIServer.BindPort; p < 0 || p > 65535 {
		add(Error, "apiServer.bindPort", "%d is not a port in 1-65535", p)
	}
	for i, s := range c.APIServer.ExtraSANs {
		if err := checkSAN(s); err != nil {
			add(Error, fmt.Sprintf("apiServer.extraSANs[%d]", i), "%v", err)
		}
	}
	if f := manySANs("apiServer.extraSANs", len(c.APIServer.ExtraSANs)); f != nil {
		fs = append(fs, *f)
	}
	for _, list := range []struct {
		field string
		sans  []string
	}{{"etcd.serverCertSANs", c.Etcd.ServerCertSANs}, {"etcd.peerCertSANs", c.Etcd.PeerCertSANs}} {
		for i, s := range list.sans {
			field := list.field
			if err := checkSAN(s); err != nil {
				add(Error, fmt.Sprintf("%s[%d]", field, i), "%v", err)
			}
		}
		if f := manySANs(list.field, len(list.sans)); f != nil {
			fs = append(fs, *f)
		}
	}
	if x := c.Etcd.External; x != nil {
		if len(x.Endpoints) == 0 {
			add(Error, "etcd.external.endpoints", "at least one endpoint is needed")
		}
		if len(c.Etcd.ServerCertSANs)+len(c.Etcd.PeerCertSANs) > 0 {
			add(Error, "etcd.external", "an external etcd has no certificates here, so serverCertSANs and peerCertSANs cannot apply")
		}
	}
	if _, err := pki.ParseKeyAlgorithm(c.KeyAlgorithm); err != nil {
		add(Error, "keyAlgorithm", "%v", err)
	}
	if c.Validity.CA.Duration <= 0 {
		add(Error, "validity.ca", "must be positive")
	}
	if c.Validity.Leaf.Duration <= 0 {
		add(Error, "validity.leaf", "must be positive")
	}
	if c.Validity.Leaf.Duration > c.Validity.CA.Duration {
		add(Error, "validity.leaf", "%s is longer than the CA's %s: a leaf cannot outlive its CA", c.Validity.Leaf.Duration, c.Validity.CA.Duration)
	}
	fs = append(fs, validateNodes(c.Nodes)...)
	fs = append(fs, validateComponents(c.Components)...)
	seenUsers := map[string]bool{}
	for i, u := range c.Users {
		f := fmt.Sprintf("users[%d]", i)
		if err := CheckUserName(u.Name); err != nil {
			add(Error, f+".name", "%v", err)
		}
		if seenUsers[u.Name] {
			add(Error, f+".name", "duplicate user %q", u.Name)
		}
		seenUsers[u.Name] = true
		if strings.HasPrefix(u.Name, "system:") {
			add(Warning, f+".name", "%q is in the system: namespace reserved for Kubernetes components", u.Name)
		}
		if slices.Contains(u.Groups, "system:masters") {
			add(Warning, f+".groups", "system:masters bypasses RBAC entirely and cannot be revoked short of rotating the CA; bind cluster-admin to a group instead")
		}
	}
	return fs
}

func validateNodes(nodes []Node) []Finding {
	var fs []Finding
	add := func(sev Severity, field, format string, args ...any) {
		fs = append(fs, Finding{Severity: sev, Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if len(nodes) == 0 {
		add(Error, "nodes", "at least one node is needed")
	}
	seen := map[string]bool{}
	controlPlanes := 0
	for i, n := range nodes {
		f := fmt.Sprintf("nodes[%d]", i)
		for _, msg := range validation.IsDNS1123Label(n.Name) {
			add(Error, f+".name", "%q is not a DNS label: %s", n.Name, msg)
		}
		if seen[n.Name] {
			add(Error, f+".name", "duplicate node name %q", n.Name)
		}
		seen[n.Name] = true
		for j, r := range n.Roles {
			if r != RoleControlPlane && r != RoleWorker {
				add(Error, fmt.Sprintf("%s.roles[%d]", f, j), "unknown role %q (want control-plane or worker)", r)
			}
		}
		if n.Has(RoleControlPlane) {
			controlPlanes++
		}
		for j, ip := range n.IPs {
			if net.ParseIP(ip) == nil {
				add(Error, fmt.Sprintf("%s.ips[%d]", f, j), "%q is not an IP address", ip)
			}
		}
		for j, h := range n.Hostnames {
			for _, msg := range validation.IsDNS1123Subdomain(h) {
				add(Error, fmt.Sprintf("%s.hostnames[%d]", f, j), "%q: %s", h, msg)
			}
		}
	}
	if len(nodes) > 0 && controlPlanes == 0 {
		add(Error, "nodes", "no node has the control-plane role")
	}
	return fs
}

// validateComponents checks the additions to component certificates, in
// the order of ComponentNames.
func validateComponents(cs map[string]Component) []Finding {
	var fs []Finding
	add := func(field, format string, args ...any) {
		fs = append(fs, Finding{Severity: Error, Field: field, Message: fmt.Sprintf(format, args...)})
	}
	names := ComponentNames()
	var unknown []string
	for name := range cs {
		if !slices.Contains(names, name) {
			unknown = append(unknown, name)
		}
	}
	slices.Sort(unknown)
	for _, name := range unknown {
		add("components."+name, "unknown component certificate %q (want one of %s)", name, strings.Join(names, ", "))
	}
	for _, name := range names {
		x, ok := cs[name]
		if !ok {
			continue
		}
		f := "components." + name
		for i, u := range x.ExtraUsages {
			if u != pki.UsageClientAuth && u != pki.UsageServerAuth {
				add(fmt.Sprintf("%s.extraUsages[%d]", f, i), "unknown usage %q (want %q or %q)", u, pki.UsageClientAuth, pki.UsageServerAuth)
			}
		}
		for i, s := range x.ExtraSANs {
			if err := checkSAN(s); err != nil {
				add(fmt.Sprintf("%s.extraSANs[%d]", f, i), "%v", err)
			}
		}
		if m := manySANs(f+".extraSANs", len(x.ExtraSANs)); m != nil {
			fs = append(fs, *m)
		}
	}
	return fs
}

// CheckUserName is the rule for a user's name, in the spec or on the
// command line (kubepki kubeconfig user NAME): the name becomes files
// (users/<name>.crt, <name>.kubeconfig), so it must be one plain path
// element that cannot climb out of its directory or hide in it.
func CheckUserName(name string) error {
	if strings.TrimSpace(name) == "" {
		return errors.New("must not be empty")
	}
	if strings.ContainsAny(name, "/\\\x00") || strings.HasPrefix(name, ".") {
		return fmt.Errorf("%q cannot name a file (users/<name>.crt, <name>.kubeconfig): no slashes or leading dot", name)
	}
	// A name that looks like another ("jane " and "jane") makes RBAC
	// bindings and audit logs lie to whoever reads them.
	if strings.TrimSpace(name) != name {
		return fmt.Errorf("%q has leading or trailing white space", name)
	}
	if i := strings.IndexFunc(name, func(r rune) bool { return !unicode.IsPrint(r) }); i >= 0 {
		return fmt.Errorf("%q holds a character that does not print (%U)", name, []rune(name[i:])[0])
	}
	return nil
}

// MaxSANs is how many subject alternative names a spec field may add to a
// certificate before Validate warns: each one makes the certificate
// bigger (20,000 make a 528 KB apiserver.crt) for every TLS handshake,
// and is almost always a generated list gone wrong.
const MaxSANs = 100

// manySANs is the warning for a field that adds more than MaxSANs names
// to a certificate, or nil.
func manySANs(field string, n int) *Finding {
	if n <= MaxSANs {
		return nil
	}
	return &Finding{Severity: Warning, Field: field,
		Message: fmt.Sprintf("%d SANs (more than %d): every one goes into the certificate, which each TLS handshake sends", n, MaxSANs)}
}

// checkSAN accepts an IP or a DNS name (wildcards allowed).
func checkSAN(s string) error {
	if net.ParseIP(s) != nil {
		return nil
	}
	name := strings.TrimPrefix(s, "*.")
	if msgs := validation.IsDNS1123Subdomain(name); len(msgs) > 0 {
		return fmt.Errorf("%q is neither an IP nor a DNS name: %s", s, msgs[0])
	}
	return nil
}

// ServiceIP returns the first usable address of the service CIDR: the
// ClusterIP the kubernetes Service gets (10.32.0.0/24 → 10.32.0.1).
func ServiceIP(cidr string) (net.IP, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, fmt.Errorf("%q is not a CIDR", cidr)
	}
	if p != p.Masked() {
		return nil, fmt.Errorf("%q has host bits set (did you mean %s?)", cidr, p.Masked())
	}
	first := p.Addr().Next()
	if !first.IsValid() || !p.Contains(first) {
		return nil, fmt.Errorf("%q has no usable address", cidr)
	}
	return net.IP(first.AsSlice()), nil
}

var versionRE = regexp.MustCompile(`^v(\d{1,4})\.(\d{1,4})(\.\d{1,4})?$`)

// ParseVersion reads a Kubernetes version written vMAJOR.MINOR[.PATCH]
// ("v1.28", "v1.28.3") and returns its major and minor numbers.
func ParseVersion(s string) (major, minor int, err error) {
	m := versionRE.FindStringSubmatch(s)
	if m == nil {
		return 0, 0, fmt.Errorf("%q is not a Kubernetes version vMAJOR.MINOR[.PATCH] (like v1.28)", s)
	}
	major, _ = strconv.Atoi(m[1])
	minor, _ = strconv.Atoi(m[2])
	return major, minor, nil
}
