package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/kubeconfig"
	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/reconcile"
	"kubepki.dev/kubepki/internal/store"
)

func applied(t *testing.T, profile catalog.Profile) (*catalog.Plan, store.Store) {
	t.Helper()
	plan, err := catalog.New(cluster.Default(), profile)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	st := store.Store{Dir: filepath.Join(root, "pki"), KubeconfigDir: root}
	if _, err := reconcile.Apply(context.Background(), plan, st, time.Now(), reconcile.Options{}); err != nil {
		t.Fatal(err)
	}
	return plan, st
}

func TestCollect(t *testing.T) {
	tests := []struct {
		profile catalog.Profile
		node    string
		want    []string // paths that must be there
		wantNot []string // path fragments that must not
	}{
		{catalog.Hardway, "server", []string{"/var/lib/kubernetes/ca.key", "/var/lib/kubernetes/kube-api-server.crt", "/var/lib/kubernetes/service-accounts.key", "/root/admin.kubeconfig"}, []string{"kubelet"}},
		{catalog.Hardway, "node-0", []string{"/var/lib/kubelet/ca.crt", "/var/lib/kubelet/kubelet.crt", "/var/lib/kubelet/kubelet.key", "/var/lib/kubelet/kubeconfig", "/var/lib/kube-proxy/kubeconfig"}, []string{"ca.key", "node-1"}},
		{catalog.Kubeadm, "server", []string{"/etc/kubernetes/pki/ca.key", "/etc/kubernetes/pki/etcd/ca.key", "/etc/kubernetes/pki/sa.pub", "/etc/kubernetes/admin.conf", "/etc/kubernetes/kubelet.conf"}, nil},
		{catalog.Kubeadm, "node-1", []string{"/etc/kubernetes/pki/ca.crt", "/etc/kubernetes/kubelet.conf"}, []string{".key", "admin.conf", "etcd"}},
	}
	for _, tc := range tests {
		t.Run(string(tc.profile)+"/"+tc.node, func(t *testing.T) {
			plan, st := applied(t, tc.profile)
			b, err := Collect(plan, st, tc.node)
			if err != nil {
				t.Fatal(err)
			}
			paths := map[string]File{}
			for _, f := range b.Files {
				paths[f.Path] = f
				sum := sha256.Sum256(f.Data)
				if f.SHA256 != hex.EncodeToString(sum[:]) || f.Size != len(f.Data) {
					t.Errorf("%s: manifest hash or size does not match the data", f.Path)
				}
				secret := strings.HasSuffix(f.Path, ".key") || strings.HasSuffix(f.Path, ".conf") || strings.Contains(f.Path, "kubeconfig")
				if secret && f.Mode != 0o600 || !secret && f.Mode != 0o644 {
					t.Errorf("%s: mode %04o", f.Path, f.Mode)
				}
			}
			for _, p := range tc.want {
				if _, ok := paths[p]; !ok {
					t.Errorf("%s missing from %s's bundle", p, tc.node)
				}
			}
			for p := range paths {
				for _, bad := range tc.wantNot {
					if strings.Contains(p, bad) {
						t.Errorf("%s's bundle holds %s", tc.node, p)
					}
				}
			}
		})
	}
}

// The CA key rule is enforced by Collect itself, not only by the catalog:
// a plan that (wrongly) lists ca.key for a worker is refused.
func TestCollectRefusesCAKeyOnWorker(t *testing.T) {
	plan, st := applied(t, catalog.Hardway)
	for i := range plan.Bundles {
		if plan.Bundles[i].Node == "node-0" {
			plan.Bundles[i].Files = append(plan.Bundles[i].Files, catalog.BundleFile{Path: "/var/lib/kubelet/ca.key", Mode: "0600", Owner: "root:root", Kind: catalog.SourceKey, Name: "ca"})
		}
	}
	if _, err := Collect(plan, st, "node-0"); err == nil || !strings.Contains(err.Error(), "the key of CA ca goes to control-plane nodes only") {
		t.Fatalf("Collect = %v, want a refusal", err)
	}
}

func TestCollectExternalCA(t *testing.T) {
	plan, st := applied(t, catalog.Kubeadm)
	if err := os.Remove(st.KeyPath("ca")); err != nil {
		t.Fatal(err)
	}
	b, err := Collect(plan, st, "server")
	if err != nil {
		t.Fatalf("Collect without ca.key: %v", err)
	}
	for _, f := range b.Files {
		if f.Path == "/etc/kubernetes/pki/ca.key" {
			t.Error("bundle lists an absent CA key")
		}
	}
}

func TestWriteDirAndTarGz(t *testing.T) {
	plan, st := applied(t, catalog.Hardway)
	b, err := Collect(plan, st, "node-0")
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if err := b.WriteDir(root); err != nil {
		t.Fatal(err)
	}
	for _, f := range b.Files {
		p := filepath.Join(root, f.Path)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(p)
		if fi.Mode().Perm() != f.Mode || !bytes.Equal(got, f.Data) {
			t.Errorf("%s: mode %04o or content differs", p, fi.Mode().Perm())
		}
	}
	var m Bundle
	data, err := os.ReadFile(filepath.Join(root, ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &m); err != nil || len(m.Files) != len(b.Files) || m.Node != "node-0" {
		t.Fatalf("manifest %s: %v", data, err)
	}

	var buf bytes.Buffer
	if err := b.WriteTarGz(&buf, time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var names []string
	dirModes := map[string]int64{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeDir {
			dirModes[h.Name] = h.Mode
			continue
		}
		names = append(names, h.Name)
		if strings.HasSuffix(h.Name, ".key") && h.Mode != 0o600 {
			t.Errorf("tar %s: mode %o", h.Name, h.Mode)
		}
	}
	if names[0] != ManifestName || len(names) != len(b.Files)+1 || !strings.HasPrefix(names[1], "var/") {
		t.Errorf("tar entries %v", names)
	}
	if len(dirModes) != 0 {
		t.Errorf("tar carries directory entries %v: extracting at / would reset their modes", dirModes)
	}
}

// Extracting a bundle with GNU tar as root would, at "/", run over
// directories the system owns: their modes stay as they were, and the
// files land with theirs.
func TestTarExtractKeepsDirectoryModes(t *testing.T) {
	if _, err := exec.LookPath("tar"); err != nil {
		t.Skip("tar not installed")
	}
	plan, st := applied(t, catalog.Hardway)
	b, err := Collect(plan, st, "server")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	archive := filepath.Join(tmp, "server.tar.gz")
	var buf bytes.Buffer
	if err := b.WriteTarGz(&buf, time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(archive, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	list, err := exec.Command("tar", "-tvzf", archive).CombinedOutput()
	if err != nil {
		t.Fatalf("tar -tvzf: %v\n%s", err, list)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(list)), "\n") {
		if !strings.HasPrefix(line, "-") {
			t.Errorf("tar -tvzf lists a non-file entry: %s", line)
		}
	}
	// A node's "/" with directories whose modes are not tar's defaults.
	root := filepath.Join(tmp, "root")
	dirs := map[string]os.FileMode{
		".": 0o755, "etc": 0o750, "root": 0o700, "var": 0o711, "var/lib": 0o751, "var/lib/kubernetes": 0o750,
	}
	for _, d := range []string{".", "etc", "root", "var", "var/lib", "var/lib/kubernetes"} {
		p := filepath.Join(root, d)
		if err := os.MkdirAll(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, dirs[d]); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("tar", "-xpzf", archive, "-C", root).CombinedOutput(); err != nil {
		t.Fatalf("tar -xpzf: %v\n%s", err, out)
	}
	for d, want := range dirs {
		fi, err := os.Stat(filepath.Join(root, d))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %04o after extraction, was %04o", d, got, want)
		}
	}
	for _, f := range b.Files {
		fi, err := os.Stat(filepath.Join(root, f.Path))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != f.Mode {
			t.Errorf("%s: mode %04o, want %04o", f.Path, fi.Mode().Perm(), f.Mode)
		}
	}
}

// Each case is a way a key could reach the wrong node: a plan that (by a
// catalog bug) routes another identity's key to a node, or a PKI directory
// whose files were swapped or replaced. Collect refuses each, naming the
// file.
func TestCollectRefusesForeignAndMismatchedKeys(t *testing.T) {
	addFile := func(node string, f catalog.BundleFile) func(*testing.T, *catalog.Plan, store.Store) {
		return func(_ *testing.T, plan *catalog.Plan, _ store.Store) {
			for i := range plan.Bundles {
				if plan.Bundles[i].Node == node {
					plan.Bundles[i].Files = append(plan.Bundles[i].Files, f)
				}
			}
		}
	}
	key := func(p, name string) catalog.BundleFile {
		return catalog.BundleFile{Path: p, Mode: "0600", Owner: "root:root", Kind: catalog.SourceKey, Name: name}
	}
	kubeconfigFile := func(p, name string) catalog.BundleFile {
		return catalog.BundleFile{Path: p, Mode: "0600", Owner: "root:root", Kind: catalog.SourceKubeconfig, Name: name}
	}
	copyFile := func(t *testing.T, from, to string) {
		t.Helper()
		data, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		profile catalog.Profile
		users   []cluster.User
		node    string
		tamper  func(*testing.T, *catalog.Plan, store.Store)
		want    string
	}{
		{"admin key as a worker's kubelet key", catalog.Hardway, nil, "node-0",
			addFile("node-0", key("/var/lib/kubelet/admin.key", "admin")),
			"the key of admin is a control-plane component's; node-0 is not a control-plane node"},
		{"admin kubeconfig on a worker", catalog.Hardway, nil, "node-0",
			addFile("node-0", kubeconfigFile("/var/lib/kubelet/admin.kubeconfig", "admin")),
			"the key of admin is in system:masters"},
		{"token-signing key on a worker", catalog.Hardway, nil, "node-1",
			addFile("node-1", key("/var/lib/kubelet/sa.key", "service-accounts")),
			"the key of service-accounts is a control-plane component's"},
		{"another node's kubelet key", catalog.Hardway, nil, "node-0",
			addFile("node-0", key("/var/lib/kubelet/other.key", "node-1")),
			"the key of node-1 belongs to node node-1, not node-0"},
		{"another node's kubelet kubeconfig", catalog.Kubeadm, nil, "node-0",
			addFile("node-0", kubeconfigFile("/etc/kubernetes/other.conf", "kubelet-node-1.conf")),
			"kubeconfig kubelet-node-1.conf belongs to node node-1, not node-0"},
		{"a user's key on the control plane", catalog.Hardway, []cluster.User{{Name: "jane"}}, "server",
			addFile("server", key("/root/jane.key", "user-jane")),
			"the key of user-jane belongs to a user"},
		{"kubeadm sa key on a worker", catalog.Kubeadm, nil, "node-1",
			addFile("node-1", key("/etc/kubernetes/pki/sa.key", "sa")),
			"key pair sa is the control plane's"},
		{"kubelet key of another node on disk", catalog.Hardway, nil, "node-0",
			func(t *testing.T, _ *catalog.Plan, st store.Store) {
				copyFile(t, st.KeyPath("node-1"), st.KeyPath("node-0"))
			},
			"node-0.key does not match " + "PKI/node-0.crt"},
		{"admin pair copied over a kubelet pair", catalog.Hardway, nil, "node-0",
			func(t *testing.T, _ *catalog.Plan, st store.Store) {
				copyFile(t, st.KeyPath("admin"), st.KeyPath("node-0"))
				copyFile(t, st.CertPath("admin"), st.CertPath("node-0"))
			},
			"node-0.crt is CN=admin O=[system:masters], but the plan's node-0 is CN=system:node:node-0 O=[system:nodes]"},
		{"pair from another CA", catalog.Hardway, nil, "node-0",
			func(t *testing.T, plan *catalog.Plan, st store.Store) {
				spec, _ := plan.Cert("node-0")
				caKey, _ := pki.GenerateKey(pki.ECDSAP256)
				caSpec, _ := plan.Cert("ca")
				ca, err := pki.NewCA(caKey, caSpec.Profile, time.Now())
				if err != nil {
					t.Fatal(err)
				}
				k, _ := pki.GenerateKey(pki.ECDSAP256)
				cert, err := ca.Issue(k.Public(), spec.Profile, time.Now())
				if err != nil {
					t.Fatal(err)
				}
				kp, _ := pki.EncodeKey(k)
				if err := os.WriteFile(st.KeyPath("node-0"), kp, 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(st.CertPath("node-0"), pki.EncodeCert(cert), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			"node-0.crt is not signed by PKI/ca.crt"},
		{"kubeconfig with another key", catalog.Kubeadm, nil, "node-1",
			func(t *testing.T, _ *catalog.Plan, st store.Store) {
				p := st.KubeconfigPath("kubelet-node-1.conf")
				cfg, err := kubeconfig.Load(p)
				if err != nil {
					t.Fatal(err)
				}
				other, err := kubeconfig.Load(st.KubeconfigPath("kubelet-node-0.conf"))
				if err != nil {
					t.Fatal(err)
				}
				_, u, _ := kubeconfig.Current(cfg)
				_, ou, _ := kubeconfig.Current(other)
				u.ClientKeyData = ou.ClientKeyData
				if err := kubeconfig.Replace(p, cfg); err != nil {
					t.Fatal(err)
				}
			},
			"kubelet-node-1.conf: client-key-data does not match client-certificate-data"},
		{"kubeconfig of another node's identity", catalog.Kubeadm, nil, "node-1",
			func(t *testing.T, _ *catalog.Plan, st store.Store) {
				copyFile(t, st.KubeconfigPath("kubelet-node-0.conf"), st.KubeconfigPath("kubelet-node-1.conf"))
			},
			"is CN=system:node:node-0 O=[system:nodes], but the plan's kubelet-node-1.conf is CN=system:node:node-1"},
		{"sa.key that is not sa.pub's", catalog.Kubeadm, nil, "server",
			func(t *testing.T, _ *catalog.Plan, st store.Store) {
				k, _ := pki.GenerateKey(pki.ECDSAP256)
				kp, _ := pki.EncodeKey(k)
				if err := os.WriteFile(st.KeyPath("sa"), kp, 0o600); err != nil {
					t.Fatal(err)
				}
			},
			"sa.key does not match PKI/sa.pub"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := cluster.Default()
			c.Users = tc.users
			plan, err := catalog.New(c, tc.profile)
			if err != nil {
				t.Fatal(err)
			}
			root := t.TempDir()
			st := store.Store{Dir: filepath.Join(root, "pki"), KubeconfigDir: root}
			if _, err := reconcile.Apply(context.Background(), plan, st, time.Now(), reconcile.Options{}); err != nil {
				t.Fatal(err)
			}
			if _, err := Collect(plan, st, tc.node); err != nil {
				t.Fatalf("untampered bundle refused: %v", err)
			}
			tc.tamper(t, plan, st)
			b, err := Collect(plan, st, tc.node)
			want := strings.ReplaceAll(tc.want, "PKI/", st.Dir+"/")
			if err == nil || !strings.Contains(err.Error(), want) {
				n := -1
				if b != nil {
					n = len(b.Files)
				}
				t.Fatalf("Collect = %v (%d files), want an error containing %q", err, n, want)
			}
		})
	}
}
