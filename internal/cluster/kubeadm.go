package cluster

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// kubeadm's own defaults (cmd/kubeadm/app/apis/kubeadm/v1beta4/defaults.go
// and cmd/kubeadm/app/constants), which the kubeadm profile starts from.
const (
	KubeadmServiceCIDR     = "10.96.0.0/12"
	KubeadmClusterName     = "kubernetes"
	KubeadmKeyAlgorithm    = "RSA-2048"
	KubeadmBindPort        = 6443
	KubeadmCertificatesDir = "/etc/kubernetes/pki"
)

// KubeadmGroup is the API group of kubeadm's configuration files.
const KubeadmGroup = "kubeadm.k8s.io"

// Host is the machine kubeadm runs on, as kubeadm sees it when its
// configuration leaves the node out: its name and its addresses.
type Host struct {
	// Name is the node name: a DNS label.
	Name string
	// Hostnames are further DNS names of the machine (its FQDN).
	Hostnames []string
	// IPs are its addresses; the first is the advertise address.
	IPs []string
}

// LocalHost is this machine as kubeadm init sees it: the node name is the
// host name, lower-cased (kubeadm's GetHostname); the address is the one on
// the default route's interface (apimachinery's ChooseHostInterface, as
// kubeadm's ChooseAPIServerBindAddress), else 127.0.0.1. kubepki node names
// are DNS labels, so a host name with dots becomes its first label, and the
// full name a hostname of the node.
func LocalHost() Host {
	h := Host{Name: "localhost", IPs: []string{"127.0.0.1"}}
	if name, err := os.Hostname(); err == nil && strings.TrimSpace(name) != "" {
		name = strings.ToLower(strings.TrimSpace(name))
		h.Name = name
		if label, _, ok := strings.Cut(name, "."); ok && label != "" {
			h.Name, h.Hostnames = label, []string{name}
		}
	}
	if ip, err := utilnet.ChooseHostInterface(); err == nil && ip != nil {
		h.IPs = []string{ip.String()}
	}
	return h
}

// KubeadmDefault is the cluster `kubeadm init` makes on host with no
// configuration at all: one control-plane node, service subnet
// 10.96.0.0/12, cluster.local, cluster name kubernetes, RSA-2048 keys,
// leaves valid one year and CAs ten, no C/ST/L/O in any subject, the API
// server reached at the node's address on port 6443.
func KubeadmDefault(h Host) *Cluster {
	ip := "127.0.0.1"
	if len(h.IPs) > 0 {
		ip = h.IPs[0]
	}
	c := &Cluster{
		Name:         KubeadmClusterName,
		DNSDomain:    DefaultDNSDomain,
		ServiceCIDR:  KubeadmServiceCIDR,
		APIServer:    APIServer{Endpoint: net.JoinHostPort(ip, strconv.Itoa(KubeadmBindPort))},
		KeyAlgorithm: KubeadmKeyAlgorithm,
		Validity:     Validity{CA: Duration{DefaultCAValidity}, Leaf: Duration{DefaultLeafValidity}},
		Nodes: []Node{{
			Name:      h.Name,
			Roles:     []Role{RoleControlPlane},
			IPs:       append([]string(nil), h.IPs...),
			Hostnames: append([]string(nil), h.Hostnames...),
		}},
	}
	SetDefaults(c)
	return c
}

// KubeadmConfig is kubeadm's configuration read as a spec.
type KubeadmConfig struct {
	// Cluster is the spec: kubeadm's defaults for the host, overridden by
	// what the files say.
	Cluster *Cluster
	// CertificatesDir is certificatesDir, or kubeadm's default
	// /etc/kubernetes/pki.
	CertificatesDir string
	// KubernetesVersion is kubernetesVersion as "v1.MINOR", or "" when the
	// file gives none or a label (stable, latest).
	KubernetesVersion string
}

// IsKubeadmConfig reports whether data holds a document of kubeadm's API
// group: a file for ParseKubeadm rather than Parse.
func IsKubeadmConfig(data []byte) bool {
	docs, err := splitYAML(data)
	if err != nil {
		return false
	}
	for _, d := range docs {
		var tm typeMeta
		if err := yaml.Unmarshal(d, &tm); err == nil && strings.HasPrefix(tm.APIVersion, KubeadmGroup+"/") {
			return true
		}
	}
	return false
}

// ParseKubeadm reads kubeadm's configuration — a multi-document YAML with
// a ClusterConfiguration and/or an InitConfiguration, kubeadm.k8s.io/v1beta3
// or v1beta4, as `kubeadm init --config` takes it, or the
// ClusterConfiguration of the kube-system/kubeadm-config ConfigMap — as a
// spec for host. Fields kubepki maps are listed in kubeadmFields; fields
// known to kubeadm but irrelevant to the PKI are accepted and ignored; any
// other field is an error that names it, as Parse's are. The kubelet's and
// kube-proxy's component configurations and kubeadm's other kinds are
// skipped, as kubeadm init skips what it does not need.
func ParseKubeadm(data []byte, name string, h Host) (*KubeadmConfig, error) {
	docs, err := splitYAML(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var (
		cc   *kubeadmClusterConfiguration
		ic   *kubeadmInitConfiguration
		seen bool
	)
	for i, doc := range docs {
		var tm typeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, i+1, err)
		}
		group, version, _ := strings.Cut(tm.APIVersion, "/")
		where := fmt.Sprintf("%s: %s %s", name, tm.APIVersion, tm.Kind)
		switch {
		case group == KubeadmGroup && version != "v1beta3" && version != "v1beta4":
			return nil, fmt.Errorf("%s: version %s is not supported (want v1beta3 or v1beta4; 'kubeadm config migrate' converts older files)", where, version)
		case group == KubeadmGroup && tm.Kind == "ClusterConfiguration":
			if cc != nil {
				return nil, fmt.Errorf("%s: a second ClusterConfiguration", where)
			}
			cc = &kubeadmClusterConfiguration{}
			if err := decodeStrict(doc, cc); err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			if err := cc.checkVersion(version); err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
		case group == KubeadmGroup && tm.Kind == "InitConfiguration":
			if ic != nil {
				return nil, fmt.Errorf("%s: a second InitConfiguration", where)
			}
			ic = &kubeadmInitConfiguration{}
			if err := decodeStrict(doc, ic); err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			if err := ic.checkVersion(version); err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
		case group == KubeadmGroup && ignoredKubeadmKinds[tm.Kind],
			tm.APIVersion == "kubelet.config.k8s.io/v1beta1" && tm.Kind == "KubeletConfiguration",
			tm.APIVersion == "kubeproxy.config.k8s.io/v1alpha1" && tm.Kind == "KubeProxyConfiguration":
			// Not about certificates; kubeadm init reads these elsewhere.
		default:
			return nil, fmt.Errorf("%s: not a kubeadm configuration document (want kubeadm.k8s.io/v1beta4 or v1beta3 ClusterConfiguration or InitConfiguration)", where)
		}
		seen = seen || group == KubeadmGroup
	}
	if !seen || (cc == nil && ic == nil) {
		return nil, fmt.Errorf("%s: no kubeadm ClusterConfiguration or InitConfiguration", name)
	}
	if cc == nil {
		cc = &kubeadmClusterConfiguration{}
	}
	if ic == nil {
		ic = &kubeadmInitConfiguration{}
	}
	return kubeadmToSpec(cc, ic, name, h)
}

// kubeadmToSpec maps kubeadm's fields onto kubeadm's defaults for host.
func kubeadmToSpec(cc *kubeadmClusterConfiguration, ic *kubeadmInitConfiguration, name string, h Host) (*KubeadmConfig, error) {
	fail := func(field, format string, args ...any) error {
		return fmt.Errorf("%s: %s: %s", name, field, fmt.Sprintf(format, args...))
	}
	if n := ic.NodeRegistration.Name; n != "" {
		if msgs := validation.IsDNS1123Label(n); len(msgs) > 0 {
			return nil, fail("nodeRegistration.name", "%q: kubepki node names are DNS labels: %s", n, msgs[0])
		}
		h.Name, h.Hostnames = n, nil
	}
	if a := ic.LocalAPIEndpoint.AdvertiseAddress; a != "" {
		if net.ParseIP(a) == nil {
			return nil, fail("localAPIEndpoint.advertiseAddress", "%q is not an IP address", a)
		}
		h.IPs = []string{a}
	}
	c := KubeadmDefault(h)
	port := KubeadmBindPort
	if p := ic.LocalAPIEndpoint.BindPort; p != 0 {
		if p < 1 || p > 65535 {
			return nil, fail("localAPIEndpoint.bindPort", "%d is not a port in 1-65535", p)
		}
		port = int(p)
	}
	c.APIServer.Endpoint = net.JoinHostPort(c.Nodes[0].IPs[0], strconv.Itoa(port))
	if e := cc.ControlPlaneEndpoint; e != "" {
		ep, err := endpointWithPort(e, port)
		if err != nil {
			return nil, fail("controlPlaneEndpoint", "%v", err)
		}
		c.APIServer.Endpoint = ep
		if _, epPort, _ := net.SplitHostPort(ep); epPort != strconv.Itoa(port) {
			// Components on the node dial the API server itself, at the
			// bind port, not the load balancer's.
			c.APIServer.BindPort = port
		}
	}
	if cc.ClusterName != "" {
		c.Name = cc.ClusterName
	}
	if s := cc.Networking.ServiceSubnet; s != "" {
		// A dual-stack cluster lists one range per family; the kubernetes
		// Service's ClusterIP, the one SAN that comes of it, is in the first.
		c.ServiceCIDR = firstOf(s)
	}
	if s := cc.Networking.PodSubnet; s != "" {
		c.PodCIDR = firstOf(s)
	}
	if cc.Networking.DNSDomain != "" {
		c.DNSDomain = cc.Networking.DNSDomain
	}
	c.APIServer.ExtraSANs = cc.APIServer.CertSANs
	if cc.Etcd.Local != nil && cc.Etcd.External != nil {
		return nil, fail("etcd", "local and external are mutually exclusive")
	}
	if l := cc.Etcd.Local; l != nil {
		c.Etcd.ServerCertSANs, c.Etcd.PeerCertSANs = l.ServerCertSANs, l.PeerCertSANs
	}
	if x := cc.Etcd.External; x != nil {
		if len(x.Endpoints) == 0 {
			return nil, fail("etcd.external.endpoints", "at least one endpoint is needed")
		}
		c.Etcd.External = &ExternalEtcd{Endpoints: x.Endpoints, CAFile: x.CAFile, CertFile: x.CertFile, KeyFile: x.KeyFile}
	}
	if a := cc.EncryptionAlgorithm; a != "" {
		if !kubeadmAlgorithms[a] {
			return nil, fail("encryptionAlgorithm", "%q is not one of kubeadm's RSA-2048, RSA-3072, RSA-4096, ECDSA-P256, ECDSA-P384", a)
		}
		c.KeyAlgorithm = a
	}
	if v := cc.CertificateValidityPeriod; v != nil {
		c.Validity.Leaf = *v
	}
	if v := cc.CACertificateValidityPeriod; v != nil {
		c.Validity.CA = *v
	}
	version, err := minorVersion(cc.KubernetesVersion)
	if err != nil {
		return nil, fail("kubernetesVersion", "%v", err)
	}
	out := &KubeadmConfig{Cluster: c, CertificatesDir: KubeadmCertificatesDir, KubernetesVersion: version}
	if d := cc.CertificatesDir; d != "" {
		const field = "ClusterConfiguration.certificatesDir"
		switch {
		case !path.IsAbs(d):
			return nil, fail(field, "%q is not an absolute path (kubeadm requires one)", d)
		case slices.Contains(strings.Split(d, "/"), ".."):
			return nil, fail(field, "%q has a \"..\" element (kubeadm requires a plain absolute path)", d)
		}
		out.CertificatesDir = d
	}
	// The one place a kubeadm file's version enters the spec: before
	// v1.29 admin.conf is in system:masters (catalog).
	out.Cluster.KubernetesVersion = out.KubernetesVersion
	return out, nil
}

var kubeadmAlgorithms = map[string]bool{
	"RSA-2048": true, "RSA-3072": true, "RSA-4096": true, "ECDSA-P256": true, "ECDSA-P384": true,
}

// ignoredKubeadmKinds are kubeadm's kinds for other commands than init.
var ignoredKubeadmKinds = map[string]bool{
	"JoinConfiguration": true, "ResetConfiguration": true, "UpgradeConfiguration": true,
}

// endpointWithPort is controlPlaneEndpoint as host:port: kubeadm takes a
// host alone and adds the API server's bind port.
func endpointWithPort(e string, port int) (string, error) {
	if host, p, err := net.SplitHostPort(e); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 || host == "" {
			return "", fmt.Errorf("%q is not host or host:port", e)
		}
		return e, nil
	}
	host := strings.TrimSuffix(strings.TrimPrefix(e, "["), "]")
	if strings.Contains(host, ":") && net.ParseIP(host) == nil {
		return "", fmt.Errorf("%q is not host or host:port", e)
	}
	return net.JoinHostPort(host, strconv.Itoa(port)), nil
}

func firstOf(list string) string {
	first, _, _ := strings.Cut(list, ",")
	return strings.TrimSpace(first)
}

var kubeadmVersionRE = regexp.MustCompile(`^(?:stable-|latest-)?v?(\d+)\.(\d+)(?:\.\d+)?(?:[-+].*)?$`)

// minorVersion turns kubernetesVersion ("v1.28.3", "1.28", "stable-1.28")
// into "v1.28"; a label without a version ("stable", "latest",
// "ci/latest") or none is "": the current version.
func minorVersion(v string) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" || v == "stable" || v == "latest" || strings.HasPrefix(v, "ci/") {
		return "", nil
	}
	m := kubeadmVersionRE.FindStringSubmatch(v)
	if m == nil {
		return "", fmt.Errorf("%q is not a Kubernetes version (v1.MINOR.PATCH)", v)
	}
	return "v" + m[1] + "." + m[2], nil
}

type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

// splitYAML returns the non-empty documents of a multi-document YAML.
func splitYAML(data []byte) ([][]byte, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		var v any
		if err := yaml.Unmarshal(doc, &v); err != nil {
			return nil, fmt.Errorf("document %d: %w", len(docs)+1, oneLine(err))
		}
		if v != nil {
			docs = append(docs, doc)
		}
	}
}

// decodeStrict decodes one document as Parse decodes a spec: field names
// case-sensitive, unknown and duplicate fields errors with their path.
func decodeStrict(doc []byte, v any) error {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return oneLine(err)
	}
	strict, err := kjson.UnmarshalStrict(js, v, kjson.DisallowUnknownFields, kjson.DisallowDuplicateFields)
	if err != nil {
		return err
	}
	if len(strict) > 0 {
		msgs := make([]string, len(strict))
		for i, e := range strict {
			msgs[i] = e.Error()
		}
		return errors.New(strings.Join(msgs, "; "))
	}
	return nil
}

// oneLine folds yaml's multi-line errors ("unmarshal errors:\n  line 4:
// …") into one line.
func oneLine(err error) error {
	return errors.New(strings.Join(strings.Fields(err.Error()), " "))
}

// kubeadm's configuration types, reduced to what a PKI needs. A field of
// type json.RawMessage is known to kubeadm and irrelevant to certificates:
// accepted, never read. The union of v1beta3 and v1beta4 is decoded; what
// one version lacks is refused by checkVersion.
type (
	kubeadmClusterConfiguration struct {
		typeMeta             `json:",inline"`
		Etcd                 kubeadmEtcd       `json:"etcd"`
		Networking           kubeadmNetworking `json:"networking"`
		KubernetesVersion    string            `json:"kubernetesVersion"`
		ControlPlaneEndpoint string            `json:"controlPlaneEndpoint"`
		APIServer            kubeadmAPIServer  `json:"apiServer"`
		CertificatesDir      string            `json:"certificatesDir"`
		ClusterName          string            `json:"clusterName"`
		// v1beta4 only.
		EncryptionAlgorithm         string    `json:"encryptionAlgorithm"`
		CertificateValidityPeriod   *Duration `json:"certificateValidityPeriod"`
		CACertificateValidityPeriod *Duration `json:"caCertificateValidityPeriod"`

		// Known, not about certificates.
		ControllerManager json.RawMessage `json:"controllerManager"`
		Scheduler         json.RawMessage `json:"scheduler"`
		DNS               json.RawMessage `json:"dns"`
		Proxy             json.RawMessage `json:"proxy"` // v1beta4
		ImageRepository   json.RawMessage `json:"imageRepository"`
		FeatureGates      json.RawMessage `json:"featureGates"`
	}
	kubeadmEtcd struct {
		Local    *kubeadmLocalEtcd    `json:"local"`
		External *kubeadmExternalEtcd `json:"external"`
	}
	kubeadmLocalEtcd struct {
		ServerCertSANs  []string        `json:"serverCertSANs"`
		PeerCertSANs    []string        `json:"peerCertSANs"`
		ImageRepository json.RawMessage `json:"imageRepository"`
		ImageTag        json.RawMessage `json:"imageTag"`
		DataDir         json.RawMessage `json:"dataDir"`
		ExtraArgs       json.RawMessage `json:"extraArgs"`
		ExtraEnvs       json.RawMessage `json:"extraEnvs"` // v1beta4
	}
	kubeadmExternalEtcd struct {
		Endpoints []string `json:"endpoints"`
		CAFile    string   `json:"caFile"`
		CertFile  string   `json:"certFile"`
		KeyFile   string   `json:"keyFile"`
	}
	kubeadmNetworking struct {
		ServiceSubnet string `json:"serviceSubnet"`
		PodSubnet     string `json:"podSubnet"`
		DNSDomain     string `json:"dnsDomain"`
	}
	kubeadmAPIServer struct {
		CertSANs     []string        `json:"certSANs"`
		ExtraArgs    json.RawMessage `json:"extraArgs"`
		ExtraVolumes json.RawMessage `json:"extraVolumes"`
		ExtraEnvs    json.RawMessage `json:"extraEnvs"`              // v1beta4
		Timeout      json.RawMessage `json:"timeoutForControlPlane"` // v1beta3
	}

	kubeadmInitConfiguration struct {
		typeMeta         `json:",inline"`
		NodeRegistration kubeadmNodeRegistration `json:"nodeRegistration"`
		LocalAPIEndpoint kubeadmAPIEndpoint      `json:"localAPIEndpoint"`

		// Known, not about certificates.
		BootstrapTokens json.RawMessage `json:"bootstrapTokens"`
		CertificateKey  json.RawMessage `json:"certificateKey"`
		SkipPhases      json.RawMessage `json:"skipPhases"`
		Patches         json.RawMessage `json:"patches"`
		DryRun          json.RawMessage `json:"dryRun"`   // v1beta4
		Timeouts        json.RawMessage `json:"timeouts"` // v1beta4
	}
	kubeadmNodeRegistration struct {
		Name                  string          `json:"name"`
		CRISocket             json.RawMessage `json:"criSocket"`
		Taints                json.RawMessage `json:"taints"`
		KubeletExtraArgs      json.RawMessage `json:"kubeletExtraArgs"`
		IgnorePreflightErrors json.RawMessage `json:"ignorePreflightErrors"`
		ImagePullPolicy       json.RawMessage `json:"imagePullPolicy"`
		ImagePullSerial       json.RawMessage `json:"imagePullSerial"` // v1beta4
	}
	kubeadmAPIEndpoint struct {
		AdvertiseAddress string `json:"advertiseAddress"`
		BindPort         int32  `json:"bindPort"`
	}
)

// checkVersion refuses the fields the document's version does not have.
func (cc *kubeadmClusterConfiguration) checkVersion(version string) error {
	only := map[string]map[string]bool{
		"v1beta4": {
			"encryptionAlgorithm":         cc.EncryptionAlgorithm != "",
			"certificateValidityPeriod":   cc.CertificateValidityPeriod != nil,
			"caCertificateValidityPeriod": cc.CACertificateValidityPeriod != nil,
			"proxy":                       cc.Proxy != nil,
			"apiServer.extraEnvs":         cc.APIServer.ExtraEnvs != nil,
			"etcd.local.extraEnvs":        cc.Etcd.Local != nil && cc.Etcd.Local.ExtraEnvs != nil,
		},
		"v1beta3": {
			"apiServer.timeoutForControlPlane": cc.APIServer.Timeout != nil,
		},
	}
	return versionOnly(only, version)
}

func (ic *kubeadmInitConfiguration) checkVersion(version string) error {
	only := map[string]map[string]bool{
		"v1beta4": {
			"dryRun":                           ic.DryRun != nil,
			"timeouts":                         ic.Timeouts != nil,
			"nodeRegistration.imagePullSerial": ic.NodeRegistration.ImagePullSerial != nil,
		},
	}
	return versionOnly(only, version)
}

// versionOnly fails on the first set field that only another version has,
// in a stable order.
func versionOnly(only map[string]map[string]bool, version string) error {
	for _, v := range []string{"v1beta3", "v1beta4"} {
		if v == version {
			continue
		}
		var set []string
		for field, ok := range only[v] {
			if ok {
				set = append(set, field)
			}
		}
		if len(set) > 0 {
			slices.Sort(set)
			return fmt.Errorf("unknown field %q (a field of kubeadm.k8s.io/%s only)", set[0], v)
		}
	}
	return nil
}
