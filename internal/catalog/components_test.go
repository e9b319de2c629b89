package catalog

import (
	"net"
	"slices"
	"strings"
	"testing"

	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/pki"
)

// The hardway catalog adds a spec's components to the component
// certificates, and only to them; the kubeadm profile refuses them rather
// than drop them.
func TestHardwayComponents(t *testing.T) {
	c := specWith(t, func(c *cluster.Cluster) {
		c.Components = map[string]cluster.Component{
			"kube-proxy":     {ExtraUsages: []pki.Usage{pki.UsageServerAuth}, ExtraSANs: []string{"kube-proxy", "127.0.0.1"}},
			"admin":          {ExtraUsages: []pki.Usage{pki.UsageClientAuth}, ExtraSANs: []string{"admin.example"}},
			"kube-scheduler": {ExtraSANs: []string{"10.0.0.7"}},
		}
	})
	plan, err := New(c, Hardway)
	if err != nil {
		t.Fatal(err)
	}
	base, err := New(cluster.Default(), Hardway)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		cert   string
		usages []pki.Usage
		dns    []string
		ips    []string
	}{
		{"kube-proxy", []pki.Usage{pki.UsageClientAuth, pki.UsageServerAuth}, []string{"kube-proxy"}, []string{"127.0.0.1"}},
		{"admin", []pki.Usage{pki.UsageClientAuth}, []string{"admin.example"}, nil},
		{"kube-scheduler", []pki.Usage{pki.UsageClientAuth}, nil, []string{"10.0.0.7"}},
		{"kube-controller-manager", []pki.Usage{pki.UsageClientAuth}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.cert, func(t *testing.T) {
			cs, ok := plan.Cert(tt.cert)
			if !ok {
				t.Fatalf("no %s in the plan", tt.cert)
			}
			var ips []string
			for _, ip := range cs.Profile.IPs {
				ips = append(ips, ip.String())
			}
			if !slices.Equal(cs.Profile.Usages, tt.usages) || !slices.Equal(cs.Profile.DNSNames, tt.dns) || !slices.Equal(ips, tt.ips) {
				t.Errorf("usages %v, DNS %v, IPs %v; want %v, %v, %v", cs.Profile.Usages, cs.Profile.DNSNames, ips, tt.usages, tt.dns, tt.ips)
			}
		})
	}
	// Nothing else changes.
	for _, cs := range plan.Certs {
		if cs.Name == "kube-proxy" || cs.Name == "admin" || cs.Name == "kube-scheduler" {
			continue
		}
		b, _ := base.Cert(cs.Name)
		if !slices.Equal(cs.Profile.Usages, b.Profile.Usages) || !slices.Equal(cs.Profile.DNSNames, b.Profile.DNSNames) ||
			!slices.EqualFunc(cs.Profile.IPs, b.Profile.IPs, net.IP.Equal) {
			t.Errorf("%s changed: %+v, want %+v", cs.Name, cs.Profile, b.Profile)
		}
	}
	if _, err := New(c, Kubeadm); err == nil || !strings.Contains(err.Error(), "only hardway honours components") {
		t.Errorf("kubeadm with components: err = %v", err)
	}
}

// A spec's components are validated: known names, usages and SANs.
func TestComponentsValidation(t *testing.T) {
	c := specWith(t, func(c *cluster.Cluster) {
		c.Components = map[string]cluster.Component{
			"kube-apiserver": {},
			"kube-proxy":     {ExtraUsages: []pki.Usage{"code signing"}, ExtraSANs: []string{"bad name!"}},
		}
	})
	var got []string
	for _, f := range Validate(c) {
		got = append(got, f.Field)
	}
	want := []string{"components.kube-apiserver", "components.kube-proxy.extraUsages[0]", "components.kube-proxy.extraSANs[0]"}
	if !slices.Equal(got, want) {
		t.Errorf("findings at %v, want %v", got, want)
	}
}
