package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"kubepki.dev/kubepki/internal/cli"
	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/pkitest"
	"kubepki.dev/kubepki/internal/report"
	"kubepki.dev/kubepki/internal/testenv"
)

// kubepkiMain runs the CLI in the test process and checks its exit code.
func kubepkiMain(t *testing.T, want int, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := cli.Main(args, strings.NewReader(""), &out, &errOut); code != want {
		t.Fatalf("kubepki %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, out.String(), errOut.String())
	}
	return out.String()
}

// realisticReport writes the report of the default hard-way cluster with
// one certificate renewed to expire in 11 days (kube-scheduler) and one
// key that is not its certificate's (kube-proxy).
func realisticReport(t *testing.T) (dir, html string) {
	t.Helper()
	// Relative paths, as a person types them (and as docs/report.png shows).
	dir = t.TempDir()
	t.Chdir(dir)
	pkiDir := "pki"
	kubepkiMain(t, 0, "init", "--dir", pkiDir)
	kubepkiMain(t, 0, "certs", "renew", "kube-scheduler", "--validity", "11d", "--dir", pkiDir)
	pkitest.WriteFile(t, filepath.Join(pkiDir, "kube-proxy.key"), pkitest.EncodeKey(t, pkitest.Key(t, pki.ECDSAP256)), 0o600)
	html = filepath.Join(dir, "report.html")
	kubepkiMain(t, 3, "report", "--dir", "pki", "--html", html)
	return dir, html
}

// chromium runs Debian's headless Chromium on a page with args.
func chromium(t *testing.T, page string, args ...string) []byte {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is not installed: run hack/setup (it installs Debian's chromium and fonts-dejavu-core): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	args = append([]string{"--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir(), "--no-first-run", "--allow-file-access-from-files"}, args...)
	cmd := exec.CommandContext(ctx, bin, append(args, "file://"+page)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

var (
	boxRe   = regexp.MustCompile(`<g class="box [a-z]+ ([a-z]+)" data-id="([^"]+)"><title>[^<]*</title><rect[^>]*></rect><rect[^>]*></rect><text class="label"[^>]*>([^<]*)</text>`)
	rowRe   = regexp.MustCompile(`<tr class="cert-row state-([a-z]+)" data-name="([^"]+)">`)
	labelRe = regexp.MustCompile(`<text class="label"[^>]*>([^<]*)</text>`)
)

// TestReportInChromium opens the report of a realistic cluster in a real
// headless Chromium: the DOM it builds has a row per certificate, a box
// per CA, certificate, kubeconfig, component and node of the graph, and
// the findings; the screenshot is a laptop-sized PNG that is not blank.
//
// KUBEPKI_UPDATE_DOCS=1 also writes docs/report.png, the README's image.
func TestReportInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("opens the report in headless Chromium; runs without -short")
	}
	testDir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	dir, html := realisticReport(t)

	dom := string(chromium(t, html, "--dump-dom"))
	rows := map[string]string{}
	for _, m := range rowRe.FindAllStringSubmatch(dom, -1) {
		rows[m[2]] = m[1]
	}
	wantRows := map[string]string{
		"ca": "ok", "admin": "ok", "node-0": "ok", "node-1": "ok", "kube-proxy": "finding",
		"kube-scheduler": "expiring", "kube-controller-manager": "ok", "kube-api-server": "ok", "service-accounts": "ok",
	}
	for name, state := range wantRows {
		if rows[name] != state {
			t.Errorf("certificate row %s: state %q, want %q", name, rows[name], state)
		}
	}
	if len(rows) != len(wantRows) {
		t.Errorf("%d certificate rows, want %d: %v", len(rows), len(wantRows), rows)
	}
	boxes := map[string]string{}
	for _, m := range boxRe.FindAllStringSubmatch(dom, -1) {
		boxes[m[2]] = m[3]
	}
	var labels []string
	for _, m := range labelRe.FindAllStringSubmatch(dom, -1) {
		labels = append(labels, m[1])
	}
	for id, label := range map[string]string{
		"ca:ca": "ca", "cert:kube-proxy": "kube-proxy", "cert:kube-api-server": "kube-api-server",
		"kubeconfig:kube-scheduler": "kube-scheduler.kubeconfig", "kubeconfig:admin": "admin.kubeconfig",
		"component:server/kube-apiserver": "kube-apiserver", "component:node-1/kubelet": "kubelet",
		"node:server": "server", "node:node-0": "node-0", "node:node-1": "node-1",
	} {
		if boxes[id] != label {
			t.Errorf("graph box %s: SVG text %q, want %q", id, boxes[id], label)
		}
		if !slices.Contains(labels, label) {
			t.Errorf("no SVG text element %q in the graph", label)
		}
	}
	if len(boxes) != 26 {
		t.Errorf("%d graph boxes, want 26 (1 CA, 8 certificates, 6 kubeconfigs, 8 components, 3 nodes)", len(boxes))
	}
	for _, want := range []string{
		"invalid: private key does not match the certificate",
		"kubepki certs renew kube-proxy --dir pki",
		"restart kube-scheduler on server",
		`<svg class="timeline"`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the DOM lacks %q", want)
		}
	}

	shot := filepath.Join(dir, "shot.png")
	chromium(t, html, "--screenshot="+shot, "--window-size=1366,900")
	checkScreenshot(t, shot, 1366, 900)

	if os.Getenv("KUBEPKI_UPDATE_DOCS") != "" {
		docs := filepath.Join(testDir, "..", "..", "docs", "report.png")
		chromium(t, html, "--screenshot="+docs, "--window-size=1366,1480")
		checkScreenshot(t, docs, 1366, 1480)
		t.Logf("wrote %s", docs)
	}
}

// checkScreenshot decodes a PNG and checks its size and that it shows
// something: a blank or failed page has a handful of colours.
func checkScreenshot(t *testing.T, path string, w, h int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot %s: %v", path, err)
	}
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Errorf("screenshot is %dx%d, want %dx%d", b.Dx(), b.Dy(), w, h)
	}
	colours := map[[4]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, a := img.At(x, y).RGBA()
			colours[[4]uint32{r, g, bl, a}] = true
		}
	}
	if len(colours) < 64 {
		t.Errorf("screenshot has %d distinct colours: blank?", len(colours))
	}
}

// TestReportKubeadm: the report of a directory the real kubeadm wrote
// (init phase certs all, kubeconfig all) is clean, with kubeadm's
// certificates, kubeconfigs and components in it.
func TestReportKubeadm(t *testing.T) {
	n := testenv.NewKubeadmNode(t, testenv.KubeadmNodeConfig{})
	html := filepath.Join(t.TempDir(), "kubeadm.html")
	out := kubepkiMain(t, 0, "report", "--dir", n.PKIDir, "--html", html, "-o", "json")
	var r report.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Profile != "kubeadm" || r.Counts.Findings != 0 || r.Counts.Expired != 0 {
		t.Errorf("profile %s, counts %+v, findings %+v", r.Profile, r.Counts, r.Findings)
	}
	var names []string
	for _, c := range r.Certificates {
		names = append(names, c.Name)
		if c.State != report.OK {
			t.Errorf("%s is %s: %v", c.Name, c.State, c.Problems)
		}
	}
	for _, want := range []string{"ca", "etcd-ca", "front-proxy-ca", "apiserver", "apiserver-kubelet-client", "etcd-server", "admin.conf", "super-admin.conf", "scheduler.conf"} {
		if !slices.Contains(names, want) {
			t.Errorf("no certificate %s; have %v", want, names)
		}
	}
	for _, id := range []string{"kubeconfig:admin.conf", "keypair:sa", "component:" + n.NodeName + "/kube-apiserver", "component:" + n.NodeName + "/etcd", "node:" + n.NodeName} {
		if _, ok := r.Graph.Node(id); !ok {
			t.Errorf("graph has no node %s", id)
		}
	}
	page, err := os.ReadFile(html)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(page, []byte(filepath.Join(n.PKIDir, "apiserver.crt"))) {
		t.Errorf("the page does not name %s", filepath.Join(n.PKIDir, "apiserver.crt"))
	}
}
