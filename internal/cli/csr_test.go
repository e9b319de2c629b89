package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	certv1 "k8s.io/api/certificates/v1"
	"sigs.k8s.io/yaml"

	"kubepki.dev/kubepki/internal/csr"
	"kubepki.dev/kubepki/internal/pki"
)

// runMain runs the CLI in-process and returns stdout, stderr and the code.
func csrMain(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Main(args, strings.NewReader(""), &out, &errOut)
	return out.String(), errOut.String(), code
}

func TestCSRCreatePrintsManifest(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "jane.key")
	out, errOut, code := csrMain(t, "csr", "create", "jane", "--cn", "jane", "--group", "developers", "--group", "oncall",
		"--expiration", "24h", "--key-out", key, "--key-algorithm", "RSA-2048")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var obj certv1.CertificateSigningRequest
	if err := yaml.UnmarshalStrict([]byte(out), &obj); err != nil {
		t.Fatalf("manifest does not parse: %v\n%s", err, out)
	}
	if obj.APIVersion != "certificates.k8s.io/v1" || obj.Kind != "CertificateSigningRequest" || obj.Name != "jane" {
		t.Errorf("object header: %s %s %s", obj.APIVersion, obj.Kind, obj.Name)
	}
	if strings.Contains(out, "status") || strings.Contains(out, "creationTimestamp") {
		t.Errorf("manifest has status or creationTimestamp:\n%s", out)
	}
	if obj.Spec.SignerName != certv1.KubeAPIServerClientSignerName || *obj.Spec.ExpirationSeconds != 86400 {
		t.Errorf("spec: signer %s, expirationSeconds %v", obj.Spec.SignerName, *obj.Spec.ExpirationSeconds)
	}
	// RSA key: key encipherment too, as the seed's YAML lists.
	if got := usagesOf(obj.Spec.Usages); got != "digital signature,key encipherment,client auth" {
		t.Errorf("usages = %s", got)
	}
	req, err := csr.ParseRequest(obj.Spec.Request)
	if err != nil {
		t.Fatal(err)
	}
	if req.Subject.CommonName != "jane" || len(req.Subject.Organization) != 2 {
		t.Errorf("request subject %v", req.Subject)
	}
	keyPEM, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	k, err := pki.ParseKey(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !pki.KeyMatches(req.PublicKey, k) {
		t.Error("request is not for the written key")
	}
	if fi, _ := os.Stat(key); fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v", fi.Mode())
	}
	// Never overwrite a key; reuse it with --key.
	if _, errOut, code := csrMain(t, "csr", "create", "jane", "--cn", "jane", "--key-out", key); code != 1 || !strings.Contains(errOut, "not overwriting") {
		t.Errorf("second create: exit %d: %s", code, errOut)
	}
	out, errOut, code = csrMain(t, "csr", "create", "jane-renew", "--cn", "jane", "--key", key, "-o", "json", "--signer", certv1.KubeletServingSignerName, "--dns", "node-a", "--ip", "10.0.0.1")
	if code != 0 {
		t.Fatalf("create --key: exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, `"server auth"`) || !strings.Contains(out, `"kind": "CertificateSigningRequest"`) {
		t.Errorf("kubelet-serving JSON manifest:\n%s", out)
	}
}

func usagesOf(us []certv1.KeyUsage) string {
	s := make([]string, len(us))
	for i, u := range us {
		s[i] = string(u)
	}
	return strings.Join(s, ",")
}

func TestCSRUsageErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no cn", []string{"csr", "create", "x"}, "--cn is required"},
		{"no name", []string{"csr", "create", "--cn", "x"}, "accepts 1 arg"},
		{"bad signer", []string{"csr", "create", "x", "--cn", "x", "--signer", "kubernetes.io/legacy-unknown"}, "does not implement"},
		{"short expiration", []string{"csr", "create", "x", "--cn", "x", "--expiration", "5m"}, "at least 10m0s"},
		{"bad usage", []string{"csr", "create", "x", "--cn", "x", "--usage", "flying"}, `unknown usages "flying"`},
		{"bad ip", []string{"csr", "create", "x", "--cn", "x", "--ip", "10.0.0"}, "not an IP address"},
		{"bad output", []string{"csr", "create", "x", "--cn", "x", "-o", "text"}, "unknown output format"},
		{"approve nothing", []string{"csr", "approve"}, "name at least one"},
		{"fetch without key", []string{"csr", "fetch", "x"}, "--key is required"},
		{"controller nothing to do", []string{"controller"}, "nothing to do"},
		{"controller bad signer flag", []string{"controller", "--signer", "kubernetes.io/kube-apiserver-client=ca.crt"}, "want NAME=CERT,KEY"},
		{"controller policy without approve", []string{"controller", "--signer", "a.io/b=c,d", "--approve-policy", "p.yaml"}, "--approve-policy needs --approve"},
		{"controller dry run without approve", []string{"controller", "--signer", "a.io/b=c,d", "--dry-run"}, "--dry-run applies to the approver"},
		{"controller bad log level", []string{"controller", "--approve", "--log-level", "loud"}, "--log-level"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if args[0] == "csr" && args[1] == "create" {
				args = append(args, "--key-out", filepath.Join(dir, tc.name+".key"))
			}
			_, errOut, code := csrMain(t, args...)
			if code != ExitUsage || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q; want %d with %q", code, errOut, ExitUsage, tc.want)
			}
		})
	}
	// Usage errors come before any key is written.
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("usage errors left files: %v", entries)
	}
}

func TestParseSignerFlag(t *testing.T) {
	tests := []struct {
		in, name, cert, key string
		ok                  bool
	}{
		{"kubernetes.io/kube-apiserver-client=/pki/ca.crt,/pki/ca.key", "kubernetes.io/kube-apiserver-client", "/pki/ca.crt", "/pki/ca.key", true},
		{"kubepki.dev/etcd-client=etcd/ca.crt,etcd/ca.key", "kubepki.dev/etcd-client", "etcd/ca.crt", "etcd/ca.key", true},
		{"kubepki.dev/etcd-client=etcd/ca.crt", "", "", "", false},
		{"kubepki.dev/etcd-client", "", "", "", false},
		{"=a,b", "", "", "", false},
		{"x.io/y=a,b,c", "", "", "", false},
		{"etcd-client=a,b", "", "", "", false},
	}
	for _, tc := range tests {
		sf, err := parseSignerFlag(tc.in)
		if (err == nil) != tc.ok || tc.ok && (sf.Name != tc.name || sf.CertFile != tc.cert || sf.KeyFile != tc.key) {
			t.Errorf("parseSignerFlag(%q) = %+v, %v", tc.in, sf, err)
		}
	}
}

func TestControllerPolicyFileErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(bad, []byte("rules:\n- name: a\n  requesterGroup: [x]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := csrMain(t, "controller", "--approve", "--approve-policy", bad)
	if code != ExitError || !strings.Contains(errOut, `unknown field "requesterGroup"`) {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}
