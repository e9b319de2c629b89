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
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/cluster"
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
	if _, err := Collect(plan, st, "node-0"); err == nil || !strings.Contains(err.Error(), "refusing to put CA key") {
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
	// Directories come with their modes: the key's directory private, the
	// ones above it traversable.
	for dir, want := range map[string]int64{"var/": 0o755, "var/lib/": 0o755, "var/lib/kubelet/": 0o700, "var/lib/kube-proxy/": 0o700} {
		if got, ok := dirModes[dir]; !ok || got != want {
			t.Errorf("tar directory %s: mode %o (present %v), want %o", dir, got, ok, want)
		}
	}
}
