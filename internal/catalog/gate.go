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
//   - RSA keys under 2048 bits and ECDSA curves under P-256 are refused;
//   - a wildcard, one of the names of the kubernetes Service
//     (kubernetes, kubernetes.default, kubernetes.default.svc[.…]), the
//     service IP, and localhost or a loopback address impersonate the API
//     server or every local endpoint (--allow-san NAME), unless the plan
//     gives that SAN to a certificate of exactly this identity (the API
//     server's CSR, signed with `sign --server`).
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
	if r.PublicKey != nil {
		if err := checkKeySize(r.PublicKey); err != nil {
			refuse("%v", err)
		}
	}
	if sans := requestSANs(r); len(sans) > 0 {
		owned := plannedSANs(c, r.Subject)
		for _, s := range sans {
			why := reservedSAN(c, s)
			if why == "" || slices.Contains(allow.SANs, s) || slices.Contains(owned, s) {
				continue
			}
			refuse("SAN %s is %s; pass --allow-san %s if this certificate is meant to be it", s, why, s)
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

// reservedSAN says what a SAN impersonates, or "" if it is an ordinary
// name.
func reservedSAN(c *cluster.Cluster, san string) string {
	if ip := net.ParseIP(san); ip != nil {
		if ip.IsLoopback() {
			return "a loopback address (every local endpoint)"
		}
		if svc, err := cluster.ServiceIP(c.ServiceCIDR); err == nil && svc.Equal(ip) {
			return "the service IP of the kubernetes Service (" + c.ServiceCIDR + "), the API server Pods dial"
		}
		return ""
	}
	name := strings.ToLower(strings.TrimSuffix(san, "."))
	switch {
	case strings.Contains(name, "*"):
		return "a wildcard (it would serve every name under it)"
	case name == "localhost" || strings.HasSuffix(name, ".localhost"):
		return "localhost (every local endpoint)"
	case name == "kubernetes" || name == "kubernetes.default" || name == "kubernetes.default.svc" ||
		strings.HasPrefix(name, "kubernetes.default.svc."):
		return "a name of the kubernetes Service, the API server Pods dial"
	}
	return ""
}

// plannedSANs are the SANs the plans of both profiles give to certificates
// of exactly this identity (CN and the same groups).
func plannedSANs(c *cluster.Cluster, s pki.Subject) []string {
	var out []string
	for _, p := range Profiles() {
		plan, err := New(c, p)
		if err != nil {
			continue
		}
		for _, cs := range plan.Leaves() {
			ps := cs.Profile.Subject
			if !ps.SameIdentity(s) {
				continue
			}
			out = append(out, cs.Profile.DNSNames...)
			for _, ip := range cs.Profile.IPs {
				out = append(out, ip.String())
			}
		}
	}
	return out
}
