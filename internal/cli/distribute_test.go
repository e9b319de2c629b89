package cli

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"sigs.k8s.io/yaml"

	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/distribute"
	"kubepki.dev/kubepki/internal/distribute/sshdtest"
)

// runDistribute runs kubepki with args and returns the exit code and output.
func runDistribute(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// TestDistributeCommand drives `kubepki distribute` against a real sshd on
// 127.0.0.1: server and node-0 reach it, node-1 is on a closed port.
func TestDistributeCommand(t *testing.T) {
	srv := sshdtest.Start(t)
	closed := sshdtest.ClosedPort(t)
	c := cluster.Default()
	addrs := map[string]string{"server": srv.Addr, "node-0": srv.Addr, "node-1": closed}
	for i, n := range c.Nodes {
		c.Nodes[i].SSH = cluster.SSH{Address: addrs[n.Name], User: srv.User}
	}
	specYAML, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	spec := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(spec, specYAML, 0o600); err != nil {
		t.Fatal(err)
	}
	pkiDir := t.TempDir()
	if code, _, stderr := runDistribute(t, "init", "--config", spec, "--dir", pkiDir); code != ExitOK {
		t.Fatalf("init: exit %d: %s", code, stderr)
	}
	known := sshdtest.WriteKnownHosts(t, srv.KnownHostsLine())
	root := t.TempDir()
	args := func(extra ...string) []string {
		return append([]string{"distribute", "--config", spec, "--dir", pkiDir, "--known-hosts", known,
			"--remote-root", filepath.Join(root, "{node}"), "--timeout", "5s"}, extra...)
	}
	t.Setenv("SSH_AUTH_SOCK", "")

	t.Run("dry run", func(t *testing.T) {
		code, out, stderr := runDistribute(t, args("--identity", srv.IdentityFile, "--dry-run")...)
		if code != ExitError || !strings.Contains(stderr, "1 of 3 node(s) failed") {
			t.Errorf("exit %d, stderr %q; want 1 and the failed count", code, stderr)
		}
		for _, want := range []string{
			"node-1 (" + closed + "): dial: connection refused\n",
			"server  would be created  0600  /var/lib/kubernetes/ca.key",
			"node-0  would be created  0644  " + distribute.ManifestPath,
			"node-0 (" + srv.Addr + ", remote root " + filepath.Join(root, "node-0") + "): dry run, nothing written: 6 to create, 0 to update, 0 unchanged",
			"2 node(s) ok, 1 failed",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if entries, _ := os.ReadDir(root); len(entries) != 0 {
			t.Errorf("dry run wrote %v", entries)
		}
	})

	t.Run("push as json", func(t *testing.T) {
		code, out, stderr := runDistribute(t, args("--identity", srv.IdentityFile, "-o", "json")...)
		if code != ExitError || !strings.Contains(stderr, "kubepki: 1 of 3 node(s) failed") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
		var reports []distribute.Report
		if err := json.Unmarshal([]byte(out), &reports); err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
		if len(reports) != 3 {
			t.Fatalf("%d reports", len(reports))
		}
		for _, r := range reports {
			if r.Node == "node-1" {
				if r.Error != "dial: connection refused" || r.Address != closed || len(r.Files) != 0 {
					t.Errorf("node-1: %+v", r)
				}
				continue
			}
			if r.Error != "" || len(r.Files) == 0 || r.Count(distribute.Created) != len(r.Files) {
				t.Errorf("%s: %+v", r.Node, r)
			}
			for _, f := range r.Files {
				data, err := os.ReadFile(filepath.Join(root, r.Node, f.Path))
				if err != nil {
					t.Fatal(err)
				}
				if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != f.SHA256 {
					t.Errorf("%s %s: content does not match the reported sha256", r.Node, f.Path)
				}
			}
		}
		// JSON field names are the documented ones.
		for _, key := range []string{`"node"`, `"address"`, `"error"`, `"files"`, `"path"`, `"action"`, `"sha256"`} {
			if !strings.Contains(out, key) {
				t.Errorf("JSON lacks %s", key)
			}
		}
	})

	t.Run("second push via ssh-agent, selected nodes, yaml", func(t *testing.T) {
		keyPEM, err := os.ReadFile(srv.IdentityFile)
		if err != nil {
			t.Fatal(err)
		}
		t.Setenv("SSH_AUTH_SOCK", sshdtest.ServeAgent(t, keyPEM))
		code, out, stderr := runDistribute(t, args("--node", "server", "--node", "node-0", "-o", "yaml")...)
		if code != ExitOK {
			t.Fatalf("exit %d: %s\n%s", code, stderr, out)
		}
		var reports []distribute.Report
		if err := yaml.Unmarshal([]byte(out), &reports); err != nil {
			t.Fatal(err)
		}
		if len(reports) != 2 || reports[0].Node != "server" || reports[1].Node != "node-0" {
			t.Fatalf("reports %+v", reports)
		}
		for _, r := range reports {
			if r.Error != "" || r.Count(distribute.Unchanged) != len(r.Files) {
				t.Errorf("%s: %+v", r.Node, r)
			}
		}
	})

	t.Run("text after a change on the node", func(t *testing.T) {
		key := filepath.Join(root, "node-0", "var/lib/kubelet/kubelet.key")
		if err := os.Chmod(key, 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, stderr := runDistribute(t, args("--identity", srv.IdentityFile, "--node", "node-0")...)
		if code != ExitOK {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		for _, want := range []string{
			"node-0  updated    0600  /var/lib/kubelet/kubelet.key  (mode 0644 (want 0600))",
			"node-0  unchanged  0644  /var/lib/kubelet/ca.crt",
			"): 0 created, 1 updated, 5 unchanged\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("kubelet.key not back to 0600: %v", err)
		}
	})

	t.Run("refused host key", func(t *testing.T) {
		empty := sshdtest.WriteKnownHosts(t)
		// The last --known-hosts wins.
		code, out, _ := runDistribute(t, args("--identity", srv.IdentityFile, "--node", "server", "--known-hosts", empty)...)
		if code != ExitError || !strings.Contains(out, "server ("+srv.Addr+"): host key for "+srv.Addr+" is unknown") ||
			!strings.Contains(out, "ssh-keyscan -p "+strings.Split(srv.Addr, ":")[1]+" 127.0.0.1 >> "+empty) {
			t.Errorf("exit %d:\n%s", code, out)
		}
	})

	for _, tt := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown node", args("--identity", srv.IdentityFile, "--node", "nope"), ExitUsage, "--node nope: no such node"},
		{"bad output", args("--identity", srv.IdentityFile, "-o", "xml"), ExitUsage, "unknown output format"},
		{"relative remote root", append(args("--identity", srv.IdentityFile), "--remote-root", "rel"), ExitUsage, "not an absolute path"},
		{"no credentials", args(), ExitError, "no SSH credentials"},
		{"encrypted identity", args("--identity", writeEncryptedKey(t)), ExitError, "encrypted with a passphrase"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, stderr := runDistribute(t, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, tt.code, tt.want)
			}
			if out != "" {
				t.Errorf("output on a usage or setup error: %q", out)
			}
		})
	}
}

// writeEncryptedKey writes a passphrase-protected OpenSSH key and returns
// its path.
func writeEncryptedKey(t *testing.T) string {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "test", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "id_encrypted")
	if err := os.WriteFile(p, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
