package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestControlPlane builds the real binaries, starts etcd and kube-apiserver
// with a throwaway PKI and checks that kubectl authenticates as the admin
// client certificate, across an apiserver restart.
func TestControlPlane(t *testing.T) {
	bins := Build(t)
	dir := t.TempDir()
	pki := newTestPKI(t, dir)

	endpoint, etcd := StartEtcd(t, bins, EtcdConfig{
		CertFile:       pki.etcdServerCert,
		KeyFile:        pki.etcdServerKey,
		TrustedCAFile:  pki.caCert,
		ClientCertFile: pki.etcdClientCert,
		ClientKeyFile:  pki.etcdClientKey,
	})

	cfg := APIServerConfig{
		Port:                         FreePort(t),
		EtcdEndpoint:                 endpoint,
		EtcdCAFile:                   pki.caCert,
		EtcdCertFile:                 pki.etcdClientCert,
		EtcdKeyFile:                  pki.etcdClientKey,
		ClientCAFile:                 pki.caCert,
		TLSCertFile:                  pki.apiserverCert,
		TLSKeyFile:                   pki.apiserverKey,
		ServiceAccountKeyFile:        pki.saPub,
		ServiceAccountSigningKeyFile: pki.saKey,
	}
	readyTLS := ClientTLS(t, pki.caCert, pki.adminCert, pki.adminKey)
	apiserver := StartAPIServer(t, bins, cfg, readyTLS)

	kubeconfig := filepath.Join(dir, "admin.conf")
	writeKubeconfig(t, kubeconfig, fmt.Sprintf("https://127.0.0.1:%d", cfg.Port), pki.caCert, pki.adminCert, pki.adminKey)

	checkWhoami(t, bins, kubeconfig)
	if _, err := Kubectl(t, bins, kubeconfig, "create", "namespace", "testenv"); err != nil {
		t.Fatal(err)
	}

	// Restart the apiserver on the same port: Stop must release it, and the
	// namespace must survive in etcd.
	apiserver.Stop()
	apiserver.Stop() // idempotent
	assertGone(t, apiserver)
	apiserver = StartAPIServer(t, bins, cfg, readyTLS)
	checkWhoami(t, bins, kubeconfig)
	// The same through RestartAPIServer.
	old := apiserver
	apiserver = RestartAPIServer(t, apiserver, readyTLS, func() { assertGone(t, old) })
	checkWhoami(t, bins, kubeconfig)
	if out, err := Kubectl(t, bins, kubeconfig, "get", "namespace", "testenv", "-o", "name"); err != nil {
		t.Fatal(err)
	} else if strings.TrimSpace(out) != "namespace/testenv" {
		t.Fatalf("kubectl get namespace after restart = %q, want namespace/testenv", out)
	}

	apiserver.Stop()
	etcd.Stop()
	assertGone(t, apiserver)
	assertGone(t, etcd)
}

// checkWhoami asserts that kubeconfig authenticates as admin/system:masters.
func checkWhoami(t *testing.T, bins Binaries, kubeconfig string) {
	t.Helper()
	user, groups, err := Whoami(t, bins, kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if user != "admin" || !slices.Contains(groups, "system:masters") {
		t.Fatalf("kubectl auth whoami = user %q groups %q, want admin in system:masters", user, groups)
	}
}

// assertGone asserts that p's process group no longer exists.
func assertGone(t *testing.T, p *Process) {
	t.Helper()
	if exited, _ := p.exited(); !exited {
		t.Fatalf("%s: still running after Stop", p.name)
	}
	if err := syscall.Kill(-p.cmd.Process.Pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("%s: process group %d still exists after Stop (kill 0: %v)", p.name, p.cmd.Process.Pid, err)
	}
}

// TestProcessKillRestart crashes, signals and restarts a small process
// group: a shell that ignores SIGTERM, with a child.
func TestProcessKillRestart(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	p := Start(t, "stubborn", sh, "-c", `trap "" TERM; sleep 300 & wait; echo woke`)
	p.Kill()
	// The orphaned sleep is reaped by init a moment after the shell.
	for i := 0; syscall.Kill(-p.Pid(), 0) == nil; i++ {
		if i == 100 {
			t.Fatalf("process group %d still exists after Kill", p.Pid())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var ee *exec.ExitError
	if err := p.Err(); !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("after Kill: exit %v, want killed by SIGKILL", err)
	}
	p.Stop() // nothing left to stop

	q := p.Restart(t)
	if q.Pid() == p.Pid() {
		t.Fatal("Restart reused the process")
	}
	select {
	case <-q.Done():
		t.Fatalf("restarted process exited: %v", q.Err())
	case <-time.After(200 * time.Millisecond):
	}
	if err := q.Signal(syscall.SIGUSR1); err != nil { // the shell's default: exit
		t.Fatal(err)
	}
	select {
	case <-q.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("SIGUSR1 did not end the process")
	}
	if err := q.Signal(syscall.SIGUSR1); err != nil {
		t.Errorf("Signal after exit: %v", err)
	}
}

// TestAPIServerConfigArgs checks the generated flags without binaries.
func TestAPIServerConfigArgs(t *testing.T) {
	args := APIServerConfig{
		Port:         6443,
		EtcdEndpoint: "https://127.0.0.1:2379",
		TLSCertFile:  "apiserver.crt",
		ExtraArgs:    []string{"--v=2"},
	}.Args()
	for _, want := range []string{
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=6443",
		"--etcd-servers=https://127.0.0.1:2379",
		"--tls-cert-file=apiserver.crt",
		"--service-cluster-ip-range=" + DefaultServiceCIDR,
		"--endpoint-reconciler-type=none",
	} {
		if !slices.Contains(args, want) {
			t.Errorf("Args() lacks %s: %q", want, args)
		}
	}
	if args[len(args)-1] != "--v=2" {
		t.Errorf("Args() does not end with ExtraArgs: %q", args)
	}
	for _, a := range args {
		if strings.HasSuffix(a, "=") || strings.HasPrefix(a, "--kubelet-client") || strings.HasPrefix(a, "--requestheader") {
			t.Errorf("Args() has unset optional flag %s", a)
		}
	}
}

// testPKI holds the file paths of a throwaway PKI.
type testPKI struct {
	caCert                        string
	etcdServerCert, etcdServerKey string
	etcdClientCert, etcdClientKey string
	apiserverCert, apiserverKey   string
	adminCert, adminKey           string
	saKey, saPub                  string
}

// newTestPKI writes a CA and the leaf certificates the test needs into dir,
// using crypto/x509 directly.
func newTestPKI(t *testing.T, dir string) testPKI {
	t.Helper()
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "testenv-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatalf("create CA: %v", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatalf("parse CA: %v", err)
	}
	p := testPKI{caCert: filepath.Join(dir, "ca.crt")}
	writePEM(t, p.caCert, "CERTIFICATE", caDER)

	serial := int64(1)
	leaf := func(name string, subject pkix.Name, usage []x509.ExtKeyUsage, dns []string, ips []net.IP) (certFile, keyFile string) {
		t.Helper()
		serial++
		key := newKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      subject,
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  usage,
			DNSNames:     dns,
			IPAddresses:  ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
		if err != nil {
			t.Fatalf("create %s certificate: %v", name, err)
		}
		certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
		writePEM(t, certFile, "CERTIFICATE", der)
		writeKey(t, keyFile, key)
		return certFile, keyFile
	}
	server := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	client := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	localhost := []net.IP{net.IPv4(127, 0, 0, 1)}

	p.etcdServerCert, p.etcdServerKey = leaf("etcd-server", pkix.Name{CommonName: "etcd"},
		append(server, client...), []string{"localhost"}, localhost)
	p.etcdClientCert, p.etcdClientKey = leaf("apiserver-etcd-client", pkix.Name{CommonName: "kube-apiserver-etcd-client"},
		client, nil, nil)
	p.apiserverCert, p.apiserverKey = leaf("apiserver", pkix.Name{CommonName: "kube-apiserver"}, server,
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		append(localhost, net.IPv4(10, 96, 0, 1)))
	p.adminCert, p.adminKey = leaf("admin", pkix.Name{CommonName: "admin", Organization: []string{"system:masters"}},
		client, nil, nil)

	saKey := newKey(t)
	p.saKey, p.saPub = filepath.Join(dir, "sa.key"), filepath.Join(dir, "sa.pub")
	writeKey(t, p.saKey, saKey)
	pub, err := x509.MarshalPKIXPublicKey(saKey.Public())
	if err != nil {
		t.Fatalf("marshal service account public key: %v", err)
	}
	writePEM(t, p.saPub, "PUBLIC KEY", pub)
	return p
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	return key
}

func writeKey(t *testing.T, path string, key *ecdsa.PrivateKey) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("marshal key: %v", err)
	}
	writePEM(t, path, "PRIVATE KEY", der)
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}

// writeKubeconfig writes a kubeconfig referencing the given files. It is
// written by hand: the root module's go.sum does not cover client-go's
// clientcmd dependencies.
func writeKubeconfig(t *testing.T, path, server, caFile, certFile, keyFile string) {
	t.Helper()
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) } // JSON strings are valid YAML
	conf := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: testenv
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: admin
  user:
    client-certificate: %s
    client-key: %s
contexts:
- name: admin@testenv
  context:
    cluster: testenv
    user: admin
current-context: admin@testenv
`, q(server), q(caFile), q(certFile), q(keyFile))
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatalf("write kubeconfig: %v", err)
	}
}
