// Package e2e proves kubepki's output against the real consumers of a
// Kubernetes PKI: openssl, etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler and kubectl, all built from the Go module proxy by
// internal/testenv and run on 127.0.0.1 only.
package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/testenv"
)

// run runs kubepki and fails the test unless it exits 0.
func run(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, code := runCode(t, bin, args...)
	if code != 0 {
		t.Fatalf("kubepki %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// runCode runs kubepki and returns its combined output and exit code.
func runCode(t *testing.T, bin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return buf.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("kubepki %s: %v", strings.Join(args, " "), err)
	}
	return buf.String(), 0
}

// loopbackSpec is the embedded default cluster moved onto 127.0.0.1: the API
// endpoint is 127.0.0.1:port and the control plane's address is 127.0.0.1,
// so every certificate names what the test dials.
func loopbackSpec(t *testing.T, port int, mutate func(*cluster.Cluster)) string {
	t.Helper()
	c := cluster.Default()
	c.APIServer.Endpoint = "127.0.0.1:" + strconv.Itoa(port)
	c.Nodes[0].IPs = []string{"127.0.0.1"}
	if mutate != nil {
		mutate(c)
	}
	data, err := cluster.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// clientTLS trusts caFile, presents the client pair and checks the server
// certificate for serverName.
func clientTLS(t *testing.T, caFile, certFile, keyFile, serverName string) *tls.Config {
	t.Helper()
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatalf("%s: no certificate", caFile)
	}
	conf := &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		conf.Certificates = []tls.Certificate{pair}
	}
	return conf
}

// writeKubeconfig writes a kubeconfig for a client certificate with
// clientcmd, as kubectl users would.
func writeKubeconfig(t *testing.T, server, caFile, certFile, keyFile string) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["test"] = &clientcmdapi.Cluster{Server: server, CertificateAuthority: caFile}
	cfg.AuthInfos["test"] = &clientcmdapi.AuthInfo{ClientCertificate: certFile, ClientKey: keyFile}
	cfg.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "test"}
	cfg.CurrentContext = "test"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// whoami returns the user and groups the API server sees for a kubeconfig.
func whoami(t *testing.T, bins testenv.Binaries, kubeconfig string) (string, []string) {
	t.Helper()
	user, groups, err := testenv.Whoami(t, bins, kubeconfig)
	if err != nil {
		t.Fatalf("kubectl auth whoami: %v", err)
	}
	return user, groups
}

// assertIdentity checks the user and that every wanted group is present.
func assertIdentity(t *testing.T, bins testenv.Binaries, kubeconfig, user string, groups ...string) {
	t.Helper()
	gotUser, gotGroups := whoami(t, bins, kubeconfig)
	if gotUser != user {
		t.Errorf("%s: user = %q, want %q", filepath.Base(kubeconfig), gotUser, user)
	}
	for _, g := range groups {
		if !slices.Contains(gotGroups, g) {
			t.Errorf("%s: groups = %v, want %s among them", filepath.Base(kubeconfig), gotGroups, g)
		}
	}
}

// wiredCluster is a cluster's PKI, kubeconfigs and control-plane bundle made
// by kubepki for a loopback spec, ready to start components from
// `kubepki wiring --root`.
type wiredCluster struct {
	bin, profile, spec, work, pkiDir, kcDir, bundles, root string
	// common are the flags every kubepki command of this cluster takes.
	common []string
}

// newWiredCluster runs kubepki init and bundle for the profile on a spec
// whose API server listens on 127.0.0.1:port only; mutate, if any, adjusts
// the spec further.
func newWiredCluster(t *testing.T, bin, profile string, port int, mutate ...func(*cluster.Cluster)) wiredCluster {
	t.Helper()
	w := wiredCluster{bin: bin, profile: profile, work: t.TempDir()}
	w.spec = loopbackSpec(t, port, func(c *cluster.Cluster) {
		c.APIServer.BindAddress = "127.0.0.1"
		for _, m := range mutate {
			m(c)
		}
	})
	w.pkiDir, w.kcDir, w.bundles = filepath.Join(w.work, "pki"), filepath.Join(w.work, "kubeconfigs"), filepath.Join(w.work, "bundles")
	w.root = filepath.Join(w.bundles, "server")
	w.common = []string{"--config", w.spec, "--dir", w.pkiDir, "--kubeconfig-dir", w.kcDir, "--profile", profile}
	w.run(t, "init")
	w.run(t, "bundle", "--out", w.bundles)
	return w
}

// run runs a kubepki command on this cluster.
func (w wiredCluster) run(t *testing.T, args ...string) string {
	t.Helper()
	return run(t, w.bin, append(args, w.common...)...)
}

// flags are the flags `kubepki wiring` prints for a component on the
// control-plane node's bundle.
func (w wiredCluster) flags(t *testing.T, component string) []string {
	t.Helper()
	return strings.Fields(w.run(t, "wiring", component, "--root", w.root))
}

// kubeconfigIdentity is a kubeconfig kubepki writes and who it must be.
type kubeconfigIdentity struct {
	file   string
	user   string
	groups []string
}

// identities are the kubeconfigs of the default spec's plan per layout and
// the identity each must authenticate as.
func identities(profile string) []kubeconfigIdentity {
	if profile == "kubeadm" {
		return []kubeconfigIdentity{
			{"admin.conf", "kubernetes-admin", []string{"kubeadm:cluster-admins"}},
			{"super-admin.conf", "kubernetes-super-admin", []string{"system:masters"}},
			{"controller-manager.conf", "system:kube-controller-manager", nil},
			{"scheduler.conf", "system:kube-scheduler", nil},
			{"kubelet-server.conf", "system:node:server", []string{"system:nodes"}},
			{"kubelet-node-0.conf", "system:node:node-0", []string{"system:nodes"}},
			{"kubelet-node-1.conf", "system:node:node-1", []string{"system:nodes"}},
		}
	}
	return []kubeconfigIdentity{
		{"admin.kubeconfig", "admin", []string{"system:masters"}},
		{"kube-proxy.kubeconfig", "system:kube-proxy", []string{"system:node-proxier"}},
		{"kube-scheduler.kubeconfig", "system:kube-scheduler", []string{"system:kube-scheduler"}},
		{"kube-controller-manager.kubeconfig", "system:kube-controller-manager", []string{"system:kube-controller-manager"}},
		{"node-0.kubeconfig", "system:node:node-0", []string{"system:nodes"}},
		{"node-1.kubeconfig", "system:node:node-1", []string{"system:nodes"}},
	}
}
