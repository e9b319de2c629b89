package e2e

import (
	"context"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kubepki.dev/kubepki/internal/pki"
)

// seed002YAML is the CertificateSigningRequest of seed 002, word for word
// but for the name and the request.
const seed002YAML = `apiVersion: certificates.k8s.io/v1
kind: CertificateSigningRequest
metadata:
  name: NAME
spec:
  signerName: kubernetes.io/kube-apiserver-client
  groups:
  - system:authenticated
  usages:
  - digital signature
  - key encipherment
  - client auth
  request: REQUEST
`

// TestCSRUserFlow walks seed 002's flow on a real API server with kubepki's
// controller as the signer, run as the ServiceAccount of deploy/ (so the
// RBAC there is proven sufficient):
//
//   - kubepki's way: csr create --apply, kubectl certificate approve, csr
//     fetch writing a kubeconfig, kubectl auth whoami as jane;
//   - the seed's own way: openssl genrsa and req, base64, the seed's YAML
//     through kubectl create -f, kubepki csr approve, the certificate read
//     back with kubectl and base64 --decode, whoami as john;
//   - csr create's printed manifest through kubectl create -f;
//   - a denied and a failed request, which csr fetch reports with exit 1.
func TestCSRUserFlow(t *testing.T) {
	e := newCertAPI(t)
	sa := e.controllerIdentity()
	ctl := e.startController("kubepki-controller",
		"--kubeconfig="+sa,
		"--signer=kubernetes.io/kube-apiserver-client="+e.caCert+","+e.caKey,
		"--lease-duration=4s", "--renew-deadline=3s", "--retry-period=500ms",
	)
	work := t.TempDir()
	f := func(name string) string { return filepath.Join(work, name) }
	kp := func(args ...string) string {
		t.Helper()
		return run(t, e.kubepki, append(args, "--kubeconfig", e.admin)...)
	}

	// kubepki's way, with a requested lifetime of one hour.
	out := kp("csr", "create", "jane", "--cn", "jane", "--group", "developers", "--group", "oncall",
		"--expiration", "1h", "--apply", "--key-out", f("jane.key"))
	if !strings.Contains(out, "certificatesigningrequest/jane created") {
		t.Errorf("csr create --apply said:\n%s", out)
	}
	if fi, err := os.Stat(f("jane.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("jane.key: %v, mode %v; want 0600", err, fi.Mode())
	}
	e.approve("jane") // kubectl certificate approve jane
	out = kp("csr", "fetch", "jane", "--key", f("jane.key"), "--wait", "1m",
		"--out-cert", f("jane.crt"), "--kubeconfig-out", f("jane.kubeconfig"))
	if !strings.Contains(out, "user jane, groups [") {
		t.Errorf("csr fetch said:\n%s", out)
	}
	assertIdentity(t, e.bins, f("jane.kubeconfig"), "jane", "developers", "oncall", "system:authenticated")
	if fi, err := os.Stat(f("jane.kubeconfig")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("jane.kubeconfig mode %v, want 0600", fi.Mode())
	}
	janeCrt, err := os.ReadFile(f("jane.crt"))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.ParseCert(janeCrt)
	if err != nil {
		t.Fatal(err)
	}
	// expirationSeconds honoured: a short-lived certificate runs from five
	// minutes ago to an hour from its issue.
	if life := cert.NotAfter.Sub(cert.NotBefore); life != time.Hour+5*time.Minute {
		t.Errorf("jane's certificate spans %v, want 1h5m (back-dated 5m, expirationSeconds 1h)", life)
	}
	verifyChain(t, cert, e.ca.Cert, 0)
	// A second fetch refuses to overwrite what the first wrote.
	if out, code := runCode(t, e.kubepki, "csr", "fetch", "jane", "--key", f("jane.key"), "--out-cert", f("jane.crt"), "--kubeconfig", e.admin); code != 1 || !strings.Contains(out, "not overwriting") {
		t.Errorf("second fetch: exit %d\n%s", code, out)
	}

	// The seed's way: openssl, base64, the seed's YAML, kubectl.
	for _, c := range [][]string{
		{"openssl", "genrsa", "-out", f("john.key"), "2048"},
		{"openssl", "req", "-new", "-key", f("john.key"), "-subj", "/CN=john", "-out", f("john.csr")},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(c, " "), err, out)
		}
	}
	johnCSR, err := os.ReadFile(f("john.csr"))
	if err != nil {
		t.Fatal(err)
	}
	manifest := strings.NewReplacer("NAME", "john", "REQUEST", base64.StdEncoding.EncodeToString(johnCSR)).Replace(seed002YAML)
	if err := os.WriteFile(f("john.yaml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	e.kubectl("create", "-f", f("john.yaml"))
	kp("csr", "approve", "john")
	var b64 string
	waitFor(t, 30*time.Second, "john's certificate", func() error {
		b64 = strings.TrimSpace(e.kubectl("get", "csr", "john", "-o", "jsonpath={.status.certificate}"))
		if b64 == "" {
			return errString("no certificate yet")
		}
		return nil
	})
	johnCrt, err := base64.StdEncoding.DecodeString(b64) // echo ... | base64 --decode > john.crt
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f("john.crt"), johnCrt, 0o644); err != nil {
		t.Fatal(err)
	}
	assertIdentity(t, e.bins, writeKubeconfig(t, e.server, e.caCert, f("john.crt"), f("john.key")), "john", "system:authenticated")
	if out := e.kubectl("get", "csr", "john"); !strings.Contains(out, "Approved,Issued") {
		t.Errorf("kubectl get csr john:\n%s", out)
	}

	// csr create without --apply prints a manifest kubectl accepts.
	create := exec.Command(e.kubepki, "csr", "create", "ann", "--cn", "ann", "--group", "qa", "--key-out", f("ann.key"))
	manifestOut, err := create.Output() // stdout only: the manifest
	if err != nil {
		t.Fatalf("csr create ann: %v", err)
	}
	if err := os.WriteFile(f("ann.yaml"), manifestOut, 0o644); err != nil {
		t.Fatal(err)
	}
	e.kubectl("create", "-f", f("ann.yaml"))
	e.approve("ann")
	kp("csr", "fetch", "ann", "--key", f("ann.key"), "--out-cert", f("ann.crt"), "--kubeconfig-out", f("ann.kubeconfig"))
	assertIdentity(t, e.bins, f("ann.kubeconfig"), "ann", "qa")

	// Denied: fetch says so, exit 1; approving it afterwards is refused.
	kp("csr", "create", "mallory", "--cn", "mallory", "--apply", "--key-out", f("mallory.key"))
	kp("csr", "deny", "mallory", "--reason", "NotToday", "--message", "who are you?")
	if out, code := runCode(t, e.kubepki, "csr", "fetch", "mallory", "--key", f("mallory.key"), "--wait", "30s", "--kubeconfig", e.admin); code != 1 ||
		!strings.Contains(out, "certificatesigningrequest mallory was denied: NotToday: who are you?") {
		t.Errorf("fetch of a denied CSR: exit %d\n%s", code, out)
	}
	if out, code := runCode(t, e.kubepki, "csr", "approve", "mallory", "--kubeconfig", e.admin); code != 1 || !strings.Contains(out, "already denied") {
		t.Errorf("approve of a denied CSR: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(f("mallory.crt")); !os.IsNotExist(err) {
		t.Errorf("mallory.crt written for a denied request (%v)", err)
	}

	// Failed: a client certificate with a SAN breaks the signer's rules.
	kp("csr", "create", "sanny", "--cn", "sanny", "--dns", "sanny.example.com", "--apply", "--key-out", f("sanny.key"))
	kp("csr", "approve", "sanny")
	if out, code := runCode(t, e.kubepki, "csr", "fetch", "sanny", "--key", f("sanny.key"), "--wait", "30s", "--kubeconfig", e.admin); code != 1 ||
		!strings.Contains(out, "sanny failed: SignerValidationFailure: a kube-apiserver client certificate takes no subjectAltNames") {
		t.Errorf("fetch of a failed CSR: exit %d\n%s", code, out)
	}

	// The key fetch checks: jane's certificate with another key is refused.
	if out, code := runCode(t, e.kubepki, "csr", "fetch", "jane", "--key", f("ann.key"), "--out-cert", f("wrong.crt"), "--wait", "0", "--kubeconfig", e.admin); code != 1 ||
		!strings.Contains(out, "not for the key") {
		t.Errorf("fetch with the wrong key: exit %d\n%s", code, out)
	}

	list, err := e.adminCS.CertificatesV1().CertificateSigningRequests().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 5 {
		t.Errorf("%d CSRs, want 5", len(list.Items))
	}
	ctl.checkLog(t)
}
