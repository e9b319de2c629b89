package exporter

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/client-go/tools/clientcmd"
	api "k8s.io/client-go/tools/clientcmd/api"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/pkitest"
	"kubepki.dev/kubepki/internal/reconcile"
	"kubepki.dev/kubepki/internal/store"
)

// series is one scraped sample: its labels and value.
type series struct {
	labels map[string]string
	value  float64
}

// scrape GETs url and parses it with the Prometheus text parser.
func scrape(t testing.TB, url string) map[string][]series {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape: %s: %s", resp.Status, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse scrape: %v", err)
	}
	out := map[string][]series{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			s := series{labels: map[string]string{}}
			for _, l := range m.GetLabel() {
				s.labels[l.GetName()] = l.GetValue()
			}
			s.value = value(f.GetType(), m)
			out[name] = append(out[name], s)
		}
	}
	return out
}

func value(typ dto.MetricType, m *dto.Metric) float64 {
	if typ == dto.MetricType_COUNTER {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

// find returns the series of name whose labels include want.
func find(all map[string][]series, name string, want map[string]string) []series {
	var out []series
	for _, s := range all[name] {
		ok := true
		for k, v := range want {
			if s.labels[k] != v {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, s)
		}
	}
	return out
}

// one returns the one series of name with labels want, or fails.
func one(t testing.TB, all map[string][]series, name string, want map[string]string) series {
	t.Helper()
	got := find(all, name, want)
	if len(got) != 1 {
		t.Fatalf("%s%v: %d series, want 1", name, want, len(got))
	}
	return got[0]
}

// serve runs Serve on a 127.0.0.1 listener until the test ends and returns
// the /metrics URL.
func serve(t testing.TB, e *Exporter, servedInterval time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, e, servedInterval, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String() + "/metrics"
}

// hardwayDir makes a PKI directory with kubepki's own init (reconcile.Apply)
// for the embedded default spec, and returns it with its plan.
func hardwayDir(t testing.TB) *Directory {
	t.Helper()
	plan, err := catalog.New(pkitest.Spec(nil), catalog.Hardway)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "pki")
	st := store.Store{Dir: dir, KubeconfigDir: catalog.Hardway.KubeconfigDir(dir)}
	if _, err := reconcile.Apply(context.Background(), plan, st, time.Now(), reconcile.Options{}); err != nil {
		t.Fatalf("init: %v", err)
	}
	return &Directory{Plan: plan, Store: st}
}

func readCert(t testing.TB, path string) *x509.Certificate {
	t.Helper()
	c, err := pki.ParseCert(pkitest.ReadFile(t, path))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

// replace writes data to path as every kubepki write does: a temporary file
// in the same directory, renamed over the old one.
func replace(t testing.TB, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := store.Replace(path, data, mode); err != nil {
		t.Fatal(err)
	}
}

func TestDirectoryScrape(t *testing.T) {
	d := hardwayDir(t)
	url := serve(t, New(Config{Directory: d}), time.Minute)
	got := scrape(t, url)

	crts, _ := filepath.Glob(filepath.Join(d.Store.Dir, "*.crt"))
	if len(crts) < 9 {
		t.Fatalf("init wrote %d certificates, want the hard way's 9 or more", len(crts))
	}
	for _, path := range crts {
		c := readCert(t, path)
		s := one(t, got, "x509_cert_not_after", map[string]string{"filepath": path, "embedded_kind": ""})
		if s.value != float64(c.NotAfter.Unix()) {
			t.Errorf("%s: x509_cert_not_after %v, want NotAfter %d", path, s.value, c.NotAfter.Unix())
		}
		if s.labels["subject_CN"] != c.Subject.CommonName || s.labels["serial_number"] != c.SerialNumber.String() ||
			s.labels["filename"] != filepath.Base(path) || s.labels["issuer_CN"] != c.Issuer.CommonName {
			t.Errorf("%s: labels %v do not name the certificate", path, s.labels)
		}
		if nb := one(t, got, "x509_cert_not_before", map[string]string{"filepath": path, "embedded_kind": ""}); nb.value != float64(c.NotBefore.Unix()) {
			t.Errorf("%s: x509_cert_not_before %v, want %d", path, nb.value, c.NotBefore.Unix())
		}
		in := one(t, got, "x509_cert_expires_in_seconds", map[string]string{"filepath": path, "embedded_kind": ""})
		if want := time.Until(c.NotAfter).Seconds(); in.value > want+1 || in.value < want-600 {
			t.Errorf("%s: x509_cert_expires_in_seconds %v, want about %v", path, in.value, want)
		}
		for _, name := range []string{"x509_cert_expired", "kubepki_cert_key_mismatch", "kubepki_cert_chain_broken"} {
			if s := one(t, got, name, map[string]string{"filepath": path, "embedded_kind": ""}); s.value != 0 {
				t.Errorf("%s{filepath=%s} = %v, want 0", name, path, s.value)
			}
		}
	}
	kcs, _ := filepath.Glob(filepath.Join(d.Store.KubeconfigDir, "*.kubeconfig"))
	if len(kcs) == 0 {
		t.Fatal("init wrote no kubeconfig")
	}
	for _, path := range kcs {
		cfg, err := clientcmd.LoadFromFile(path)
		if err != nil {
			t.Fatal(err)
		}
		user := cfg.Contexts[cfg.CurrentContext].AuthInfo
		c, err := pki.ParseCert(cfg.AuthInfos[user].ClientCertificateData)
		if err != nil {
			t.Fatal(err)
		}
		s := one(t, got, "x509_cert_not_after", map[string]string{"filepath": path, "embedded_kind": "user", "embedded_key": user})
		if s.value != float64(c.NotAfter.Unix()) || s.labels["subject_CN"] != c.Subject.CommonName {
			t.Errorf("%s user %s: %v %v, want %d %s", path, user, s.value, s.labels, c.NotAfter.Unix(), c.Subject.CommonName)
		}
		one(t, got, "x509_cert_not_after", map[string]string{"filepath": path, "embedded_kind": "cluster"})
		if s := one(t, got, "kubepki_cert_key_mismatch", map[string]string{"filepath": path, "embedded_kind": "user"}); s.value != 0 {
			t.Errorf("%s: key mismatch %v", path, s.value)
		}
	}
	if s := one(t, got, "x509_read_errors", nil); s.value != 0 {
		t.Errorf("x509_read_errors = %v, want 0; errors: %v", s.value, find(got, "x509_cert_error", map[string]string{}))
	}
	for _, s := range got["x509_cert_error"] {
		if s.value != 0 {
			t.Errorf("x509_cert_error%v = 1", s.labels)
		}
	}
}

// TestReplacedOnDisk renews a certificate as kubepki does (a new file
// renamed over the old one) and expects its new date at the next scrape,
// and no file read again when nothing changed.
func TestReplacedOnDisk(t *testing.T) {
	d := hardwayDir(t)
	url := serve(t, New(Config{Directory: d}), time.Minute)
	first := scrape(t, url)
	reads := one(t, first, "kubepki_exporter_file_reads_total", nil).value
	if again := one(t, scrape(t, url), "kubepki_exporter_file_reads_total", nil).value; again != reads {
		t.Errorf("an unchanged directory was read again: %v reads, then %v", reads, again)
	}

	path := d.Store.CertPath("admin")
	old := readCert(t, path)
	ca, err := d.Store.ReadCA("ca")
	if err != nil {
		t.Fatal(err)
	}
	key, err := d.Store.ReadKey("admin")
	if err != nil {
		t.Fatal(err)
	}
	renewed := pkitest.Issue(t, ca, key.Public(), pki.Profile{Subject: pki.SubjectOf(old.Subject), Usages: []pki.Usage{pki.UsageClientAuth}, Validity: 42 * 24 * time.Hour}, time.Now())
	replace(t, path, pki.EncodeCert(renewed), store.CertMode)

	got := scrape(t, url)
	s := one(t, got, "x509_cert_not_after", map[string]string{"filepath": path})
	if s.value != float64(renewed.NotAfter.Unix()) || s.labels["serial_number"] != renewed.SerialNumber.String() {
		t.Errorf("after renewal: not_after %v serial %s, want %d %s", s.value, s.labels["serial_number"], renewed.NotAfter.Unix(), renewed.SerialNumber)
	}
	if len(find(got, "x509_cert_not_after", map[string]string{"serial_number": old.SerialNumber.String(), "filepath": path})) != 0 {
		t.Error("the replaced certificate's series is still exported")
	}
	if s := one(t, got, "kubepki_cert_key_mismatch", map[string]string{"filepath": path}); s.value != 0 {
		t.Errorf("renewed with the same key: key mismatch %v", s.value)
	}
}

func TestKeyMismatch(t *testing.T) {
	d := hardwayDir(t)
	url := serve(t, New(Config{Directory: d}), time.Minute)
	cert := d.Store.CertPath("kube-scheduler")
	if s := one(t, scrape(t, url), "kubepki_cert_key_mismatch", map[string]string{"filepath": cert}); s.value != 0 {
		t.Fatalf("before: key mismatch %v", s.value)
	}
	other := pkitest.Key(t, pki.ECDSAP256)
	replace(t, d.Store.KeyPath("kube-scheduler"), pkitest.EncodeKey(t, other), store.KeyMode)
	got := scrape(t, url)
	if s := one(t, got, "kubepki_cert_key_mismatch", map[string]string{"filepath": cert}); s.value != 1 {
		t.Errorf("another key beside kube-scheduler.crt: kubepki_cert_key_mismatch %v, want 1", s.value)
	}
	for _, s := range got["kubepki_cert_key_mismatch"] {
		if s.labels["filepath"] != cert && s.value != 0 {
			t.Errorf("%v: key mismatch %v, want 0", s.labels, s.value)
		}
	}
}

func TestChainBroken(t *testing.T) {
	d := hardwayDir(t)
	now := time.Now()
	stranger := pkitest.CA(t, "stranger-ca", 24*time.Hour, now)
	key, err := d.Store.ReadKey("kube-proxy")
	if err != nil {
		t.Fatal(err)
	}
	path := d.Store.CertPath("kube-proxy")
	forged := pkitest.Issue(t, stranger, key.Public(), pki.Profile{Subject: pki.Subject{CommonName: "system:kube-proxy", Organization: []string{"system:node-proxier"}},
		Usages: []pki.Usage{pki.UsageClientAuth}, Validity: time.Hour}, now)
	replace(t, path, pki.EncodeCert(forged), store.CertMode)

	// A watched file: signed by a CA of the directory, and one by none.
	watched := t.TempDir()
	ca, err := d.Store.ReadCA("ca")
	if err != nil {
		t.Fatal(err)
	}
	k := pkitest.Key(t, pki.ECDSAP256)
	good := pkitest.Issue(t, ca, k.Public(), pki.Profile{Subject: pki.Subject{CommonName: "good"}, Usages: []pki.Usage{pki.UsageServerAuth}, Validity: time.Hour}, now)
	bad := pkitest.Issue(t, stranger, k.Public(), pki.Profile{Subject: pki.Subject{CommonName: "bad"}, Usages: []pki.Usage{pki.UsageServerAuth}, Validity: time.Hour}, now)
	pkitest.WriteFile(t, filepath.Join(watched, "good.pem"), pki.EncodeCert(good), 0o644)
	pkitest.WriteFile(t, filepath.Join(watched, "bad.pem"), pki.EncodeCert(bad), 0o644)
	// A bundle that carries its own CA is whole.
	pkitest.WriteFile(t, filepath.Join(watched, "bundle.pem"), append(pki.EncodeCert(bad), pki.EncodeCert(stranger.Cert)...), 0o644)

	got := scrape(t, serve(t, New(Config{Directory: d, WatchFiles: []string{filepath.Join(watched, "*.pem")}}), time.Minute))
	for _, tc := range []struct {
		path, cn string
		want     float64
	}{
		{path, "system:kube-proxy", 1},
		{d.Store.CertPath("admin"), "admin", 0},
		{filepath.Join(watched, "good.pem"), "good", 0},
		{filepath.Join(watched, "bad.pem"), "bad", 1},
		{filepath.Join(watched, "bundle.pem"), "bad", 0},
		{filepath.Join(watched, "bundle.pem"), "stranger-ca", 0},
	} {
		if s := one(t, got, "kubepki_cert_chain_broken", map[string]string{"filepath": tc.path, "subject_CN": tc.cn, "embedded_kind": ""}); s.value != tc.want {
			t.Errorf("%s %s: kubepki_cert_chain_broken %v, want %v", tc.path, tc.cn, s.value, tc.want)
		}
	}
}

// TestWatchedFilesAndKubeconfigs: globs and kubeconfigs, embedded and
// referenced (kubectl config set-credentials without --embed-certs); a
// removed file's series disappear; a broken file is an error series.
func TestWatchedFilesAndKubeconfigs(t *testing.T) {
	now := time.Now()
	dir := t.TempDir()
	ca := pkitest.CA(t, "watch-ca", 48*time.Hour, now)
	caFile, _ := pkitest.WriteCA(t, dir, "ca", ca)
	key := pkitest.Key(t, pki.ECDSAP256)
	jane := pkitest.Issue(t, ca, key.Public(), pki.Profile{Subject: pki.Subject{CommonName: "jane", Organization: []string{"dev"}}, Usages: []pki.Usage{pki.UsageClientAuth}, Validity: 5 * time.Hour}, now)
	pkitest.WriteFile(t, filepath.Join(dir, "jane.crt"), pki.EncodeCert(jane), 0o644)
	pkitest.WriteFile(t, filepath.Join(dir, "jane.key"), pkitest.EncodeKey(t, key), 0o600)

	cfg := api.NewConfig()
	cfg.Clusters["prod"] = &api.Cluster{Server: "https://127.0.0.1:6443", CertificateAuthority: "ca.crt"}
	cfg.AuthInfos["jane"] = &api.AuthInfo{ClientCertificate: "jane.crt", ClientKey: "jane.key"}
	cfg.AuthInfos["token"] = &api.AuthInfo{Token: "x"}
	cfg.Contexts["jane@prod"] = &api.Context{Cluster: "prod", AuthInfo: "jane"}
	cfg.CurrentContext = "jane@prod"
	referenced := filepath.Join(dir, "referenced.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, referenced); err != nil {
		t.Fatal(err)
	}
	cfg.Clusters["prod"] = &api.Cluster{Server: "https://127.0.0.1:6443", CertificateAuthorityData: pki.EncodeCert(ca.Cert)}
	cfg.AuthInfos["jane"] = &api.AuthInfo{ClientCertificateData: pki.EncodeCert(jane), ClientKeyData: pkitest.EncodeKey(t, pkitest.Key(t, pki.ECDSAP256))}
	embedded := filepath.Join(dir, "embedded.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, embedded); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "absent.kubeconfig")
	garbage := filepath.Join(dir, "garbage.pem")
	pkitest.WriteFile(t, garbage, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o644)

	e := New(Config{WatchFiles: []string{filepath.Join(dir, "*.crt"), garbage}, WatchKubeconfigs: []string{referenced, embedded, missing}})
	url := serve(t, e, time.Minute)
	got := scrape(t, url)

	for _, kc := range []string{referenced, embedded} {
		s := one(t, got, "x509_cert_not_after", map[string]string{"filepath": kc, "embedded_kind": "user", "embedded_key": "jane"})
		if s.value != float64(jane.NotAfter.Unix()) || s.labels["subject_O"] != "dev" || s.labels["issuer_CN"] != "watch-ca" {
			t.Errorf("%s: %v %v", kc, s.value, s.labels)
		}
		c := one(t, got, "x509_cert_not_after", map[string]string{"filepath": kc, "embedded_kind": "cluster", "embedded_key": "prod"})
		if c.value != float64(ca.Cert.NotAfter.Unix()) {
			t.Errorf("%s cluster CA: %v", kc, c.value)
		}
		if s := one(t, got, "kubepki_cert_chain_broken", map[string]string{"filepath": kc, "embedded_kind": "user"}); s.value != 0 {
			t.Errorf("%s: chain broken %v", kc, s.value)
		}
	}
	if len(find(got, "x509_cert_not_after", map[string]string{"embedded_key": "token"})) != 0 {
		t.Error("a token user has a certificate series")
	}
	if s := one(t, got, "kubepki_cert_key_mismatch", map[string]string{"filepath": referenced, "embedded_kind": "user"}); s.value != 0 {
		t.Errorf("referenced jane.key: key mismatch %v, want 0", s.value)
	}
	if s := one(t, got, "kubepki_cert_key_mismatch", map[string]string{"filepath": embedded, "embedded_kind": "user"}); s.value != 1 {
		t.Errorf("embedded another key: key mismatch %v, want 1", s.value)
	}
	for _, p := range []string{caFile, filepath.Join(dir, "jane.crt")} {
		one(t, got, "x509_cert_not_after", map[string]string{"filepath": p, "embedded_kind": ""})
	}
	for _, p := range []string{missing, garbage} {
		if s := one(t, got, "x509_cert_error", map[string]string{"filepath": p}); s.value != 1 {
			t.Errorf("%s: x509_cert_error %v, want 1", p, s.value)
		}
	}
	if s := one(t, got, "x509_read_errors", nil); s.value != 2 {
		t.Errorf("x509_read_errors %v, want 2 (the missing kubeconfig and the garbage file)", s.value)
	}

	if err := os.Remove(filepath.Join(dir, "jane.crt")); err != nil {
		t.Fatal(err)
	}
	got = scrape(t, url)
	if n := len(find(got, "x509_cert_not_after", map[string]string{"filepath": filepath.Join(dir, "jane.crt")})); n != 0 {
		t.Errorf("removed jane.crt still has %d series", n)
	}
	if s := one(t, got, "x509_cert_error", map[string]string{"filepath": referenced, "embedded_kind": "user", "embedded_key": "jane"}); s.value != 1 {
		t.Errorf("kubeconfig naming the removed jane.crt: x509_cert_error %v, want 1", s.value)
	}
	if len(e.cache.entries) > 8 {
		t.Errorf("cache holds %d files after the removal, want only the watched ones", len(e.cache.entries))
	}
}

// tlsServer serves cert (with key) on 127.0.0.1 until the test ends.
func tlsServer(t testing.TB, cert *x509.Certificate, key any) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = c.(*tls.Conn).Handshake()
				c.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

// TestServedDiffersFromDisk: a component keeps serving its old certificate
// after the file was renewed.
func TestServedDiffersFromDisk(t *testing.T) {
	d := hardwayDir(t)
	ca, err := d.Store.ReadCA("ca")
	if err != nil {
		t.Fatal(err)
	}
	certFile := d.Store.CertPath("kube-api-server")
	onDisk := readCert(t, certFile)
	key, err := d.Store.ReadKey("kube-api-server")
	if err != nil {
		t.Fatal(err)
	}
	same := tlsServer(t, onDisk, key)
	old := pkitest.Issue(t, ca, key.Public(), pki.Profile{Subject: pki.SubjectOf(onDisk.Subject), Usages: []pki.Usage{pki.UsageServerAuth}, IPs: []net.IP{net.ParseIP("127.0.0.1")}, Validity: 3 * time.Hour}, time.Now())
	stale := tlsServer(t, old, key)
	down := func() string { // a port nothing listens on
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}()

	e := New(Config{Directory: d, Served: []Target{
		{Component: "kube-apiserver", Address: same, CertFile: certFile},
		{Component: "kube-apiserver-stale", Address: stale, CertFile: certFile},
		{Component: "kube-scheduler", Address: down, CertFile: d.Store.CertPath("kube-scheduler")},
	}})
	url := serve(t, e, time.Hour)
	var got map[string][]series
	deadline := time.Now().Add(time.Minute)
	for {
		got = scrape(t, url)
		if len(got["kubepki_served_check_timestamp_seconds"]) == 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if s := one(t, got, "kubepki_served_cert_mismatch", map[string]string{"component": "kube-apiserver", "address": same, "filepath": certFile}); s.value != 0 {
		t.Errorf("serving the file's certificate: mismatch %v, want 0", s.value)
	}
	if s := one(t, got, "kubepki_served_cert_mismatch", map[string]string{"component": "kube-apiserver-stale"}); s.value != 1 {
		t.Errorf("serving another certificate than the file: mismatch %v, want 1", s.value)
	}
	s := one(t, got, "kubepki_served_cert_not_after", map[string]string{"component": "kube-apiserver-stale"})
	if s.value != float64(old.NotAfter.Unix()) || s.labels["serial_number"] != old.SerialNumber.String() {
		t.Errorf("served not_after %v serial %s, want the served certificate's %d %s", s.value, s.labels["serial_number"], old.NotAfter.Unix(), old.SerialNumber)
	}
	if s := one(t, got, "kubepki_served_check_error", map[string]string{"component": "kube-scheduler"}); s.value != 1 {
		t.Errorf("nothing listening: check error %v, want 1", s.value)
	}
	if n := len(find(got, "kubepki_served_cert_mismatch", map[string]string{"component": "kube-scheduler"})); n != 0 {
		t.Errorf("nothing listening: %d mismatch series, want none", n)
	}
	if s := one(t, got, "kubepki_served_check_error", map[string]string{"component": "kube-apiserver"}); s.value != 0 {
		t.Errorf("check error %v, want 0", s.value)
	}

	// The renewal reaches the disk, not the component: the one that
	// served the file's certificate now serves an old one.
	renewed := pkitest.Issue(t, ca, key.Public(), pki.Profile{Subject: pki.SubjectOf(onDisk.Subject), Usages: []pki.Usage{pki.UsageServerAuth}, Validity: 9 * time.Hour}, time.Now())
	replace(t, certFile, pki.EncodeCert(renewed), store.CertMode)
	got = scrape(t, url)
	if s := one(t, got, "kubepki_served_cert_mismatch", map[string]string{"component": "kube-apiserver"}); s.value != 1 {
		t.Errorf("after a renewal on disk only: mismatch %v, want 1", s.value)
	}
}

func TestHealthz(t *testing.T) {
	url := strings.TrimSuffix(serve(t, New(Config{}), time.Minute), "/metrics") + "/healthz"
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(body) != "ok\n" {
		t.Errorf("/healthz: %s %q", resp.Status, body)
	}
}

// TestServeStopsOnCancel: the server returns once its context ends (SIGTERM
// in the CLI), and stops listening.
func TestServeStopsOnCancel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	e := New(Config{Served: []Target{{Component: "x", Address: ln.Addr().String()}}})
	go func() { done <- Serve(ctx, ln, e, time.Hour, slog.New(slog.DiscardHandler)) }()
	scrape(t, fmt.Sprintf("http://%s/metrics", ln.Addr()))
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if _, err := http.Get(fmt.Sprintf("http://%s/metrics", ln.Addr())); err == nil {
		t.Error("still serving after its context ended")
	}
}

// TestSameLabels: series that would share every label fail the whole
// scrape in client_golang ("collected before with the same name and label
// values"), so one planted file would blind the exporter. Two different
// certificates of one file with the same serial, subject and issuer are
// one series, the one that expires first; a target named twice is one.
func TestSameLabels(t *testing.T) {
	key := pkitest.Key(t, pki.ECDSAP256)
	now := time.Now()
	selfSigned := func(validity time.Duration) []byte {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "dup", Organization: []string{"o"}},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(validity), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	later, sooner := selfSigned(20*24*time.Hour), selfSigned(10*24*time.Hour)
	path := filepath.Join(t.TempDir(), "bundle.crt")
	replace(t, path, append(later, sooner...), store.CertMode)
	closed := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}()
	target := Target{Component: "kube-apiserver", Address: closed}
	e := New(Config{WatchFiles: []string{path}, Served: []Target{target, target}, ServedTimeout: 5 * time.Second})
	e.CheckServed(context.Background())
	url := serve(t, e, time.Hour)
	got := scrape(t, url) // fails the test on a 500
	s := one(t, got, "x509_cert_not_after", map[string]string{"filepath": path, "serial_number": "7"})
	if want := float64(now.Add(10 * 24 * time.Hour).Unix()); s.value != want {
		t.Errorf("not_after %v, want the certificate that expires first, %v", s.value, want)
	}
	one(t, got, "kubepki_served_check_error", map[string]string{"component": "kube-apiserver", "address": closed})
}

// TestNotWhatThePlanSays: a certificate file of the plan that holds no
// certificate (a key copied over it) is a read error, not a certificate
// that silently leaves the metrics; a key file that holds no key is one
// too, instead of a key mismatch that is never exported.
func TestNotWhatThePlanSays(t *testing.T) {
	d := hardwayDir(t)
	url := serve(t, New(Config{Directory: d}), time.Minute)
	cert, key := d.Store.CertPath("admin"), d.Store.KeyPath("kube-proxy")
	replace(t, cert, pkitest.ReadFile(t, d.Store.KeyPath("admin")), store.KeyMode)
	replace(t, key, pkitest.ReadFile(t, d.Store.CertPath("kube-proxy")), store.KeyMode)
	got := scrape(t, url)
	for _, p := range []string{cert, key} {
		if s := one(t, got, "x509_cert_error", map[string]string{"filepath": p}); s.value != 1 {
			t.Errorf("%s: x509_cert_error %v, want 1", p, s.value)
		}
	}
	if s := one(t, got, "x509_read_errors", nil); s.value != 2 {
		t.Errorf("x509_read_errors %v, want 2", s.value)
	}
}
