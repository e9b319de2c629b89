package cli

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"kubepki.dev/kubepki/internal/testenv"
)

// TestExporterProcess runs the real binary on a directory kubepki init
// made: one JSON log line at start naming the address, /metrics with a
// series per certificate, /healthz, and a clean exit 0 on SIGTERM.
func TestExporterProcess(t *testing.T) {
	bin := testenv.Kubepki(t)
	dir := filepath.Join(t.TempDir(), "pki")
	if out, err := exec.Command(bin, "init", "--dir", dir).CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "exporter", "--dir", dir, "--listen", "127.0.0.1:0", "--served", "kube-api-server=127.0.0.1:1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	lines := bufio.NewScanner(stderr)
	var start struct {
		Msg, Listen string
		Served      []string
	}
	for lines.Scan() {
		if err := json.Unmarshal(lines.Bytes(), &start); err != nil {
			t.Fatalf("log line %q is not JSON: %v", lines.Text(), err)
		}
		if start.Msg == "kubepki exporter started" {
			break
		}
	}
	if start.Listen == "" {
		t.Fatalf("no start line with the address; last: %+v", start)
	}
	if want := "kube-api-server=127.0.0.1:1=" + filepath.Join(dir, "kube-api-server.crt"); len(start.Served) != 1 || start.Served[0] != want {
		t.Errorf("served %v, want [%s]: the plan's certificate by the component's name", start.Served, want)
	}
	rest := make(chan string)
	go func() {
		b, _ := io.ReadAll(stderr)
		rest <- string(b)
	}()

	get := func(path string) string {
		resp, err := http.Get("http://" + start.Listen + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s", path, resp.Status)
		}
		return string(b)
	}
	metrics := get("/metrics")
	for _, want := range []string{
		`x509_cert_not_after{embedded_key="",embedded_kind="",filename="admin.crt",filepath="` + filepath.Join(dir, "admin.crt") + `"`,
		`embedded_kind="user",filename="admin.kubeconfig"`,
		"kubepki_cert_key_mismatch{",
		"x509_read_errors 0",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if got := get("/healthz"); got != "ok\n" {
		t.Errorf("/healthz: %q", got)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The rest of stderr ends when the process does; Wait comes after.
	var log string
	select {
	case log = <-rest:
	case <-time.After(30 * time.Second):
		t.Fatal("still running 30s after SIGTERM")
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("after SIGTERM: %v, want exit 0", err)
	}
	if !strings.Contains(log, `"msg":"kubepki exporter stopped"`) {
		t.Errorf("no stop line in %q", log)
	}
}
