package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/lifecycle"
	"kubepki.dev/kubepki/internal/openssltest"
	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/store"
	"kubepki.dev/kubepki/internal/testenv"
)

// TestExternalCAOnRealControlPlane is kubeadm's external CA mode with the
// built binary: ca.key is taken off the machine; kubepki keeps the cluster
// CA's certificates out of its reach (renew exits 3 and says how), makes
// CSRs for them, openssl signs them with the CA key kept elsewhere, kubepki
// installs them; then etcd and kube-apiserver run on the result and every
// externally signed kubeconfig authenticates as its identity.
func TestExternalCAOnRealControlPlane(t *testing.T) {
	openssltest.Bin(t) // CI fails without openssl; elsewhere the test skips
	bins := testenv.Build(t)
	bin := testenv.Kubepki(t)
	port := testenv.FreePort(t)
	spec := loopbackSpec(t, port, nil)
	work := t.TempDir()
	pkiDir, kcDir := filepath.Join(work, "pki"), filepath.Join(work, "kubeconfigs")
	common := []string{"--config", spec, "--dir", pkiDir, "--kubeconfig-dir", kcDir, "--profile", "kubeadm"}
	run(t, bin, append([]string{"init"}, common...)...)
	caKey := filepath.Join(t.TempDir(), "ca.key")
	if err := os.Rename(filepath.Join(pkiDir, "ca.key"), caKey); err != nil {
		t.Fatal(err)
	}

	c, err := cluster.Load(spec)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := catalog.New(c, catalog.Kubeadm)
	if err != nil {
		t.Fatal(err)
	}
	st := store.Store{Dir: pkiDir, KubeconfigDir: kcDir}
	var external []string
	for _, l := range plan.Leaves() {
		if l.CA == "ca" {
			external = append(external, l.Name)
		}
	}
	initial := leafSerials(t, plan, st)

	out := run(t, bin, append([]string{"verify"}, common...)...)
	if !strings.Contains(out, "CA ca: key absent (external CA)") {
		t.Errorf("verify does not report the external CA:\n%s", out)
	}
	out, code := runCode(t, bin, append([]string{"certs", "renew", "all"}, common...)...)
	if code != 3 || !strings.Contains(out, "kubepki certs generate-csr "+strings.Join(external, " ")) {
		t.Errorf("renew all with an external CA: exit %d, want 3 naming the generate-csr command\n%s", code, out)
	}
	// It renewed what the CAs with their keys sign, and nothing else.
	before := leafSerials(t, plan, st)
	for _, l := range plan.Leaves() {
		if renewed := before[l.Name] != initial[l.Name]; renewed != (l.CA != "ca") {
			t.Errorf("renew all with ca.key absent: %s renewed %v, want %v", l.Name, renewed, l.CA != "ca")
		}
	}
	if out, code := runCode(t, bin, append([]string{"kubeconfig", "user", "jane", "--out", filepath.Join(work, "jane.conf")}, common...)...); code != 1 || !strings.Contains(out, "external CA") {
		t.Errorf("kubeconfig user with an external CA: exit %d, want 1 saying so\n%s", code, out)
	}

	// The external CA's round: CSRs, openssl, install.
	csrDir, signed := filepath.Join(work, "csr"), filepath.Join(work, "signed")
	run(t, bin, append(append([]string{"certs", "generate-csr"}, external...), append([]string{"--csr-dir", csrDir}, common...)...)...)
	if err := os.MkdirAll(signed, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range external {
		stem := name // kubeadm names an embedded certificate's files after its kubeconfig
		if l, _ := plan.Cert(name); !l.Embedded {
			stem = l.Path
		}
		if out, err := exec.Command("openssl", "x509", "-req", "-in", filepath.Join(csrDir, stem+".csr"),
			"-CA", filepath.Join(pkiDir, "ca.crt"), "-CAkey", caKey, "-days", "90", "-copy_extensions", "copyall",
			"-out", filepath.Join(signed, stem+".crt")).CombinedOutput(); err != nil {
			t.Fatalf("openssl x509 -req %s: %v\n%s", stem, err, out)
		}
	}
	out = run(t, bin, append([]string{"certs", "install", "--csr-dir", csrDir, "--from", signed}, common...)...)
	for _, name := range external {
		if !strings.Contains(out, "installed "+name+" ") {
			t.Errorf("install does not report %s:\n%s", name, out)
		}
	}
	run(t, bin, append([]string{"verify"}, common...)...)
	after := leafSerials(t, plan, st)
	for _, l := range plan.Leaves() {
		if changed := after[l.Name] != before[l.Name]; changed != (l.CA == "ca") {
			t.Errorf("%s: serial changed %v, want %v (only the external CA's certificates are replaced)", l.Name, changed, l.CA == "ca")
		}
		cert, _, err := lifecycle.ReadPair(plan, st, l)
		if err != nil {
			t.Fatal(err)
		}
		if l.CA == "ca" {
			leaf := filepath.Join(t.TempDir(), "leaf.crt")
			if err := os.WriteFile(leaf, pki.EncodeCert(cert), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("openssl", "verify", "-CAfile", filepath.Join(pkiDir, "ca.crt"), leaf).CombinedOutput(); err != nil {
				t.Errorf("openssl verify %s: %v\n%s", l.Name, err, out)
			}
		}
	}

	// The real consumers.
	f := func(stem string) string { return filepath.Join(pkiDir, stem) }
	endpoint, _ := testenv.StartEtcd(t, bins, testenv.EtcdConfig{
		CertFile: f("etcd/server.crt"), KeyFile: f("etcd/server.key"), TrustedCAFile: f("etcd/ca.crt"),
		PeerCertFile: f("etcd/peer.crt"), PeerKeyFile: f("etcd/peer.key"),
		ClientCertFile: f("etcd/healthcheck-client.crt"), ClientKeyFile: f("etcd/healthcheck-client.key"),
	})
	cfg := testenv.APIServerConfig{
		Port: port, EtcdEndpoint: endpoint, ServiceCIDR: c.ServiceCIDR,
		EtcdCAFile: f("etcd/ca.crt"), EtcdCertFile: f("apiserver-etcd-client.crt"), EtcdKeyFile: f("apiserver-etcd-client.key"),
		ClientCAFile: f("ca.crt"), TLSCertFile: f("apiserver.crt"), TLSKeyFile: f("apiserver.key"),
		ServiceAccountKeyFile: f("sa.pub"), ServiceAccountSigningKeyFile: f("sa.key"),
		KubeletClientCert: f("apiserver-kubelet-client.crt"), KubeletClientKey: f("apiserver-kubelet-client.key"),
		RequestHeaderClientCAFile: f("front-proxy-ca.crt"),
		ProxyClientCertFile:       f("front-proxy-client.crt"), ProxyClientKeyFile: f("front-proxy-client.key"),
	}
	testenv.StartAPIServer(t, bins, cfg, clientTLS(t, f("ca.crt"), f("apiserver-kubelet-client.crt"), f("apiserver-kubelet-client.key"), "127.0.0.1"))
	if got := servedSerial(t, "127.0.0.1:"+strconv.Itoa(port), f("ca.crt"), "", ""); got != after["apiserver"] {
		t.Errorf("kube-apiserver serves serial %s, want the openssl-signed apiserver.crt's %s", got, after["apiserver"])
	}
	for _, id := range []kubeconfigIdentity{
		{"admin.conf", "kubernetes-admin", []string{"kubeadm:cluster-admins"}},
		{"super-admin.conf", "kubernetes-super-admin", []string{"system:masters"}},
		{"controller-manager.conf", "system:kube-controller-manager", nil},
		{"scheduler.conf", "system:kube-scheduler", nil},
		{"kubelet-server.conf", "system:node:server", []string{"system:nodes"}},
		{"kubelet-node-0.conf", "system:node:node-0", []string{"system:nodes"}},
		{"kubelet-node-1.conf", "system:node:node-1", []string{"system:nodes"}},
	} {
		assertIdentity(t, bins, filepath.Join(kcDir, id.file), id.user, append(id.groups, "system:authenticated")...)
	}
	if _, err := testenv.Kubectl(t, bins, filepath.Join(kcDir, "super-admin.conf"), "get", "namespaces"); err != nil {
		t.Errorf("super-admin.conf, signed by the external CA, cannot list namespaces: %v", err)
	}
}
