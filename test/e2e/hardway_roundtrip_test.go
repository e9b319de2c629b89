package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"kubepki.dev/kubepki/internal/openssltest"
	"kubepki.dev/kubepki/internal/testenv"
)

// The certificates of "Kubernetes the Hard Way" (docs/04-certificate-authority.md)
// in the order its loop makes them.
var hardWayCerts = []string{"admin", "node-0", "node-1", "kube-proxy", "kube-scheduler", "kube-controller-manager", "kube-api-server", "service-accounts"}

// TestHardWayRoundTrip runs the tutorial's own openssl commands on its
// ca.conf, and its kubectl commands for the kubeconfigs, then `kubepki
// config import-openssl` on that ca.conf and `kubepki verify` with the
// imported spec on that directory: verify reports the named mistakes of the
// ca.conf, and nothing else about a certificate. In particular the serverAuth
// usage and SANs the ca.conf gives kube-proxy, kube-scheduler and
// kube-controller-manager are kept by the import, so they are no drift.
func TestHardWayRoundTrip(t *testing.T) {
	bin := testenv.Kubepki(t)
	conf, err := os.ReadFile("../../internal/cluster/testdata/caconf/kthw.conf")
	if err != nil {
		t.Fatal(err)
	}
	// The tutorial works in its git checkout: a directory open to group and
	// others, which verify names (kubepki init tightens it).
	dir := filepath.Join(t.TempDir(), "kubernetes-the-hard-way")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // whatever the umask
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.conf"), conf, 0o644); err != nil {
		t.Fatal(err)
	}

	// docs/04-certificate-authority.md, verbatim.
	openssltest.HardWay(t, dir, "ca.conf", 4096, hardWayCerts...)

	spec := filepath.Join(t.TempDir(), "cluster.yaml")
	out := run(t, bin, "config", "import-openssl", "--out", spec, filepath.Join(dir, "ca.conf"))
	// The import names each mistake it corrects.
	for _, phrase := range []string{
		`[kube-scheduler_distinguished_name] O: group "system:system:kube-scheduler" exists nowhere`,
		`[kube-api-server_alt_names] DNS.4: kubernetes.svc.cluster.local is not a name of the kubernetes Service`,
		`[kube-proxy_req_extensions] nsCertType: nsCertType and nsComment are legacy Netscape extensions`,
	} {
		if !strings.Contains(out, phrase) {
			t.Errorf("import-openssl does not say %q:\n%s", phrase, out)
		}
	}

	// The named mistakes of the ca.conf, as verify reports them on what the
	// openssl commands made, and the directory's mode. nsCertType and
	// nsComment are named by the import but are no drift: Go ignores them.
	want := []string{
		"kube-scheduler.crt: drifted: O (groups) is [system:system:kube-scheduler], want [system:kube-scheduler]",
		"kube-api-server.crt: drifted: SAN DNS:kubernetes.default.svc.cluster.local required by spec, absent",
		"kube-api-server.crt: drifted: SAN DNS:kubernetes.svc.cluster.local present, not in spec",
		".: mode 0755: key directory readable by group or others",
	}

	t.Run("without kubeconfigs", func(t *testing.T) {
		// The tutorial makes its kubeconfigs later; their absence is reported
		// beside the certificates' findings, not instead of them.
		var missing []string
		for _, k := range []string{"node-0", "node-1", "kube-proxy", "kube-controller-manager", "kube-scheduler", "admin"} {
			missing = append(missing, k+".kubeconfig: missing")
		}
		checkVerify(t, bin, spec, dir, append(slices.Clone(want), missing...))
	})

	t.Run("with the tutorial's kubeconfigs", func(t *testing.T) {
		kubectl := testenv.Build(t).Kubectl
		// docs/05-kubernetes-configuration-files.md, verbatim.
		for _, k := range []struct{ file, user, server string }{
			{"node-0", "system:node:node-0", "https://server.kubernetes.local:6443"},
			{"node-1", "system:node:node-1", "https://server.kubernetes.local:6443"},
			{"kube-proxy", "system:kube-proxy", "https://server.kubernetes.local:6443"},
			{"kube-controller-manager", "system:kube-controller-manager", "https://server.kubernetes.local:6443"},
			{"kube-scheduler", "system:kube-scheduler", "https://server.kubernetes.local:6443"},
			{"admin", "admin", "https://127.0.0.1:6443"},
		} {
			kc := "--kubeconfig=" + k.file + ".kubeconfig"
			for _, args := range [][]string{
				{"config", "set-cluster", "kubernetes-the-hard-way", "--certificate-authority=ca.crt", "--embed-certs=true", "--server=" + k.server, kc},
				{"config", "set-credentials", k.user, "--client-certificate=" + k.file + ".crt", "--client-key=" + k.file + ".key", "--embed-certs=true", kc},
				{"config", "set-context", "default", "--cluster=kubernetes-the-hard-way", "--user=" + k.user, kc},
				{"config", "use-context", "default", kc},
			} {
				cmd := exec.Command(kubectl, args...)
				cmd.Dir = dir
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
				}
			}
		}
		// The tutorial points kube-controller-manager and kube-scheduler at
		// server.kubernetes.local and admin at 127.0.0.1, where kubepki's
		// catalog does the reverse: both are names of the API server on its
		// port, so neither is a finding.
		checkVerify(t, bin, spec, dir, want)
	})
}

// checkVerify runs verify -o json and checks that its findings are exactly
// want (each a prefix of one finding, in any order), nothing else.
func checkVerify(t *testing.T, bin, spec, dir string, want []string) {
	t.Helper()
	// As the tutorial's reader would run it, in the directory.
	cmd := exec.Command(bin, "verify", "--config", spec, "--dir", ".", "-o", "json")
	cmd.Dir = dir
	stdout, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Fatalf("verify: %v, want exit 3 (findings)\n%s", err, stdout)
	}
	var report struct {
		Findings []string `json:"findings"`
	}
	if err := json.Unmarshal(stdout, &report); err != nil {
		t.Fatalf("verify -o json: %v\n%s", err, stdout)
	}
	left := slices.Clone(want)
	for _, f := range report.Findings {
		i := slices.IndexFunc(left, func(w string) bool { return strings.HasPrefix(f, w) })
		switch {
		case i >= 0:
			left = slices.Delete(left, i, i+1)
		default:
			t.Errorf("unexpected finding: %s", f)
		}
	}
	for _, w := range left {
		t.Errorf("missing finding: %s", w)
	}
}
