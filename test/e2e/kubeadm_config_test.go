package e2e

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/testenv"
)

// kubeadmConfigs are kubeadm configurations that change what kubeadm's PKI
// holds: every field kubepki maps that kubeadm's certs and kubeconfig phases
// read. kubeadm writes a testenv.KubeadmNode; kubepki gets its own
// directory with --cert-dir.
var kubeadmConfigs = []struct {
	name   string
	config testenv.KubeadmNodeConfig
}{
	{"v1beta4 everything", testenv.KubeadmNodeConfig{
		NodeName:         "cp-1",
		AdvertiseAddress: "10.20.30.40",
		ClusterName:      "e2e",
		ClusterConfiguration: `controlPlaneEndpoint: api.e2e.example
networking:
  serviceSubnet: 10.150.0.0/16,fd00:10:150::/112
  podSubnet: 10.244.0.0/16
  dnsDomain: e2e.local
apiServer:
  certSANs: [api.e2e.example, 10.20.30.100, lb.e2e.example]
etcd:
  local:
    serverCertSANs: [etcd.e2e.example, 10.20.30.41]
    peerCertSANs: [peer.e2e.example, 10.20.30.42]
encryptionAlgorithm: ECDSA-P256
certificateValidityPeriod: 720h0m0s
caCertificateValidityPeriod: 43800h0m0s
`}},
	// kubeadm v1.37 refuses v1beta3 files, so the external etcd is v1beta4.
	{"external etcd, RSA-3072", testenv.KubeadmNodeConfig{
		NodeName:         "cp-2",
		AdvertiseAddress: "10.20.30.50",
		ClusterConfiguration: `controlPlaneEndpoint: 10.20.30.200:443
encryptionAlgorithm: RSA-3072
networking:
  serviceSubnet: 172.30.0.0/16
apiServer:
  certSANs: [api2.e2e.example]
etcd:
  external:
    endpoints: [https://10.20.30.60:2379]
    caFile: /etc/etcd/ca.crt
    certFile: /etc/etcd/client.crt
    keyFile: /etc/etcd/client.key
`}},
}

// TestKubeadmConfigSamePKI gives one kubeadm configuration to the real
// kubeadm (init phase certs all, init phase kubeconfig all) and to kubepki
// init, each writing its own directory, and compares the two file by file:
// every certificate's subject, SANs, key usages, extended key usages, CA
// flag, validity length and key; every key's algorithm; every kubeconfig's
// user (CN and O), server and cluster. A file one tool writes and the other
// does not fails the test.
func TestKubeadmConfigSamePKI(t *testing.T) {
	bin := testenv.Kubepki(t)
	for _, tc := range kubeadmConfigs {
		t.Run(tc.name, func(t *testing.T) {
			node := testenv.NewKubeadmNode(t, tc.config)
			kpRoot := t.TempDir()
			run(t, bin, "init", "--config", node.Config, "--cert-dir", filepath.Join(kpRoot, "pki"))

			ka, kp := pkiFiles(t, node.Dir), pkiFiles(t, kpRoot)
			// kubeadm init writes the node's kubeconfig as kubelet.conf;
			// kubepki's kubeadm layout names it after the node until it is
			// installed.
			if _, ok := kp["kubelet.conf"]; !ok {
				for name := range kp {
					if strings.HasPrefix(name, "kubelet-") && strings.HasSuffix(name, ".conf") {
						kp["kubelet.conf"] = kp[name]
						delete(kp, name)
					}
				}
			}
			var names []string
			for name := range ka {
				names = append(names, name)
			}
			for name := range kp {
				if _, ok := ka[name]; !ok {
					names = append(names, name)
				}
			}
			slices.Sort(names)
			for _, name := range names {
				t.Run(name, func(t *testing.T) {
					a, inA := ka[name]
					p, inP := kp[name]
					switch {
					case !inP:
						t.Fatalf("kubeadm wrote %s, kubepki did not", name)
					case !inA:
						t.Fatalf("kubepki wrote %s, kubeadm did not", name)
					}
					if d := diffLines(describeFile(t, a), describeFile(t, p)); d != "" {
						t.Errorf("%s differs (- kubeadm, + kubepki):\n%s", name, d)
					}
				})
			}
		})
	}
}

// pkiFiles lists the files under root (a PKI directory and its parent's
// kubeconfigs) by path relative to root.
func pkiFiles(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(root, path)
		out[filepath.ToSlash(rel)] = path
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// describeFile renders what must match in a file, one fact a line.
func describeFile(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case strings.HasSuffix(path, ".conf"):
		kc, err := clientcmd.Load(data)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		ctx := kc.Contexts[kc.CurrentContext]
		if ctx == nil {
			t.Fatalf("%s: no current context", path)
		}
		out := []string{"context " + kc.CurrentContext, "cluster " + ctx.Cluster, "server " + kc.Clusters[ctx.Cluster].Server}
		cert := parseCert(t, path, kc.AuthInfos[ctx.AuthInfo].ClientCertificateData)
		out = append(out, "user CN="+cert.Subject.CommonName, fmt.Sprintf("user O=%v", cert.Subject.Organization))
		return append(out, describeCert(cert)...)
	case strings.HasSuffix(path, ".crt"):
		return describeCert(parseCert(t, path, data))
	default: // .key, .pub
		block, _ := pem.Decode(data)
		if block == nil {
			t.Fatalf("%s: no PEM", path)
		}
		var key any
		switch block.Type {
		case "PUBLIC KEY":
			key, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		default:
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return []string{"key " + keyName(key)}
	}
}

func parseCert(t *testing.T, path string, data []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s: no certificate", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

// describeCert is a certificate's shape; the validity length is rounded to
// the minute, so two certificates made a few seconds apart match. The key
// usage is kubepki's rule (kubepkiKeyUsage) applied to what the file says.
func describeCert(c *x509.Certificate) []string {
	var sans []string
	for _, d := range c.DNSNames {
		sans = append(sans, "DNS:"+d)
	}
	for _, ip := range c.IPAddresses {
		sans = append(sans, "IP:"+ip.String())
	}
	slices.Sort(sans)
	var ekus []string
	for _, u := range c.ExtKeyUsage {
		ekus = append(ekus, fmt.Sprint(u))
	}
	slices.Sort(ekus)
	return []string{
		"subject " + c.Subject.String(),
		"SANs " + strings.Join(sans, ","),
		"key usage " + strings.Join(pki.KeyUsageNames(kubepkiKeyUsage(c)), ","),
		"ext key usage " + strings.Join(ekus, ","),
		fmt.Sprintf("CA %v", c.IsCA),
		"validity " + c.NotAfter.Sub(c.NotBefore).Round(time.Minute).String(),
		"key " + keyName(c.PublicKey),
	}
}

// kubepkiKeyUsage is a certificate's key usage with kubepki's two
// deliberate differences from kubeadm's pkiutil applied, so that anything
// else that differs still fails: keyEncipherment only on RSA keys (kubeadm
// asserts it on ECDSA keys too, which RFC 5480 section 3 forbids), and a CA
// asserts cRLSign, not keyEncipherment (a CA signs; it never has a key
// encrypted to it). A certificate kubepki wrote is unchanged by it.
func kubepkiKeyUsage(c *x509.Certificate) x509.KeyUsage {
	ku := c.KeyUsage
	if _, rsaKey := c.PublicKey.(*rsa.PublicKey); !rsaKey || c.IsCA {
		ku &^= x509.KeyUsageKeyEncipherment
	}
	if c.IsCA {
		ku |= x509.KeyUsageCRLSign
	}
	return ku
}

func keyName(k any) string {
	switch k := k.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d", k.N.BitLen())
	case *rsa.PrivateKey:
		return fmt.Sprintf("RSA-%d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA-" + k.Curve.Params().Name
	case *ecdsa.PrivateKey:
		return "ECDSA-" + k.Curve.Params().Name
	case ed25519.PublicKey, ed25519.PrivateKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", k)
}

// diffLines lists the facts only one side has.
func diffLines(a, b []string) string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, "- "+x)
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			out = append(out, "+ "+x)
		}
	}
	return strings.Join(out, "\n")
}

// TestFromCluster reads kubeadm's ClusterConfiguration from a real
// kube-apiserver's kube-system/kubeadm-config ConfigMap (--from-cluster):
// without the ConfigMap it says what is missing; with it, plan and init
// use its certificatesDir, service subnet, certSANs, algorithm and
// validity.
func TestFromCluster(t *testing.T) {
	bins := testenv.Build(t)
	bin := testenv.Kubepki(t)
	w := newWiredCluster(t, bin, "kubeadm", testenv.FreePort(t))
	testenv.Start(t, "etcd", bins.Etcd, w.flags(t, "etcd")...)
	testenv.Start(t, "kube-apiserver", bins.KubeAPIServer, w.flags(t, "kube-apiserver")...)
	admin := filepath.Join(w.kcDir, "super-admin.conf")
	waitFor(t, 60*time.Second, "kube-apiserver /readyz", func() error {
		_, err := testenv.Kubectl(t, bins, admin, "get", "--raw", "/readyz")
		return err
	})

	certDir := filepath.Join(t.TempDir(), "pki")
	out, code := runCode(t, bin, "plan", "--from-cluster", "--kubeconfig", admin)
	if code != 1 || !strings.Contains(out, "ConfigMap kube-system/kubeadm-config not found: not a kubeadm cluster") {
		t.Fatalf("--from-cluster without the ConfigMap: exit %d, want 1 and what is missing\n%s", code, out)
	}

	cc := filepath.Join(t.TempDir(), "ClusterConfiguration")
	if err := os.WriteFile(cc, []byte(`apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.37.2
clusterName: live
certificatesDir: `+certDir+`
controlPlaneEndpoint: live.e2e.example:6443
networking:
  serviceSubnet: 10.160.0.0/16
  dnsDomain: live.local
apiServer:
  certSANs: [extra.live.e2e.example]
encryptionAlgorithm: ECDSA-P384
certificateValidityPeriod: 2000h
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := testenv.Kubectl(t, bins, admin, "create", "configmap", "kubeadm-config", "-n", "kube-system", "--from-file=ClusterConfiguration="+cc); err != nil {
		t.Fatalf("create ConfigMap: %v\n%s", err, out)
	}

	// The plan is for the cluster's certificatesDir (no --dir given).
	out, code = runCode(t, bin, "plan", "--from-cluster", "--kubeconfig", admin)
	if code != 3 || !strings.Contains(out, filepath.Join(certDir, "apiserver.crt")) || !strings.Contains(out, filepath.Join(filepath.Dir(certDir), "admin.conf")) {
		t.Fatalf("plan --from-cluster: exit %d, want 3 with the paths under %s\n%s", code, certDir, out)
	}
	run(t, bin, "init", "--from-cluster", "--kubeconfig", admin)
	data, err := os.ReadFile(filepath.Join(certDir, "apiserver.crt"))
	if err != nil {
		t.Fatal(err)
	}
	api := parseCert(t, "apiserver.crt", data)
	got := strings.Join(describeCert(api), "\n")
	for _, want := range []string{"IP:10.160.0.1", "DNS:extra.live.e2e.example", "DNS:live.e2e.example", "DNS:kubernetes.default.svc.live.local", "key ECDSA-P-384", "validity 2000h5m0s"} {
		if !strings.Contains(got, want) {
			t.Errorf("apiserver.crt from the cluster's configuration lacks %q:\n%s", want, got)
		}
	}
	if out, code := runCode(t, bin, "plan", "--from-cluster", "--kubeconfig", admin, "--config", cc); code != 2 {
		t.Errorf("--from-cluster with --config: exit %d, want 2\n%s", code, out)
	}
}
