package cli_test

import (
	"path/filepath"
	"strings"
	"testing"

	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/openssltest"
	"kubepki.dev/kubepki/internal/pkitest"
	"kubepki.dev/kubepki/internal/store"
)

// TestSignGates tries, with CSRs openssl makes, what an attacker holding
// a way to get CSRs signed would ask `kubepki sign` for: each is refused
// (exit 2) with its reason and nothing is written, and each is signed with
// the flag that overrides it (a weak key has none). Before signing, sign
// names the identity and SANs on standard error.
func TestSignGates(t *testing.T) {
	pkiDir := filepath.Join(t.TempDir(), "pki")
	spec := pkitest.SpecFile(t, func(c *cluster.Cluster) { c.ServiceCIDR = "10.96.0.0/12" })
	lcWant(t, 0, "init", "--config", spec, "--dir", pkiDir)
	caCrt, caKey := filepath.Join(pkiDir, "ca.crt"), filepath.Join(pkiDir, "ca.key")
	work := t.TempDir()
	csr := func(name, newkey, subj string, addext ...string) string {
		t.Helper()
		path := filepath.Join(work, name+".csr")
		args := []string{"req", "-new", "-nodes", "-newkey", newkey, "-keyout", filepath.Join(work, name+".key"), "-out", path, "-subj", subj}
		for _, e := range addext {
			args = append(args, "-addext", e)
		}
		openssltest.Run(t, "", args...)
		return path
	}
	ecParams := filepath.Join(work, "p256.pem")
	openssltest.Run(t, "", "ecparam", "-name", "prime256v1", "-out", ecParams)
	p256 := "ec:" + ecParams

	tests := []struct {
		name     string
		newkey   string
		subj     string
		addext   []string
		flags    []string // the usages and the spec
		reason   string   // the refusal says this
		override []string // ... and these flags sign it
	}{
		{"system:masters", p256, "/CN=mallory/O=system:masters", nil, []string{"--client"},
			"group system:masters bypasses RBAC", []string{"--allow-masters"}},
		{"node identity by CN", p256, "/CN=system:node:node-0", nil, []string{"--client"},
			"CN=system:node:node-0 O=[] is a kubelet's identity", []string{"--allow-nodes"}},
		{"node identity by group", p256, "/CN=mallory/O=system:nodes", nil, []string{"--client"},
			"is a kubelet's identity", []string{"--allow-nodes"}},
		{"the API server's endpoint", p256, "/CN=eve", []string{"subjectAltName=DNS:server.kubernetes.local"}, []string{"--server"},
			"SAN server.kubernetes.local is a name the cluster's own certificates carry", []string{"--allow-san", "server.kubernetes.local"}},
		{"the control plane's IP", p256, "/CN=eve", []string{"subjectAltName=IP:192.168.10.100"}, []string{"--server"},
			"SAN 192.168.10.100 is a name the cluster's own certificates carry", []string{"--allow-san", "192.168.10.100"}},
		{"a wildcard CN without SANs", p256, "/CN=*.evil.com", nil, []string{"--server"},
			"CN=*.evil.com is a wildcard", []string{"--allow-san", "*.evil.com"}},
		{"controller-manager identity", p256, "/CN=system:kube-controller-manager", nil, []string{"--client"},
			"CN=system:kube-controller-manager is a Kubernetes system identity", []string{"--allow-system"}},
		{"a service account's identity", p256, "/CN=system:serviceaccount:kube-system:default", nil, []string{"--client"},
			"is a Kubernetes system identity", []string{"--allow-system"}},
		{"wildcard SAN", p256, "/CN=web", []string{"subjectAltName=DNS:*.google.com"}, []string{"--server"},
			"SAN *.google.com is a wildcard", []string{"--allow-san", "*.google.com"}},
		{"kubernetes.default.svc", p256, "/CN=web", []string{"subjectAltName=DNS:kubernetes.default.svc"}, []string{"--server"},
			"SAN kubernetes.default.svc is a name of the kubernetes Service", []string{"--allow-san", "kubernetes.default.svc"}},
		{"kubernetes.default.svc.cluster.local", p256, "/CN=web", []string{"subjectAltName=DNS:kubernetes.default.svc.cluster.local"}, []string{"--server"},
			"a name of the kubernetes Service", []string{"--allow-san", "kubernetes.default.svc.cluster.local"}},
		{"service IP of the spec", p256, "/CN=web", []string{"subjectAltName=IP:10.96.0.1"}, []string{"--server", "--config", spec},
			"SAN 10.96.0.1 is the service IP of the kubernetes Service (10.96.0.0/12)", []string{"--allow-san", "10.96.0.1"}},
		{"loopback", p256, "/CN=web", []string{"subjectAltName=IP:127.0.0.1"}, []string{"--server"},
			"SAN 127.0.0.1 is a loopback address", []string{"--allow-san", "127.0.0.1"}},
		{"localhost", p256, "/CN=web", []string{"subjectAltName=DNS:localhost"}, []string{"--server"},
			"SAN localhost is localhost", []string{"--allow-san", "localhost"}},
		{"RSA-1024", "rsa:1024", "/CN=weak", nil, []string{"--client"},
			"RSA-1024 key is too weak (at least RSA-2048)", nil},
		{"every refusal at once", p256, "/CN=system:node:x/O=system:masters", []string{"subjectAltName=DNS:*.example.com,IP:127.0.0.1"}, []string{"--server"},
			"group system:masters bypasses RBAC and cannot be revoked; bind cluster-admin to a group instead, or pass --allow-masters; CN=system:node:x O=[system:masters] is a kubelet's identity",
			[]string{"--allow-masters", "--allow-nodes", "--allow-san", "*.example.com,127.0.0.1"}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := csr(strings.ReplaceAll(tc.name, " ", "-")+"-"+string(rune('a'+i)), tc.newkey, tc.subj, tc.addext...)
			out := strings.TrimSuffix(path, ".csr") + ".crt"
			args := append([]string{"sign", "--ca-cert", caCrt, "--ca-key", caKey, "--csr", path, "--out", out}, tc.flags...)
			r := lcWant(t, 2, args...)
			if !strings.Contains(r.stderr, "refusing to issue: ") || !strings.Contains(r.stderr, tc.reason) {
				t.Errorf("refusal does not say %q:\n%s", tc.reason, r.stderr)
			}
			if strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
				t.Errorf("refusal is not one line:\n%s", r.stderr)
			}
			if store.Exists(out) {
				t.Fatalf("refused, yet %s was written", out)
			}
			if tc.override == nil {
				return
			}
			r = lcWant(t, 0, append(args, tc.override...)...)
			if !strings.Contains(r.stderr, "signing "+path+": CN=") {
				t.Errorf("sign did not name the identity before signing:\n%s", r.stderr)
			}
			c := lcCert(t, out)
			if out := openssltest.Run(t, "", "verify", "-CAfile", caCrt, out); !strings.Contains(out, ": OK") {
				t.Errorf("openssl verify: %s", out)
			}
			if len(tc.addext) > 0 && len(c.DNSNames)+len(c.IPAddresses) == 0 {
				t.Errorf("signed certificate lost its SANs")
			}
		})
	}

	// The spec is the authority on which reserved SANs a certificate may
	// carry: the API server's own CSR (CN=kubernetes, the hard way's
	// kube-api-server), with the SANs the plan gives it, is signed as is.
	t.Run("API server CSR with the spec's SANs", func(t *testing.T) {
		path := csr("kube-api-server", p256, "/CN=kubernetes",
			"subjectAltName=DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.96.0.1,IP:127.0.0.1")
		out := filepath.Join(work, "kube-api-server.crt")
		r := lcWant(t, 0, "sign", "--ca-cert", caCrt, "--ca-key", caKey, "--csr", path, "--out", out, "--client", "--server", "--config", spec)
		want := "signing " + path + ": CN=kubernetes O=[] SANs=[DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc, DNS:kubernetes.default.svc.cluster.local, IP:10.96.0.1, IP:127.0.0.1] usages=[client auth, server auth] key ECDSA-P256"
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr does not say\n%s\ngot:\n%s", want, r.stderr)
		}
		// Another identity asking for the same names is refused.
		path = csr("impostor", p256, "/CN=impostor",
			"subjectAltName=DNS:kubernetes.default.svc,IP:10.96.0.1")
		r = lcWant(t, 2, "sign", "--ca-cert", caCrt, "--ca-key", caKey, "--csr", path, "--out", filepath.Join(work, "impostor.crt"), "--server", "--config", spec)
		if !strings.Contains(r.stderr, "SAN kubernetes.default.svc is") || !strings.Contains(r.stderr, "SAN 10.96.0.1 is") {
			t.Errorf("impostor refusal:\n%s", r.stderr)
		}
	})
}

// TestKubeconfigUserGates: kubeconfig user shares sign's identity gates
// and the spec's user-name rule; a name that climbs out of the kubeconfig
// directory, or is one of the plan's kubeconfigs, is refused (exit 2) and
// writes nothing.
func TestKubeconfigUserGates(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "pki")
	lcWant(t, 0, "init", "--dir", dir)
	tests := []struct {
		name   string
		args   []string
		reason string
		escape string // a file the refusal must not have written
	}{
		{"dot-dot escape", []string{"../../x"}, `user name: "../../x" cannot name a file`, filepath.Join(root, "..", "x.kubeconfig")},
		{"absolute", []string{"/tmp/x"}, "cannot name a file", "/tmp/x.kubeconfig"},
		{"hidden", []string{".hidden"}, "no slashes or leading dot", filepath.Join(dir, ".hidden.kubeconfig")},
		{"backslash", []string{`a\b`}, "cannot name a file", ""},
		{"empty", []string{""}, "must not be empty", filepath.Join(dir, ".kubeconfig")},
		{"the plan's admin kubeconfig", []string{"admin"}, "admin.kubeconfig is the plan's admin kubeconfig", ""},
		{"a node's kubeconfig", []string{"node-0"}, "node-0.kubeconfig is the plan's node-0 kubeconfig", ""},
		{"system:masters", []string{"mallory", "--group", "system:masters"}, "group system:masters bypasses RBAC", filepath.Join(dir, "mallory.kubeconfig")},
		{"node identity", []string{"system:node:node-9"}, "is a kubelet's identity (the Node authorizer lets it act as that node); pass --allow-nodes", filepath.Join(dir, "system:node:node-9.kubeconfig")},
		{"nodes group", []string{"mallory", "--group", "system:nodes"}, "pass --allow-nodes", filepath.Join(dir, "mallory.kubeconfig")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := lcWant(t, 2, append([]string{"kubeconfig", "user"}, append(tc.args, "--dir", dir)...)...)
			if !strings.Contains(r.stderr, tc.reason) {
				t.Errorf("refusal does not say %q:\n%s", tc.reason, r.stderr)
			}
			if tc.escape != "" && store.Exists(tc.escape) {
				t.Errorf("refused, yet %s was written", tc.escape)
			}
		})
	}
	lcWant(t, 0, "kubeconfig", "user", "system:node:node-9", "--group", "system:nodes", "--allow-nodes", "--dir", dir)
	lcWant(t, 0, "kubeconfig", "user", "mallory", "--group", "system:masters", "--allow-masters", "--dir", dir)
}
