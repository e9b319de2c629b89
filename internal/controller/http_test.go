package controller

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"kubepki.dev/kubepki/internal/store"
)

func TestHTTPHandler(t *testing.T) {
	certFile, keyFile, _ := writeCA(t, t.TempDir(), "ca", time.Hour)
	files, err := LoadCAFiles(certFile, keyFile, store.KeyPolicy{SecretVolume: true}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := NewMetrics()
	m.signed.WithLabelValues("kubernetes.io/kube-apiserver-client").Add(3)
	m.denied.WithLabelValues("kubernetes.io/kubelet-serving", "cn-is-requester").Inc()
	var synced atomic.Bool
	h := httpHandler(m, &synced, map[string]*Signer{"kubernetes.io/kube-apiserver-client": {Name: "kubernetes.io/kube-apiserver-client", CA: files}}, false)
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		b, _ := io.ReadAll(rec.Body)
		return rec.Code, string(b)
	}
	code, body := get("/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d\n%s", code, body)
	}
	for _, want := range []string{
		`kubepki_csr_signed_total{signer="kubernetes.io/kube-apiserver-client"} 3`,
		`kubepki_csr_denied_total{policy="cn-is-requester",signer="kubernetes.io/kubelet-serving"} 1`,
		"kubepki_leader 0",
		"go_goroutines", // controller-runtime's registry, served alongside
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d", code)
	}
	if code, _ := get("/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before the cache synced: %d, want 503", code)
	}
	synced.Store(true)
	if code, _ := get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after: %d", code)
	}
	if _, body := get("/readyz"); body != "ok\n" {
		t.Errorf("/readyz body %q, want ok", body)
	}
	// A CA file that breaks: still ready (the last good CA signs), with
	// the reason in the body.
	replaceFile(t, certFile, []byte("not a certificate"))
	code, body = get("/readyz")
	if code != http.StatusOK || !strings.Contains(body, "warning: signer kubernetes.io/kube-apiserver-client: CA files do not load since ") ||
		!strings.Contains(body, "signing with the CA loaded before") {
		t.Errorf("/readyz with a broken CA file: %d %q, want 200 with a warning", code, body)
	}
	if got := m.Totals()[metricSigned]; got != 3 {
		t.Errorf("Totals signed = %v", got)
	}
	if code, _ := get("/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("/debug/pprof/ without profiling: %d, want 404", code)
	}
}

// TestHTTPHandlerProfiling: --profiling serves Go's profiler beside the
// metrics, as kube-controller-manager's does.
func TestHTTPHandlerProfiling(t *testing.T) {
	var synced atomic.Bool
	h := httpHandler(NewMetrics(), &synced, nil, true)
	for _, tc := range []struct {
		path, want string
	}{
		{"/debug/pprof/", "heap"},
		{"/debug/pprof/heap?debug=1", "heap profile:"},
		{"/debug/pprof/goroutine?debug=1", "goroutine profile:"},
		{"/debug/pprof/cmdline", ""},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), tc.want) {
			t.Errorf("%s: %d, body lacks %q", tc.path, rec.Code, tc.want)
		}
	}
}
