package wiring

import (
	"encoding/json"
	"fmt"
	"net/netip"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	componentbase "k8s.io/component-base/config/v1alpha1"
	kubeproxy "k8s.io/kube-proxy/config/v1alpha1"
	kubelet "k8s.io/kubelet/config/v1beta1"
	"sigs.k8s.io/yaml"
)

// kubelet: a KubeletConfiguration that authenticates the API server's
// client certificate against the cluster CA and authorizes through the API
// (anonymous off), and serves with the node's certificate. In the kubeadm
// layout the kubelet's serving certificate is not part of the PKI
// directory: serverTLSBootstrap makes the kubelet request one through the
// Certificates API (kubernetes.io/kubelet-serving), as "Certificate Management with kubeadm"
// advises (kubelet serving certificates).
func (w *wirer) kubelet() error {
	enabled, disabled := true, false
	cfg := kubelet.KubeletConfiguration{
		TypeMeta: metav1.TypeMeta{APIVersion: "kubelet.config.k8s.io/v1beta1", Kind: "KubeletConfiguration"},
		Authentication: kubelet.KubeletAuthentication{
			Anonymous: kubelet.KubeletAnonymousAuthentication{Enabled: &disabled},
			Webhook:   kubelet.KubeletWebhookAuthentication{Enabled: &enabled},
		},
		Authorization: kubelet.KubeletAuthorization{Mode: kubelet.KubeletAuthorizationModeWebhook},
		ClusterDomain: w.c.DNSDomain,
	}
	if dns, err := clusterDNS(w.c.ServiceCIDR); err == nil {
		cfg.ClusterDNS = []string{dns}
	}
	var kubeconfig string
	if w.hardway() {
		cfg.Authentication.X509.ClientCAFile = w.file(cert, "ca")
		cfg.TLSCertFile = w.file(cert, w.node.Name)
		cfg.TLSPrivateKeyFile = w.file(key, w.node.Name)
		kubeconfig = w.file(kc, w.node.Name)
		w.out.ConfigPath = w.path("/var/lib/kubelet/kubelet-config.yaml")
	} else {
		cfg.Authentication.X509.ClientCAFile = w.file(cert, "ca")
		cfg.ServerTLSBootstrap = true
		cfg.RotateCertificates = true
		kubeconfig = w.file(kc, "kubelet-"+w.node.Name+".conf")
		w.out.ConfigPath = w.path("/var/lib/kubelet/config.yaml")
	}
	if w.err != nil {
		return w.err
	}
	w.flag("config", w.out.ConfigPath)
	w.flag("kubeconfig", kubeconfig)
	return w.setConfig(cfg)
}

// kubeProxy: the hard way gives kube-proxy a kubeconfig with its
// system:kube-proxy certificate. kubeadm runs kube-proxy as a DaemonSet
// with a ServiceAccount token instead: there is no certificate to wire.
func (w *wirer) kubeProxy() error {
	if !w.hardway() {
		return fmt.Errorf("the kubeadm layout runs kube-proxy as a DaemonSet authenticated by its ServiceAccount, with no certificate of its own")
	}
	cfg := kubeproxy.KubeProxyConfiguration{
		TypeMeta:         metav1.TypeMeta{APIVersion: "kubeproxy.config.k8s.io/v1alpha1", Kind: "KubeProxyConfiguration"},
		ClientConnection: componentbase.ClientConnectionConfiguration{Kubeconfig: w.file(kc, "kube-proxy")},
		Mode:             "iptables",
		ClusterCIDR:      w.c.PodCIDR,
	}
	if w.err != nil {
		return w.err
	}
	w.out.ConfigPath = w.path("/var/lib/kube-proxy/kube-proxy-config.yaml")
	w.flag("config", w.out.ConfigPath)
	return w.setConfig(cfg)
}

// setConfig renders a config type as YAML without its zero values: the
// Go types marshal every unset duration as "0s", which reads as a setting
// though the component treats it as "use the default".
func (w *wirer) setConfig(v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	prune(m)
	out, err := yaml.Marshal(m)
	if err != nil {
		return err
	}
	w.out.Config = string(out)
	return nil
}

// prune drops zero durations, empty strings, zero numbers and the maps
// left empty, keeping false: "enabled: false" is a setting.
func prune(m map[string]any) {
	for k, v := range m {
		switch x := v.(type) {
		case map[string]any:
			prune(x)
			if len(x) == 0 {
				delete(m, k)
			}
		case string:
			if x == "" || x == "0s" || x == "0" {
				delete(m, k)
			}
		case float64:
			if x == 0 {
				delete(m, k)
			}
		case nil:
			delete(m, k)
		}
	}
}

// clusterDNS is the tenth address of the service range, where the hard
// way and kubeadm both put the cluster DNS Service (10.32.0.10, 10.96.0.10).
func clusterDNS(cidr string) (string, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return "", err
	}
	a := p.Addr()
	for range 10 {
		a = a.Next()
	}
	if !p.Contains(a) {
		return "", fmt.Errorf("service range %s too small for a DNS address", cidr)
	}
	return a.String(), nil
}
