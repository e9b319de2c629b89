package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/certificate"
	"sigs.k8s.io/yaml"
)

// KubeadmServerName is a DNS name every kubeadm apiserver serving
// certificate holds. kubeadm's kubeconfigs name the node's advertise address
// (not 127.0.0.1), so clients of a KubeadmNode's apiserver dial 127.0.0.1
// and check this name instead (kubectl --tls-server-name).
const KubeadmServerName = "kubernetes"

// kubeadmTimeout bounds one kubeadm command.
const kubeadmTimeout = 2 * time.Minute

// KubeadmNodeConfig describes the control-plane node kubeadm is run for.
// Zero values take the defaults named on each field.
type KubeadmNodeConfig struct {
	// NodeName is nodeRegistration.name: the CN of kubelet.conf is
	// system:node:<NodeName>. Default "cp1".
	NodeName string
	// AdvertiseAddress is localAPIEndpoint.advertiseAddress. kubeadm
	// refuses a loopback address here, so the default is 192.168.10.100;
	// the servers the fixture starts still listen on 127.0.0.1 only.
	AdvertiseAddress string
	// ClusterName is the ClusterConfiguration's clusterName. Default
	// "kubernetes".
	ClusterName string
	// ClusterConfiguration is extra YAML merged into kubeadm's
	// ClusterConfiguration (v1beta4) document, e.g.
	// "networking:\n  serviceSubnet: 10.100.0.0/16\n". It must not set
	// kubernetesVersion, clusterName or certificatesDir, which the fixture
	// owns.
	ClusterConfiguration string
}

// KubeadmNode is a control-plane node's /etc/kubernetes as the real kubeadm
// writes it, in a temporary root: Root/etc/kubernetes holds pki/, admin.conf,
// super-admin.conf, controller-manager.conf, scheduler.conf and kubelet.conf.
type KubeadmNode struct {
	// Root stands for the node's "/".
	Root string
	// Dir is Root/etc/kubernetes, the kubeconfig directory.
	Dir string
	// PKIDir is Root/etc/kubernetes/pki, kubeadm's certificatesDir.
	PKIDir string
	// Config is the kubeadm InitConfiguration + ClusterConfiguration file
	// the node was made with (outside Root).
	Config string
	// NodeName is the node's name (nodeRegistration.name).
	NodeName string

	bins Binaries
	cfg  KubeadmNodeConfig
}

// NewKubeadmNode runs the real kubeadm (`init phase certs all` and `init
// phase kubeconfig all`) for a one-node control plane into a new temporary
// root. kubelet.conf embeds its client certificate, as `kubeadm init` first
// writes it; see KubeletClientCurrent for the layout after the kubelet's
// bootstrap. Like Build, it skips the test under -short.
func NewKubeadmNode(t testing.TB, cfg KubeadmNodeConfig) *KubeadmNode {
	t.Helper()
	bins := Build(t)
	if cfg.NodeName == "" {
		cfg.NodeName = "cp1"
	}
	if cfg.AdvertiseAddress == "" {
		cfg.AdvertiseAddress = "192.168.10.100"
	}
	if cfg.ClusterName == "" {
		cfg.ClusterName = "kubernetes"
	}
	n := newKubeadmNode(t, bins, cfg, t.TempDir())
	n.MustKubeadm(t, "init", "phase", "certs", "all", "--config", n.Config)
	n.MustKubeadm(t, "init", "phase", "kubeconfig", "all", "--config", n.Config, "--kubeconfig-dir", n.Dir)
	return n
}

// newKubeadmNode lays out an empty node root and writes its kubeadm config.
func newKubeadmNode(t testing.TB, bins Binaries, cfg KubeadmNodeConfig, root string) *KubeadmNode {
	t.Helper()
	n := &KubeadmNode{
		Root:     root,
		Dir:      filepath.Join(root, "etc", "kubernetes"),
		PKIDir:   filepath.Join(root, "etc", "kubernetes", "pki"),
		Config:   filepath.Join(t.TempDir(), "kubeadm.yaml"),
		NodeName: cfg.NodeName,
		bins:     bins,
		cfg:      cfg,
	}
	if err := os.MkdirAll(n.Dir, 0o755); err != nil {
		t.Fatalf("testenv: kubeadm node: %v", err)
	}
	if err := os.WriteFile(n.Config, []byte(kubeadmConfig(cfg, n.PKIDir)), 0o644); err != nil {
		t.Fatalf("testenv: kubeadm node: %v", err)
	}
	return n
}

// kubeadmConfig is the kubeadm v1beta4 configuration of a node whose
// certificates live in certDir.
func kubeadmConfig(cfg KubeadmNodeConfig, certDir string) string {
	return `apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: ` + cfg.AdvertiseAddress + `
  bindPort: 6443
nodeRegistration:
  name: ` + cfg.NodeName + `
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.37.2
clusterName: ` + cfg.ClusterName + `
certificatesDir: ` + certDir + "\n" + cfg.ClusterConfiguration
}

// Kubeadm runs kubeadm with args and returns its combined output.
func (n *KubeadmNode) Kubeadm(t testing.TB, args ...string) (string, error) {
	t.Helper()
	return runKubeadm(n.bins, nil, args...)
}

// MustKubeadm is Kubeadm that fails the test on a non-zero exit.
func (n *KubeadmNode) MustKubeadm(t testing.TB, args ...string) string {
	t.Helper()
	out, err := n.Kubeadm(t, args...)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return out
}

func runKubeadm(bins Binaries, env []string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), kubeadmTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins.Kubeadm, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubeadm %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Copy returns a new node root holding a copy of n's files: the same CAs
// and certificates, so one control plane started from either trusts the
// kubeconfigs of both. Symbolic links and kubeconfigs that name a path
// inside n.Root are rewritten to the same path inside the copy.
func (n *KubeadmNode) Copy(t testing.TB) *KubeadmNode {
	t.Helper()
	c := newKubeadmNode(t, n.bins, n.cfg, t.TempDir())
	err := filepath.WalkDir(n.Root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(n.Root, path)
		if err != nil {
			return err
		}
		dst := filepath.Join(c.Root, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(dst, info.Mode().Perm())
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(rerooted(target, n.Root, c.Root), dst)
		case d.Type().IsRegular():
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if strings.HasSuffix(path, ".conf") {
				data = []byte(strings.ReplaceAll(string(data), n.Root+string(filepath.Separator), c.Root+string(filepath.Separator)))
			}
			return os.WriteFile(dst, data, info.Mode().Perm())
		}
		return fmt.Errorf("%s: not a regular file, directory or symbolic link", path)
	})
	if err != nil {
		t.Fatalf("testenv: copy kubeadm node: %v", err)
	}
	return c
}

// rerooted moves path from under oldRoot to under newRoot; other paths are
// returned as they are.
func rerooted(path, oldRoot, newRoot string) string {
	if rel, ok := strings.CutPrefix(path, oldRoot+string(filepath.Separator)); ok {
		return filepath.Join(newRoot, rel)
	}
	return path
}

// KubeletCertDir is Root/var/lib/kubelet/pki, the kubelet's --cert-dir.
func (n *KubeadmNode) KubeletCertDir() string {
	return filepath.Join(n.Root, "var", "lib", "kubelet", "pki")
}

// KubeletClientCurrent turns kubelet.conf into what a node has after the
// kubelet's TLS bootstrap and kubeadm's kubelet-finalize phase: kubelet.conf's
// embedded client certificate and key are stored the way the kubelet stores
// them (client-go's certificate file store: KubeletCertDir()/
// kubelet-client-<timestamp>.pem holding the certificate and key, and the
// symbolic link kubelet-client-current.pem to it), and kubelet.conf's user
// names that link as client-certificate and client-key, as kubeadm's
// kubelet-finalize phase writes it. It returns the link's path.
func (n *KubeadmNode) KubeletClientCurrent(t testing.TB) string {
	t.Helper()
	kubeconfig := filepath.Join(n.Dir, "kubelet.conf")
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatalf("testenv: kubelet client: %v", err)
	}
	ctx, ok := cfg.Contexts[cfg.CurrentContext]
	if !ok {
		t.Fatalf("testenv: kubelet client: %s: no current context", kubeconfig)
	}
	user, ok := cfg.AuthInfos[ctx.AuthInfo]
	if !ok || len(user.ClientCertificateData) == 0 || len(user.ClientKeyData) == 0 {
		t.Fatalf("testenv: kubelet client: %s: no embedded client certificate and key", kubeconfig)
	}
	dir := n.KubeletCertDir()
	store, err := certificate.NewFileStore("kubelet-client", dir, dir, "", "")
	if err != nil {
		t.Fatalf("testenv: kubelet client: %v", err)
	}
	if _, err := store.Update(user.ClientCertificateData, user.ClientKeyData); err != nil {
		t.Fatalf("testenv: kubelet client: %v", err)
	}
	current := filepath.Join(dir, "kubelet-client-current.pem")
	user.ClientCertificateData, user.ClientKeyData = []byte{}, []byte{}
	user.ClientCertificate, user.ClientKey = current, current
	if err := clientcmd.WriteToFile(*cfg, kubeconfig); err != nil {
		t.Fatalf("testenv: kubelet client: %v", err)
	}
	return current
}

// APIServerFlags returns the flags of kubeadm's own static Pod manifest for
// kube-apiserver (`kubeadm init phase control-plane apiserver --dry-run`)
// for this node, in kubeadm's order. Its paths point into n.PKIDir.
func (n *KubeadmNode) APIServerFlags(t testing.TB) []string {
	t.Helper()
	return n.manifestFlags(t, "kube-apiserver", "control-plane", "apiserver")
}

// EtcdFlags returns the flags of kubeadm's static Pod manifest for etcd
// (`kubeadm init phase etcd local --dry-run`).
func (n *KubeadmNode) EtcdFlags(t testing.TB) []string {
	t.Helper()
	return n.manifestFlags(t, "etcd", "etcd", "local")
}

// manifestFlags runs a kubeadm init phase that writes the static Pod
// manifest component.yaml in dry-run mode, which writes it to
// KUBEADM_INIT_DRYRUN_DIR (by default a directory under /etc/kubernetes/tmp,
// which the fixture must not touch), and returns the container's command
// without the binary.
func (n *KubeadmNode) manifestFlags(t testing.TB, component string, phase ...string) []string {
	t.Helper()
	dir := t.TempDir()
	args := append(append([]string{"init", "phase"}, phase...), "--config", n.Config, "--dry-run")
	if _, err := runKubeadm(n.bins, []string{"KUBEADM_INIT_DRYRUN_DIR=" + dir}, args...); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	path := filepath.Join(dir, component+".yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("testenv: kubeadm manifest: %v", err)
	}
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict(data, &pod); err != nil {
		t.Fatalf("testenv: kubeadm manifest %s: %v", path, err)
	}
	if len(pod.Spec.Containers) != 1 || len(pod.Spec.Containers[0].Command) == 0 || pod.Spec.Containers[0].Command[0] != component {
		t.Fatalf("testenv: kubeadm manifest %s: want one container running %s", path, component)
	}
	return pod.Spec.Containers[0].Command[1:]
}

// SetFlags returns flags with each --name=value whose name is a key of set
// given set's value instead, in place; names not present are appended in
// sorted order. Flags are in kubeadm's manifest form, --name=value.
func SetFlags(flags []string, set map[string]string) []string {
	out := make([]string, 0, len(flags)+len(set))
	done := map[string]bool{}
	for _, f := range flags {
		name, _, _ := strings.Cut(strings.TrimPrefix(f, "--"), "=")
		if v, ok := set[name]; ok {
			out = append(out, "--"+name+"="+v)
			done[name] = true
			continue
		}
		out = append(out, f)
	}
	names := make([]string, 0, len(set))
	for name := range set {
		if !done[name] {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		out = append(out, "--"+name+"="+set[name])
	}
	return out
}

// FlagValue returns the value of --name=value in flags.
func FlagValue(flags []string, name string) (string, bool) {
	for _, f := range flags {
		if v, ok := strings.CutPrefix(f, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// StartEtcd starts etcd with the flags of kubeadm's etcd manifest and so its
// certificates (pki/etcd/server.crt, peer.crt, ca.crt): only the listen and
// advertise URLs (free ports on 127.0.0.1) and the data directory (a
// temporary one) are changed. It waits until /health answers over TLS to
// kubeadm's etcd/healthcheck-client certificate and returns the client URL.
func (n *KubeadmNode) StartEtcd(t testing.TB) (endpoint string, p *Process) {
	t.Helper()
	flags := n.EtcdFlags(t)
	name, ok := FlagValue(flags, "name")
	if !ok {
		t.Fatal("testenv: kubeadm's etcd manifest has no --name")
	}
	endpoint = "https://127.0.0.1:" + strconv.Itoa(FreePort(t))
	peer := "https://127.0.0.1:" + strconv.Itoa(FreePort(t))
	flags = SetFlags(flags, map[string]string{
		"advertise-client-urls":       endpoint,
		"listen-client-urls":          endpoint,
		"initial-advertise-peer-urls": peer,
		"listen-peer-urls":            peer,
		"initial-cluster":             name + "=" + peer,
		"listen-metrics-urls":         "http://127.0.0.1:" + strconv.Itoa(FreePort(t)),
		"data-dir":                    t.TempDir(),
	})
	p = Start(t, "etcd", n.bins.Etcd, flags...)
	etcdPKI := filepath.Join(n.PKIDir, "etcd")
	probe := ClientTLS(t, filepath.Join(etcdPKI, "ca.crt"), filepath.Join(etcdPKI, "healthcheck-client.crt"), filepath.Join(etcdPKI, "healthcheck-client.key"))
	WaitReady(t, endpoint+"/health", probe, p)
	return endpoint, p
}

// StartAPIServer starts kube-apiserver with the flags of kubeadm's own
// static Pod manifest for this node (APIServerFlags), changed only where a
// test must: --etcd-servers is etcdEndpoint, and the server listens on
// 127.0.0.1 (--bind-address) on a free --secure-port. kubeadm's
// --advertise-address stays: kube-apiserver only publishes it in the
// kubernetes Service's endpoints (and refuses a loopback one there).
// Every certificate, key and CA flag is kubeadm's, so the server uses the
// node's PKI as it is on disk now. It waits until /readyz answers 200 (to
// an anonymous client trusting pki/ca.crt, checking KubeadmServerName) and
// returns the server URL, https://127.0.0.1:PORT.
func (n *KubeadmNode) StartAPIServer(t testing.TB, etcdEndpoint string) (server string, p *Process) {
	t.Helper()
	port := FreePort(t)
	flags := SetFlags(n.APIServerFlags(t), map[string]string{
		"etcd-servers": etcdEndpoint,
		"bind-address": "127.0.0.1",
		"secure-port":  strconv.Itoa(port),
	})
	p = Start(t, "kube-apiserver", n.bins.KubeAPIServer, flags...)
	server = "https://127.0.0.1:" + strconv.Itoa(port)
	ready := ClientTLS(t, filepath.Join(n.PKIDir, "ca.crt"), "", "")
	ready.ServerName = KubeadmServerName
	WaitReady(t, server+"/readyz", ready, p)
	return server, p
}

// KubeadmExpiration is one row of `kubeadm certs check-expiration -o json`.
type KubeadmExpiration struct {
	Name           string    `json:"name"`
	ExpirationDate time.Time `json:"expirationDate"`
	CAName         string    `json:"caName"`
	Missing        bool      `json:"missing"`
}

// KubeadmExpirations is what `kubeadm certs check-expiration` reports.
type KubeadmExpirations struct {
	Certificates           []KubeadmExpiration `json:"certificates"`
	CertificateAuthorities []KubeadmExpiration `json:"certificateAuthorities"`
}

// CheckExpiration runs the real `kubeadm certs check-expiration -o json` on
// the node. kubeadm reads kubeconfigs only from /etc/kubernetes, so as root
// it runs InRoot and reports the kubeconfigs too; otherwise it runs with
// --cert-dir PKIDir and reports every kubeconfig missing. It returns the
// report and whether the kubeconfigs were read.
func (n *KubeadmNode) CheckExpiration(t testing.TB) (KubeadmExpirations, bool) {
	t.Helper()
	out, chroot := n.KubeadmInRoot(t, "certs", "check-expiration", "-o", "json")
	if !chroot {
		args := []string{"certs", "check-expiration", "--config", n.Config, "--cert-dir", n.PKIDir, "-o", "json"}
		var err error
		if out, err = kubeadmStdout(n.bins, args...); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
	var report KubeadmExpirations
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("testenv: kubeadm check-expiration: %v\n%s", err, out)
	}
	return report, chroot
}

// KubeadmInRoot runs kubeadm as on the node itself: chrooted into Root
// (--rootfs, which needs root privileges), with --config naming a copy of
// the node's config inside Root whose certificatesDir is
// /etc/kubernetes/pki. kubeadm's certs commands read and write kubeconfigs
// only in /etc/kubernetes, so this is the way to run them on the node's
// kubeconfigs (and never on the host's). It returns kubeadm's stdout; a
// non-zero exit fails the test. Without root privileges it runs nothing and
// returns ok false.
func (n *KubeadmNode) KubeadmInRoot(t testing.TB, args ...string) (stdout string, ok bool) {
	t.Helper()
	if os.Geteuid() != 0 {
		return "", false
	}
	const inRoot = "/tmp/kubeadm-testenv.yaml"
	cfg := filepath.Join(n.Root, inRoot)
	if err := os.MkdirAll(filepath.Dir(cfg), 0o755); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := os.WriteFile(cfg, []byte(kubeadmConfig(n.cfg, "/etc/kubernetes/pki")), 0o644); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	defer os.Remove(cfg)
	out, err := kubeadmStdout(n.bins, append(args, "--rootfs", n.Root, "--config", inRoot)...)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return out, true
}

// kubeadmStdout runs kubeadm and returns its stdout; the error includes
// stderr.
func kubeadmStdout(bins Binaries, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), kubeadmTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins.Kubeadm, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("kubeadm %s: %w\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out), nil
}
