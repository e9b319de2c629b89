package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"kubepki.dev/kubepki/internal/pki"
)

// inspectFixture writes ca.crt, admin.crt, admin.key and garbage.txt to a
// temporary directory and returns its path.
func inspectFixture(t *testing.T) string {
	t.Helper()
	now := time.Now()
	dir := t.TempDir()
	caKey, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.NewCA(caKey, pki.Profile{Subject: pki.Subject{CommonName: "kubernetes-ca"}, Validity: 24 * time.Hour}, now)
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := ca.Issue(key.Public(), pki.Profile{Subject: pki.Subject{CommonName: "admin", Organization: []string{"system:masters"}}, Usages: []pki.Usage{pki.UsageClientAuth}, Validity: time.Hour}, now)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := pki.EncodeKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"ca.crt":      pki.EncodeCert(ca.Cert),
		"admin.crt":   pki.EncodeCert(admin),
		"admin.key":   keyPEM,
		"garbage.txt": []byte("not a certificate\n"),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func runMain(stdin string, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = Main(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestInspectCommand(t *testing.T) {
	dir := inspectFixture(t)
	p := func(name string) string { return filepath.Join(dir, name) }

	t.Run("text", func(t *testing.T) {
		code, out, errs := runMain("", "inspect", p("ca.crt"), p("admin.crt"), p("admin.key"))
		if code != ExitOK || errs != "" {
			t.Fatalf("exit %d, stderr %q", code, errs)
		}
		for _, want := range []string{
			"Signed By:            certificate CN=kubernetes-ca in " + p("ca.crt") + "\n",
			"Matches:              private key in " + p("admin.key") + "\n",
			"Matches:              certificate CN=admin in " + p("admin.crt") + "\n",
			"  User:               admin\n  Groups:             system:masters\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		// Issued for an hour, moments ago.
		if !regexp.MustCompile(`\((59m 5\ds|1h) left\)`).MatchString(out) {
			t.Errorf("no time left of about an hour in:\n%s", out)
		}
	})

	t.Run("json from stdin", func(t *testing.T) {
		data, err := os.ReadFile(p("admin.crt"))
		if err != nil {
			t.Fatal(err)
		}
		code, out, errs := runMain(string(data), "inspect", "-", "-o", "json")
		if code != ExitOK {
			t.Fatalf("exit %d, stderr %q", code, errs)
		}
		var objs []struct {
			File        string `json:"file"`
			Kind        string `json:"kind"`
			Certificate struct {
				Identity struct {
					User   string   `json:"user"`
					Groups []string `json:"groups"`
				} `json:"identity"`
			} `json:"certificate"`
		}
		if err := json.Unmarshal([]byte(out), &objs); err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
		if len(objs) != 1 || objs[0].File != "(stdin)" || objs[0].Kind != "Certificate" || objs[0].Certificate.Identity.User != "admin" {
			t.Errorf("got %+v", objs)
		}
	})

	t.Run("unrecognised file", func(t *testing.T) {
		code, out, errs := runMain("", "inspect", p("garbage.txt"), p("ca.crt"), p("missing.crt"))
		if code != ExitError {
			t.Errorf("exit %d, want %d", code, ExitError)
		}
		if !strings.Contains(out, "Subject:              CN = kubernetes-ca") {
			t.Errorf("the good file is not printed:\n%s", out)
		}
		want := "kubepki: inspect " + p("garbage.txt") + ": no certificate, CSR, key or kubeconfig found\n"
		if !strings.Contains(errs, want) || !strings.Contains(errs, "missing.crt") {
			t.Errorf("stderr %q lacks %q and the missing file", errs, want)
		}
	})

	t.Run("json with nothing found is an empty list", func(t *testing.T) {
		code, out, _ := runMain("", "inspect", "-o", "json", p("garbage.txt"))
		if code != ExitError || strings.TrimSpace(out) != "[]" {
			t.Errorf("exit %d, stdout %q", code, out)
		}
	})

	for _, tt := range []struct {
		name string
		args []string
	}{
		{"no file", []string{"inspect"}},
		{"stdin twice", []string{"inspect", "-", "-"}},
		{"bad output", []string{"inspect", "-o", "xml", p("ca.crt")}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if code, _, errs := runMain("", tt.args...); code != ExitUsage {
				t.Errorf("exit %d, want %d; stderr %q", code, ExitUsage, errs)
			}
		})
	}
}

func TestInspectCommandFixedClock(t *testing.T) {
	dir := inspectFixture(t)
	t.Setenv("KUBEPKI_NOW", time.Now().Add(50*time.Hour).UTC().Format(time.RFC3339))
	code, out, errs := runMain("", "inspect", filepath.Join(dir, "admin.crt"))
	if code != ExitOK {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	if !strings.Contains(out, "(expired 2d 1h ago)") || !strings.Contains(out, "Warnings:             expired on ") {
		t.Errorf("expired certificate not reported as such:\n%s", out)
	}
}
