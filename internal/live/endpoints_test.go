package live

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/pki"
)

// line is one endpoint as "subject addr cert/ca".
func line(e Endpoint) string {
	return fmt.Sprintf("%s %s %s/%s", e.Subject(), e.Addr, e.Cert, e.CA)
}

func TestEndpoints(t *testing.T) {
	serverAuth := func(c *cluster.Cluster) {
		c.Components = map[string]cluster.Component{"kube-scheduler": {ExtraUsages: []pki.Usage{pki.UsageServerAuth}, ExtraSANs: []string{"127.0.0.1", "localhost"}}}
	}
	tests := []struct {
		name      string
		profile   catalog.Profile
		spec      func(*cluster.Cluster)
		overrides []Override
		want      []string
		absent    []string // subjects that must not be listed
	}{
		{name: "hard way", profile: catalog.Hardway, want: []string{
			"kube-apiserver@server 192.168.10.100:6443 kube-api-server/ca",
			"kube-apiserver (endpoint) server.kubernetes.local:6443 /ca",
			"etcd@server 192.168.10.100:2379 kube-api-server/ca",
			"etcd-peer@server 192.168.10.100:2380 kube-api-server/ca",
			"kubelet@node-0 192.168.10.101:10250 node-0/ca",
			"kubelet@node-1 192.168.10.102:10250 node-1/ca",
			"kube-scheduler@server 127.0.0.1:10259 /",
			"kube-controller-manager@server 127.0.0.1:10257 /",
		}},
		{name: "hard way, scheduler with serverAuth", profile: catalog.Hardway, spec: serverAuth, want: []string{
			"kube-scheduler@server 127.0.0.1:10259 kube-scheduler/ca",
			"kube-controller-manager@server 127.0.0.1:10257 /",
		}},
		{name: "kubeadm", profile: catalog.Kubeadm, want: []string{
			"kube-apiserver@server 192.168.10.100:6443 apiserver/ca",
			"etcd@server 192.168.10.100:2379 etcd-server/etcd-ca",
			"etcd-peer@server 192.168.10.100:2380 etcd-peer/etcd-ca",
			"kubelet@server 192.168.10.100:10250 /ca",
			"kubelet@node-0 192.168.10.101:10250 /ca",
			"kube-scheduler@server 127.0.0.1:10259 /",
		}},
		{name: "external etcd", profile: catalog.Kubeadm, spec: func(c *cluster.Cluster) {
			c.Etcd.External = &cluster.ExternalEtcd{Endpoints: []string{"https://10.0.0.9:2379"}}
		}, absent: []string{"etcd@server", "etcd-peer@server"}},
		{name: "overrides", profile: catalog.Hardway, overrides: []Override{
			{Component: Etcd, Addr: "127.0.0.1:12379"},
			{Component: Kubelet, Node: "node-1", Addr: "node-1.example:11250"},
			{Component: APIServer, Addr: "lb.example:443"},
		}, want: []string{
			"etcd@server 127.0.0.1:12379 kube-api-server/ca",
			"kubelet@node-1 node-1.example:11250 node-1/ca",
			"kube-apiserver (endpoint) lb.example:443 /ca",
			"kube-apiserver@server 192.168.10.100:6443 kube-api-server/ca",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := cluster.Default()
			if tc.spec != nil {
				tc.spec(c)
			}
			plan, err := catalog.New(c, tc.profile)
			if err != nil {
				t.Fatal(err)
			}
			eps, err := Endpoints(c, plan, tc.overrides)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range eps {
				got = append(got, line(e))
			}
			for _, w := range tc.want {
				if !slices.Contains(got, w) {
					t.Errorf("no %q among:\n%s", w, strings.Join(got, "\n"))
				}
			}
			for _, a := range tc.absent {
				if slices.ContainsFunc(eps, func(e Endpoint) bool { return e.Subject() == a }) {
					t.Errorf("%s listed:\n%s", a, strings.Join(got, "\n"))
				}
			}
			for _, e := range eps {
				if host := strings.Split(e.Addr, ":")[0]; strings.Contains(host, ".example") || strings.Contains(host, ".local") {
					if e.ServerName != host {
						t.Errorf("%s: ServerName %q, want %q (SNI for a name)", e.Subject(), e.ServerName, host)
					}
				} else if e.ServerName != "" {
					t.Errorf("%s: ServerName %q for an IP", e.Subject(), e.ServerName)
				}
			}
		})
	}
}

func TestEndpointErrors(t *testing.T) {
	tests := []struct {
		arg  string
		want string // parse or Endpoints error
	}{
		{"kube-scheduler", "want COMPONENT[@NODE]=HOST:PORT"},
		{"kube-dns=1.2.3.4:53", `unknown component "kube-dns"`},
		{"etcd=10.0.0.1", `"10.0.0.1" is not HOST:PORT`},
		{"etcd=:2379", `":2379" is not HOST:PORT`},
		{"kubelet=10.0.0.1:10250", "2 nodes run it; name one: kubelet@NODE (one of node-0, node-1)"},
		{"kubelet@server=10.0.0.1:10250", "no kubelet on node server"},
	}
	c := cluster.Default()
	plan, err := catalog.New(c, catalog.Hardway)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.arg, func(t *testing.T) {
			o, err := ParseOverride(tc.arg)
			if err == nil {
				_, err = Endpoints(c, plan, []Override{o})
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
