package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/testenv"
)

// kubeadmServer describes, for kubeadm v1.37, the control plane of
// serverSpec's one-node spec: the same node name and address, endpoint,
// service subnet and extra SANs.
var kubeadmServer = testenv.KubeadmNodeConfig{
	NodeName:         "server",
	AdvertiseAddress: "192.168.10.100",
	ClusterConfiguration: `controlPlaneEndpoint: server.kubernetes.local:6443
apiServer:
  certSANs: [server.kubernetes.local, api-server.kubernetes.local]
networking:
  serviceSubnet: 10.32.0.0/24
  dnsDomain: cluster.local
`,
}

// serverSpec writes dir/cluster.yaml, the cluster of kubeadmServer as a
// kubepki spec: one control-plane node, which kubeadm's kubelet.conf
// belongs to. It returns the file's path.
func serverSpec(t *testing.T, dir string) string {
	t.Helper()
	spec := filepath.Join(dir, "cluster.yaml")
	c := cluster.Default()
	c.Name = "kubernetes"
	c.Nodes = c.Nodes[:1]
	data, err := cluster.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(spec, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return spec
}

// TestVerifyKubeadmDirectory runs kubepki verify on a PKI and kubeconfigs
// the real kubeadm made (init phase certs all, init phase kubeconfig all)
// for the same cluster: every certificate, key, identity, usage and SAN
// kubeadm wrote is what kubepki's kubeadm catalog says, and verify is clean.
// Then one kubeadm file is broken, and verify says so.
func TestVerifyKubeadmDirectory(t *testing.T) {
	bin := testenv.Kubepki(t)
	node := testenv.NewKubeadmNode(t, kubeadmServer)
	root, pkiDir := node.Dir, node.PKIDir
	spec := serverSpec(t, root)

	out, code := runCode(t, bin, "verify", "--profile", "kubeadm", "--config", spec, "--dir", pkiDir, "--kubeconfig-dir", root)
	if code != 0 {
		t.Fatalf("verify of kubeadm's directory: exit %d, want 0\n%s", code, out)
	}
	for _, want := range []string{"CA ca: key present", "CA etcd-ca: key present", "CA front-proxy-ca: key present", "no findings"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify output lacks %q:\n%s", want, out)
		}
	}

	// kubeadm's scheduler certificate, swapped for its controller-manager's:
	// the wrong identity is a finding.
	sched, cm := filepath.Join(root, "scheduler.conf"), filepath.Join(root, "controller-manager.conf")
	cmData, err := os.ReadFile(cm)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sched, cmData, 0o600); err != nil {
		t.Fatal(err)
	}
	out, code = runCode(t, bin, "verify", "--profile", "kubeadm", "--config", spec, "--dir", pkiDir, "--kubeconfig-dir", root)
	if code != 3 || !strings.Contains(out, `scheduler.conf: drifted: CN is "system:kube-controller-manager", want "system:kube-scheduler"`) {
		t.Errorf("verify after swapping scheduler.conf: exit %d, want 3 and the CN finding\n%s", code, out)
	}
}
