// Package e2e proves kubepki's output against the real consumers of a
// Kubernetes PKI: openssl, etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler and kubectl, all built from the Go module proxy by
// internal/testenv and run on 127.0.0.1 only.
package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
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

// kubepki builds the command under test into a temporary directory.
func kubepki(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kubepki")
	cmd := exec.Command("go", "build", "-o", bin, "kubepki.dev/kubepki/cmd/kubepki")
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build kubepki: %v\n%s", err, out)
	}
	return bin
}

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
	out, err := testenv.Kubectl(t, bins, kubeconfig, "auth", "whoami", "-o", "json")
	if err != nil {
		t.Fatalf("kubectl auth whoami: %v", err)
	}
	var review struct {
		Status struct {
			UserInfo struct {
				Username string   `json:"username"`
				Groups   []string `json:"groups"`
			} `json:"userInfo"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(out), &review); err != nil {
		t.Fatalf("parse whoami: %v\n%s", err, out)
	}
	return review.Status.UserInfo.Username, review.Status.UserInfo.Groups
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
