package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/kubeconfig"
	"kubepki.dev/kubepki/internal/openssltest"
	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/store"
	"kubepki.dev/kubepki/internal/testenv"
)

// kubeadmDefaultish is kubeadm's defaults but for the node's name and
// address, as on a first control-plane node.
var kubeadmDefaultish = testenv.KubeadmNodeConfig{NodeName: "cp1", AdvertiseAddress: "192.168.10.100"}

// kubeadmCustom changes what a spec can say: the cluster name, endpoint,
// service subnet, DNS domain, API server SANs and key algorithm.
var kubeadmCustom = testenv.KubeadmNodeConfig{
	NodeName:         "cp-a",
	AdvertiseAddress: "10.0.0.11",
	ClusterName:      "prod",
	ClusterConfiguration: `controlPlaneEndpoint: api.corp.example:6443
encryptionAlgorithm: ECDSA-P256
apiServer:
  certSANs: [api.internal.corp.example, 10.0.0.100]
networking:
  serviceSubnet: 10.100.0.0/16
  dnsDomain: corp.example
`,
}

// TestAdoptKubeadmDirectory: on what the real kubeadm v1.37 writes, `config
// from-dir` gives the spec kubeadm was given (as far as certificates say
// it), that spec verifies clean, and so does every command with no
// --config at all: nothing kubeadm makes is a finding.
func TestAdoptKubeadmDirectory(t *testing.T) {
	bin := testenv.Kubepki(t)
	tests := []struct {
		name   string
		config testenv.KubeadmNodeConfig
		want   []string // lines the inferred YAML has
	}{
		{"defaults", kubeadmDefaultish, []string{
			"name: kubernetes", "serviceCIDR: 10.96.0.0/12", "dnsDomain: cluster.local", "keyAlgorithm: RSA-2048",
			"  endpoint: 192.168.10.100:6443", "  name: cp1", "  - 192.168.10.100", "  ca: 87600h0m0s", "  leaf: 8760h0m0s",
		}},
		{"custom", kubeadmCustom, []string{
			"name: prod", "serviceCIDR: 10.100.0.0/24", "dnsDomain: corp.example", "keyAlgorithm: ECDSA-P256",
			"  endpoint: api.corp.example:6443", "  name: cp-a", "  - 10.0.0.11",
			"  - api.internal.corp.example", "  - 10.0.0.100",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pkiDir := testenv.NewKubeadmNode(t, tc.config).PKIDir
			spec := run(t, bin, "config", "from-dir", pkiDir)
			lines := strings.Split(spec, "\n")
			for _, w := range tc.want {
				if !slices.Contains(lines, w) {
					t.Errorf("inferred spec lacks line %q:\n%s", w, spec)
				}
			}
			for _, bad := range []string{"kubernetesVersion", "country", "super"} {
				if strings.Contains(spec, bad) {
					t.Errorf("inferred spec has %q:\n%s", bad, spec)
				}
			}
			specFile := filepath.Join(t.TempDir(), "cluster.yaml")
			if err := os.WriteFile(specFile, []byte(spec), 0o644); err != nil {
				t.Fatal(err)
			}
			assertAdopted(t, bin, pkiDir, "--config", specFile)
			assertAdopted(t, bin, pkiDir)
		})
	}
}

// assertAdopted: verify is clean, plan and init have nothing to do, on the
// directory as it is.
func assertAdopted(t *testing.T, bin, pkiDir string, extra ...string) {
	t.Helper()
	before := snapshot(t, filepath.Dir(pkiDir))
	if out, code := runCode(t, bin, append([]string{"verify", "--dir", pkiDir}, extra...)...); code != 0 || !strings.Contains(out, "no findings") {
		t.Errorf("verify %v: exit %d, want 0 and no findings\n%s", extra, code, out)
	}
	if out, code := runCode(t, bin, append([]string{"plan", "--dir", pkiDir}, extra...)...); code != 0 || !strings.Contains(out, "nothing to do") {
		t.Errorf("plan %v: exit %d, want nothing to do\n%s", extra, code, out)
	}
	if out, code := runCode(t, bin, append([]string{"init", "--apply-drift", "--dir", pkiDir}, extra...)...); code != 0 {
		t.Errorf("init --apply-drift %v: exit %d, want 0\n%s", extra, code, out)
	}
	after := snapshot(t, filepath.Dir(pkiDir))
	for path, data := range before {
		if after[path] != data {
			t.Errorf("init --apply-drift %v changed %s", extra, path)
		}
	}
	for path := range after {
		if _, ok := before[path]; !ok {
			t.Errorf("init --apply-drift %v created %s", extra, path)
		}
	}
}

// snapshot maps every regular file under root to its contents.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(path)
		out[path] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestAdoptPreKubeadm129: kubeadm before v1.29 wrote admin.conf in
// system:masters and no super-admin.conf. A directory the real kubeadm
// v1.37 made, changed to look so (admin.conf re-issued by its CA into
// system:masters, super-admin.conf removed), is inferred as v1.28, and with
// no --config verify and plan report no drift and init --apply-drift
// changes nothing: admin.conf is not moved into kubeadm:cluster-admins,
// which has no binding in such a cluster.
func TestAdoptPreKubeadm129(t *testing.T) {
	bin := testenv.Kubepki(t)
	node := testenv.NewKubeadmNode(t, kubeadmDefaultish)
	root, pkiDir := node.Dir, node.PKIDir
	st := store.Store{Dir: pkiDir, KubeconfigDir: root}
	ca, err := st.ReadCA("ca")
	if err != nil {
		t.Fatal(err)
	}
	adminConf := filepath.Join(root, "admin.conf")
	cfg, err := kubeconfig.Load(adminConf)
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.GenerateKey(pki.RSA2048)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue(key.Public(), pki.Profile{
		Subject:  pki.Subject{CommonName: "kubernetes-admin", Organization: []string{"system:masters"}},
		Usages:   []pki.Usage{pki.UsageClientAuth},
		Validity: 365 * 24 * time.Hour,
	}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := pki.EncodeKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := kubeconfig.SetClientPair(cfg, pki.EncodeCert(ca.Cert), pki.EncodeCert(cert), keyPEM); err != nil {
		t.Fatal(err)
	}
	if err := kubeconfig.Replace(adminConf, cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(root, "super-admin.conf")); err != nil {
		t.Fatal(err)
	}

	spec := run(t, bin, "config", "from-dir", pkiDir)
	if !strings.Contains(spec, "\nkubernetesVersion: v1.28\n") || !strings.Contains(spec, "kubeadm before v1.29") {
		t.Errorf("inferred spec is not of kubeadm before v1.29:\n%s", spec)
	}
	assertAdopted(t, bin, pkiDir)
	cfg, err = kubeconfig.Load(adminConf)
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := kubeconfig.ClientPair(cfg); err != nil || !slices.Equal(got.Subject.Organization, []string{"system:masters"}) {
		t.Errorf("admin.conf after init --apply-drift: %v, %v; want it still in system:masters", got.Subject, err)
	}
	if store.Exists(filepath.Join(root, "super-admin.conf")) {
		t.Error("init created super-admin.conf in a pre-1.29 directory")
	}

	// The same directory against the current layout is drift: the era is
	// what makes it right.
	c, err := cluster.Parse([]byte(strings.Replace(spec, "kubernetesVersion: v1.28\n", "", 1)), "spec")
	if err != nil {
		t.Fatal(err)
	}
	data, err := cluster.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	current := filepath.Join(t.TempDir(), "current.yaml")
	if err := os.WriteFile(current, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, code := runCode(t, bin, "verify", "--dir", pkiDir, "--config", current)
	if code != 3 || !strings.Contains(out, "admin.conf: drifted: O (groups) is [system:masters], want [kubeadm:cluster-admins]") || !strings.Contains(out, "super-admin.conf: missing") {
		t.Errorf("verify against the current layout: exit %d, want 3 with admin.conf drifted and super-admin.conf missing\n%s", code, out)
	}
}

// TestAdoptHardWayDirectory: the PKI and kubeconfigs "Kubernetes the Hard
// Way" makes with openssl and kubectl, from the tutorial's ca.conf. The
// spec inferred from them names the tutorial's cluster; verify with no
// --config reports only what the tutorial gets wrong or does beyond any
// spec (listed below), nothing else.
func TestAdoptHardWayDirectory(t *testing.T) {
	bins := testenv.Build(t)
	bin := testenv.Kubepki(t)
	dir := t.TempDir()
	conf, err := filepath.Abs("../../internal/cluster/testdata/caconf/kthw.conf")
	if err != nil {
		t.Fatal(err)
	}
	// The tutorial's commands, with 2048-bit keys to be quick.
	openssltest.HardWay(t, dir, conf, 2048, hardWayCerts...)
	for _, c := range hardWayCerts {
		if err := os.Remove(filepath.Join(dir, c+".csr")); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(filepath.Join(dir, "ca.srl")); err != nil {
		t.Fatal(err)
	}
	// The tutorial's kubeconfigs, made with kubectl: the kubelets and
	// kube-proxy dial server.kubernetes.local, the rest 127.0.0.1.
	kubeconfigs := []struct{ file, user, server string }{
		{"node-0", "system:node:node-0", "https://server.kubernetes.local:6443"},
		{"node-1", "system:node:node-1", "https://server.kubernetes.local:6443"},
		{"kube-proxy", "system:kube-proxy", "https://server.kubernetes.local:6443"},
		{"kube-controller-manager", "system:kube-controller-manager", "https://127.0.0.1:6443"},
		{"kube-scheduler", "system:kube-scheduler", "https://127.0.0.1:6443"},
		{"admin", "admin", "https://127.0.0.1:6443"},
	}
	for _, k := range kubeconfigs {
		kc := k.file + ".kubeconfig"
		for _, args := range [][]string{
			{"config", "set-cluster", "kubernetes-the-hard-way", "--certificate-authority=ca.crt", "--embed-certs=true", "--server=" + k.server, "--kubeconfig=" + kc},
			{"config", "set-credentials", k.user, "--client-certificate=" + k.file + ".crt", "--client-key=" + k.file + ".key", "--embed-certs=true", "--kubeconfig=" + kc},
			{"config", "set-context", "default", "--cluster=kubernetes-the-hard-way", "--user=" + k.user, "--kubeconfig=" + kc},
			{"config", "use-context", "default", "--kubeconfig=" + kc},
		} {
			cmd := exec.Command(bins.Kubectl, args...)
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
	}
	// openssl and kubectl follow the umask; set the modes a careful admin
	// would, as kubepki checks them.
	if err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir():
			return os.Chmod(path, 0o700)
		case strings.HasSuffix(path, ".crt"):
			return os.Chmod(path, 0o644)
		default:
			return os.Chmod(path, 0o600)
		}
	}); err != nil {
		t.Fatal(err)
	}

	spec := run(t, bin, "config", "from-dir", dir)
	lines := strings.Split(spec, "\n")
	for _, w := range []string{
		"name: kubernetes-the-hard-way", "serviceCIDR: 10.32.0.0/24", "dnsDomain: cluster.local", "keyAlgorithm: RSA-2048",
		"  endpoint: server.kubernetes.local:6443", "  - api-server.kubernetes.local",
		"  name: server", "  - server.kubernetes.local", "- name: node-0", "- name: node-1",
		"  country: US", "  province: Washington", "  locality: Seattle", "  ca: 87672h0m0s", "  leaf: 87672h0m0s",
	} {
		if !slices.Contains(lines, w) {
			t.Errorf("inferred spec lacks line %q:\n%s", w, spec)
		}
	}
	if !strings.Contains(spec, "kubernetes.svc.cluster.local, which is no name of the kubernetes Service") {
		t.Errorf("inferred spec does not say why it leaves kubernetes.svc.cluster.local out:\n%s", spec)
	}

	out, code := runCode(t, bin, "verify", "--dir", dir)
	if code != 3 {
		t.Fatalf("verify: exit %d, want 3 (the tutorial's mistakes)\n%s", code, out)
	}
	t.Logf("verify on the tutorial's directory, no --config:\n%s", out)
	// The tutorial's own mistakes, as config import-openssl names them, and
	// nothing else: what its ca.conf gives kube-proxy, kube-scheduler and
	// kube-controller-manager beyond a client certificate (serverAuth and
	// SANs) is inferred into components:, and admin.kubeconfig dialling
	// 127.0.0.1, a name of the API server, is no drift.
	allowed := []string{
		dir + "/kube-scheduler.crt: drifted: O (groups) is [system:system:kube-scheduler], want [system:kube-scheduler]",
		dir + "/kube-api-server.crt: drifted: SAN DNS:kubernetes.default.svc.cluster.local required by spec, absent",
		dir + "/kube-api-server.crt: drifted: SAN DNS:kubernetes.svc.cluster.local present, not in spec",
	}
	for _, c := range []string{"kube-proxy", "kube-scheduler", "kube-controller-manager"} {
		if !strings.Contains(spec, "  "+c+":\n    extraSANs:\n    - "+c+"\n    - 127.0.0.1\n    extraUsages:\n    - server auth\n") {
			t.Errorf("inferred spec does not keep %s's serverAuth and SANs in components:\n%s", c, spec)
		}
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, dir) && !slices.Contains(allowed, l) {
			t.Errorf("verify reports what the tutorial does right: %s", l)
		}
	}
	for _, n := range []string{"node-0", "node-1", "admin", "service-accounts", "ca"} {
		if strings.Contains(out, dir+"/"+n+".crt") {
			t.Errorf("verify reports %s.crt, which the tutorial makes right:\n%s", n, out)
		}
	}
}
