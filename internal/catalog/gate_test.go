package catalog

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"net"
	"strings"
	"testing"

	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/pki"
)

func TestRequestGate(t *testing.T) {
	ecKey := func(c elliptic.Curve) crypto.PublicKey {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k.Public()
	}
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	subj := func(cn string, groups ...string) pki.Subject {
		return pki.Subject{CommonName: cn, Organization: groups}
	}
	ips := func(s ...string) []net.IP {
		var out []net.IP
		for _, x := range s {
			out = append(out, net.ParseIP(x))
		}
		return out
	}
	tests := []struct {
		name  string
		req   Request
		allow Allow
		want  string // "" for accepted
	}{
		{"plain user", Request{Subject: subj("jane", "developers")}, Allow{}, ""},
		{"masters", Request{Subject: subj("jane", "developers", "system:masters")}, Allow{}, "--allow-masters"},
		{"masters allowed", Request{Subject: subj("jane", "system:masters")}, Allow{Masters: true}, ""},
		{"node CN", Request{Subject: subj("system:node:node-0")}, Allow{}, "--allow-nodes"},
		{"nodes group", Request{Subject: subj("x", "system:nodes")}, Allow{}, "--allow-nodes"},
		{"node allowed", Request{Subject: subj("system:node:node-0", "system:nodes")}, Allow{Nodes: true}, ""},
		{"RSA-1024", Request{Subject: subj("x"), PublicKey: rsa1024.Public()}, Allow{Masters: true, Nodes: true}, "RSA-1024 key is too weak"},
		{"P-224", Request{Subject: subj("x"), PublicKey: ecKey(elliptic.P224())}, Allow{}, "ECDSA key on P-224 is too weak"},
		{"P-256", Request{Subject: subj("x"), PublicKey: ecKey(elliptic.P256())}, Allow{}, ""},
		{"wildcard", Request{Subject: subj("web"), DNSNames: []string{"*.google.com"}}, Allow{}, "SAN *.google.com is a wildcard"},
		{"wildcard allowed by name", Request{Subject: subj("web"), DNSNames: []string{"*.google.com"}}, Allow{SANs: []string{"*.google.com"}}, ""},
		{"another wildcard not allowed", Request{Subject: subj("web"), DNSNames: []string{"*.google.com", "*.example.com"}}, Allow{SANs: []string{"*.google.com"}}, "SAN *.example.com"},
		{"service name, upper case and trailing dot", Request{Subject: subj("web"), DNSNames: []string{"KUBERNETES.default.svc."}}, Allow{}, "a name of the kubernetes Service"},
		{"bare kubernetes", Request{Subject: subj("web"), DNSNames: []string{"kubernetes"}}, Allow{}, "a name of the kubernetes Service"},
		{"service IP", Request{Subject: subj("web"), IPs: ips("10.32.0.1")}, Allow{}, "the service IP"},
		{"IPv6 loopback", Request{Subject: subj("web"), IPs: ips("::1")}, Allow{}, "loopback"},
		{"127/8", Request{Subject: subj("web"), IPs: ips("127.1.2.3")}, Allow{}, "loopback"},
		{"localhost subdomain", Request{Subject: subj("web"), DNSNames: []string{"api.localhost"}}, Allow{}, "localhost"},
		{"ordinary SANs", Request{Subject: subj("web"), DNSNames: []string{"web.example.com", "kubernetes.example.com"}, IPs: ips("10.0.0.1")}, Allow{}, ""},
		{"the API server's own SANs", Request{Subject: subj("kubernetes"), DNSNames: []string{"kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}, IPs: ips("10.32.0.1", "127.0.0.1")}, Allow{}, ""},
		{"kubeadm apiserver's SANs", Request{Subject: subj("kube-apiserver"), DNSNames: []string{"kubernetes.default"}, IPs: ips("10.32.0.1")}, Allow{}, ""},
		{"API server's CN in another group", Request{Subject: subj("kubernetes", "ops"), DNSNames: []string{"kubernetes.default.svc"}}, Allow{}, "SAN kubernetes.default.svc"},
		{"the API server endpoint", Request{Subject: subj("eve"), DNSNames: []string{"server.kubernetes.local"}}, Allow{}, "SAN server.kubernetes.local is a name the cluster's own certificates carry"},
		{"the endpoint, upper case and trailing dot", Request{Subject: subj("eve"), DNSNames: []string{"SERVER.kubernetes.local."}}, Allow{}, "a name the cluster's own certificates carry"},
		{"the control plane's IP", Request{Subject: subj("eve"), IPs: ips("192.168.10.100")}, Allow{}, "SAN 192.168.10.100 is a name the cluster's own certificates carry"},
		{"the control plane's IP, IPv4-mapped", Request{Subject: subj("eve"), IPs: ips("::ffff:192.168.10.100")}, Allow{}, "a name the cluster's own certificates carry"},
		{"the hard way API server's file name", Request{Subject: subj("eve"), DNSNames: []string{"kube-api-server"}}, Allow{}, ""},
		{"a neighbour node's IP", Request{Subject: subj("system:node:node-0", "system:nodes"), IPs: ips("192.168.10.102")}, Allow{Nodes: true}, "SAN 192.168.10.102"},
		{"a node's own IP", Request{Subject: subj("system:node:node-0", "system:nodes"), IPs: ips("192.168.10.101")}, Allow{Nodes: true}, ""},
		{"the endpoint allowed by name", Request{Subject: subj("eve"), DNSNames: []string{"server.kubernetes.local"}}, Allow{SANs: []string{"server.kubernetes.local"}}, ""},
		{"a service-name CN without SANs", Request{Subject: subj("kubernetes.default.svc")}, Allow{}, "CN=kubernetes.default.svc is a name of the kubernetes Service"},
		{"a wildcard CN", Request{Subject: subj("*.evil.com")}, Allow{}, "CN=*.evil.com is a wildcard"},
		{"an ordinary host-name CN", Request{Subject: subj("web.example.com")}, Allow{}, ""},
		{"controller-manager identity", Request{Subject: subj("system:kube-controller-manager")}, Allow{}, "--allow-system"},
		{"a service account's identity", Request{Subject: subj("system:serviceaccount:kube-system:replicaset-controller")}, Allow{}, "--allow-system"},
		{"anonymous", Request{Subject: subj("system:anonymous")}, Allow{}, "--allow-system"},
		{"a system group", Request{Subject: subj("jane", "system:serviceaccounts")}, Allow{}, "group system:serviceaccounts"},
		{"system identity allowed", Request{Subject: subj("system:kube-scheduler", "system:kube-scheduler")}, Allow{System: true}, ""},
		{"masters needs its own flag, not --allow-system", Request{Subject: subj("jane", "system:masters")}, Allow{System: true}, "--allow-masters"},
		{"a node's loopback (with --allow-nodes)", Request{Subject: subj("system:node:node-0", "system:nodes"), IPs: ips("127.0.0.1")}, Allow{Nodes: true}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := RequestGate(cluster.Default(), tc.req, tc.allow)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("RequestGate = %v, want a refusal containing %q", err, tc.want)
			}
		})
	}
}
