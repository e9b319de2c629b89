package e2e

import (
	"bufio"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"kubepki.dev/kubepki/internal/csr"
	"kubepki.dev/kubepki/internal/kubeconfig"
	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/testenv"
)

// certAPI is a control plane for the Certificates API tests: etcd and
// kube-apiserver (no kube-controller-manager, so nothing else signs or
// approves), a cluster CA made with internal/pki, and the kubepki binary.
type certAPI struct {
	t       testing.TB
	bins    testenv.Binaries
	kubepki string
	dir     string
	server  string
	ca      *pki.CA
	caCert  string // cluster CA certificate file
	caKey   string
	admin   string // kubeconfig of admin (system:masters)
	adminCS kubernetes.Interface
	// apiserver and its readiness probe's TLS, to restart it.
	apiserver *testenv.Process
	readyTLS  *tls.Config
}

// certAPIOption changes the API server's flags.
type certAPIOption func(args []string) []string

// withoutAdmissionGuards turns off the two admission plugins that refuse
// some forged CSRs before any approver sees them: NodeRestriction (a node's
// CSR for a kubelet signer must carry the node's own CN; it does not look
// at SANs) and CertificateSubjectRestriction (no system:masters with
// kubernetes.io/kube-apiserver-client). Clusters run without them, and the
// approver must stand on its own, so the approver's tests let the forged
// requests through to it.
func withoutAdmissionGuards(args []string) []string {
	args = slices.DeleteFunc(args, func(a string) bool { return strings.HasPrefix(a, "--enable-admission-plugins=") })
	return append(args, "--disable-admission-plugins=CertificateSubjectRestriction")
}

// newCertAPI starts etcd and kube-apiserver on 127.0.0.1.
func newCertAPI(t testing.TB, opts ...certAPIOption) *certAPI {
	t.Helper()
	e := &certAPI{t: t, bins: testenv.Build(t), kubepki: testenv.Kubepki(t), dir: t.TempDir()}
	e.ca, e.caCert, e.caKey = e.newCA("kubernetes-ca")
	client := []pki.Usage{pki.UsageClientAuth}
	server := []pki.Usage{pki.UsageServerAuth}
	localhost := []net.IP{net.IPv4(127, 0, 0, 1)}
	etcdCert, etcdKey := e.issue("etcd", pki.Subject{CommonName: "etcd"}, append(server, client...), []string{"localhost"}, localhost)
	etcdClient, etcdClientKey := e.issue("apiserver-etcd-client", pki.Subject{CommonName: "kube-apiserver-etcd-client"}, client, nil, nil)
	apiCert, apiKey := e.issue("apiserver", pki.Subject{CommonName: "kube-apiserver"}, server,
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		append(localhost, net.IPv4(10, 96, 0, 1)))
	adminCert, adminKey := e.issue("admin", pki.Subject{CommonName: "admin", Organization: []string{"system:masters"}}, client, nil, nil)
	saKey, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	saPub, err := pki.EncodePublicKey(saKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	saKeyFile, saPubFile := e.path("sa.key"), e.path("sa.pub")
	e.writeKey(saKeyFile, saKey)
	e.write(saPubFile, saPub)

	endpoint, _ := testenv.StartEtcd(t, e.bins, testenv.EtcdConfig{
		CertFile: etcdCert, KeyFile: etcdKey, TrustedCAFile: e.caCert,
		ClientCertFile: etcdClient, ClientKeyFile: etcdClientKey,
	})
	port := testenv.FreePort(t)
	args := testenv.APIServerConfig{
		Port: port, EtcdEndpoint: endpoint,
		EtcdCAFile: e.caCert, EtcdCertFile: etcdClient, EtcdKeyFile: etcdClientKey,
		ClientCAFile: e.caCert, TLSCertFile: apiCert, TLSKeyFile: apiKey,
		ServiceAccountKeyFile: saPubFile, ServiceAccountSigningKeyFile: saKeyFile,
	}.Args()
	for _, o := range opts {
		args = o(args)
	}
	e.apiserver = testenv.Start(t, "kube-apiserver", e.bins.KubeAPIServer, args...)
	e.server = "https://127.0.0.1:" + strconv.Itoa(port)
	e.readyTLS = testenv.ClientTLS(t, e.caCert, adminCert, adminKey)
	testenv.WaitReady(t, e.server+"/readyz", e.readyTLS, e.apiserver)
	e.admin, e.adminCS = e.userKubeconfig("admin", "system:masters")
	return e
}

func (e *certAPI) path(name string) string { return filepath.Join(e.dir, name) }

func (e *certAPI) write(path string, data []byte) {
	e.t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		e.t.Fatal(err)
	}
}

func (e *certAPI) writeKey(path string, key crypto.Signer) {
	e.t.Helper()
	data, err := pki.EncodeKey(key)
	if err != nil {
		e.t.Fatal(err)
	}
	e.write(path, data)
}

// newCA makes a CA and writes NAME.crt and NAME.key.
func (e *certAPI) newCA(name string) (*pki.CA, string, string) {
	e.t.Helper()
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		e.t.Fatal(err)
	}
	ca, err := pki.NewCA(key, pki.Profile{Subject: pki.Subject{CommonName: name}, Validity: 10 * 365 * 24 * time.Hour}, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	certFile, keyFile := e.path(name+".crt"), e.path(name+".key")
	e.write(certFile, pki.EncodeCert(ca.Cert))
	e.writeKey(keyFile, key)
	return ca, certFile, keyFile
}

// issue makes a certificate from the cluster CA and writes STEM.crt/.key.
func (e *certAPI) issue(stem string, subj pki.Subject, usages []pki.Usage, dns []string, ips []net.IP) (string, string) {
	e.t.Helper()
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		e.t.Fatal(err)
	}
	cert, err := e.ca.Issue(key.Public(), pki.Profile{Subject: subj, Usages: usages, DNSNames: dns, IPs: ips, Validity: 24 * time.Hour}, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	certFile, keyFile := e.path(stem+".crt"), e.path(stem+".key")
	e.write(certFile, pki.EncodeCert(cert))
	e.writeKey(keyFile, key)
	return certFile, keyFile
}

// userKubeconfig issues a client certificate for user in groups from the
// cluster CA and returns a kubeconfig for it and a client.
// developers lets group developers create CSRs (the default RBAC lets
// nobody but nodes) and writes an approval policy that approves a
// developer's request for exactly its own name in that group. It returns
// jane's client and the policy file.
func (e *certAPI) developers() (kubernetes.Interface, string) {
	_, jane := e.userKubeconfig("jane", "developers")
	e.kubectl("create", "clusterrole", "csr-requester", "--verb=create,get,list,watch", "--resource=certificatesigningrequests.certificates.k8s.io")
	e.kubectl("create", "clusterrolebinding", "developers-csr", "--clusterrole=csr-requester", "--group=developers")
	policy := e.path("policy.yaml")
	e.write(policy, []byte(`apiVersion: kubepki.dev/v1alpha1
kind: ApprovalPolicy
rules:
- name: developers-self-service
  requesterGroups: [developers]
  commonNames: ["${requester}"]
  groups: [developers]
`))
	return jane, policy
}

func (e *certAPI) userKubeconfig(user string, groups ...string) (string, kubernetes.Interface) {
	e.t.Helper()
	stem := strings.ReplaceAll(user, ":", "-")
	certFile, keyFile := e.issue(stem, pki.Subject{CommonName: user, Organization: groups}, []pki.Usage{pki.UsageClientAuth}, nil, nil)
	certPEM, _ := os.ReadFile(certFile)
	keyPEM, _ := os.ReadFile(keyFile)
	path := e.path(stem + ".kubeconfig")
	cfg := kubeconfig.New(kubeconfig.Params{Cluster: "test", User: user, Context: user + "@test", Server: e.server,
		CA: pki.EncodeCert(e.ca.Cert), Cert: certPEM, Key: keyPEM})
	if err := kubeconfig.Create(path, cfg); err != nil {
		e.t.Fatal(err)
	}
	return path, e.clientFor(path)
}

func (e *certAPI) clientFor(kubeconfigPath string) kubernetes.Interface {
	e.t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfigPath)
	if err != nil {
		e.t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 500, 1000
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return cs
}

// kubectl runs kubectl as admin and fails the test on error.
func (e *certAPI) kubectl(args ...string) string {
	e.t.Helper()
	out, err := testenv.Kubectl(e.t, e.bins, e.admin, args...)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// deployDir is the repository's deploy/ directory.
func deployDir(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "deploy"))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// controllerIdentity applies deploy/'s namespace and RBAC exactly as they
// are, and returns a kubeconfig holding a token of the controller's
// ServiceAccount (kubectl create token): the controller runs with nothing
// but what deploy/ grants.
func (e *certAPI) controllerIdentity() string {
	e.t.Helper()
	e.kubectl("apply", "-f", filepath.Join(deployDir(e.t), "namespace.yaml"), "-f", filepath.Join(deployDir(e.t), "rbac.yaml"))
	token := strings.TrimSpace(e.kubectl("create", "token", "kubepki-controller", "-n", "kubepki-system", "--duration=2h"))
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["test"] = &clientcmdapi.Cluster{Server: e.server, CertificateAuthorityData: pki.EncodeCert(e.ca.Cert)}
	cfg.AuthInfos["kubepki-controller"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["sa"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "kubepki-controller", Namespace: "kubepki-system"}
	cfg.CurrentContext = "sa"
	path := e.path("controller-sa.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		e.t.Fatal(err)
	}
	out, err := testenv.Kubectl(e.t, e.bins, path, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
	if err != nil || out != "system:serviceaccount:kubepki-system:kubepki-controller" {
		e.t.Fatalf("controller kubeconfig authenticates as %q (%v)", out, err)
	}
	return path
}

// controllerProc is a running `kubepki controller`.
type controllerProc struct {
	*testenv.Process
	port int
}

// startController runs `kubepki controller` with args and waits for /readyz.
func (e *certAPI) startController(name string, args ...string) *controllerProc {
	e.t.Helper()
	port := testenv.FreePort(e.t)
	full := append([]string{"controller", "--http-address=127.0.0.1:" + strconv.Itoa(port), "--log-level=debug"}, args...)
	p := testenv.Start(e.t, name, e.kubepki, full...)
	testenv.WaitReady(e.t, "http://127.0.0.1:"+strconv.Itoa(port)+"/readyz", nil, p)
	return &controllerProc{Process: p, port: port}
}

// metric sums the samples of a metric on a controller's /metrics whose
// labels contain every label given (`signer="..."`).
func (c *controllerProc) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(c.port) + "/metrics")
	if err != nil {
		t.Fatalf("scrape metrics: %v", err)
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		series, value, ok := strings.Cut(line, " ")
		if !ok || (series != name && !strings.HasPrefix(series, name+"{")) {
			continue
		}
		if !all(labels, func(l string) bool { return strings.Contains(series, l) }) {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

func all[T any](s []T, f func(T) bool) bool {
	for _, x := range s {
		if !f(x) {
			return false
		}
	}
	return true
}

// log returns the controller's log so far.
func (c *controllerProc) log(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(c.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// checkLog fails the test if the log shows an RBAC refusal (deploy/ lacks a
// verb) or any key material.
func (c *controllerProc) checkLog(t *testing.T) {
	t.Helper()
	log := c.log(t)
	for _, bad := range []string{"forbidden", "PRIVATE KEY", "BEGIN CERTIFICATE", "CERTIFICATE REQUEST"} {
		if strings.Contains(log, bad) {
			t.Errorf("controller log contains %q", bad)
		}
	}
}

// requestOpts shapes a test certificate request.
type requestOpts struct {
	cn     string
	o      []string
	dns    []string
	ips    []string
	isCA   bool
	usages []certv1.KeyUsage
	exp    time.Duration
}

// submit creates a CSR named name for signer as the client's user; the
// request is made with a fresh key.
func (e *certAPI) submit(cs kubernetes.Interface, name, signer string, o requestOpts) (*certv1.CertificateSigningRequest, crypto.Signer) {
	e.t.Helper()
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		e.t.Fatal(err)
	}
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: o.cn, Organization: o.o}, DNSNames: o.dns}
	for _, ip := range o.ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	if o.isCA {
		// What `openssl req -addext basicConstraints=critical,CA:TRUE` adds.
		v, _ := asn1.Marshal(struct {
			IsCA bool `asn1:"optional"`
		}{true})
		tmpl.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Critical: true, Value: v}}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		e.t.Fatal(err)
	}
	usages := o.usages
	if usages == nil {
		usages = csr.DefaultUsages(signer, key.Public())
	}
	obj := csr.NewObject(csr.Request{Name: name, SignerName: signer, PEM: pki.EncodeCSR(der), Usages: usages, Expiration: o.exp})
	created, err := cs.CertificatesV1().CertificateSigningRequests().Create(context.Background(), obj, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatalf("create CSR %s: %v", name, err)
	}
	return created, key
}

// waitCSR polls a CSR until done says so.
func (e *certAPI) waitCSR(name string, timeout time.Duration, what string, done func(*certv1.CertificateSigningRequest) bool) *certv1.CertificateSigningRequest {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, err := e.adminCS.CertificatesV1().CertificateSigningRequests().Get(context.Background(), name, metav1.GetOptions{})
		if err == nil && done(c) {
			return c
		}
		if time.Now().After(deadline) {
			state := "?"
			if c != nil {
				state = fmt.Sprintf("%s %+v", csr.State(c), c.Status.Conditions)
			}
			e.t.Fatalf("CSR %s: not %s after %v (err %v, state %s)", name, what, timeout, err, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitIssued waits for a certificate and returns it.
func (e *certAPI) waitIssued(name string) (*certv1.CertificateSigningRequest, *x509.Certificate) {
	e.t.Helper()
	c := e.waitCSR(name, 30*time.Second, "issued", func(c *certv1.CertificateSigningRequest) bool {
		return csr.Issued(c) || csr.Denied(c) || csr.Failed(c)
	})
	if !csr.Issued(c) {
		e.t.Fatalf("CSR %s: %s, want issued: %+v", name, csr.State(c), c.Status.Conditions)
	}
	cert, err := pki.ParseCert(c.Status.Certificate)
	if err != nil {
		e.t.Fatalf("CSR %s: status.certificate: %v", name, err)
	}
	return c, cert
}

// waitDecided waits for Approved, Denied or Failed.
func (e *certAPI) waitDecided(name string) *certv1.CertificateSigningRequest {
	e.t.Helper()
	return e.waitCSR(name, 30*time.Second, "decided", func(c *certv1.CertificateSigningRequest) bool {
		return csr.Decided(c) || csr.Failed(c)
	})
}

// approve approves a CSR as admin with kubectl certificate approve.
func (e *certAPI) approve(name string) {
	e.t.Helper()
	e.kubectl("certificate", "approve", name)
}

// verifyChain checks that cert chains to ca with the usage.
func verifyChain(t testing.TB, cert *x509.Certificate, ca *x509.Certificate, usage x509.ExtKeyUsage) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		t.Errorf("certificate %s does not verify against %s: %v", cert.Subject, ca.Subject, err)
	}
}

// TestControllerApproverForgedRequests runs the approver and the signers
// as the ServiceAccount of deploy/ against a real API server, with Node
// objects and requests submitted by the nodes' own identities, and checks
// that every forged request is refused for the expected reason while the
// honest ones are issued.
func TestControllerApproverForgedRequests(t *testing.T) {
	e := newCertAPI(t, withoutAdmissionGuards)
	sa := e.controllerIdentity()
	// deploy/ grants "sign" on the signers its Deployment runs, and no
	// other; this controller also runs a custom signer, which the operator
	// grants as rbac.yaml says.
	etcdSigner := e.path("etcd-client-signer.yaml")
	e.write(etcdSigner, []byte(`apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: kubepki-etcd-client-signer
rules:
- apiGroups: ["certificates.k8s.io"]
  resources: ["signers"]
  resourceNames: ["kubepki.dev/etcd-client"]
  verbs: ["sign"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: kubepki-etcd-client-signer
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: kubepki-etcd-client-signer
subjects:
- kind: ServiceAccount
  name: kubepki-controller
  namespace: kubepki-system
`))
	e.kubectl("apply", "-f", etcdSigner)

	// Two nodes, registered by admin; addresses set through the status
	// subresource, as a kubelet does. 192.0.2.0/24 is documentation
	// space: these addresses are data, never dialled.
	for _, n := range []struct{ name, ip string }{{"node-a", "192.0.2.10"}, {"node-b", "192.0.2.20"}} {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.name}}
		if _, err := e.adminCS.CoreV1().Nodes().Create(context.Background(), node, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		patch := fmt.Sprintf(`{"status":{"addresses":[{"type":"InternalIP","address":%q},{"type":"Hostname","address":%q},{"type":"InternalDNS","address":"%s.cluster.internal"}]}}`, n.ip, n.name, n.name)
		e.kubectl("patch", "node", n.name, "--subresource=status", "--type=merge", "-p", patch)
	}
	_, nodeA := e.userKubeconfig("system:node:node-a", "system:nodes")
	jane, policy := e.developers()
	etcdCA, etcdCert, etcdKey := e.newCA("etcd-ca")
	signerArgs := []string{
		"--kubeconfig=" + sa,
		"--signer=kubernetes.io/kube-apiserver-client=" + e.caCert + "," + e.caKey,
		"--signer=kubernetes.io/kube-apiserver-client-kubelet=" + e.caCert + "," + e.caKey,
		"--signer=kubernetes.io/kubelet-serving=" + e.caCert + "," + e.caKey,
		"--signer=kubepki.dev/etcd-client=" + etcdCert + "," + etcdKey,
		"--max-duration=24h",
		"--approve", "--approve-policy=" + policy,
		"--kubelet-serving-ip-ranges=192.0.2.0/24", "--kubelet-serving-dns-suffixes=cluster.internal",
		"--lease-duration=4s", "--renew-deadline=3s", "--retry-period=500ms",
	}
	serving := []certv1.KeyUsage{"digital signature", "server auth"}

	// --dry-run first: the decision is logged, nothing is written.
	dry := e.startController("kubepki-controller-dry-run", append(signerArgs, "--dry-run")...)
	e.submit(nodeA, "dry-run-other-node", certv1.KubeletServingSignerName, requestOpts{cn: "system:node:node-b", o: []string{"system:nodes"}, dns: []string{"node-b"}, usages: serving})
	waitFor(t, 30*time.Second, "dry-run decision in the log", func() error {
		if log := dry.log(t); !strings.Contains(log, `"msg":"dry run: would deny"`) || !strings.Contains(log, "dry-run-other-node") {
			return errString("not yet")
		}
		return nil
	})
	if c, _ := e.adminCS.CertificatesV1().CertificateSigningRequests().Get(context.Background(), "dry-run-other-node", metav1.GetOptions{}); len(c.Status.Conditions) != 0 {
		t.Errorf("--dry-run wrote conditions: %+v", c.Status.Conditions)
	}
	dry.checkLog(t)
	dry.Stop() // releases the lease: the real controller leads at once

	ctl := e.startController("kubepki-controller", signerArgs...)

	// Forged kubelet-serving requests, each with the reason it must be
	// denied for.
	forged := []struct {
		name   string
		as     kubernetes.Interface
		opts   requestOpts
		reason string
	}{
		{"serving-another-node", nodeA, requestOpts{cn: "system:node:node-b", o: []string{"system:nodes"}, dns: []string{"node-b"}, ips: []string{"192.0.2.20"}, usages: serving},
			`CN "system:node:node-b" is not the requester "system:node:node-a"`},
		{"serving-foreign-ip", nodeA, requestOpts{cn: "system:node:node-a", o: []string{"system:nodes"}, dns: []string{"node-a"}, ips: []string{"192.0.2.10", "192.0.2.99"}, usages: serving},
			"IP SAN 192.0.2.99 is not an address of node node-a"},
		{"serving-foreign-dns", nodeA, requestOpts{cn: "system:node:node-a", o: []string{"system:nodes"}, dns: []string{"node-a", "kubernetes.default.svc"}, usages: serving},
			"DNS SAN kubernetes.default.svc is a name of the API server or a Service"},
		{"serving-other-requester", jane, requestOpts{cn: "system:node:node-a", o: []string{"system:nodes"}, dns: []string{"node-a"}, usages: serving},
			`requester "jane" is not a node`},
		{"serving-client-auth", nodeA, requestOpts{cn: "system:node:node-a", o: []string{"system:nodes"}, dns: []string{"node-a"}, usages: append(slices.Clone(serving), "client auth")},
			`usage "client auth" is not allowed in a kubelet serving certificate`},
		{"serving-ca", nodeA, requestOpts{cn: "system:node:node-a", o: []string{"system:nodes"}, dns: []string{"node-a"}, isCA: true, usages: serving},
			"CA:TRUE"},
		// Ten years, judged by the approver: refused, because the
		// kubelet-serving chain's duration-within-limit policy holds
		// requests to --max-duration. (The same ten years approved by a
		// person is capped by the signer instead: admin-ten-years below.)
		{"serving-ten-years", nodeA, requestOpts{cn: "system:node:node-a", o: []string{"system:nodes"}, dns: []string{"node-a"}, usages: serving, exp: 10 * 365 * 24 * time.Hour},
			"expirationSeconds asks for 87600h0m0s, more than the 24h0m0s limit"},
	}
	for _, f := range forged {
		e.submit(f.as, f.name, certv1.KubeletServingSignerName, f.opts)
	}
	// Forged client requests from a developer the policy covers.
	e.submit(jane, "client-masters", certv1.KubeAPIServerClientSignerName, requestOpts{cn: "jane", o: []string{"developers", "system:masters"}})
	e.submit(jane, "client-someone-else", certv1.KubeAPIServerClientSignerName, requestOpts{cn: "admin", o: []string{"developers"}})
	e.submit(jane, "client-ca", certv1.KubeAPIServerClientSignerName, requestOpts{cn: "jane", o: []string{"developers"}, isCA: true})
	// Honest requests.
	e.submit(nodeA, "serving-honest", certv1.KubeletServingSignerName, requestOpts{cn: "system:node:node-a", o: []string{"system:nodes"},
		dns: []string{"node-a", "node-a.cluster.internal"}, ips: []string{"192.0.2.10"}, usages: serving})
	_, renewKey := e.submit(nodeA, "kubelet-client-renewal", certv1.KubeAPIServerClientKubeletSignerName, requestOpts{cn: "system:node:node-a", o: []string{"system:nodes"}})
	_, janeKey := e.submit(jane, "client-jane", certv1.KubeAPIServerClientSignerName, requestOpts{cn: "jane", o: []string{"developers"}})
	// Not the approver's to decide: a node asking for another node's
	// client certificate (not a self renewal) is left for a person.
	e.submit(nodeA, "kubelet-client-other-node", certv1.KubeAPIServerClientKubeletSignerName, requestOpts{cn: "system:node:node-b", o: []string{"system:nodes"}})

	for _, f := range append(forged, []struct {
		name   string
		as     kubernetes.Interface
		opts   requestOpts
		reason string
	}{
		{name: "client-masters", reason: `group system:masters is never auto-approved: no rule covering requester "jane" lists it explicitly`},
		{name: "client-someone-else", reason: `CN "admin" with groups [developers] is not allowed for requester "jane"`},
		{name: "client-ca", reason: "CA:TRUE"},
		// Left pending by the dry run, decided once the real one leads.
		{name: "dry-run-other-node", reason: `CN "system:node:node-b" is not the requester`},
	}...) {
		c := e.waitDecided(f.name)
		d := csr.Condition(c, certv1.CertificateDenied)
		if d == nil || d.Reason != "AutoDenied" || !strings.Contains(d.Message, f.reason) {
			t.Errorf("%s: conditions %+v, want Denied with %q", f.name, c.Status.Conditions, f.reason)
		}
		if csr.Issued(c) {
			t.Errorf("%s: a denied request got a certificate", f.name)
		}
	}

	_, cert := e.waitIssued("serving-honest")
	verifyChain(t, cert, e.ca.Cert, x509.ExtKeyUsageServerAuth)
	if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) || cert.IsCA ||
		!slices.Equal(cert.DNSNames, []string{"node-a", "node-a.cluster.internal"}) || len(cert.IPAddresses) != 1 {
		t.Errorf("serving certificate: EKU %v CA %v DNS %v IP %v", cert.ExtKeyUsage, cert.IsCA, cert.DNSNames, cert.IPAddresses)
	}
	// The renewed kubelet client certificate and jane's work as identities.
	for _, id := range []struct {
		csr, user, group string
		key              crypto.Signer
	}{{"kubelet-client-renewal", "system:node:node-a", "system:nodes", renewKey}, {"client-jane", "jane", "developers", janeKey}} {
		c, _ := e.waitIssued(id.csr)
		if a := csr.Condition(c, certv1.CertificateApproved); a == nil || a.Reason != "AutoApproved" {
			t.Errorf("%s: not auto-approved: %+v", id.csr, c.Status.Conditions)
		}
		keyPEM, _ := pki.EncodeKey(id.key)
		path := e.path(id.csr + ".kubeconfig")
		if err := kubeconfig.Create(path, kubeconfig.New(kubeconfig.Params{Cluster: "test", User: id.user, Context: "c", Server: e.server,
			CA: pki.EncodeCert(e.ca.Cert), Cert: c.Status.Certificate, Key: keyPEM})); err != nil {
			t.Fatal(err)
		}
		assertIdentity(t, e.bins, path, id.user, id.group)
	}

	// Requests the approver leaves for a person, approved by admin; the
	// signer then applies its own rules.
	//
	// CA:TRUE is never honoured: the certificate is issued CA:FALSE
	// (as kube-controller-manager does; the approver refuses such requests
	// outright, as client-ca above shows).
	e.submit(e.adminCS, "admin-ca", certv1.KubeAPIServerClientSignerName, requestOpts{cn: "ca-wannabe", isCA: true})
	// Ten years is capped at --max-duration, not refused: expirationSeconds
	// is a wish the signer may shorten (KEP-2784), kube-controller-manager
	// caps it at --cluster-signing-duration the same way, and clients read
	// the NotAfter they get. The signer never refuses for length; the
	// approver may (serving-ten-years above).
	e.submit(e.adminCS, "admin-ten-years", certv1.KubeAPIServerClientSignerName, requestOpts{cn: "long-lived", exp: 10 * 365 * 24 * time.Hour})
	// A client certificate with a SAN breaks the signer's rules: Failed.
	e.submit(e.adminCS, "admin-client-san", certv1.KubeAPIServerClientSignerName, requestOpts{cn: "sanny", dns: []string{"sanny.example.com"}})
	// A custom signer with its own CA.
	e.submit(e.adminCS, "etcd-backup", "kubepki.dev/etcd-client", requestOpts{cn: "etcd-backup"})
	for _, n := range []string{"admin-ca", "admin-ten-years", "admin-client-san", "etcd-backup"} {
		c := e.waitCSR(n, 10*time.Second, "present", func(*certv1.CertificateSigningRequest) bool { return true })
		if len(c.Status.Conditions) != 0 {
			t.Errorf("%s: the approver decided a request no rule covers: %+v", n, c.Status.Conditions)
		}
		e.approve(n)
	}
	_, caCert := e.waitIssued("admin-ca")
	if caCert.IsCA || !caCert.BasicConstraintsValid || caCert.KeyUsage&x509.KeyUsageCertSign != 0 {
		t.Errorf("CA:TRUE request: issued IsCA=%v BasicConstraintsValid=%v KeyUsage=%v, want CA:FALSE", caCert.IsCA, caCert.BasicConstraintsValid, caCert.KeyUsage)
	}
	caFile := e.path("admin-ca.crt")
	e.write(caFile, pki.EncodeCert(caCert))
	if out, err := exec.Command("openssl", "x509", "-in", caFile, "-noout", "-ext", "basicConstraints").CombinedOutput(); err != nil || !strings.Contains(string(out), "CA:FALSE") {
		t.Errorf("openssl does not see CA:FALSE (err %v):\n%s", err, out)
	}
	_, long := e.waitIssued("admin-ten-years")
	if life := long.NotAfter.Sub(long.NotBefore); life != 24*time.Hour {
		t.Errorf("ten-year request: lifetime %v, want 24h (--max-duration)", life)
	}
	c := e.waitCSR("admin-client-san", 30*time.Second, "failed", csr.Failed)
	if f := csr.Condition(c, certv1.CertificateFailed); f.Reason != "SignerValidationFailure" || !strings.Contains(f.Message, "takes no subjectAltNames") || csr.Issued(c) {
		t.Errorf("client SAN: %+v, certificate %v", c.Status.Conditions, csr.Issued(c))
	}
	_, etcdLeaf := e.waitIssued("etcd-backup")
	verifyChain(t, etcdLeaf, etcdCA.Cert, x509.ExtKeyUsageClientAuth)
	if etcdLeaf.Issuer.CommonName != "etcd-ca" {
		t.Errorf("etcd-backup issued by %s", etcdLeaf.Issuer)
	}

	// Rotate the etcd CA on disk (atomic renames, as a Secret volume
	// update or kubepki's store does): the next request uses the new CA.
	newEtcd := filepath.Join(t.TempDir(), "rotated")
	if err := os.Mkdir(newEtcd, 0o700); err != nil {
		t.Fatal(err)
	}
	rotKey, _ := pki.GenerateKey(pki.ECDSAP256)
	rotCA, err := pki.NewCA(rotKey, pki.Profile{Subject: pki.Subject{CommonName: "etcd-ca-2"}, Validity: 24 * time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	rotKeyPEM, _ := pki.EncodeKey(rotKey)
	for _, f := range []struct {
		path string
		data []byte
	}{{etcdKey, rotKeyPEM}, {etcdCert, pki.EncodeCert(rotCA.Cert)}} {
		tmp := f.path + ".new"
		e.write(tmp, f.data)
		if err := os.Rename(tmp, f.path); err != nil {
			t.Fatal(err)
		}
	}
	e.submit(e.adminCS, "etcd-backup-2", "kubepki.dev/etcd-client", requestOpts{cn: "etcd-backup"})
	e.approve("etcd-backup-2")
	_, rotated := e.waitIssued("etcd-backup-2")
	verifyChain(t, rotated, rotCA.Cert, x509.ExtKeyUsageClientAuth)
	if got := ctl.metric(t, "kubepki_ca_reloads_total", `signer="kubepki.dev/etcd-client"`, `result="ok"`); got < 1 {
		t.Errorf("kubepki_ca_reloads_total{ok} = %v", got)
	}

	// The one request not ours to decide is still pending.
	if c, _ := e.adminCS.CertificatesV1().CertificateSigningRequests().Get(context.Background(), "kubelet-client-other-node", metav1.GetOptions{}); len(c.Status.Conditions) != 0 {
		t.Errorf("kubelet-client-other-node: %+v, want left pending", c.Status.Conditions)
	}

	// Metrics and events agree with what happened.
	if got := ctl.metric(t, "kubepki_csr_denied_total"); got != float64(len(forged)+4) {
		t.Errorf("kubepki_csr_denied_total = %v, want %d", got, len(forged)+4)
	}
	if got := ctl.metric(t, "kubepki_csr_signed_total"); got != 7 {
		t.Errorf("kubepki_csr_signed_total = %v, want 7", got)
	}
	if got := ctl.metric(t, "kubepki_csr_failed_total", `reason="SignerValidationFailure"`); got != 1 {
		t.Errorf("kubepki_csr_failed_total = %v, want 1", got)
	}
	// Nobody else writes here: a conflict would mean the controller
	// raced itself (signing a stale cached copy again).
	if got := ctl.metric(t, "kubepki_csr_update_conflicts_total"); got != 0 {
		t.Errorf("kubepki_csr_update_conflicts_total = %v, want 0", got)
	}
	if got := ctl.metric(t, "kubepki_csr_signing_duration_seconds_count", `signer="kubernetes.io/kubelet-serving"`); got != 1 {
		t.Errorf("signing latency histogram count = %v, want 1", got)
	}
	waitFor(t, 20*time.Second, "Denied events", func() error {
		var list struct {
			Items []struct {
				Reason string `json:"reason"`
			} `json:"items"`
		}
		out := e.kubectl("get", "events.events.k8s.io", "-n", "default", "-o", "json")
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			return err
		}
		n := 0
		for _, ev := range list.Items {
			if ev.Reason == "Denied" {
				n++
			}
		}
		if n < len(forged) {
			return fmt.Errorf("%d Denied events", n)
		}
		return nil
	})
	ctl.checkLog(t)
}

// TestControllerFailover runs two replicas of the real binary sharing a
// Lease: only the leader signs; when it is stopped (without giving the
// lease up, as if it had died) the other takes over within the lease
// duration, and across the failover each of 500 CSRs gets exactly one
// certificate.
func TestControllerFailover(t *testing.T) {
	const (
		total         = 500
		leaseDuration = 4 * time.Second
		retryPeriod   = 500 * time.Millisecond
	)
	e := newCertAPI(t)
	sa := e.controllerIdentity()
	args := []string{
		"--kubeconfig=" + sa,
		"--signer=kubernetes.io/kube-apiserver-client=" + e.caCert + "," + e.caKey,
		"--lease-duration=" + leaseDuration.String(), "--renew-deadline=3s", "--retry-period=" + retryPeriod.String(),
		// Stopped replicas keep the lease until it expires, like a
		// crashed one: the takeover below is the lease running out.
		"--leader-elect-release=false",
	}
	replicas := []*controllerProc{e.startController("replica-a", args...), e.startController("replica-b", args...)}
	var leader, standby *controllerProc
	waitFor(t, 30*time.Second, "a leader", func() error {
		a, b := replicas[0].metric(t, "kubepki_leader"), replicas[1].metric(t, "kubepki_leader")
		switch {
		case a+b > 1:
			t.Fatalf("two leaders at once")
		case a == 1:
			leader, standby = replicas[0], replicas[1]
		case b == 1:
			leader, standby = replicas[1], replicas[0]
		default:
			return errString("no leader yet")
		}
		return nil
	})

	// The requests, made up front: 500 fresh keys.
	type req struct {
		name string
		pem  []byte
	}
	reqs := make([]req, total)
	for i := range reqs {
		key, err := pki.GenerateKey(pki.ECDSAP256)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: fmt.Sprintf("user-%03d", i)}}, key)
		if err != nil {
			t.Fatal(err)
		}
		reqs[i] = req{fmt.Sprintf("failover-%03d", i), pki.EncodeCSR(der)}
	}
	createApprove := func(batch []req) error {
		var wg sync.WaitGroup
		var failed atomic.Value
		work := make(chan req)
		for range 16 {
			wg.Go(func() {
				api := e.adminCS.CertificatesV1().CertificateSigningRequests()
				for r := range work {
					obj := csr.NewObject(csr.Request{Name: r.name, SignerName: certv1.KubeAPIServerClientSignerName, PEM: r.pem, Usages: []certv1.KeyUsage{"digital signature", "client auth"}})
					c, err := api.Create(context.Background(), obj, metav1.CreateOptions{})
					if err == nil {
						c.Status.Conditions = append(c.Status.Conditions, certv1.CertificateSigningRequestCondition{
							Type: certv1.CertificateApproved, Status: corev1.ConditionTrue, Reason: "Test", LastUpdateTime: metav1.Now()})
						_, err = api.UpdateApproval(context.Background(), r.name, c, metav1.UpdateOptions{})
					}
					if err != nil {
						failed.Store(err)
					}
				}
			})
		}
		for _, r := range batch {
			work <- r
		}
		close(work)
		wg.Wait()
		if err, ok := failed.Load().(error); ok {
			return fmt.Errorf("create and approve: %w", err)
		}
		return nil
	}

	// The first half arrives while the leader signs; it is stopped in the
	// middle of it. The second half arrives while nobody leads.
	start := time.Now()
	firstHalf := make(chan error, 1)
	go func() { firstHalf <- createApprove(reqs[:total/2]) }()
	waitFor(t, 60*time.Second, "the leader signing", func() error {
		if n := leader.metric(t, "kubepki_csr_signed_total"); n < 100 {
			return fmt.Errorf("%v signed", n)
		}
		return nil
	})
	if n := standby.metric(t, "kubepki_csr_signed_total"); n != 0 {
		t.Fatalf("the standby replica signed %v certificates while not leading", n)
	}
	leader.Stop() // SIGTERM: finishes what it started, keeps the lease
	stopped := time.Now()
	leases := e.adminCS.CoordinationV1().Leases("kubepki-system")
	old, err := leases.Get(context.Background(), "kubepki-controller", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-firstHalf; err != nil {
		t.Fatal(err)
	}
	if err := createApprove(reqs[total/2:]); err != nil {
		t.Fatal(err)
	}
	deadline := stopped.Add(leaseDuration + 4*retryPeriod + 3*time.Second)
	for standby.metric(t, "kubepki_leader") != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("standby not leading %v after the leader stopped (lease %v)", time.Since(stopped), leaseDuration)
		}
		time.Sleep(50 * time.Millisecond)
	}
	takeover := time.Since(stopped)
	t.Logf("takeover %v after the leader stopped (lease duration %v)", takeover.Round(time.Millisecond), leaseDuration)
	// The Lease tells it exactly: the new holder acquired it once the
	// old holder's last renewal was leaseDuration old, as the standby saw
	// it. The standby looks every retry period jittered by up to 2.2x
	// (client-go's leader elector), once to see the last renewal and
	// once more to find it expired: at most leaseDuration + 2×2.2 retry
	// periods, plus a little for the scheduler of a busy 2-core machine.
	// The lower bound tells a lease that ran out from one given up: a
	// released lease is taken within two jittered retry periods (about a
	// second), an expired one after leaseDuration as the elector measures
	// it, on the monotonic clock. The Lease records wall-clock times, and
	// a CI VM's wall clock is slewed by NTP (a 4s expiry was once recorded
	// as 3.6s), so the bound is half the lease duration, not all of it.
	cur, err := leases.Get(context.Background(), "kubepki-controller", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *cur.Spec.HolderIdentity == *old.Spec.HolderIdentity {
		t.Fatalf("lease still held by %s", *old.Spec.HolderIdentity)
	}
	gap := cur.Spec.AcquireTime.Sub(old.Spec.RenewTime.Time)
	t.Logf("lease: %s renewed last at %s, %s acquired it %v later", *old.Spec.HolderIdentity, old.Spec.RenewTime.Format(time.RFC3339Nano), *cur.Spec.HolderIdentity, gap.Round(time.Millisecond))
	if minGap, maxGap := leaseDuration/2, leaseDuration+5*retryPeriod; gap < minGap || gap > maxGap {
		t.Errorf("lease changed hands %v after the last renewal, want within [%v, %v]", gap, minGap, maxGap)
	}

	// Every CSR issued, exactly once.
	var list *certv1.CertificateSigningRequestList
	waitFor(t, 120*time.Second, "all certificates", func() error {
		var err error
		list, err = e.adminCS.CertificatesV1().CertificateSigningRequests().List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return err
		}
		issued := 0
		for i := range list.Items {
			if csr.Issued(&list.Items[i]) {
				issued++
			}
		}
		if issued < total {
			return fmt.Errorf("%d of %d issued", issued, total)
		}
		return nil
	})
	t.Logf("%d CSRs issued across the failover in %v", total, time.Since(start).Round(time.Millisecond))
	serials := map[string]string{}
	for i := range list.Items {
		c := &list.Items[i]
		certs, err := pki.ParseCerts(c.Status.Certificate)
		if err != nil || len(certs) != 1 {
			t.Errorf("%s: status.certificate holds %d certificates (%v)", c.Name, len(certs), err)
			continue
		}
		if c.Spec.SignerName != certv1.KubeAPIServerClientSignerName || csr.Failed(c) {
			t.Errorf("%s: %s", c.Name, csr.State(c))
		}
		s := certs[0].SerialNumber.String()
		if other, dup := serials[s]; dup {
			t.Errorf("serial %s issued for both %s and %s", s, other, c.Name)
		}
		serials[s] = c.Name
		verifyChain(t, certs[0], e.ca.Cert, x509.ExtKeyUsageClientAuth)
	}
	if len(serials) != total {
		t.Errorf("%d distinct serials, want %d", len(serials), total)
	}

	// Each replica's count: the stopped one's from the summary it logs
	// on its way out, the new leader's from /metrics. Together: 500.
	var before float64
	for _, line := range strings.Split(leader.log(t), "\n") {
		var rec struct {
			Msg    string  `json:"msg"`
			Signed float64 `json:"signed"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "stopped" {
			before = rec.Signed
		}
	}
	after := standby.metric(t, "kubepki_csr_signed_total")
	t.Logf("signed: %v by the first leader, %v by the second", before, after)
	if before < 100 || after < total/2 || before+after != total {
		t.Errorf("signed %v + %v = %v, want %d with both replicas signing", before, after, before+after, total)
	}
	for _, r := range replicas {
		r.checkLog(t)
	}
}
