package cli_test

import (
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"kubepki.dev/kubepki/internal/kubeconfig"
	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/pkitest"
	"kubepki.dev/kubepki/internal/store"
	"kubepki.dev/kubepki/internal/testenv"
)

// TestScriptsAPIServer runs testdata/script-apiserver/*.txtar, the scripts
// of commands that talk to a cluster, against a real etcd and kube-apiserver
// on 127.0.0.1 (no kube-controller-manager: nothing approves or signs but
// the scripts). $KUBECONFIG is an admin's (system:masters). The scripts
// share that one control plane: csr-list.txtar expects to start on an
// empty cluster, so a script added here that creates objects needs a
// control plane of its own.
func TestScriptsAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and kube-apiserver; the -short part of these commands is in testdata/script")
	}
	admin := startAPIServer(t, testenv.Build(t))
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script-apiserver",
		Setup: func(env *testscript.Env) error {
			env.Setenv("KUBECONFIG", admin)
			return auditSetup(env)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"contains": tsContains,
			"exitcode": tsExitcode,
		},
	})
}

// startAPIServer starts etcd and kube-apiserver with a PKI made here (one
// CA for all) and returns an admin kubeconfig. Both stop with the test.
func startAPIServer(t testing.TB, bins testenv.Binaries) string {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	ca := pkitest.CA(t, "kubernetes-ca", 24*time.Hour, now)
	caFile, _ := pkitest.WriteCA(t, dir, "ca", ca)
	issue := func(stem, cn string, o []string, usages []pki.Usage, dns []string, ips []net.IP) (string, string, []byte, []byte) {
		key := pkitest.Key(t, pki.ECDSAP256)
		cert := pkitest.Issue(t, ca, key.Public(), pki.Profile{Subject: pki.Subject{CommonName: cn, Organization: o}, Usages: usages,
			DNSNames: dns, IPs: ips, Validity: 24 * time.Hour}, now)
		certPEM, keyPEM := pki.EncodeCert(cert), pkitest.EncodeKey(t, key)
		certFile, keyFile := filepath.Join(dir, stem+".crt"), filepath.Join(dir, stem+".key")
		pkitest.WriteFile(t, certFile, certPEM, store.CertMode)
		pkitest.WriteFile(t, keyFile, keyPEM, store.KeyMode)
		return certFile, keyFile, certPEM, keyPEM
	}
	client, server := []pki.Usage{pki.UsageClientAuth}, []pki.Usage{pki.UsageServerAuth}
	loopback := []net.IP{net.IPv4(127, 0, 0, 1)}
	etcdCert, etcdKey, _, _ := issue("etcd", "etcd", nil, append(server, client...), []string{"localhost"}, loopback)
	etcdClient, etcdClientKey, _, _ := issue("apiserver-etcd-client", "kube-apiserver-etcd-client", nil, client, nil, nil)
	apiCert, apiKey, _, _ := issue("apiserver", "kube-apiserver", nil, server,
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		append(loopback, net.IPv4(10, 96, 0, 1)))
	adminCert, adminKey, adminCertPEM, adminKeyPEM := issue("admin", "admin", []string{"system:masters"}, client, nil, nil)
	saKey := pkitest.Key(t, pki.ECDSAP256)
	saPub, err := pki.EncodePublicKey(saKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	saKeyFile, saPubFile := filepath.Join(dir, "sa.key"), filepath.Join(dir, "sa.pub")
	pkitest.WriteFile(t, saKeyFile, pkitest.EncodeKey(t, saKey), store.KeyMode)
	pkitest.WriteFile(t, saPubFile, saPub, store.CertMode)

	endpoint, _ := testenv.StartEtcd(t, bins, testenv.EtcdConfig{
		CertFile: etcdCert, KeyFile: etcdKey, TrustedCAFile: caFile,
		ClientCertFile: etcdClient, ClientKeyFile: etcdClientKey,
	})
	port := testenv.FreePort(t)
	testenv.StartAPIServer(t, bins, testenv.APIServerConfig{
		Port: port, EtcdEndpoint: endpoint,
		EtcdCAFile: caFile, EtcdCertFile: etcdClient, EtcdKeyFile: etcdClientKey,
		ClientCAFile: caFile, TLSCertFile: apiCert, TLSKeyFile: apiKey,
		ServiceAccountKeyFile: saPubFile, ServiceAccountSigningKeyFile: saKeyFile,
	}, testenv.ClientTLS(t, caFile, adminCert, adminKey))

	path := filepath.Join(dir, "admin.kubeconfig")
	cfg := kubeconfig.New(kubeconfig.Params{Cluster: "test", User: "admin", Context: "admin@test",
		Server: "https://127.0.0.1:" + strconv.Itoa(port), CA: pki.EncodeCert(ca.Cert), Cert: adminCertPEM, Key: adminKeyPEM})
	if err := kubeconfig.Create(path, cfg); err != nil {
		t.Fatal(err)
	}
	return path
}
