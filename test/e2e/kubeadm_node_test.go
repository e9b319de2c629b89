package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"kubepki.dev/kubepki/internal/testenv"
)

// kubeadmLeaves are the leaf certificate files of kubeadm's PKI directory,
// by the name kubeadm's own check-expiration gives them.
var kubeadmLeaves = map[string]string{
	"apiserver":                "apiserver.crt",
	"apiserver-kubelet-client": "apiserver-kubelet-client.crt",
	"apiserver-etcd-client":    "apiserver-etcd-client.crt",
	"front-proxy-client":       "front-proxy-client.crt",
	"etcd-server":              "etcd/server.crt",
	"etcd-peer":                "etcd/peer.crt",
	"etcd-healthcheck-client":  "etcd/healthcheck-client.crt",
}

// kubeadmUnchanged are files renewal must leave byte for byte: the CAs and
// the service-account key pair (a new one would invalidate every token).
var kubeadmUnchanged = []string{"ca.crt", "ca.key", "front-proxy-ca.crt", "front-proxy-ca.key", "etcd/ca.crt", "etcd/ca.key", "sa.key", "sa.pub"}

// kubeadmNodeIdentities are the kubeconfigs of a kubeadm v1.37 control-plane
// node and who each authenticates as.
var kubeadmNodeIdentities = []kubeconfigIdentity{
	{"admin.conf", "kubernetes-admin", []string{"kubeadm:cluster-admins"}},
	{"super-admin.conf", "kubernetes-super-admin", []string{"system:masters"}},
	{"controller-manager.conf", "system:kube-controller-manager", nil},
	{"scheduler.conf", "system:kube-scheduler", nil},
	{"kubelet.conf", "system:node:cp1", []string{"system:nodes"}},
}

// TestKubeadmNode is kubepki on a control-plane node the real kubeadm v1.37
// made (`kubeadm init phase certs all` + `kubeadm init phase kubeconfig
// all`), with no --config: every command must take the node as it is. One
// kubeadm run is copied into a root per variant (so all share its CAs), and
// one etcd + kube-apiserver, started at the end with the flags of kubeadm's
// own static Pod manifests on the renewed certificates, authenticates the
// kubeconfigs of every variant.
func TestKubeadmNode(t *testing.T) {
	bins := testenv.Build(t)
	bin := testenv.Kubepki(t)
	base := testenv.NewKubeadmNode(t, testenv.KubeadmNodeConfig{})

	byKubeadm := base.Copy(t)
	embedded := base.Copy(t)
	current := base.Copy(t)
	currentPEM := current.KubeletClientCurrent(t)
	fileRef := base.Copy(t)
	bundle := base.Copy(t)
	pre129 := base.Copy(t)

	// kubeadm runs a kubelet on every node, the control plane included:
	// wiring it on the inferred spec of this lone control plane needs no
	// --node, and points it at kubeadm's kubelet.conf.
	t.Run("wiring kubelet on the control plane", func(t *testing.T) {
		out, code := runCode(t, bin, "wiring", "kubelet", "--dir", base.PKIDir)
		if code != 0 || !strings.Contains(out, "--kubeconfig=/etc/kubernetes/kubelet.conf") {
			t.Errorf("wiring kubelet: exit %d, want 0 and --kubeconfig=/etc/kubernetes/kubelet.conf\n%s", code, out)
		}
	})

	// whoamis are checked on the control plane at the end.
	type check struct {
		variant, kubeconfig string
		id                  kubeconfigIdentity
	}
	var whoamis []check
	nodeWhoamis := func(variant string, n *testenv.KubeadmNode) {
		for _, id := range kubeadmNodeIdentities {
			whoamis = append(whoamis, check{variant, filepath.Join(n.Dir, id.file), id})
		}
	}

	// The checks below hold for kubeadm's own renewal, which leaves
	// kubelet.conf alone: they ask no more of kubepki than kubeadm does,
	// plus kubelet.conf.
	t.Run("kubeadm certs renew all meets the same checks", func(t *testing.T) {
		n := byKubeadm
		before := snapshotNode(t, n)
		if _, ok := n.KubeadmInRoot(t, "certs", "renew", "all"); !ok {
			t.Skip("kubeadm renews kubeconfigs only in /etc/kubernetes: without root privileges it cannot be chrooted into the node's root")
		}
		after := snapshotNode(t, n)
		if after.certs["kubelet.conf"].SerialNumber.Cmp(before.certs["kubelet.conf"].SerialNumber) != 0 {
			t.Errorf("kubeadm renewed kubelet.conf; this test's premise is that it does not")
		}
		delete(before.certs, "kubelet.conf")
		delete(after.certs, "kubelet.conf")
		assertRenewed(t, n, before, after)
		assertKubeadmSeesRenewal(t, n)
	})

	for _, tc := range []struct {
		name string
		node *testenv.KubeadmNode
	}{
		{"kubelet.conf embedded", embedded},
		{"kubelet.conf on kubelet-client-current.pem", current},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := tc.node
			assertClean(t, bin, n)
			out, stderr, code := runSplit(t, bin, "certs", "check-expiration", "--dir", n.PKIDir, "-o", "json")
			if code != 0 {
				t.Errorf("check-expiration: exit %d, want 0\n%s%s", code, out, stderr)
			}
			kubelet, _ := clientCertOf(t, filepath.Join(n.Dir, "kubelet.conf"))
			if got := expirationOf(t, out, "kubelet.conf"); kubelet != nil && !got.Equal(kubelet.NotAfter) {
				t.Errorf("check-expiration: kubelet.conf expires %v, want %v (the kubelet's own certificate)", got, kubelet.NotAfter)
			}

			before := snapshotNode(t, n)
			var oldTarget string
			var oldPEM []byte
			if n == current {
				oldTarget = readlink(t, currentPEM)
				oldPEM = readFile(t, oldTarget)
			}
			if out, code := runCode(t, bin, "certs", "renew", "all", "--dir", n.PKIDir); code != 0 {
				t.Errorf("certs renew all: exit %d, want 0\n%s", code, out)
			}
			assertRenewed(t, n, before, snapshotNode(t, n))
			if n == current {
				assertKubeletRotated(t, n, currentPEM, oldTarget, oldPEM)
			}
			assertClean(t, bin, n)
			if n == embedded {
				assertKubeadmSeesRenewal(t, n)
			}
		})
	}
	nodeWhoamis("embedded", embedded)
	nodeWhoamis("kubelet-client-current.pem", current)

	t.Run("file-referencing kubeconfig", func(t *testing.T) {
		n := fileRef
		admin := filepath.Join(n.Dir, "admin.conf")
		certFile, keyFile, caFile := filepath.Join(n.Root, "root", ".kube", "admin.crt"), filepath.Join(n.Root, "root", ".kube", "admin.key"), filepath.Join(n.PKIDir, "ca.crt")
		// kubectl writes the CA under the kubeconfig's directory as a
		// relative path (pki/ca.crt), the others as given.
		certRef, keyRef, caRef := referTo(t, bins, admin, certFile, keyFile, caFile)
		old, _ := clientCertOf(t, admin)
		oldPEM := readFile(t, certFile)

		if out, code := runCode(t, bin, "certs", "renew", "admin.conf", "--dir", n.PKIDir); code != 0 {
			t.Errorf("certs renew admin.conf: exit %d, want 0\n%s", code, out)
		}
		cfg, err := clientcmd.LoadFromFile(admin)
		if err != nil {
			t.Fatal(err)
		}
		for name, u := range cfg.AuthInfos {
			if u.ClientCertificate != certRef || u.ClientKey != keyRef || len(u.ClientCertificateData) != 0 || len(u.ClientKeyData) != 0 {
				t.Errorf("renewed admin.conf user %s: client-certificate %q, client-key %q, embedded %d+%d bytes; want the references %s, %s kept and nothing embedded",
					name, u.ClientCertificate, u.ClientKey, len(u.ClientCertificateData), len(u.ClientKeyData), certRef, keyRef)
			}
		}
		for name, c := range cfg.Clusters {
			if c.CertificateAuthority != caRef || len(c.CertificateAuthorityData) != 0 {
				t.Errorf("renewed admin.conf cluster %s: certificate-authority %q, embedded %d bytes; want the reference %s kept", name, c.CertificateAuthority, len(c.CertificateAuthorityData), caRef)
			}
		}
		renewed := readCert(t, certFile)
		if renewed != nil && old != nil {
			if renewed.SerialNumber.Cmp(old.SerialNumber) == 0 {
				t.Errorf("%s: not renewed (serial %s unchanged)", certFile, old.SerialNumber)
			}
			if renewed.Subject.String() != old.Subject.String() {
				t.Errorf("%s: subject %s, want %s", certFile, renewed.Subject, old.Subject)
			}
		}
		if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
			t.Errorf("renewed %s and %s: %v", certFile, keyFile, err)
		}
		if !keptSomewhere(t, n.Root, certFile, oldPEM) {
			t.Errorf("the replaced %s is kept nowhere under %s (no backup)", certFile, n.Root)
		}
		assertClean(t, bin, n)
	})
	whoamis = append(whoamis, check{"file-referencing", filepath.Join(fileRef.Dir, "admin.conf"), kubeadmNodeIdentities[0]})

	t.Run("two-CA trust bundle", func(t *testing.T) {
		n := bundle
		clusterCA := readCert(t, filepath.Join(n.PKIDir, "ca.crt"))
		nextCA, nextPEM := newCA(t, "kubernetes-next", 5*365*24*time.Hour)
		caBundle := append(readFile(t, filepath.Join(n.PKIDir, "ca.crt")), nextPEM...)
		if err := os.WriteFile(filepath.Join(n.PKIDir, "ca.crt"), caBundle, 0o644); err != nil {
			t.Fatal(err)
		}
		// As during a CA rotation: every kubeconfig trusts both CAs.
		for _, id := range kubeadmNodeIdentities {
			setCAData(t, filepath.Join(n.Dir, id.file), caBundle)
		}

		assertClean(t, bin, n)
		out, code := runCode(t, bin, "certs", "check-expiration", "--dir", n.PKIDir)
		if code != 0 {
			t.Errorf("check-expiration: exit %d, want 0\n%s", code, out)
		}
		for _, ca := range []*x509.Certificate{clusterCA, nextCA} {
			if date := ca.NotAfter.UTC().Format("Jan 02, 2006 15:04 UTC"); !strings.Contains(out, date) {
				t.Errorf("check-expiration does not list the CA %q of ca.crt (expires %s):\n%s", ca.Subject.CommonName, date, out)
			}
		}
		out, _, _ = runSplit(t, bin, "certs", "check-expiration", "--dir", n.PKIDir, "-o", "json")
		for _, ca := range []*x509.Certificate{clusterCA, nextCA} {
			if date := ca.NotAfter.UTC().Format(time.RFC3339); !strings.Contains(out, date) {
				t.Errorf("check-expiration -o json does not list the CA %q of ca.crt (notAfter %s):\n%s", ca.Subject.CommonName, date, out)
			}
		}

		before := snapshotNode(t, n)
		if out, code := runCode(t, bin, "certs", "renew", "all", "--dir", n.PKIDir); code != 0 {
			t.Errorf("certs renew all: exit %d, want 0\n%s", code, out)
		}
		assertRenewed(t, n, before, snapshotNode(t, n))
		for _, id := range kubeadmNodeIdentities {
			path := filepath.Join(n.Dir, id.file)
			cfg, err := clientcmd.LoadFromFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for name, c := range cfg.Clusters {
				got := certsIn(t, c.CertificateAuthorityData)
				if len(got) != 2 || !slices.ContainsFunc(got, clusterCA.Equal) || !slices.ContainsFunc(got, nextCA.Equal) {
					t.Errorf("%s cluster %s: certificate-authority-data holds %d CA(s) %v, want both CAs of ca.crt", id.file, name, len(got), commonNames(got))
				}
			}
		}
	})
	nodeWhoamis("two-CA bundle", bundle)

	t.Run("pre-1.29 admin.conf", func(t *testing.T) {
		n := pre129
		// kubeadm before v1.29 wrote admin.conf in system:masters and no
		// super-admin.conf; kubeadm itself makes that kubeconfig.
		admin := n.MustKubeadm(t, "kubeconfig", "user", "--config", n.Config, "--client-name", "kubernetes-admin", "--org", "system:masters")
		if err := os.WriteFile(filepath.Join(n.Dir, "admin.conf"), []byte(admin), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(n.Dir, "super-admin.conf")); err != nil {
			t.Fatal(err)
		}
		assertClean(t, bin, n)
		if out, code := runCode(t, bin, "certs", "check-expiration", "--dir", n.PKIDir); code != 0 {
			t.Errorf("check-expiration: exit %d, want 0\n%s", code, out)
		}
		if out, code := runCode(t, bin, "certs", "renew", "all", "--dir", n.PKIDir); code != 0 {
			t.Errorf("certs renew all: exit %d, want 0\n%s", code, out)
		}
		if c, _ := clientCertOf(t, filepath.Join(n.Dir, "admin.conf")); c != nil && !slices.Equal(c.Subject.Organization, []string{"system:masters"}) {
			t.Errorf("renewed pre-1.29 admin.conf: groups %v, want [system:masters] (kubeadm:cluster-admins has no binding on such a cluster)", c.Subject.Organization)
		}
		if _, err := os.Stat(filepath.Join(n.Dir, "super-admin.conf")); err == nil {
			t.Errorf("renew created super-admin.conf on a pre-1.29 node")
		}
		assertClean(t, bin, n)
	})
	whoamis = append(whoamis, check{"pre-1.29", filepath.Join(pre129.Dir, "admin.conf"), kubeconfigIdentity{"admin.conf", "kubernetes-admin", []string{"system:masters"}}})

	t.Run("kube-apiserver from kubeadm's manifest", func(t *testing.T) {
		// The embedded node's certificates, renewed above: etcd serves
		// etcd/server.crt, the apiserver presents apiserver.crt and
		// dials etcd with apiserver-etcd-client.crt.
		etcd, _ := embedded.StartEtcd(t)
		server, _ := embedded.StartAPIServer(t, etcd)
		for _, c := range whoamis {
			rel := c.variant + " " + filepath.Base(c.kubeconfig)
			// kubeadm's kubeconfigs name the node's advertise address:
			// kubectl dials server and checks the name every kubeadm
			// serving certificate holds.
			user, groups, err := testenv.Whoami(t, bins, c.kubeconfig, "--server", server, "--tls-server-name", testenv.KubeadmServerName)
			if err != nil {
				t.Errorf("%s: %v", rel, err)
				continue
			}
			if user != c.id.user {
				t.Errorf("%s: user %q, want %q", rel, user, c.id.user)
			}
			for _, g := range append(c.id.groups, "system:authenticated") {
				if !slices.Contains(groups, g) {
					t.Errorf("%s: groups %v, want %s among them", rel, groups, g)
				}
			}
		}
	})
}

// assertClean runs verify and plan with no --config on the node: both must
// exit 0 (no findings, nothing to do), and plan must show kubelet.conf.
func assertClean(t *testing.T, bin string, n *testenv.KubeadmNode) {
	t.Helper()
	if out, code := runCode(t, bin, "verify", "--dir", n.PKIDir); code != 0 {
		t.Errorf("verify: exit %d, want 0\n%s", code, out)
	}
	out, code := runCode(t, bin, "plan", "--dir", n.PKIDir)
	if code != 0 {
		t.Errorf("plan: exit %d, want 0\n%s", code, out)
	}
	if !strings.Contains(out, filepath.Join(n.Dir, "kubelet.conf")) {
		t.Errorf("plan does not show %s:\n%s", filepath.Join(n.Dir, "kubelet.conf"), out)
	}
}

// nodeSnapshot is every certificate of a node and the bytes of the files
// renewal must keep.
type nodeSnapshot struct {
	certs map[string]*x509.Certificate // by kubeadm name or kubeconfig file
	kept  map[string][]byte            // by path relative to PKIDir
}

func snapshotNode(t *testing.T, n *testenv.KubeadmNode) nodeSnapshot {
	t.Helper()
	s := nodeSnapshot{certs: map[string]*x509.Certificate{}, kept: map[string][]byte{}}
	for name, file := range kubeadmLeaves {
		s.certs[name] = readCert(t, filepath.Join(n.PKIDir, file))
	}
	for _, id := range kubeadmNodeIdentities {
		path := filepath.Join(n.Dir, id.file)
		if _, err := os.Stat(path); err != nil {
			continue // super-admin.conf on a pre-1.29 node
		}
		s.certs[id.file], _ = clientCertOf(t, path)
	}
	for _, f := range kubeadmUnchanged {
		s.kept[f] = readFile(t, filepath.Join(n.PKIDir, f))
	}
	return s
}

// assertRenewed checks that every certificate was reissued (a new serial,
// signed by the same CA, with the same subject and SANs, not expiring
// sooner, its key matching) and that the CAs and service-account keys are
// untouched.
func assertRenewed(t *testing.T, n *testenv.KubeadmNode, before, after nodeSnapshot) {
	t.Helper()
	names := make([]string, 0, len(before.certs))
	for name := range before.certs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		old, cur := before.certs[name], after.certs[name]
		if old == nil || cur == nil {
			t.Errorf("%s: certificate missing (before %v, after %v)", name, old != nil, cur != nil)
			continue
		}
		if cur.SerialNumber.Cmp(old.SerialNumber) == 0 {
			t.Errorf("%s: not renewed (serial %s unchanged)", name, old.SerialNumber)
			continue
		}
		if cur.Subject.String() != old.Subject.String() {
			t.Errorf("%s: subject %s after renewal, want %s", name, cur.Subject, old.Subject)
		}
		if !slices.Equal(sans(cur), sans(old)) {
			t.Errorf("%s: SANs %v after renewal, want %v", name, sans(cur), sans(old))
		}
		if !slices.Equal(sortedUsages(cur.ExtKeyUsage), sortedUsages(old.ExtKeyUsage)) {
			t.Errorf("%s: extended key usages %v after renewal, want %v", name, cur.ExtKeyUsage, old.ExtKeyUsage)
		}
		if cur.NotAfter.Before(old.NotAfter) {
			t.Errorf("%s: renewed certificate expires %v, before the old one (%v)", name, cur.NotAfter, old.NotAfter)
		}
		if !bytes.Equal(cur.RawIssuer, old.RawIssuer) || !bytes.Equal(cur.AuthorityKeyId, old.AuthorityKeyId) {
			t.Errorf("%s: issued by %s after renewal, want %s", name, cur.Issuer, old.Issuer)
		}
	}
	for name, file := range kubeadmLeaves {
		crt := filepath.Join(n.PKIDir, file)
		if _, err := tls.LoadX509KeyPair(crt, strings.TrimSuffix(crt, ".crt")+".key"); err != nil {
			t.Errorf("%s after renewal: %v", name, err)
		}
	}
	for f, data := range before.kept {
		if !bytes.Equal(after.kept[f], data) {
			t.Errorf("%s changed by renewal; a CA and the service-account keys must be kept", f)
		}
	}
}

// assertKubeletRotated checks renewal of a kubelet.conf that names
// kubelet-client-current.pem: kubelet.conf is unchanged in its references,
// a new kubelet-client-<timestamp>.pem beside the old one holds the new
// certificate with the node's key, and the link now points at it.
func assertKubeletRotated(t *testing.T, n *testenv.KubeadmNode, current, oldTarget string, oldPEM []byte) {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(filepath.Join(n.Dir, "kubelet.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for name, u := range cfg.AuthInfos {
		if u.ClientCertificate != current || u.ClientKey != current || len(u.ClientCertificateData) != 0 || len(u.ClientKeyData) != 0 {
			t.Errorf("kubelet.conf user %s after renewal: client-certificate %q, client-key %q, embedded %d+%d bytes; want both %s and nothing embedded",
				name, u.ClientCertificate, u.ClientKey, len(u.ClientCertificateData), len(u.ClientKeyData), current)
		}
	}
	target := readlink(t, current)
	if target == oldTarget {
		t.Errorf("%s still points at %s after renewal", current, oldTarget)
	}
	if filepath.Dir(target) != n.KubeletCertDir() || !strings.HasPrefix(filepath.Base(target), "kubelet-client-") || !strings.HasSuffix(target, ".pem") {
		t.Errorf("%s -> %s, want %s/kubelet-client-<timestamp>.pem", current, target, n.KubeletCertDir())
	}
	if got, err := os.ReadFile(oldTarget); err != nil || !bytes.Equal(got, oldPEM) {
		t.Errorf("the kubelet's previous %s is not kept as it was (err %v)", oldTarget, err)
	}
	pair, err := tls.LoadX509KeyPair(current, current)
	if err != nil {
		t.Errorf("%s after renewal: %v", current, err)
		return
	}
	oldPair, err := tls.X509KeyPair(oldPEM, oldPEM)
	if err != nil {
		t.Fatal(err)
	}
	newCert, _ := x509.ParseCertificate(pair.Certificate[0])
	oldCert, _ := x509.ParseCertificate(oldPair.Certificate[0])
	if !bytes.Equal(newCert.RawSubjectPublicKeyInfo, oldCert.RawSubjectPublicKeyInfo) {
		t.Errorf("%s: renewal replaced the node's key; it must be kept unless asked", current)
	}
	if newCert.Subject.CommonName != "system:node:"+n.NodeName || !slices.Equal(newCert.Subject.Organization, []string{"system:nodes"}) {
		t.Errorf("%s: subject %s, want CN=system:node:%s, O=system:nodes", current, newCert.Subject, n.NodeName)
	}
}

// assertKubeadmSeesRenewal runs the real `kubeadm certs check-expiration`
// on the renewed node: every certificate and kubeconfig it knows shows the
// renewed certificate's expiry.
func assertKubeadmSeesRenewal(t *testing.T, n *testenv.KubeadmNode) {
	t.Helper()
	report, kubeconfigs := n.CheckExpiration(t)
	want := map[string]time.Time{}
	for name, file := range kubeadmLeaves {
		if c := readCert(t, filepath.Join(n.PKIDir, file)); c != nil {
			want[name] = c.NotAfter
		}
	}
	if kubeconfigs {
		for _, id := range kubeadmNodeIdentities[:4] { // kubeadm does not report kubelet.conf
			if c, _ := clientCertOf(t, filepath.Join(n.Dir, id.file)); c != nil {
				want[id.file] = c.NotAfter
			}
		}
	}
	got := map[string]time.Time{}
	for _, r := range report.Certificates {
		if !r.Missing {
			got[r.Name] = r.ExpirationDate
		}
	}
	for name, date := range want {
		if !got[name].Equal(date.Truncate(time.Second)) {
			t.Errorf("kubeadm certs check-expiration: %s expires %v, want %v (the renewed certificate)", name, got[name], date)
		}
	}
}

// clientCertOf returns the client certificate of a kubeconfig's current
// user, embedded or referenced, and the PEM it was read from.
func clientCertOf(t *testing.T, kubeconfig string) (*x509.Certificate, []byte) {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Errorf("%v", err)
		return nil, nil
	}
	ctx := cfg.Contexts[cfg.CurrentContext]
	if ctx == nil || cfg.AuthInfos[ctx.AuthInfo] == nil {
		t.Errorf("%s: no current context and user", kubeconfig)
		return nil, nil
	}
	u := cfg.AuthInfos[ctx.AuthInfo]
	data := u.ClientCertificateData
	if len(data) == 0 {
		data = readFile(t, resolve(filepath.Dir(kubeconfig), u.ClientCertificate))
	}
	certs := certsIn(t, data)
	if len(certs) == 0 {
		t.Errorf("%s: no client certificate", kubeconfig)
		return nil, nil
	}
	return certs[0], data
}

// expirationOf returns the notAfter `certs check-expiration -o json` gives
// a name.
func expirationOf(t *testing.T, out, name string) time.Time {
	t.Helper()
	var report struct {
		Certificates []struct {
			Name     string    `json:"name"`
			NotAfter time.Time `json:"notAfter"`
			Missing  bool      `json:"missing"`
		} `json:"certificates"`
	}
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Errorf("check-expiration -o json: %v\n%s", err, out)
		return time.Time{}
	}
	for _, c := range report.Certificates {
		if c.Name == name && !c.Missing {
			return c.NotAfter
		}
	}
	t.Errorf("check-expiration -o json lists no %s:\n%s", name, out)
	return time.Time{}
}

// referTo rewrites a kubeadm kubeconfig, with the real kubectl, into one
// that refers to files (kubectl config set-credentials without
// --embed-certs): its embedded client certificate and key move to certFile
// and keyFile, and its CA is named by caFile. It returns the references
// as kubectl wrote them.
func referTo(t *testing.T, bins testenv.Binaries, kubeconfig, certFile, keyFile, caFile string) (certRef, keyRef, caRef string) {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	ctx := cfg.Contexts[cfg.CurrentContext]
	u, c := cfg.AuthInfos[ctx.AuthInfo], cfg.Clusters[ctx.Cluster]
	if err := os.MkdirAll(filepath.Dir(certFile), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, u.ClientCertificateData, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, u.ClientKeyData, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(kubeconfig); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"config", "set-cluster", ctx.Cluster, "--server", c.Server, "--certificate-authority", caFile},
		{"config", "set-credentials", ctx.AuthInfo, "--client-certificate", certFile, "--client-key", keyFile},
		{"config", "set-context", cfg.CurrentContext, "--cluster", ctx.Cluster, "--user", ctx.AuthInfo},
		{"config", "use-context", cfg.CurrentContext},
	} {
		if _, err := testenv.Kubectl(t, bins, kubeconfig, args...); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err = clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	ctx = cfg.Contexts[cfg.CurrentContext]
	u, c = cfg.AuthInfos[ctx.AuthInfo], cfg.Clusters[ctx.Cluster]
	dir := filepath.Dir(kubeconfig)
	for ref, want := range map[string]string{u.ClientCertificate: certFile, u.ClientKey: keyFile, c.CertificateAuthority: caFile} {
		if resolve(dir, ref) != want || len(u.ClientCertificateData)+len(u.ClientKeyData)+len(c.CertificateAuthorityData) != 0 {
			t.Fatalf("kubectl wrote %s with %q for %s, or embedded data:\n%s", kubeconfig, ref, want, readFile(t, kubeconfig))
		}
	}
	return u.ClientCertificate, u.ClientKey, c.CertificateAuthority
}

// resolve is a kubeconfig's file reference as clientcmd reads it: relative
// to the kubeconfig's directory.
func resolve(dir, ref string) string {
	if ref == "" || filepath.IsAbs(ref) {
		return ref
	}
	return filepath.Join(dir, ref)
}

// setCAData replaces every cluster's certificate-authority-data.
func setCAData(t *testing.T, kubeconfig string, ca []byte) {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cfg.Clusters {
		c.CertificateAuthorityData = ca
	}
	if err := clientcmd.WriteToFile(*cfg, kubeconfig); err != nil {
		t.Fatal(err)
	}
}

// newCA makes a self-signed CA (a second CA of a trust bundle).
func newCA(t *testing.T, cn string, validity time.Duration) (*x509.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Minute)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// readCert returns the first certificate of a PEM file, or nil after an
// error.
func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	certs := certsIn(t, readFile(t, path))
	if len(certs) == 0 {
		t.Errorf("%s: no certificate", path)
		return nil
	}
	return certs[0]
}

// certsIn parses every CERTIFICATE block of PEM data.
func certsIn(t *testing.T, data []byte) []*x509.Certificate {
	t.Helper()
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return certs
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Errorf("parse certificate: %v", err)
			continue
		}
		certs = append(certs, c)
	}
}

// sans are a certificate's DNS and IP SANs, sorted.
func sans(c *x509.Certificate) []string {
	out := slices.Clone(c.DNSNames)
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	slices.Sort(out)
	return out
}

func sortedUsages(s []x509.ExtKeyUsage) []x509.ExtKeyUsage {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func commonNames(certs []*x509.Certificate) []string {
	var names []string
	for _, c := range certs {
		names = append(names, c.Subject.CommonName)
	}
	return names
}

// readFile returns a file's bytes, or nil after an error.
func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("%v", err)
	}
	return data
}

func readlink(t *testing.T, path string) string {
	t.Helper()
	target, err := os.Readlink(path)
	if err != nil {
		t.Errorf("%v", err)
	}
	return target
}

// keptSomewhere reports whether a file under root other than path holds
// data (a backup of the replaced file).
func keptSomewhere(t *testing.T, root, path string, data []byte) bool {
	t.Helper()
	found := false
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || found || p == path || !d.Type().IsRegular() {
			return err
		}
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, bytes.TrimSpace(data)) {
			found = true
		}
		return nil
	})
	if err != nil {
		t.Errorf("walk %s: %v", root, err)
	}
	return found
}
