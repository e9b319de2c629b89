package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"

	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/testenv"
)

// TestRenewRealNodeLayout: a directory the real kubeadm made (init phase
// certs all, kubeconfig all) in a real node's layout: kubelet.conf
// pointing at the kubelet's kubelet-client-current.pem (a link to a
// kubelet-client-<timestamp>.pem, as kubeadm's kubelet-finalize phase
// leaves it), and admin.conf turned by kubectl config set-credentials into
// one that refers to files. verify, plan and check-expiration exit 0;
// certs renew all renews kubelet.conf (new file, link swung, node key
// kept) and admin.conf (still referring to its files, which kubectl
// loads), and the directory is clean afterwards.
func TestRenewRealNodeLayout(t *testing.T) {
	bin := testenv.Kubepki(t)
	node := testenv.NewKubeadmNode(t, kubeadmServer)
	bins := testenv.Build(t)
	root, pkiDir := node.Dir, node.PKIDir
	spec := serverSpec(t, root)
	kp := func(args ...string) []string {
		return append(args, "--profile", "kubeadm", "--config", spec, "--dir", pkiDir, "--kubeconfig-dir", root)
	}

	// kubelet.conf as kubeadm's kubelet-finalize phase leaves it.
	current := node.KubeletClientCurrent(t)
	oldPEM, err := os.Readlink(current)
	if err != nil {
		t.Fatal(err)
	}
	// admin.conf referring to files, written by kubectl itself.
	admin := filepath.Join(root, "admin.conf")
	ac, err := clientcmd.LoadFromFile(admin)
	if err != nil {
		t.Fatal(err)
	}
	adminUser := ac.Contexts[ac.CurrentContext].AuthInfo
	au := ac.AuthInfos[adminUser]
	if err := os.WriteFile(filepath.Join(root, "admin.crt"), au.ClientCertificateData, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "admin.key"), au.ClientKeyData, 0o600); err != nil {
		t.Fatal(err)
	}
	kubectl := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bins.Kubectl, append([]string{"--kubeconfig", admin}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	kubectl("config", "set-credentials", adminUser, "--client-certificate", filepath.Join(root, "admin.crt"), "--client-key", filepath.Join(root, "admin.key"), "--embed-certs=false")
	if raw := kubectl("config", "view", "--raw"); strings.Contains(raw, "client-certificate-data") {
		t.Fatalf("kubectl left certificate data in admin.conf:\n%s", raw)
	}

	for _, cmd := range [][]string{{"verify"}, {"plan"}, {"certs", "check-expiration"}} {
		if out, code := runCode(t, bin, kp(cmd...)...); code != 0 {
			t.Fatalf("kubepki %s on the node layout: exit %d, want 0\n%s", strings.Join(cmd, " "), code, out)
		}
	}
	oldAdmin, err := os.ReadFile(filepath.Join(root, "admin.crt"))
	if err != nil {
		t.Fatal(err)
	}

	out := run(t, bin, kp("certs", "renew", "all")...)
	for _, want := range []string{"renewed kubelet-server.conf ", "renewed admin.conf ", "renewed apiserver "} {
		if !strings.Contains(out, want) {
			t.Errorf("renew all output lacks %q:\n%s", want, out)
		}
	}
	target, err := os.Readlink(current)
	if err != nil || target == oldPEM || !strings.HasPrefix(filepath.Base(target), "kubelet-client-") {
		t.Errorf("kubelet-client-current.pem -> %q (%v), want a new kubelet-client-<timestamp>.pem", target, err)
	}
	if _, err := os.Stat(oldPEM); err != nil {
		t.Errorf("the old kubelet pair is gone: %v", err)
	}
	newPEM, err := os.ReadFile(current)
	if err != nil {
		t.Fatal(err)
	}
	oldData, err := os.ReadFile(oldPEM)
	if err != nil {
		t.Fatal(err)
	}
	oldKey, err := pki.ParseKey(oldData)
	if err != nil {
		t.Fatal(err)
	}
	newCert, err := pki.ParseCert(newPEM)
	if err != nil || !pki.KeyMatches(newCert.PublicKey, oldKey) || newCert.Subject.CommonName != "system:node:server" {
		t.Errorf("the renewed kubelet certificate (%v) is not system:node:server's for the node's kept key", err)
	}
	if newAdmin, _ := os.ReadFile(filepath.Join(root, "admin.crt")); string(newAdmin) == string(oldAdmin) {
		t.Errorf("admin.crt, which admin.conf refers to, was not renewed")
	}
	if raw := kubectl("config", "view", "--raw"); strings.Contains(raw, "client-certificate-data") || !strings.Contains(raw, "client-certificate: admin.crt") {
		t.Errorf("admin.conf no longer refers to its files:\n%s", raw)
	}
	for _, cmd := range [][]string{{"verify"}, {"plan"}, {"certs", "check-expiration"}} {
		if out, code := runCode(t, bin, kp(cmd...)...); code != 0 {
			t.Errorf("kubepki %s after renew: exit %d, want 0\n%s", strings.Join(cmd, " "), code, out)
		}
	}
}
