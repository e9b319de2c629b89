package resolve

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/kubeconfig"
	"kubepki.dev/kubepki/internal/openssltest"
	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/pkitest"
	"kubepki.dev/kubepki/internal/store"
)

var testNow = time.Date(2026, time.March, 14, 15, 9, 26, 0, time.UTC)

// nodeDir is a real node's /etc/kubernetes for the default spec's
// control-plane node "server": a trust bundle ca.crt (a new CA, then the
// old one whose key is here), admin.conf referring to files,
// super-admin.conf embedding, and kubelet.conf pointing at the kubelet's
// kubelet-client-current.pem, a link to a PEM openssl wrote, expired.
type nodeDir struct {
	root, pki, kubeletPKI string
	st                    store.Store
	oldCA, newCA          *pki.CA
}

func newNodeDir(t *testing.T) nodeDir {
	t.Helper()
	root := t.TempDir()
	d := nodeDir{root: root, pki: filepath.Join(root, "pki"), kubeletPKI: filepath.Join(root, "var-lib-kubelet-pki")}
	d.st = store.Store{Dir: d.pki, KubeconfigDir: root}
	d.oldCA = pkitest.CA(t, "kubernetes", 10*365*24*time.Hour, testNow.Add(-2*365*24*time.Hour))
	d.newCA = pkitest.CA(t, "kubernetes-next", 10*365*24*time.Hour, testNow.Add(-time.Hour))
	pkitest.WriteFile(t, filepath.Join(d.pki, "ca.crt"), append(pki.EncodeCert(d.newCA.Cert), pki.EncodeCert(d.oldCA.Cert)...), store.CertMode)
	pkitest.WriteFile(t, filepath.Join(d.pki, "ca.key"), pkitest.EncodeKey(t, d.oldCA.Key), store.KeyMode)

	client := func(cn string, groups ...string) ([]byte, []byte) {
		key := pkitest.Key(t, pki.ECDSAP256)
		cert := pkitest.Issue(t, d.oldCA, key.Public(), pki.Profile{Subject: pki.Subject{CommonName: cn, Organization: groups}, Usages: []pki.Usage{pki.UsageClientAuth}, Validity: 24 * time.Hour}, testNow.Add(-time.Hour))
		return pki.EncodeCert(cert), pkitest.EncodeKey(t, key)
	}
	write := func(name string, user func(*kubeconfigUser)) {
		cfg := kubeconfig.New(kubeconfig.Params{Cluster: "kubernetes", User: "u", Context: "u@kubernetes", Server: "https://192.168.10.100:6443", CA: pki.EncodeCert(d.oldCA.Cert)})
		user(cfg.AuthInfos["u"])
		data, err := clientcmd.Write(*cfg)
		if err != nil {
			t.Fatal(err)
		}
		pkitest.WriteFile(t, filepath.Join(root, name), data, store.KeyMode)
	}
	certPEM, keyPEM := client("kubernetes-admin", "kubeadm:cluster-admins")
	pkitest.WriteFile(t, filepath.Join(root, "users", "admin.crt"), certPEM, store.CertMode)
	pkitest.WriteFile(t, filepath.Join(root, "users", "admin.key"), keyPEM, store.KeyMode)
	write("admin.conf", func(u *kubeconfigUser) { u.ClientCertificate, u.ClientKey = "users/admin.crt", "users/admin.key" })
	certPEM, keyPEM = client("kubernetes-super-admin", "system:masters")
	write("super-admin.conf", func(u *kubeconfigUser) { u.ClientCertificateData, u.ClientKeyData = certPEM, keyPEM })

	// The kubelet's pair, made by openssl.
	pkitest.WriteFile(t, filepath.Join(d.pki, "old-ca.crt"), pki.EncodeCert(d.oldCA.Cert), store.CertMode)
	if err := os.MkdirAll(d.kubeletPKI, 0o700); err != nil {
		t.Fatal(err)
	}
	ossl := func(args ...string) { openssltest.Run(t, d.kubeletPKI, args...) }
	ossl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/O=system:nodes/CN=system:node:server", "-keyout", "k.pem", "-out", "r.csr")
	ossl("x509", "-req", "-in", "r.csr", "-CA", filepath.Join(d.pki, "old-ca.crt"), "-CAkey", filepath.Join(d.pki, "ca.key"), "-days", "1", "-out", "c.pem")
	old := filepath.Join(d.kubeletPKI, "kubelet-client-2025-01-01-00-00-00.pem")
	pkitest.WriteFile(t, old, append(pkitest.ReadFile(t, filepath.Join(d.kubeletPKI, "c.pem")), pkitest.ReadFile(t, filepath.Join(d.kubeletPKI, "k.pem"))...), store.KeyMode)
	if err := os.Symlink(old, filepath.Join(d.kubeletPKI, "kubelet-client-current.pem")); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(d.pki, "old-ca.crt"))
	current := filepath.Join(d.kubeletPKI, "kubelet-client-current.pem")
	write("kubelet.conf", func(u *kubeconfigUser) { u.ClientCertificate, u.ClientKey = current, current })
	return d
}

type kubeconfigUser = userEntry

func kubeadmPlan(t *testing.T) *catalog.Plan {
	t.Helper()
	plan, err := catalog.New(cluster.Default(), catalog.Kubeadm)
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

// TestResolveLocations: every kind of location is told from the file's
// own style, and a real node's kubelet.conf belongs to its node.
func TestResolveLocations(t *testing.T) {
	d := newNodeDir(t)
	m := Resolve(kubeadmPlan(t), d.st)
	for _, tc := range []struct {
		cert      string
		kind      Kind
		path      string
		cn        string
		elsewhere bool
	}{
		{"admin.conf", Referenced, filepath.Join(d.root, "users", "admin.crt"), "kubernetes-admin", false},
		{"super-admin.conf", Embedded, filepath.Join(d.root, "super-admin.conf"), "kubernetes-super-admin", false},
		{"kubelet-server.conf", KubeletRotated, filepath.Join(d.kubeletPKI, "kubelet-client-current.pem"), "system:node:server", false},
		{"kubelet-node-0.conf", Embedded, filepath.Join(d.root, "kubelet-node-0.conf"), "", true},
		{"apiserver", Files, filepath.Join(d.pki, "apiserver.crt"), "", false},
	} {
		t.Run(tc.cert, func(t *testing.T) {
			c, ok := m.Cert(tc.cert)
			if !ok {
				t.Fatalf("no cert %s", tc.cert)
			}
			if c.Location.Kind() != tc.kind || c.Location.Path() != tc.path || c.Elsewhere() != tc.elsewhere {
				t.Fatalf("location %s %s elsewhere=%v, want %s %s elsewhere=%v", c.Location.Kind(), c.Location.Path(), c.Elsewhere(), tc.kind, tc.path, tc.elsewhere)
			}
			if tc.cn == "" {
				return
			}
			cert, key, err := c.Location.Read()
			if err != nil {
				t.Fatal(err)
			}
			if cert.Subject.CommonName != tc.cn || key == nil || !pki.KeyMatches(cert.PublicKey, key) {
				t.Fatalf("read CN %q key %v, want %q and its key", cert.Subject.CommonName, key != nil, tc.cn)
			}
			if _, ok := c.CA.SignerOf(cert); !ok {
				t.Errorf("not signed by any CA of the bundle")
			}
		})
	}
	if m.KubeletConf != nil {
		t.Errorf("kubelet.conf left unclaimed")
	}
	if k, ok := m.Kubeconfig("kubelet.conf"); !ok || k.Spec.Name != "kubelet-server.conf" || !k.Installed {
		t.Errorf("kubelet.conf does not name node server's kubeconfig: %+v", k)
	}
	ca := m.CAs["ca"]
	if len(ca.Certs) != 2 || !ca.CanIssue() || !ca.Signer.Cert.Equal(d.oldCA.Cert) {
		t.Fatalf("CA bundle: %d certs, signer %v; want 2 and the old CA (whose key is here)", len(ca.Certs), ca.Signer)
	}
	if sel, err := m.Select([]string{"all"}); err != nil || containsName(sel, "kubelet-node-0.conf") || !containsName(sel, "kubelet-server.conf") {
		t.Errorf("Select(all) = %v, %v: want this node's kubelet, not another's", names(sel), err)
	}
}

// TestWriteKeepsStyle renews each kubeconfig identity through the writer
// and checks the file keeps its style and the whole trust bundle.
func TestWriteKeepsStyle(t *testing.T) {
	d := newNodeDir(t)
	m := Resolve(kubeadmPlan(t), d.st)
	tx := d.st.NewTransaction()
	defer tx.Abort()
	w := NewWriter(tx, testNow)
	oldTarget, _ := os.Readlink(filepath.Join(d.kubeletPKI, "kubelet-client-current.pem"))
	for _, name := range []string{"admin.conf", "super-admin.conf", "kubelet-server.conf"} {
		c, _ := m.Cert(name)
		old, key, err := c.Location.Read()
		if err != nil {
			t.Fatal(err)
		}
		cert := pkitest.Issue(t, m.CAs["ca"].Signer, key.Public(), pki.Profile{Subject: pki.SubjectOf(old.Subject), Usages: []pki.Usage{pki.UsageClientAuth}, Validity: 365 * 24 * time.Hour}, testNow)
		if _, err := w.Write(c, cert, key, WriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tx.Commit(testNow); err != nil {
		t.Fatal(err)
	}
	after := Resolve(kubeadmPlan(t), d.st)
	for _, tc := range []struct {
		name string
		kind Kind
	}{{"admin.conf", Referenced}, {"super-admin.conf", Embedded}, {"kubelet-server.conf", KubeletRotated}} {
		c, _ := after.Cert(tc.name)
		if c.Location.Kind() != tc.kind {
			t.Errorf("%s is %s after the write, want %s", tc.name, c.Location.Kind(), tc.kind)
		}
		cert, _, err := c.Location.Read()
		if err != nil || !cert.NotBefore.Equal(testNow.Add(-time.Minute*5)) && cert.NotAfter.Before(testNow) {
			t.Errorf("%s: %v, not the new certificate", tc.name, err)
		}
		cl, _ := c.Kubeconfig.Cluster()
		if !bytes.Equal(cl.CertificateAuthorityData, after.CAs["ca"].BundlePEM()) {
			t.Errorf("%s: certificate-authority-data is not the whole bundle", tc.name)
		}
		// kubectl's loader (clientcmd) refuses a user with both a file and
		// data; the file must load.
		cfg, err := (&clientcmd.ClientConfigLoadingRules{ExplicitPath: c.Kubeconfig.Path}).Load()
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
		} else if err := clientcmd.Validate(*cfg); err != nil {
			t.Errorf("%s: clientcmd.Validate: %v", tc.name, err)
		}
	}
	current := filepath.Join(d.kubeletPKI, "kubelet-client-current.pem")
	newTarget, _ := os.Readlink(current)
	if newTarget == oldTarget || !strings.HasPrefix(filepath.Base(newTarget), "kubelet-client-2026-") {
		t.Errorf("link points at %s, want a new kubelet-client-<timestamp>.pem", newTarget)
	}
	if !store.Exists(oldTarget) {
		t.Errorf("old %s removed", oldTarget)
	}
	fi, err := os.Stat(newTarget)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("new pem: %v, mode %v; want 0600", err, fi)
	}
}

func containsName(cs []*Cert, name string) bool {
	for _, c := range cs {
		if c.Spec.Name == name {
			return true
		}
	}
	return false
}

func names(cs []*Cert) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Spec.Name)
	}
	return out
}
