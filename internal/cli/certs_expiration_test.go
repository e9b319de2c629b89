package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"kubepki.dev/kubepki/internal/pkitest"
)

// expirationT0 is when the test PKI is made; its leaves expire 365 days
// later, its CAs ten years (and leap days) later.
var expirationT0 = time.Date(2026, time.March, 14, 15, 9, 26, 0, time.UTC)

// runAt runs kubepki with KUBEPKI_NOW set to at.
func runAt(t *testing.T, at time.Time, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	t.Setenv("KUBEPKI_NOW", at.Format(time.RFC3339))
	var out, errb bytes.Buffer
	code = Main(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestCheckExpirationCommand(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "pki")
	// The hard way's topology in the kubeadm layout: three nodes, so three
	// kubelet kubeconfigs (kubeadm's own default has one node, this host).
	spec := pkitest.SpecFile(t, nil)
	if code, out, errs := runAt(t, expirationT0, "init", "--profile", "kubeadm", "--dir", dir, "--config", spec); code != 0 {
		t.Fatalf("init: exit %d\n%s%s", code, out, errs)
	}
	day := 24 * time.Hour
	leafEnd := expirationT0.Add(365 * day)

	// Fresh: kubeadm's tables, exit 0; the profile is detected from --dir
	// and the kubeconfigs are in its parent, as in /etc/kubernetes.
	code, out, errs := runAt(t, expirationT0.Add(time.Hour), "certs", "check-expiration", "--dir", dir, "--config", spec)
	if code != 0 || errs != "" {
		t.Fatalf("fresh PKI: exit %d\n%s%s", code, out, errs)
	}
	for _, want := range []string{
		"CERTIFICATE                EXPIRES                  RESIDUAL TIME   CERTIFICATE AUTHORITY   EXTERNALLY MANAGED\n",
		"admin.conf                 Mar 14, 2027 15:09 UTC   364d            ca                      no      \n",
		"etcd-peer                  Mar 14, 2027 15:09 UTC   364d            etcd-ca                 no      \n",
		"kubelet-node-1.conf        Mar 14, 2027 15:09 UTC   364d            ca                      no      \n",
		"\nCERTIFICATE AUTHORITY   EXPIRES                  RESIDUAL TIME   EXTERNALLY MANAGED\n",
		"front-proxy-ca          Mar 14, 2036 15:09 UTC   10y             no      \n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "\n"); n != 1+14+1+1+3 {
		t.Errorf("table has %d lines, want 20:\n%s", n, out)
	}

	// The exit code follows the clock and the window.
	for _, tc := range []struct {
		at     time.Time
		args   []string
		code   int
		stderr string
	}{
		{leafEnd.Add(-25 * day), nil, 3, "14 expiring soon (within 30d)"},
		{leafEnd.Add(-25 * day), []string{"--warn-within", "0"}, 0, ""},
		{leafEnd.Add(-25 * day), []string{"--warn-within", "480h"}, 0, ""},
		{leafEnd.Add(-25 * day), []string{"--warn-within", "25d"}, 3, "(within 25d)"},
		{leafEnd.Add(time.Minute), nil, 4, "14 expired"},
		{expirationT0.Add(11 * 365 * day), []string{"--warn-within", "0"}, 4, "17 expired"},
	} {
		args := append([]string{"certs", "check-expiration", "--dir", dir, "--config", spec}, tc.args...)
		code, out, errs := runAt(t, tc.at, args...)
		if code != tc.code || !strings.Contains(errs, tc.stderr) {
			t.Errorf("%v at leaf end %+v: exit %d, stderr %q; want %d, %q\n%s", tc.args, tc.at.Sub(leafEnd), code, errs, tc.code, tc.stderr, out)
		}
	}
	if _, out, _ := runAt(t, leafEnd.Add(day), "certs", "check-expiration", "--dir", dir, "--config", spec); !strings.Contains(out, "apiserver                  Mar 14, 2027 15:09 UTC   <invalid>       ca                      no      \n") {
		t.Errorf("expired table:\n%s", out)
	}

	// JSON and YAML carry the same, with the same exit codes.
	code, out, _ = runAt(t, leafEnd.Add(-25*day), "certs", "check-expiration", "--dir", dir, "--config", spec, "-o", "json")
	if code != 3 {
		t.Errorf("-o json: exit %d", code)
	}
	var rep struct {
		Certificates []struct {
			Name            string `json:"name"`
			NotAfter        string `json:"notAfter"`
			ResidualSeconds int64  `json:"residualSeconds"`
			Residual        string `json:"residual"`
			CA              string `json:"ca"`
			ExpiringSoon    bool   `json:"expiringSoon"`
			Kubeconfig      bool   `json:"kubeconfig"`
		} `json:"certificates"`
		CertificateAuthorities []struct {
			Name              string `json:"name"`
			ExternallyManaged bool   `json:"externallyManaged"`
		} `json:"certificateAuthorities"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("-o json: %v\n%s", err, out)
	}
	if len(rep.Certificates) != 14 || len(rep.CertificateAuthorities) != 3 {
		t.Fatalf("-o json: %d certificates, %d CAs", len(rep.Certificates), len(rep.CertificateAuthorities))
	}
	if c := rep.Certificates[0]; c.Name != "admin.conf" || c.NotAfter != "2027-03-14T15:09:26Z" || c.ResidualSeconds != 25*86400 ||
		c.Residual != "25d" || c.CA != "ca" || !c.ExpiringSoon || !c.Kubeconfig {
		t.Errorf("-o json: first certificate %+v", c)
	}
	code, out, _ = runAt(t, expirationT0.Add(time.Hour), "certs", "check-expiration", "--dir", dir, "--config", spec, "-o", "yaml")
	var y map[string]any
	if err := yaml.Unmarshal([]byte(out), &y); err != nil || code != 0 || len(y["certificateAuthorities"].([]any)) != 3 {
		t.Errorf("-o yaml: exit %d, %v\n%s", code, err, out)
	}

	// A missing file is a row and exit 3.
	if err := os.Remove(filepath.Join(dir, "apiserver.crt")); err != nil {
		t.Fatal(err)
	}
	code, out, errs = runAt(t, expirationT0.Add(time.Hour), "certs", "check-expiration", "--dir", dir, "--config", spec)
	if code != 3 || !strings.Contains(errs, "1 missing") ||
		!strings.Contains(out, "apiserver                  <missing>                <missing>       ca                      no      \n") {
		t.Errorf("missing apiserver.crt: exit %d, stderr %q\n%s", code, errs, out)
	}
	// An external CA is not a problem.
	if err := os.Remove(filepath.Join(dir, "etcd", "ca.key")); err != nil {
		t.Fatal(err)
	}
	if _, out, _ = runAt(t, expirationT0.Add(time.Hour), "certs", "check-expiration", "--dir", dir, "--config", spec); !strings.Contains(out, "etcd-ca                 Mar 14, 2036 15:09 UTC   10y             yes     \n") ||
		!strings.Contains(out, "etcd-server                Mar 14, 2027 15:09 UTC   364d            etcd-ca                 yes     \n") {
		t.Errorf("external etcd CA:\n%s", out)
	}
}

func TestCheckExpirationScan(t *testing.T) {
	root := t.TempDir()
	a, b := filepath.Join(root, "a"), filepath.Join(root, "b")
	for _, d := range []string{a, b} {
		if code, out, errs := runAt(t, expirationT0, "init", "--profile", "hardway", "--dir", d); code != 0 {
			t.Fatalf("init: exit %d\n%s%s", code, out, errs)
		}
	}
	code, out, errs := runAt(t, expirationT0.Add(time.Hour), "certs", "check-expiration", "--scan", a)
	if code != 0 || errs != "" {
		t.Fatalf("--scan: exit %d\n%s%s", code, out, errs)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if !strings.HasPrefix(lines[0], "PATH ") || !strings.Contains(lines[0], "   ENTRY   ") || !strings.HasSuffix(lines[0], "   ISSUER") {
		t.Errorf("header %q", lines[0])
	}
	if !strings.Contains(out, filepath.Join(a, "admin.kubeconfig")) || !strings.Contains(out, "user admin") || !strings.Contains(out, "cluster kubernetes-the-hard-way") {
		t.Errorf("kubeconfig rows missing:\n%s", out)
	}
	single := len(lines)

	// Several paths, after --scan or repeated; the same path twice counts once.
	for _, args := range [][]string{{"--scan", a, b}, {"--scan", a, "--scan", b}, {"--scan", a, b, a}} {
		code, out, _ := runAt(t, expirationT0.Add(time.Hour), append([]string{"certs", "check-expiration"}, args...)...)
		if n := strings.Count(out, "\n"); code != 0 || n != 2*(single-1)+1 {
			t.Errorf("%q: exit %d, %d lines, want %d", args, code, n, 2*(single-1)+1)
		}
	}
	code, out, _ = runAt(t, expirationT0.Add(366*24*time.Hour), "certs", "check-expiration", "--scan", a, "-o", "json")
	var rep struct {
		Certificates []struct {
			Expired bool `json:"expired"`
		} `json:"certificates"`
		Summary struct {
			Expired int `json:"expired"`
		} `json:"summary"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 4 || rep.Summary.Expired == 0 || len(rep.Certificates) != single-1 {
		t.Errorf("--scan -o json a year on: exit %d, %v, %+v", code, err, rep.Summary)
	}
	if code, _, errs := runAt(t, expirationT0, "certs", "check-expiration", "--scan", filepath.Join(root, "nope")); code != 1 || !strings.Contains(errs, "nope") {
		t.Errorf("--scan of a missing path: exit %d, %s", code, errs)
	}
}

func TestCheckExpirationUsage(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"--scan", dir, "--dir", dir},
		{"--scan", dir, "--profile", "kubeadm"},
		{dir},
		{"-o", "wide"},
		{"--warn-within", "soon"},
		{"--warn-within", "-1h"},
		{"--scan"},
	} {
		code, _, errs := runAt(t, expirationT0, append([]string{"certs", "check-expiration"}, args...)...)
		if code != ExitUsage {
			t.Errorf("%q: exit %d, want %d (%s)", args, code, ExitUsage, errs)
		}
	}
	code, out, _ := runAt(t, expirationT0, "certs", "check-expiration", "--help")
	for _, want := range []string{"Exit codes", "4  something has expired", "--warn-within", "--scan", "30d"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}
