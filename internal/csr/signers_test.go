package csr

import (
	"strings"
	"testing"

	certv1 "k8s.io/api/certificates/v1"
)

func TestValidateForSigner(t *testing.T) {
	const (
		serving = certv1.KubeletServingSignerName
		kclient = certv1.KubeAPIServerClientKubeletSignerName
		client  = certv1.KubeAPIServerClientSignerName
		custom  = "kubepki.dev/etcd-client"
	)
	node := reqSpec{cn: "system:node:n1", o: []string{NodesGroup}}
	withSANs := func(s reqSpec, dns []string, ips []string) reqSpec { s.dns, s.ips = dns, ips; return s }
	servingU := []certv1.KeyUsage{"digital signature", "server auth"}
	servingRSA := []certv1.KeyUsage{"key encipherment", "digital signature", "server auth"}
	clientU := []certv1.KeyUsage{"digital signature", "client auth"}
	tests := []struct {
		name    string
		signer  string
		req     reqSpec
		usages  []certv1.KeyUsage
		wantErr string // "" accepts
	}{
		// kubelet-serving
		{"serving ok", serving, withSANs(node, []string{"n1"}, []string{"10.0.0.1"}), servingU, ""},
		{"serving RSA set ok, any order", serving, withSANs(node, nil, []string{"10.0.0.1"}), servingRSA, ""},
		{"serving needs a SAN", serving, node, servingU, "at least one DNS or IP"},
		{"serving no email", serving, reqSpec{cn: node.cn, o: node.o, dns: []string{"n1"}, emails: []string{"a@b.c"}}, servingU, "email"},
		{"serving no URI", serving, reqSpec{cn: node.cn, o: node.o, dns: []string{"n1"}, uris: []string{"spiffe://x/y"}}, servingU, "URI"},
		{"serving O must be system:nodes", serving, reqSpec{cn: node.cn, o: []string{"system:nodes", "x"}, dns: []string{"n1"}}, servingU, "want exactly [system:nodes]"},
		{"serving CN must be a node", serving, reqSpec{cn: "n1", o: node.o, dns: []string{"n1"}}, servingU, "does not name a node"},
		{"serving CN prefix alone", serving, reqSpec{cn: "system:node:", o: node.o, dns: []string{"n1"}}, servingU, "does not name a node"},
		{"serving with client auth", serving, withSANs(node, []string{"n1"}, nil), append(servingU, "client auth"), "not a kubelet serving set"},
		{"serving without server auth", serving, withSANs(node, []string{"n1"}, nil), []certv1.KeyUsage{"digital signature"}, "not a kubelet serving set"},
		// kube-apiserver-client-kubelet
		{"kubelet client ok", kclient, node, clientU, ""},
		{"kubelet client RSA ok", kclient, node, []certv1.KeyUsage{"digital signature", "key encipherment", "client auth"}, ""},
		{"kubelet client no SANs", kclient, withSANs(node, []string{"n1"}, nil), clientU, "no subjectAltNames"},
		{"kubelet client O", kclient, reqSpec{cn: node.cn}, clientU, "want exactly [system:nodes]"},
		{"kubelet client CN", kclient, reqSpec{cn: "jane", o: node.o}, clientU, "does not name a node"},
		{"kubelet client server auth", kclient, node, []certv1.KeyUsage{"digital signature", "client auth", "server auth"}, "not a kubelet client set"},
		// kube-apiserver-client
		{"client ok", client, reqSpec{cn: "jane", o: []string{"developers"}}, clientU, ""},
		{"client only client auth ok", client, reqSpec{cn: "jane"}, []certv1.KeyUsage{"client auth"}, ""},
		{"client RSA ok", client, reqSpec{cn: "jane"}, []certv1.KeyUsage{"digital signature", "key encipherment", "client auth"}, ""},
		{"client needs client auth", client, reqSpec{cn: "jane"}, []certv1.KeyUsage{"digital signature"}, "needs the client auth usage"},
		{"client no server auth", client, reqSpec{cn: "jane"}, []certv1.KeyUsage{"client auth", "server auth"}, `"server auth" is not allowed`},
		{"client no cert sign", client, reqSpec{cn: "jane"}, []certv1.KeyUsage{"client auth", "cert sign"}, `"cert sign" is not allowed`},
		{"client no DNS SAN", client, reqSpec{cn: "jane", dns: []string{"jane.example.com"}}, clientU, "takes no subjectAltNames; the request has DNS"},
		{"client no IP SAN", client, reqSpec{cn: "jane", ips: []string{"10.0.0.1"}}, clientU, "IP"},
		// custom
		{"custom ok", custom, reqSpec{cn: "etcd-client"}, clientU, ""},
		{"custom server and SANs ok", custom, reqSpec{cn: "etcd", dns: []string{"etcd"}}, []certv1.KeyUsage{"digital signature", "server auth", "client auth"}, ""},
		{"custom never cert sign", custom, reqSpec{cn: "x"}, []certv1.KeyUsage{"cert sign"}, "leaf certificates only"},
		{"custom never any", custom, reqSpec{cn: "x"}, []certv1.KeyUsage{"any"}, `"any" is not allowed`},
		{"unknown usage", custom, reqSpec{cn: "x"}, []certv1.KeyUsage{"telepathy"}, "unknown usages"},
		{"unknown kubernetes.io signer", "kubernetes.io/legacy-unknown", reqSpec{cn: "x"}, clientU, "does not implement"},
		{"signer name without domain", "etcd-client", reqSpec{cn: "x"}, clientU, "want DOMAIN/NAME"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := newRequest(t, tc.req)
			err := ValidateForSigner(tc.signer, req, tc.usages)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestValidateSignerName(t *testing.T) {
	for name, ok := range map[string]bool{
		certv1.KubeletServingSignerName:      true,
		certv1.KubeAPIServerClientSignerName: true,
		"kubepki.dev/etcd-client":            true,
		"example.com/a/b":                    true,
		"kubernetes.io/legacy-unknown":       false,
		"foo.kubernetes.io/x":                false,
		"nodomain":                           false,
		"/x":                                 false,
		"example.com/":                       false,
	} {
		if err := ValidateSignerName(name); (err == nil) != ok {
			t.Errorf("ValidateSignerName(%q) = %v, want ok=%v", name, err, ok)
		}
	}
}
