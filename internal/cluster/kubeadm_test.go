package cluster

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

var testHost = Host{Name: "cp1", Hostnames: []string{"cp1.example.com"}, IPs: []string{"192.0.2.10"}}

func TestKubeadmDefault(t *testing.T) {
	c := KubeadmDefault(testHost)
	if fs := Validate(c); HasErrors(fs) {
		t.Fatalf("kubeadm default is invalid: %v", fs)
	}
	want := &Cluster{
		APIVersion: APIVersion, Kind: Kind,
		Name: "kubernetes", DNSDomain: "cluster.local", ServiceCIDR: "10.96.0.0/12",
		APIServer:    APIServer{Endpoint: "192.0.2.10:6443"},
		KeyAlgorithm: "RSA-2048",
		Validity:     Validity{CA: Duration{87600 * time.Hour}, Leaf: Duration{8760 * time.Hour}},
		Nodes: []Node{{Name: "cp1", Roles: []Role{RoleControlPlane}, IPs: []string{"192.0.2.10"},
			Hostnames: []string{"cp1.example.com"}}},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("KubeadmDefault =\n%+v\nwant\n%+v", c, want)
	}
	if c.Subject != (Subject{}) {
		t.Errorf("kubeadm writes no C/ST/L/O; default subject is %+v", c.Subject)
	}
}

func TestLocalHost(t *testing.T) {
	h := LocalHost()
	if h.Name == "" || h.Name != strings.ToLower(h.Name) || strings.Contains(h.Name, ".") {
		t.Errorf("node name %q: want the host name's first label, lower-cased", h.Name)
	}
	if len(h.IPs) != 1 {
		t.Errorf("IPs %v: want one address", h.IPs)
	}
}

const kubeadmV1beta4 = `apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 10.1.2.3
  bindPort: 8443
nodeRegistration:
  name: master-1
  criSocket: unix:///run/containerd/containerd.sock
  taints: []
  kubeletExtraArgs:
  - name: v
    value: "2"
bootstrapTokens:
- token: abcdef.0123456789abcdef
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.31.4
clusterName: prod
controlPlaneEndpoint: api.example.com
certificatesDir: /srv/pki
imageRepository: registry.k8s.io
networking:
  serviceSubnet: 10.100.0.0/16,fd00:10:96::/112
  podSubnet: 10.244.0.0/16
  dnsDomain: prod.local
apiServer:
  certSANs: [api.example.com, 10.1.2.100]
  extraArgs:
  - name: audit-log-path
    value: /var/log/audit.log
etcd:
  local:
    dataDir: /var/lib/etcd
    serverCertSANs: [etcd.example.com]
    peerCertSANs: [10.1.2.3, peer.example.com]
encryptionAlgorithm: ECDSA-P256
certificateValidityPeriod: 2160h
caCertificateValidityPeriod: 3650d
dns:
  disabled: true
proxy:
  disabled: true
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
`

func TestParseKubeadm(t *testing.T) {
	kc, err := ParseKubeadm([]byte(kubeadmV1beta4), "kubeadm.yaml", testHost)
	if err != nil {
		t.Fatal(err)
	}
	c := kc.Cluster
	if fs := Validate(c); HasErrors(fs) {
		t.Fatalf("mapped spec is invalid: %v", fs)
	}
	want := &Cluster{
		APIVersion: APIVersion, Kind: Kind,
		Name: "prod", KubernetesVersion: "v1.31", DNSDomain: "prod.local", ServiceCIDR: "10.100.0.0/16", PodCIDR: "10.244.0.0/16",
		// controlPlaneEndpoint without a port takes the bind port.
		APIServer:    APIServer{Endpoint: "api.example.com:8443", ExtraSANs: []string{"api.example.com", "10.1.2.100"}},
		KeyAlgorithm: "ECDSA-P256",
		Validity:     Validity{CA: Duration{3650 * 24 * time.Hour}, Leaf: Duration{2160 * time.Hour}},
		// nodeRegistration.name replaces the host, its FQDN included.
		Nodes: []Node{{Name: "master-1", Roles: []Role{RoleControlPlane}, IPs: []string{"10.1.2.3"}, Hostnames: []string{}}},
		Etcd:  EtcdSpec{ServerCertSANs: []string{"etcd.example.com"}, PeerCertSANs: []string{"10.1.2.3", "peer.example.com"}},
	}
	if len(c.Nodes) == 1 && c.Nodes[0].Hostnames == nil {
		want.Nodes[0].Hostnames = nil
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("ParseKubeadm =\n%+v\nwant\n%+v", c, want)
	}
	if kc.CertificatesDir != "/srv/pki" || kc.KubernetesVersion != "v1.31" {
		t.Errorf("certificatesDir %q, kubernetesVersion %q; want /srv/pki, v1.31", kc.CertificatesDir, kc.KubernetesVersion)
	}
}

// TestParseKubeadmMapping: one row per kubeadm field and what it becomes.
func TestParseKubeadmMapping(t *testing.T) {
	cc := func(body string) string {
		return "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n" + body
	}
	tests := []struct {
		name  string
		yaml  string
		check func(*KubeadmConfig) string
	}{
		{"nothing set: kubeadm's defaults for the host", cc(""), func(kc *KubeadmConfig) string {
			c := kc.Cluster
			if c.ServiceCIDR != "10.96.0.0/12" || c.APIServer.Endpoint != "192.0.2.10:6443" || c.Nodes[0].Name != "cp1" ||
				c.KeyAlgorithm != "RSA-2048" || kc.CertificatesDir != "/etc/kubernetes/pki" || kc.KubernetesVersion != "" {
				return "not kubeadm's defaults"
			}
			return ""
		}},
		{"endpoint with port kept; the API server's own port is the bind port", cc("controlPlaneEndpoint: lb:443\n"), func(kc *KubeadmConfig) string {
			return want(kc.Cluster.APIServer.Endpoint+" "+kc.Cluster.APIServer.SecurePort(), "lb:443 6443")
		}},
		{"IPv6 endpoint gets the port", cc("controlPlaneEndpoint: fd00::1\n"), func(kc *KubeadmConfig) string {
			return want(kc.Cluster.APIServer.Endpoint, "[fd00::1]:6443")
		}},
		{"InitConfiguration alone", "apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\nlocalAPIEndpoint:\n  advertiseAddress: 10.0.0.5\n", func(kc *KubeadmConfig) string {
			return want(kc.Cluster.APIServer.Endpoint+" "+kc.Cluster.Nodes[0].IPs[0], "10.0.0.5:6443 10.0.0.5")
		}},
		{"external etcd", cc("etcd:\n  external:\n    endpoints: [https://10.0.0.9:2379]\n    caFile: /e/ca.crt\n    certFile: /e/c.crt\n    keyFile: /e/c.key\n"), func(kc *KubeadmConfig) string {
			x := kc.Cluster.Etcd.External
			if x == nil || x.Endpoints[0] != "https://10.0.0.9:2379" || x.CAFile != "/e/ca.crt" || x.KeyFile != "/e/c.key" {
				return "external etcd not mapped"
			}
			return ""
		}},
		{"v1beta3 with its own fields", "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\napiServer:\n  timeoutForControlPlane: 4m0s\n  extraArgs:\n    v: \"2\"\nkubernetesVersion: stable-1.29\n", func(kc *KubeadmConfig) string {
			return want(kc.KubernetesVersion, "v1.29")
		}},
		{"days in a validity", cc("certificateValidityPeriod: 30d\n"), func(kc *KubeadmConfig) string {
			return want(kc.Cluster.Validity.Leaf.Duration.String(), "720h0m0s")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kc, err := ParseKubeadm([]byte(tc.yaml), "k.yaml", testHost)
			if err != nil {
				t.Fatal(err)
			}
			if msg := tc.check(kc); msg != "" {
				t.Error(msg)
			}
		})
	}
}

func want(got, want string) string {
	if got != want {
		return "got " + got + ", want " + want
	}
	return ""
}

func TestParseKubeadmRefuses(t *testing.T) {
	cc := func(body string) string {
		return "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n" + body
	}
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown field", cc("certificateDir: /x\n"), `k.yaml: kubeadm.k8s.io/v1beta4 ClusterConfiguration: unknown field "certificateDir"`},
		{"unknown nested field", cc("networking:\n  serviceCIDR: 10.0.0.0/16\n"), `unknown field "networking.serviceCIDR"`},
		{"v1beta4 field in v1beta3", "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nencryptionAlgorithm: RSA-2048\n", `unknown field "encryptionAlgorithm" (a field of kubeadm.k8s.io/v1beta4 only)`},
		{"v1beta3 field in v1beta4", cc("apiServer:\n  timeoutForControlPlane: 4m\n"), `unknown field "apiServer.timeoutForControlPlane" (a field of kubeadm.k8s.io/v1beta3 only)`},
		{"old version", "apiVersion: kubeadm.k8s.io/v1beta2\nkind: ClusterConfiguration\n", "version v1beta2 is not supported"},
		{"foreign document", cc("") + "---\napiVersion: v1\nkind: ConfigMap\n", "v1 ConfigMap: not a kubeadm configuration document"},
		{"two ClusterConfigurations", cc("") + "---\n" + cc(""), "a second ClusterConfiguration"},
		{"algorithm kubeadm lacks", cc("encryptionAlgorithm: Ed25519\n"), `encryptionAlgorithm: "Ed25519" is not one of kubeadm's`},
		{"bad duration", cc("certificateValidityPeriod: 1y\n"), `invalid duration "1y"`},
		{"node name not a label", "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n  name: cp1.example.com\n", `nodeRegistration.name: "cp1.example.com": kubepki node names are DNS labels`},
		{"bad advertise address", "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  advertiseAddress: cp1\n", `localAPIEndpoint.advertiseAddress: "cp1" is not an IP address`},
		{"bad endpoint", cc("controlPlaneEndpoint: a:b:c:x\n"), `controlPlaneEndpoint: "a:b:c:x" is not host or host:port`},
		{"local and external etcd", cc("etcd:\n  local: {}\n  external:\n    endpoints: [x]\n"), "etcd: local and external are mutually exclusive"},
		{"external etcd without endpoints", cc("etcd:\n  external: {}\n"), "etcd.external.endpoints: at least one endpoint"},
		{"bad version", cc("kubernetesVersion: one\n"), `kubernetesVersion: "one" is not a Kubernetes version`},
		{"only component configs", "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n", "no kubeadm ClusterConfiguration or InitConfiguration"},
		{"duplicate field", cc("clusterName: a\nclusterName: b\n"), `key "clusterName" already set`},
		{"relative certificatesDir", cc("certificatesDir: pki\n"), `k.yaml: ClusterConfiguration.certificatesDir: "pki" is not an absolute path`},
		{"certificatesDir with ..", cc("certificatesDir: /etc/kubernetes/../pki\n"), `k.yaml: ClusterConfiguration.certificatesDir: "/etc/kubernetes/../pki" has a ".." element`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseKubeadm([]byte(tc.yaml), "k.yaml", testHost)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

func TestIsKubeadmConfig(t *testing.T) {
	for in, want := range map[string]bool{
		kubeadmV1beta4:                    true,
		string(DefaultYAML()):             false,
		"apiVersion: kubeadm.k8s.io/v1\n": true, // refused by ParseKubeadm, with the reason
		"{":                               false,
	} {
		if got := IsKubeadmConfig([]byte(in)); got != want {
			t.Errorf("IsKubeadmConfig(%.40q) = %v, want %v", in, got, want)
		}
	}
}

func TestMinorVersion(t *testing.T) {
	for in, want := range map[string]string{
		"": "", "stable": "", "latest": "", "ci/latest": "",
		"v1.31.4": "v1.31", "1.28": "v1.28", "stable-1.29": "v1.29", "v1.32.0-rc.1": "v1.32",
	} {
		if got, err := minorVersion(in); err != nil || got != want {
			t.Errorf("minorVersion(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// FuzzParseKubeadm: kubeadm files come from users and from the cluster;
// none may panic the parser, and whatever it accepts maps to a spec.
func FuzzParseKubeadm(f *testing.F) {
	f.Add([]byte(kubeadmV1beta4))
	f.Add([]byte("apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\n---\n---\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		kc, err := ParseKubeadm(data, "fuzz", testHost)
		if err == nil && (kc.Cluster == nil || len(kc.Cluster.Nodes) != 1) {
			t.Fatalf("accepted without a one-node spec: %+v", kc)
		}
	})
}
