package distribute

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"kubepki.dev/kubepki/internal/bundle"
	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/distribute/sshdtest"
	"kubepki.dev/kubepki/internal/reconcile"
	"kubepki.dev/kubepki/internal/store"
)

// fixture is a real hard-way PKI whose nodes are all reached at one sshd
// on 127.0.0.1, with credentials and a known_hosts file that trust it.
type fixture struct {
	srv     *sshdtest.Server
	cluster *cluster.Cluster
	plan    *catalog.Plan
	st      store.Store
	known   string
	creds   *Credentials
}

// newFixture starts sshd and builds the plan's files with reconcile.Apply.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	srv := sshdtest.Start(t)
	c := cluster.Default()
	for i := range c.Nodes {
		c.Nodes[i].SSH = cluster.SSH{Address: srv.Addr, User: srv.User}
	}
	plan, err := catalog.New(c, catalog.Hardway)
	if err != nil {
		t.Fatal(err)
	}
	st := store.Store{Dir: t.TempDir()}
	results, err := reconcile.Apply(t.Context(), plan, st, time.Now(), reconcile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if r.Action != reconcile.Created {
			t.Fatalf("reconcile: %s: %s %v", r.Name, r.Action, r.Findings)
		}
	}
	creds, err := LoadCredentials(srv.IdentityFile, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { creds.Close() })
	return &fixture{
		srv: srv, cluster: c, plan: plan, st: st, creds: creds,
		known: sshdtest.WriteKnownHosts(t, srv.KnownHostsLine()),
	}
}

// bundle collects a node's bundle.
func (f *fixture) bundle(t *testing.T, node string) *bundle.Bundle {
	t.Helper()
	b, err := bundle.Collect(f.plan, f.st, node)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Files) == 0 {
		t.Fatalf("bundle %s is empty", node)
	}
	return b
}

// target is the node's SSH destination, from its spec.
func (f *fixture) target(t *testing.T, node string) Target {
	t.Helper()
	for _, n := range f.cluster.Nodes {
		if n.Name == node {
			tg, err := TargetFor(n)
			if err != nil {
				t.Fatal(err)
			}
			return tg
		}
	}
	t.Fatalf("no node %s", node)
	return Target{}
}

// options checks host keys against knownHostsFile (default the fixture's)
// and installs below root.
func (f *fixture) options(t *testing.T, knownHostsFile, root string) Options {
	t.Helper()
	if knownHostsFile == "" {
		knownHostsFile = f.known
	}
	kh, err := LoadKnownHosts(knownHostsFile)
	if err != nil {
		t.Fatal(err)
	}
	return Options{
		HostKeyCallback: kh.HostKeyCallback, HostKeyAlgorithms: kh.Algorithms,
		Auth: f.creds.AuthMethods(), Timeout: 5 * time.Second, RemoteRoot: root,
	}
}

// push pushes node's bundle below root and fails the test on an error.
func (f *fixture) push(t *testing.T, node, root string, dryRun bool) Report {
	t.Helper()
	opts := f.options(t, "", root)
	opts.DryRun = dryRun
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	r, err := Push(ctx, f.target(t, node), f.bundle(t, node), opts)
	if err != nil {
		t.Fatalf("push %s: %v", node, err)
	}
	return r
}

// actions maps each reported path to its action.
func actions(r Report) map[string]Action {
	m := map[string]Action{}
	for _, f := range r.Files {
		m[f.Path] = f.Action
	}
	return m
}

// assertAll checks that every file of b and the manifest got action want.
func assertAll(t *testing.T, r Report, b *bundle.Bundle, want Action) {
	t.Helper()
	if len(r.Files) != len(b.Files)+1 {
		t.Errorf("%d files reported, want %d (the bundle's and the manifest)", len(r.Files), len(b.Files)+1)
	}
	for p, a := range actions(r) {
		if a != want {
			t.Errorf("%s: %s, want %s", p, a, want)
		}
	}
	if got := r.Files[len(r.Files)-1].Path; got != ManifestPath {
		t.Errorf("last file %s, want the manifest %s", got, ManifestPath)
	}
}

// assertInstalled checks every file of b below root: the SHA-256 of the
// manifest, the mode, owner root (when the test runs as root), and the
// manifest itself.
func assertInstalled(t *testing.T, root string, b *bundle.Bundle) {
	t.Helper()
	wantManifest, err := b.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	var manifest bundle.Bundle
	gotManifest := readFile(t, filepath.Join(root, ManifestPath))
	if string(gotManifest) != string(wantManifest) {
		t.Errorf("remote manifest differs from the bundle's:\n%s", gotManifest)
	}
	if err := json.Unmarshal(gotManifest, &manifest); err != nil {
		t.Fatal(err)
	}
	if len(manifest.Files) != len(b.Files) {
		t.Fatalf("manifest lists %d files, the bundle has %d", len(manifest.Files), len(b.Files))
	}
	for i, f := range b.Files {
		p := filepath.Join(root, f.Path)
		data := readFile(t, p)
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); got != manifest.Files[i].SHA256 || manifest.Files[i].Path != f.Path {
			t.Errorf("%s: sha256 %s, manifest says %s for %s", f.Path, got, manifest.Files[i].SHA256, manifest.Files[i].Path)
		}
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != f.Mode {
			t.Errorf("%s: mode %v, want %v", f.Path, fi.Mode(), f.Mode)
		}
		if st := fi.Sys().(*syscall.Stat_t); os.Geteuid() == 0 && (st.Uid != 0 || st.Gid != 0) {
			t.Errorf("%s: owned by %d:%d, want root:root", f.Path, st.Uid, st.Gid)
		}
		dir, err := os.Stat(filepath.Dir(p))
		if err != nil {
			t.Fatal(err)
		}
		if f.Mode&0o044 == 0 && dir.Mode().Perm() != 0o700 {
			t.Errorf("%s: directory mode %v, want 0700 (it holds a private key)", f.Path, dir.Mode().Perm())
		}
	}
}

// tree lists the regular files and symlinks below root, relative to it.
func tree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, "/"+filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// assertNoTempFiles checks no temporary file was left below root.
func assertNoTempFiles(t *testing.T, root string) {
	t.Helper()
	for _, p := range tree(t, root) {
		if strings.Contains(p, ".kubepki-") {
			t.Errorf("temporary file left behind: %s", p)
		}
	}
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}
