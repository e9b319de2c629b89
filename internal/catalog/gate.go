package catalog

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/pki"
)

// Request is a certificate kubepki is asked to issue outside the plan: a
// CSR given to `kubepki sign`, or an extra user's certificate from
// `kubepki kubeconfig user`.
type Request struct {
	// Subject is the identity: the user (CN) and groups (O) kube-apiserver
	// will give its holder.
	Subject pki.Subject
	// DNSNames and IPs are the SANs the certificate will carry.
	DNSNames []string
	IPs      []net.IP
	// PublicKey is the key to certify; nil when kubepki makes the key.
	PublicKey crypto.PublicKey
}

// Allow holds the explicit overrides of RequestGate's refusals.
type Allow struct {
	// Masters allows O=system:masters (--allow-masters).
	Masters bool
	// Nodes allows a kubelet's identity, CN=system:node:* or
	// O=system:nodes (--allow-nodes).
	Nodes bool
	// System allows another Kubernetes system identity: a CN or group
	// starting with "system:" (--allow-system).
	System bool
	// SANs are reserved SANs allowed by name (--allow-san).
	SANs []string
}

// Minimum key sizes for a certificate kubepki signs: RSA-2048 is the
// smallest RSA key kubeadm makes ("PKI certificates and requirements"),
// and NIST SP 800-131A disallows smaller ones for signatures; P-256 is the
// smallest curve kubeadm offers.
const (
	minRSABits   = 2048
	minECDSABits = 256
)

// RequestGate checks a request against the rules every certificate issued
// outside the plan meets, with the spec as the authority on which SANs
// belong to whom. It returns nil, or an error listing every refusal with
// the flag that overrides it (a weak key has no override).
//
// The rules, in order:
//   - O=system:masters bypasses RBAC and cannot be revoked short of
//     rotating the CA (--allow-masters);
//   - CN=system:node:NAME or O=system:nodes is a kubelet's identity, which
//     the Node authorizer lets act for that node (--allow-nodes);
//   - any other CN or group starting with "system:" is an identity
//     Kubernetes defines (system:kube-controller-manager,
//     system:serviceaccount:NS:NAME, system:anonymous, …) that RBAC's
//     default bindings give rights to (--allow-system);
//   - RSA keys under 2048 bits and ECDSA curves under P-256 are refused;
//   - a wildcard, one of the names of the kubernetes Service
//     (kubernetes, kubernetes.default, kubernetes.default.svc[.…]), the
//     service IP, localhost or a loopback address, the API server's
//     endpoint, and any name or address the plan gives to a certificate
//     of another identity impersonate that server (--allow-san NAME),
//     unless the plan gives that SAN to a certificate of exactly this
//     identity (the API server's CSR, signed with `sign --server`). A CN
//     that looks like a host name is judged as a SAN too: old clients
//     still fall back to it.
func RequestGate(c *cluster.Cluster, r Request, allow Allow) error {
	var refusals []string
	refuse := func(format string, args ...any) { refusals = append(refusals, fmt.Sprintf(format, args...)) }
	groups, cn := r.Subject.Organization, r.Subject.CommonName
	if slices.Contains(groups, "system:masters") && !allow.Masters {
		refuse("group system:masters bypasses RBAC and cannot be revoked; bind cluster-admin to a group instead, or pass --allow-masters")
	}
	if (strings.HasPrefix(cn, "system:node:") || slices.Contains(groups, "system:nodes")) && !allow.Nodes {
		refuse("CN=%s O=[%s] is a kubelet's identity (the Node authorizer lets it act as that node); pass --allow-nodes", cn, strings.Join(groups, ","))
	}
	if !allow.System {
		if strings.HasPrefix(cn, "system:") && !strings.HasPrefix(cn, "system:node:") {
			refuse("CN=%s is a Kubernetes system identity that RBAC's default bindings give rights to; the plan's own kubeconfigs come from 'kubepki kubeconfig'; pass --allow-system", cn)
		}
		for _, g := range groups {
			if strings.HasPrefix(g, "system:") && g != "system:masters" && g != "system:nodes" {
				refuse("group %s is a Kubernetes system group that RBAC's default bindings give rights to; pass --allow-system", g)
			}
		}
	}
	if r.PublicKey != nil {
		if err := checkKeySize(r.PublicKey); err != nil {
			refuse("%v", err)
		}
	}
	if sans := requestSANs(r); len(sans) > 0 || hostLike(cn) {
		owners := plannedOwners(c)
		owned := func(s string) bool {
			return slices.ContainsFunc(owners[sanKey(s)], func(o owner) bool { return o.subject.SameIdentity(r.Subject) })
		}
		for _, s := range sans {
			why := reservedSAN(c, s, owners)
			if why == "" || slices.Contains(allow.SANs, s) || owned(s) {
				continue
			}
			refuse("SAN %s is %s; pass --allow-san %s if this certificate is meant to be it", s, why, s)
		}
		if hostLike(cn) && !slices.Contains(sans, cn) {
			if why := reservedSAN(c, cn, owners); why != "" && !slices.Contains(allow.SANs, cn) && !owned(cn) {
				refuse("CN=%s is %s (clients that fall back to the CN would accept it); pass --allow-san %s if this certificate is meant to be it", cn, why, cn)
			}
		}
	}
	if len(refusals) > 0 {
		return errors.New("refusing to issue: " + strings.Join(refusals, "; "))
	}
	return nil
}

func checkKeySize(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < minRSABits {
			return fmt.Errorf("RSA-%d key is too weak (at least RSA-%d)", n, minRSABits)
		}
	case *ecdsa.PublicKey:
		if n := k.Curve.Params().BitSize; n < minECDSABits {
			return fmt.Errorf("ECDSA key on %s is too weak (at least P-%d)", k.Curve.Params().Name, minECDSABits)
		}
	}
	return nil
}

// requestSANs are the request's SANs as plain strings (a DNS name, or an
// IP in its canonical form).
func requestSANs(r Request) []string {
	out := slices.Clone(r.DNSNames)
	for _, ip := range r.IPs {
		out = append(out, ip.String())
	}
	return out
}

// hostLike says whether a CN reads as a host name or address rather than
// a user name: a dot, a wildcard, or one of the single-label names that
// reservedSAN knows.
func hostLike(cn string) bool {
	switch strings.ToLower(cn) {
	case "kubernetes", "localhost":
		return true
	}
	return strings.ContainsAny(cn, ".*") || net.ParseIP(cn) != nil
}

// sanKey is the form SANs are compared in: an IP in canonical form (an
// IPv4-mapped IPv6 address as IPv4), a name in lower case without a
// trailing dot.
func sanKey(san string) string {
	if ip := net.ParseIP(san); ip != nil {
		return ip.String()
	}
	return strings.ToLower(strings.TrimSuffix(san, "."))
}

// owner is a certificate of a plan that carries a SAN.
type owner struct {
	name    string
	subject pki.Subject
}

// plannedOwners maps every SAN the plans of both profiles give, and the
// API server endpoint's host, to the certificates that carry it.
func plannedOwners(c *cluster.Cluster) map[string][]owner {
	out := map[string][]owner{}
	for _, p := range Profiles() {
		plan, err := New(c, p)
		if err != nil {
			continue
		}
		for _, cs := range plan.Leaves() {
			o := owner{name: cs.Name, subject: cs.Profile.Subject}
			for _, d := range cs.Profile.DNSNames {
				out[sanKey(d)] = append(out[sanKey(d)], o)
			}
			for _, ip := range cs.Profile.IPs {
				out[ip.String()] = append(out[ip.String()], o)
			}
		}
	}
	if host, _, err := net.SplitHostPort(c.APIServer.Endpoint); err == nil && host != "" {
		if k := sanKey(host); len(out[k]) == 0 {
			out[k] = []owner{{name: "the API server endpoint"}}
		}
	}
	return out
}

// reservedSAN says what a SAN impersonates, or "" if it is an ordinary
// name.
func reservedSAN(c *cluster.Cluster, san string, owners map[string][]owner) string {
	key := sanKey(san)
	if ip := net.ParseIP(san); ip != nil {
		if ip.IsLoopback() {
			return "a loopback address (every local endpoint)"
		}
		if svc, err := cluster.ServiceIP(c.ServiceCIDR); err == nil && svc.Equal(ip) {
			return "the service IP of the kubernetes Service (" + c.ServiceCIDR + "), the API server Pods dial"
		}
	} else {
		switch {
		case strings.Contains(key, "*"):
			return "a wildcard (it would serve every name under it)"
		case key == "localhost" || strings.HasSuffix(key, ".localhost"):
			return "localhost (every local endpoint)"
		case key == "kubernetes" || key == "kubernetes.default" || key == "kubernetes.default.svc" ||
			strings.HasPrefix(key, "kubernetes.default.svc."):
			return "a name of the kubernetes Service, the API server Pods dial"
		}
	}
	if holders := owners[key]; len(holders) > 0 {
		var names []string
		for _, o := range holders {
			if !slices.Contains(names, o.name) {
				names = append(names, o.name)
			}
		}
		return "a name the cluster's own certificates carry (" + strings.Join(names, ", ") + ")"
	}
	return ""
}
