package testenv

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
)

func TestSetFlags(t *testing.T) {
	tests := []struct {
		name  string
		flags []string
		set   map[string]string
		want  []string
	}{
		{
			name:  "replaced in place",
			flags: []string{"--a=1", "--secure-port=6443", "--b=2"},
			set:   map[string]string{"secure-port": "1234"},
			want:  []string{"--a=1", "--secure-port=1234", "--b=2"},
		},
		{
			name:  "absent names appended sorted",
			flags: []string{"--a=1"},
			set:   map[string]string{"z": "9", "bind-address": "127.0.0.1"},
			want:  []string{"--a=1", "--bind-address=127.0.0.1", "--z=9"},
		},
		{
			name:  "prefix of another name untouched",
			flags: []string{"--etcd-servers-overrides=x", "--etcd-servers=https://127.0.0.1:2379"},
			set:   map[string]string{"etcd-servers": "https://127.0.0.1:5"},
			want:  []string{"--etcd-servers-overrides=x", "--etcd-servers=https://127.0.0.1:5"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := SetFlags(tc.flags, tc.set); !slices.Equal(got, tc.want) {
				t.Errorf("SetFlags = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestKubeadmNode checks the fixture against what a real node holds:
// kubeadm's files, kubelet.conf rewritten to the kubelet's rotated
// certificate, a copy that keeps the CA, and a control plane started with
// kubeadm's manifest flags that authenticates kubeadm's kubeconfigs.
func TestKubeadmNode(t *testing.T) {
	n := NewKubeadmNode(t, KubeadmNodeConfig{})
	for _, f := range []string{
		"admin.conf", "super-admin.conf", "controller-manager.conf", "scheduler.conf", "kubelet.conf",
		"pki/ca.crt", "pki/ca.key", "pki/apiserver.crt", "pki/sa.key", "pki/sa.pub", "pki/front-proxy-ca.crt",
		"pki/etcd/ca.crt", "pki/etcd/server.crt", "pki/etcd/healthcheck-client.crt",
	} {
		if _, err := os.Stat(filepath.Join(n.Dir, f)); err != nil {
			t.Errorf("kubeadm node: %v", err)
		}
	}

	apiFlags := n.APIServerFlags(t)
	for _, want := range []string{
		"--client-ca-file=" + filepath.Join(n.PKIDir, "ca.crt"),
		"--tls-cert-file=" + filepath.Join(n.PKIDir, "apiserver.crt"),
		"--etcd-servers=https://127.0.0.1:2379",
		"--authorization-mode=Node,RBAC",
	} {
		if !slices.Contains(apiFlags, want) {
			t.Errorf("kube-apiserver manifest flags lack %s: %q", want, apiFlags)
		}
	}
	if _, err := os.Stat("/etc/kubernetes/tmp"); err == nil {
		t.Errorf("the dry run wrote into /etc/kubernetes/tmp")
	}

	c := n.Copy(t)
	current := c.KubeletClientCurrent(t)
	cfg, err := clientcmd.LoadFromFile(filepath.Join(c.Dir, "kubelet.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for name, u := range cfg.AuthInfos {
		if u.ClientCertificate != current || u.ClientKey != current || len(u.ClientCertificateData) != 0 {
			t.Errorf("kubelet.conf user %s: cert %q key %q (embedded %d bytes), want both %q", name, u.ClientCertificate, u.ClientKey, len(u.ClientCertificateData), current)
		}
	}
	target, err := os.Readlink(current)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(target) != c.KubeletCertDir() || !strings.HasPrefix(filepath.Base(target), "kubelet-client-") || target == current {
		t.Errorf("kubelet-client-current.pem -> %s, want %s/kubelet-client-<timestamp>.pem", target, c.KubeletCertDir())
	}
	pemData, err := os.ReadFile(current)
	if err != nil {
		t.Fatal(err)
	}
	block, rest := pem.Decode(pemData)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s: first block is not a certificate", current)
	}
	if key, _ := pem.Decode(rest); key == nil || !strings.Contains(key.Type, "PRIVATE KEY") {
		t.Errorf("%s: no private key after the certificate", current)
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if leaf.Subject.CommonName != "system:node:cp1" {
		t.Errorf("%s: CN %q, want system:node:cp1", current, leaf.Subject.CommonName)
	}

	// The copy's CA is the original's: its apiserver trusts n's kubeconfigs.
	etcd, _ := c.StartEtcd(t)
	server, _ := c.StartAPIServer(t, etcd)
	for file, user := range map[string]string{
		filepath.Join(n.Dir, "super-admin.conf"): "kubernetes-super-admin",
		filepath.Join(c.Dir, "kubelet.conf"):     "system:node:cp1",
	} {
		out, err := Kubectl(t, n.bins, file, "--server", server, "--tls-server-name", KubeadmServerName, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
		if err != nil {
			t.Errorf("whoami %s: %v", file, err)
		} else if out != user {
			t.Errorf("whoami %s: %q, want %q", file, out, user)
		}
	}

	report, kubeconfigs := n.CheckExpiration(t)
	seen := map[string]bool{}
	for _, r := range report.Certificates {
		seen[r.Name] = true
		if strings.HasSuffix(r.Name, ".conf") && !kubeconfigs {
			continue
		}
		if r.Missing || r.ExpirationDate.IsZero() {
			t.Errorf("kubeadm check-expiration: %s missing", r.Name)
		}
	}
	for _, want := range []string{"admin.conf", "apiserver", "etcd-server", "front-proxy-client", "super-admin.conf"} {
		if !seen[want] {
			t.Errorf("kubeadm check-expiration lacks %s: %+v", want, report)
		}
	}
	if len(report.CertificateAuthorities) != 3 {
		t.Errorf("kubeadm check-expiration: %d CAs, want 3", len(report.CertificateAuthorities))
	}
}
