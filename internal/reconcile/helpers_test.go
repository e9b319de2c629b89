package reconcile

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/kubeconfig"
	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/pkitest"
	"kubepki.dev/kubepki/internal/store"
)

var testNow = time.Date(2026, time.March, 14, 15, 9, 26, 0, time.UTC)

// oldTime is what file times are set to before a run that must not touch
// them, so that any rewrite shows even on a coarse-grained file system.
var oldTime = time.Date(2001, time.February, 3, 4, 5, 6, 0, time.UTC)

// itemIDs lists the plan in Examine's order: certificates with files, key
// pairs, kubeconfigs; each as kind/name (names repeat across kinds).
func itemIDs(plan *catalog.Plan) []string {
	var out []string
	for _, c := range plan.Certs {
		switch {
		case c.Embedded:
		case c.Profile.IsCA:
			out = append(out, "ca/"+c.Name)
		default:
			out = append(out, "cert/"+c.Name)
		}
	}
	for _, k := range plan.Keys {
		out = append(out, "keypair/"+k.Name)
	}
	for _, k := range plan.Kubeconfigs {
		out = append(out, "kubeconfig/"+k.Name)
	}
	return out
}

// keysToGenerate is how many keys Apply makes for an empty directory.
func keysToGenerate(plan *catalog.Plan) int {
	n := len(plan.Keys)
	for _, c := range plan.Certs {
		if !c.Embedded {
			n++
		}
	}
	for _, k := range plan.Kubeconfigs {
		if c, ok := plan.Cert(k.Cert); ok && c.Embedded {
			n++
		}
	}
	return n
}

func id(s Status) string { return string(s.Kind) + "/" + s.Name }

func mustApply(t *testing.T, plan *catalog.Plan, st store.Store, now time.Time, opts Options) []Result {
	t.Helper()
	rs, err := Apply(context.Background(), plan, st, now, opts)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if got, want := resultIDs(rs), itemIDs(plan); !slices.Equal(got, want) {
		t.Fatalf("Apply reported\n%q\nwant the plan's items in Examine's order\n%q", got, want)
	}
	return rs
}

func resultIDs(rs []Result) []string {
	var out []string
	for _, r := range rs {
		out = append(out, id(r.Status))
	}
	return out
}

func byID[T interface{ status() Status }](xs []T) map[string]T {
	m := map[string]T{}
	for _, x := range xs {
		m[id(x.status())] = x
	}
	return m
}

func (s Status) status() Status { return s }

// fileState is what a run must not change about a file.
type fileState struct {
	data  []byte
	mode  os.FileMode
	mtime time.Time
	ino   uint64
}

// snapshot records every entry under dir, relative path → state.
func snapshot(t *testing.T, dir string) map[string]fileState {
	t.Helper()
	out := map[string]fileState{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		s := fileState{mode: fi.Mode(), mtime: fi.ModTime()}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			s.ino = st.Ino
		}
		if d.IsDir() {
			rel += "/"
			s.mtime = time.Time{} // directory mtimes change with any temp file
		} else if s.data, err = os.ReadFile(p); err != nil {
			return err
		}
		out[rel] = s
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// ageFiles sets every file's times to oldTime.
func ageFiles(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return os.Chtimes(p, oldTime, oldTime)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func assertUnchanged(t *testing.T, before, after map[string]fileState) {
	t.Helper()
	for p, b := range before {
		a, ok := after[p]
		switch {
		case !ok:
			t.Errorf("%s was removed", p)
		case !bytes.Equal(a.data, b.data):
			t.Errorf("%s content changed", p)
		case a.mode != b.mode:
			t.Errorf("%s mode changed from %v to %v", p, b.mode, a.mode)
		case !a.mtime.Equal(b.mtime):
			t.Errorf("%s mtime changed from %v to %v", p, b.mtime, a.mtime)
		case a.ino != b.ino:
			t.Errorf("%s was replaced (inode %d → %d)", p, b.ino, a.ino)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s appeared", p)
		}
	}
}

// expectedFiles is the exact set of entries a complete store holds,
// relative to root.
func expectedFiles(t *testing.T, plan *catalog.Plan, st store.Store, root string) []string {
	t.Helper()
	set := map[string]bool{"./": true}
	add := func(path string) {
		rel, err := filepath.Rel(root, path)
		if err != nil || strings.HasPrefix(rel, "..") {
			t.Fatalf("%s is outside %s", path, root)
		}
		set[rel] = true
		for d := filepath.Dir(rel); d != "."; d = filepath.Dir(d) {
			set[d+"/"] = true
		}
	}
	for _, c := range plan.Certs {
		if !c.Embedded {
			add(st.CertPath(c.Path))
			add(st.KeyPath(c.Path))
		}
	}
	for _, k := range plan.Keys {
		add(st.KeyPath(k.Path))
		add(st.PubPath(k.Path))
	}
	for _, k := range plan.Kubeconfigs {
		add(st.KubeconfigPath(k.File))
	}
	var out []string
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

func keysOf(m map[string]fileState) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func readCert(t *testing.T, st store.Store, stem string) *x509.Certificate {
	t.Helper()
	c, err := st.ReadCert(stem)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func readKey(t *testing.T, st store.Store, stem string) crypto.Signer {
	t.Helper()
	k, err := st.ReadKey(stem)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustRemove(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
}

// writePair writes a certificate and its key for a plan stem, replacing
// whatever is there.
func writePair(t *testing.T, st store.Store, stem string, cert *x509.Certificate, key crypto.Signer) {
	t.Helper()
	pkitest.WriteFile(t, st.CertPath(stem), pki.EncodeCert(cert), 0o644)
	if key != nil {
		pkitest.WriteFile(t, st.KeyPath(stem), pkitest.EncodeKey(t, key), 0o600)
	}
}

// checkStates asserts the state of every item: those in want have that
// state, every other item has state other.
func checkStates(t *testing.T, ss []Status, other State, want map[string]State) {
	t.Helper()
	seen := map[string]bool{}
	for _, s := range ss {
		w, ok := want[id(s)]
		if ok {
			seen[id(s)] = true
		} else {
			w = other
		}
		if s.State != w {
			t.Errorf("%s: state %s, want %s (findings %q)", id(s), s.State, w, s.Findings)
		}
		if s.State == Valid && len(s.Findings) != 0 {
			t.Errorf("%s: valid with findings %q", id(s), s.Findings)
		}
	}
	for n := range want {
		if !seen[n] {
			t.Errorf("no item %s in the plan", n)
		}
	}
}

func checkActions(t *testing.T, rs []Result, other Action, want map[string]Action) {
	t.Helper()
	seen := map[string]bool{}
	for _, r := range rs {
		w, ok := want[id(r.Status)]
		if ok {
			seen[id(r.Status)] = true
		} else {
			w = other
		}
		if r.Action != w {
			t.Errorf("%s: action %s, want %s (state %s, findings %q)", id(r.Status), r.Action, w, r.State, r.Findings)
		}
	}
	for n := range want {
		if !seen[n] {
			t.Errorf("no item %s in the results", n)
		}
	}
}

func statuses(rs []Result) []Status {
	out := make([]Status, len(rs))
	for i, r := range rs {
		out[i] = r.Status
	}
	return out
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// pemPKCS1 writes an RSA key the way kubeadm and openssl -traditional do.
func pemPKCS1(t *testing.T, k crypto.Signer) []byte {
	t.Helper()
	r, ok := k.(*rsa.PrivateKey)
	if !ok {
		t.Fatalf("%T is not RSA", k)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(r)})
}

// certOf returns a certificate of the plan and its key, from its files or,
// for an embedded one, from its kubeconfig.
func certOf(t *testing.T, plan *catalog.Plan, st store.Store, c catalog.CertSpec) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	if !c.Embedded {
		return readCert(t, st, c.Path), readKey(t, st, c.Path)
	}
	k, ok := plan.KubeconfigOf(c.Name)
	if !ok {
		t.Fatalf("embedded certificate %s has no kubeconfig", c.Name)
	}
	cert, key, _ := kubeconfigPair(t, st, k)
	return cert, key
}

// kubeconfigPair loads a kubeconfig of the plan: its client pair and its
// current cluster's server and CA data.
func kubeconfigPair(t *testing.T, st store.Store, k catalog.KubeconfigSpec) (*x509.Certificate, crypto.Signer, kubeconfigCluster) {
	t.Helper()
	cfg, err := kubeconfig.Load(st.KubeconfigPath(k.File))
	if err != nil {
		t.Fatal(err)
	}
	cl, _, err := kubeconfig.Current(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := kubeconfig.ClientPair(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key, kubeconfigCluster{Server: cl.Server, CAData: cl.CertificateAuthorityData, Context: cfg.CurrentContext}
}

type kubeconfigCluster struct {
	Server, Context string
	CAData          []byte
}

// rewriteKubeconfigKey replaces a kubeconfig's client certificate and key,
// keeping its CA data.
func rewriteKubeconfigKey(t *testing.T, st store.Store, k catalog.KubeconfigSpec, cert *x509.Certificate, key crypto.Signer) {
	t.Helper()
	path := st.KubeconfigPath(k.File)
	cfg, err := kubeconfig.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	cl, _, err := kubeconfig.Current(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := kubeconfig.SetClientPair(cfg, cl.CertificateAuthorityData, pki.EncodeCert(cert), pkitest.EncodeKey(t, key)); err != nil {
		t.Fatal(err)
	}
	if err := kubeconfig.Replace(path, cfg); err != nil {
		t.Fatal(err)
	}
}
