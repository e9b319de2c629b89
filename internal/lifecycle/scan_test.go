package lifecycle

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	"kubepki.dev/kubepki/internal/kubeconfig"
	"kubepki.dev/kubepki/internal/pki"
)

// scanCA is a CA and a leaf key for making test certificates quickly: one
// ECDSA key signs them all.
type scanCA struct {
	ca  *pki.CA
	key crypto.Signer
}

func newScanCA(t testing.TB, cn string) scanCA {
	t.Helper()
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.NewCA(key, pki.Profile{Subject: pki.Subject{CommonName: cn}, Validity: 10 * 365 * expDay}, expT0)
	if err != nil {
		t.Fatal(err)
	}
	return scanCA{ca: ca, key: key}
}

// leaf issues a certificate for cn valid for validity from expT0.
func (s scanCA) leaf(t testing.TB, cn string, validity time.Duration) *x509.Certificate {
	t.Helper()
	c, err := s.ca.Issue(s.key.Public(), pki.Profile{Subject: pki.Subject{CommonName: cn}, Usages: []pki.Usage{pki.UsageClientAuth}, Validity: validity}, expT0)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writeScanFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// scanKubeconfigYAML is a kubeconfig with the CA and a user's certificate.
func scanKubeconfigYAML(t testing.TB, ca, user *x509.Certificate, userName string) []byte {
	t.Helper()
	cfg := kubeconfig.New(kubeconfig.Params{
		Cluster: "kubernetes", User: userName, Context: userName + "@kubernetes", Server: "https://127.0.0.1:6443",
		CA: pki.EncodeCert(ca), Cert: pki.EncodeCert(user), Key: []byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"),
	})
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

type scanRow struct {
	path, entry, subject, issuer string
	days                         int64
}

func scanRows(r ScanReport, root string) []scanRow {
	var out []scanRow
	for _, e := range r.Certificates {
		rel, _ := filepath.Rel(root, e.Path)
		out = append(out, scanRow{filepath.ToSlash(rel), e.Entry(), e.Subject, e.Issuer, e.ResidualSeconds / 86400})
	}
	return out
}

func TestScan(t *testing.T) {
	ca := newScanCA(t, "fleet-ca")
	other := newScanCA(t, "other-ca")
	root := t.TempDir()
	p := func(rel string) string { return filepath.Join(root, filepath.FromSlash(rel)) }
	keyPEM, err := pki.EncodeKey(ca.key)
	if err != nil {
		t.Fatal(err)
	}

	// A bundle of two certificates after a key.
	writeScanFile(t, p("a/bundle.pem"), slices2(keyPEM, pki.EncodeCert(ca.leaf(t, "one", 100*expDay)), pki.EncodeCert(ca.ca.Cert)))
	// openssl x509 -text output: text before the PEM block.
	writeScanFile(t, p("a/b/c/text.crt"), slices2([]byte("Certificate:\n    Data:\n        Version: 3 (0x2)\n"), pki.EncodeCert(ca.leaf(t, "texty", 10*expDay))))
	// Any name.
	writeScanFile(t, p("a/b/noext"), pki.EncodeCert(other.leaf(t, "noext", 400*expDay)))
	// A kubeconfig, in YAML and in JSON.
	kc := scanKubeconfigYAML(t, ca.ca.Cert, ca.leaf(t, "system:node:n1", 20*expDay), "system:node:n1")
	writeScanFile(t, p("k/kubelet.conf"), kc)
	cfg, err := clientcmd.Load(kc)
	if err != nil {
		t.Fatal(err)
	}
	cfg.AuthInfos["second"] = cfg.AuthInfos["system:node:n1"].DeepCopy()
	js, err := clientcmdJSON(cfg)
	if err != nil {
		t.Fatal(err)
	}
	writeScanFile(t, p("k/config.json"), js)
	// A CSR, a key, YAML that is not a kubeconfig, a binary file that
	// mentions a PEM header after a NUL byte: nothing.
	writeScanFile(t, p("noise/key.pem"), keyPEM)
	writeScanFile(t, p("noise/csr.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte{1, 2, 3}}))
	writeScanFile(t, p("noise/deploy.yaml"), []byte("kind: Deployment\nmetadata:\n  name: x\n"))
	writeScanFile(t, p("noise/blob.bin"), slices2([]byte{0x7f, 'E', 'L', 'F', 0}, pki.EncodeCert(ca.ca.Cert)))
	// Over 1 MiB: skipped, even though it holds a certificate.
	writeScanFile(t, p("big/huge.pem"), slices2(pki.EncodeCert(ca.ca.Cert), bytes.Repeat([]byte("#"), MaxScanFileSize)))
	// A damaged certificate is a problem; its file's good one still counts.
	bad := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not DER")})
	writeScanFile(t, p("bad/mixed.pem"), slices2(bad, pki.EncodeCert(ca.leaf(t, "after-bad", 5*expDay))))
	// A symlink inside the tree is not followed (the target is scanned
	// once, under its own name).
	if err := os.Symlink(p("a/b/noext"), p("a/link.pem")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(p("a"), p("dirlink")); err != nil {
		t.Fatal(err)
	}

	now := expT0.Add(time.Hour)
	r, err := Scan(context.Background(), []string{root, p("a/b/noext")}, now)
	if err != nil {
		t.Fatal(err)
	}
	want := []scanRow{
		{"a/b/c/text.crt", "#0", "texty", "fleet-ca", 9},
		{"a/b/noext", "#0", "noext", "other-ca", 399},
		{"a/bundle.pem", "#0", "one", "fleet-ca", 99},
		{"a/bundle.pem", "#1", "fleet-ca", "fleet-ca", 3649},
		{"bad/mixed.pem", "#1", "after-bad", "fleet-ca", 4},
		{"k/config.json", "cluster kubernetes", "fleet-ca", "fleet-ca", 3649},
		{"k/config.json", "user second", "system:node:n1", "fleet-ca", 19},
		{"k/config.json", "user system:node:n1", "system:node:n1", "fleet-ca", 19},
		{"k/kubelet.conf", "cluster kubernetes", "fleet-ca", "fleet-ca", 3649},
		{"k/kubelet.conf", "user system:node:n1", "system:node:n1", "fleet-ca", 19},
	}
	if got := scanRows(r, root); !reflect.DeepEqual(got, want) {
		t.Errorf("rows:\n%s\nwant:\n%s", fmtRows(got), fmtRows(want))
	}
	if len(r.Problems) != 1 || r.Problems[0].Path != p("bad/mixed.pem") || !strings.Contains(r.Problems[0].Error, "certificate #0") {
		t.Errorf("problems %+v", r.Problems)
	}
	if r.Files != 10 || r.SkippedLarge != 1 {
		t.Errorf("files %d, skipped %d; want 10, 1", r.Files, r.SkippedLarge)
	}
	// Within 30 days: texty, after-bad and the three kubelet users.
	wantSum := Summary{Total: 10, ExpiringSoon: 5, Unreadable: 1}
	if r.Summary != wantSum || r.Severity() != SeverityWarning {
		t.Errorf("summary %+v (%v), want %+v", r.Summary, r.Severity(), wantSum)
	}
	if e := r.Certificates[3]; !e.IsCA || e.Index != 1 || e.User != "" || e.Cluster != "" {
		t.Errorf("CA entry %+v", e)
	}

	// Deterministic, and a symlinked root is followed.
	again, err := Scan(context.Background(), []string{p("a/b/noext"), root}, now)
	if err != nil {
		t.Fatal(err)
	}
	again.Roots = r.Roots
	if !reflect.DeepEqual(again, r) {
		t.Error("a second scan gave a different report")
	}
	viaLink, err := Scan(context.Background(), []string{p("dirlink")}, now)
	if err != nil {
		t.Fatal(err)
	}
	if got := scanRows(viaLink, p("dirlink")); len(got) != 4 || got[0].path != "b/c/text.crt" {
		t.Errorf("through a symlinked root: %v", got)
	}

	// Time passes.
	later := r.Within(0)
	if later.Summary.ExpiringSoon != 0 || later.Severity() != SeverityWarning /* the problem */ {
		t.Errorf("no window: %+v", later.Summary)
	}
	r2, err := Scan(context.Background(), []string{p("a")}, expT0.Add(11*expDay))
	if err != nil {
		t.Fatal(err)
	}
	if r2.Summary.Expired != 1 || r2.Severity() != SeverityExpired || r2.Certificates[0].Residual != "<invalid>" {
		t.Errorf("eleven days on: %+v %+v", r2.Summary, r2.Certificates[0])
	}
}

func slices2(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func fmtRows(rows []scanRow) string {
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "  %+v\n", r)
	}
	return b.String()
}

// clientcmdJSON writes a kubeconfig as JSON (kubectl reads both).
func clientcmdJSON(cfg *clientcmdapi.Config) ([]byte, error) {
	y, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, err
	}
	return clientcmdJSONBytes(y)
}

// clientcmdJSONBytes converts a YAML kubeconfig to JSON.
func clientcmdJSONBytes(y []byte) ([]byte, error) { return yaml.YAMLToJSON(y) }

func TestScanErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := Scan(context.Background(), []string{filepath.Join(dir, "nope")}, expT0)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "nope") {
		t.Errorf("missing root: %v", err)
	}
	if _, err := Scan(context.Background(), nil, expT0); err == nil {
		t.Error("no paths: no error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	writeScanFile(t, filepath.Join(dir, "x.pem"), []byte("x"))
	if _, err := Scan(ctx, []string{dir}, expT0); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	// An empty tree is an empty, clean report.
	empty, err := Scan(context.Background(), []string{t.TempDir()}, expT0)
	if err != nil || len(empty.Certificates) != 0 || empty.Certificates == nil || empty.Severity() != SeverityOK {
		t.Errorf("empty tree: %+v, %v", empty, err)
	}
	if os.Geteuid() != 0 {
		locked := filepath.Join(dir, "locked.pem")
		writeScanFile(t, locked, []byte("-----BEGIN"))
		if err := os.Chmod(locked, 0); err != nil {
			t.Fatal(err)
		}
		r, err := Scan(context.Background(), []string{dir}, expT0)
		if err != nil || len(r.Problems) != 1 || r.Problems[0].Path != locked {
			t.Errorf("unreadable file: %+v, %v", r.Problems, err)
		}
	}
}

// TestReadScanFile covers the read loop: exact sizes, empty files, the
// limit.
func TestReadScanFile(t *testing.T) {
	dir := t.TempDir()
	var buf []byte
	for _, n := range []int{0, 1, 4095, 4096, 4097, 100000, MaxScanFileSize, MaxScanFileSize + 1} {
		path := filepath.Join(dir, fmt.Sprint(n))
		data := bytes.Repeat([]byte{'a' + byte(n%26)}, n)
		writeScanFile(t, path, data)
		got, large, err := readScanFile(path, buf)
		if err != nil {
			t.Fatal(err)
		}
		if wantLarge := n > MaxScanFileSize; large != wantLarge {
			t.Errorf("%d bytes: large %v", n, large)
			continue
		}
		if !large && !bytes.Equal(got, data) {
			t.Errorf("%d bytes: read %d", n, len(got))
		}
		buf = got[:0]
	}
}

func TestWriteScanTable(t *testing.T) {
	r := ScanReport{Now: expT0, Certificates: []ScanEntry{
		{Path: "fleet/n1/kubelet.conf", User: "system:node:n1", Subject: "system:node:n1", Issuer: "kubernetes", NotAfter: expT0.Add(20 * expDay)},
		{Path: "fleet/n1/pki/ca.crt", Index: 1, Subject: "kubernetes\tevil\nname", Issuer: "kubernetes", NotAfter: expT0.Add(-3 * expDay)},
	}}.Within(DefaultWarnWithin)
	var buf bytes.Buffer
	if err := WriteScanTable(&buf, r); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"PATH                    ENTRY                 SUBJECT                EXPIRES                  RESIDUAL TIME   ISSUER\n" +
		"fleet/n1/kubelet.conf   user system:node:n1   system:node:n1         Apr 03, 2026 15:09 UTC   20d             kubernetes\n" +
		"fleet/n1/pki/ca.crt     #1                    kubernetes?evil?name   Mar 11, 2026 15:09 UTC   <invalid>       kubernetes\n"
	if buf.String() != want {
		t.Errorf("got:\n%q\nwant:\n%q", buf.String(), want)
	}
}

func TestParseScanFileKubeconfigProblems(t *testing.T) {
	ca := newScanCA(t, "k-ca")
	good := base64.StdEncoding.EncodeToString(pki.EncodeCert(ca.ca.Cert))
	for _, tc := range []struct {
		name, data string
		entries    int
		problem    string
	}{
		{"bad base64", "kind: Config\nusers:\n- name: u\n  user:\n    client-certificate-data: '!!!'\n", 0, "user u client-certificate-data: illegal base64"},
		{"not PEM", "kind: Config\nclusters:\n- name: c\n  cluster:\n    certificate-authority-data: " + base64.StdEncoding.EncodeToString([]byte("hello")) + "\n", 0, "no PEM certificate"},
		{"broken YAML", "kind: Config\nclient-certificate-data: [\n", 0, "does not parse"},
		{"not kind Config", "kind: Secret\nkind2: Config\nclient-certificate-data: " + good + "\n", 0, ""},
		{"no kind marker", "users:\n- user:\n    client-certificate-data: " + good + "\n", 0, ""},
		{"unnamed user", "kind: Config\nusers:\n- user:\n    client-certificate-data: " + good + "\n", 1, ""},
	} {
		entries, problems := parseScanFile("f", []byte(tc.data))
		if len(entries) != tc.entries {
			t.Errorf("%s: %d entries, want %d", tc.name, len(entries), tc.entries)
		}
		switch {
		case tc.problem == "" && len(problems) > 0:
			t.Errorf("%s: problems %v", tc.name, problems)
		case tc.problem != "" && (len(problems) != 1 || !strings.Contains(problems[0].Error, tc.problem)):
			t.Errorf("%s: problems %v, want %q", tc.name, problems, tc.problem)
		}
	}
}
