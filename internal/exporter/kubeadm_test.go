package exporter

import (
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kubepki.dev/kubepki/internal/adopt"
	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/pkitest"
	"kubepki.dev/kubepki/internal/store"
	"kubepki.dev/kubepki/internal/testenv"
)

// TestKubeadmNode scrapes a directory the real kubeadm wrote, after the
// kubelet's bootstrap (kubelet.conf naming kubelet-client-current.pem): one
// series per certificate of /etc/kubernetes/pki and per kubeconfig,
// kubelet.conf's with the kubelet's own certificate, no false finding.
func TestKubeadmNode(t *testing.T) {
	n := testenv.NewKubeadmNode(t, testenv.KubeadmNodeConfig{})
	current := n.KubeletClientCurrent(t)
	r, err := adopt.Infer(n.PKIDir, "")
	if err != nil {
		t.Fatalf("infer: %v", err)
	}
	plan, err := catalog.New(r.Spec, catalog.Kubeadm)
	if err != nil {
		t.Fatal(err)
	}
	st := store.Store{Dir: n.PKIDir, KubeconfigDir: catalog.Kubeadm.KubeconfigDir(n.PKIDir)}
	got := scrape(t, serve(t, New(Config{Directory: &Directory{Plan: plan, Store: st}}), time.Minute))

	var crts []string
	_ = filepath.WalkDir(n.PKIDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".crt") {
			crts = append(crts, p)
		}
		return nil
	})
	if len(crts) != 10 {
		t.Errorf("kubeadm wrote %d certificates, want kubeadm's 10: %v", len(crts), crts)
	}
	for _, p := range crts {
		c := readCert(t, p)
		if s := one(t, got, "x509_cert_not_after", map[string]string{"filepath": p, "embedded_kind": ""}); s.value != float64(c.NotAfter.Unix()) {
			t.Errorf("%s: not_after %v, want %d", p, s.value, c.NotAfter.Unix())
		}
		if s := one(t, got, "kubepki_cert_chain_broken", map[string]string{"filepath": p}); s.value != 0 {
			t.Errorf("%s: chain broken", p)
		}
		if s := one(t, got, "kubepki_cert_key_mismatch", map[string]string{"filepath": p}); s.value != 0 {
			t.Errorf("%s: key mismatch", p)
		}
	}
	kubelet, err := pki.ParseCert(pkitest.ReadFile(t, current))
	if err != nil {
		t.Fatal(err)
	}
	for _, kc := range []string{"admin.conf", "super-admin.conf", "controller-manager.conf", "scheduler.conf", "kubelet.conf"} {
		path := filepath.Join(n.Dir, kc)
		s := one(t, got, "x509_cert_not_after", map[string]string{"filepath": path, "embedded_kind": "user"})
		if kc == "kubelet.conf" && (s.labels["serial_number"] != kubelet.SerialNumber.String() || s.value != float64(kubelet.NotAfter.Unix())) {
			t.Errorf("kubelet.conf: %v %v, want kubelet-client-current.pem's serial %s", s.value, s.labels, kubelet.SerialNumber)
		}
		if s.labels["subject_CN"] == "" || s.labels["issuer_CN"] != "kubernetes" {
			t.Errorf("%s: subject %q issuer %q, want a subject and kubeadm's CA kubernetes", kc, s.labels["subject_CN"], s.labels["issuer_CN"])
		}
		one(t, got, "x509_cert_not_after", map[string]string{"filepath": path, "embedded_kind": "cluster"})
		for _, name := range []string{"kubepki_cert_key_mismatch", "kubepki_cert_chain_broken"} {
			if s := one(t, got, name, map[string]string{"filepath": path, "embedded_kind": "user"}); s.value != 0 {
				t.Errorf("%s: %s = 1", kc, name)
			}
		}
	}
	if s := one(t, got, "x509_read_errors", nil); s.value != 0 {
		t.Errorf("x509_read_errors %v on kubeadm's own files", s.value)
	}
}
