package wiring

import (
	"slices"
	"strings"
	"testing"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/pki"
)

func plan(t *testing.T, p catalog.Profile) (*cluster.Cluster, *catalog.Plan) {
	t.Helper()
	c := cluster.Default()
	pl, err := catalog.New(c, p)
	if err != nil {
		t.Fatal(err)
	}
	return c, pl
}

func TestFlags(t *testing.T) {
	tests := []struct {
		profile catalog.Profile
		comp    Component
		node    string
		want    []string
		// spec adjusts the default spec; notWant are flag prefixes that
		// must be absent.
		spec    func(*cluster.Cluster)
		notWant []string
	}{
		{catalog.Hardway, KubeAPIServer, "", []string{"--client-ca-file=/var/lib/kubernetes/ca.crt", "--tls-cert-file=/var/lib/kubernetes/kube-api-server.crt", "--service-account-key-file=/var/lib/kubernetes/service-accounts.crt", "--service-cluster-ip-range=10.32.0.0/24", "--secure-port=6443"}, nil, nil},
		{catalog.Kubeadm, KubeAPIServer, "", []string{"--etcd-cafile=/etc/kubernetes/pki/etcd/ca.crt", "--service-account-key-file=/etc/kubernetes/pki/sa.pub", "--requestheader-client-ca-file=/etc/kubernetes/pki/front-proxy-ca.crt", "--kubelet-client-certificate=/etc/kubernetes/pki/apiserver-kubelet-client.crt"}, nil, nil},
		{catalog.Kubeadm, KubeControllerManager, "", []string{"--cluster-signing-cert-file=/etc/kubernetes/pki/ca.crt", "--cluster-signing-key-file=/etc/kubernetes/pki/ca.key", "--root-ca-file=/etc/kubernetes/pki/ca.crt", "--service-account-private-key-file=/etc/kubernetes/pki/sa.key", "--kubeconfig=/etc/kubernetes/controller-manager.conf"}, nil, nil},
		// Without serverAuth they serve a self-signed certificate made in memory.
		{catalog.Hardway, KubeScheduler, "", []string{"--kubeconfig=/var/lib/kubernetes/kube-scheduler.kubeconfig", "--leader-elect=true"}, nil, []string{"--tls-cert-file", "--tls-private-key-file"}},
		{catalog.Kubeadm, KubeScheduler, "", []string{"--kubeconfig=/etc/kubernetes/scheduler.conf"}, nil, []string{"--tls-cert-file"}},
		// The hard way's ca.conf gives them serverAuth: they serve their own file.
		{catalog.Hardway, KubeScheduler, "", []string{"--tls-cert-file=/var/lib/kubernetes/kube-scheduler.crt", "--tls-private-key-file=/var/lib/kubernetes/kube-scheduler.key"}, serverAuth("kube-scheduler"), nil},
		{catalog.Hardway, KubeControllerManager, "", []string{"--tls-cert-file=/var/lib/kubernetes/kube-controller-manager.crt", "--tls-private-key-file=/var/lib/kubernetes/kube-controller-manager.key"}, serverAuth("kube-controller-manager"), nil},
		// One component's serverAuth does not wire the other's.
		{catalog.Hardway, KubeControllerManager, "", nil, serverAuth("kube-scheduler"), []string{"--tls-cert-file"}},
		{catalog.Kubeadm, Etcd, "", []string{"--cert-file=/etc/kubernetes/pki/etcd/server.crt", "--trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt", "--client-cert-auth=true", "--peer-client-cert-auth=true"}, nil, nil},
		{catalog.Hardway, Kubelet, "node-1", []string{"--kubeconfig=/var/lib/kubelet/kubeconfig", "--config=/var/lib/kubelet/kubelet-config.yaml"}, nil, nil},
	}
	for _, tc := range tests {
		t.Run(string(tc.profile)+"/"+string(tc.comp), func(t *testing.T) {
			c := cluster.Default()
			if tc.spec != nil {
				tc.spec(c)
			}
			pl, err := catalog.New(c, tc.profile)
			if err != nil {
				t.Fatal(err)
			}
			w, err := For(c, pl, tc.comp, tc.node, Options{})
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range tc.want {
				if !slices.Contains(w.Flags, f) {
					t.Errorf("flags lack %s:\n%s", f, strings.Join(w.Flags, "\n"))
				}
			}
			for _, p := range tc.notWant {
				if i := slices.IndexFunc(w.Flags, func(f string) bool { return strings.HasPrefix(f, p+"=") }); i >= 0 {
					t.Errorf("flags set %s", w.Flags[i])
				}
			}
			// Every path a flag names is one the node's bundle installs.
			b, _ := pl.Bundle(w.Node)
			for _, f := range w.Flags {
				_, v, _ := strings.Cut(f, "=")
				if strings.HasPrefix(v, "/etc/kubernetes/") || strings.HasPrefix(v, "/var/lib/kubernetes/") && !strings.HasSuffix(v, ".yaml") {
					if !slices.ContainsFunc(b.Files, func(bf catalog.BundleFile) bool { return bf.Path == v }) {
						t.Errorf("%s names %s, which %s's bundle does not install", f, v, w.Node)
					}
				}
			}
		})
	}
}

// serverAuth is the hard way's ca.conf for a component: serverAuth and
// the names it is reached by on its node.
func serverAuth(name string) func(*cluster.Cluster) {
	return func(c *cluster.Cluster) {
		c.Components = map[string]cluster.Component{name: {ExtraUsages: []pki.Usage{pki.UsageServerAuth}, ExtraSANs: []string{"127.0.0.1", "localhost"}}}
	}
}

func TestKubeletConfig(t *testing.T) {
	c, pl := plan(t, catalog.Hardway)
	w, err := For(c, pl, Kubelet, "node-0", Options{Root: "/tmp/root"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"clientCAFile: /tmp/root/var/lib/kubelet/ca.crt", "tlsCertFile: /tmp/root/var/lib/kubelet/kubelet.crt", "tlsPrivateKeyFile: /tmp/root/var/lib/kubelet/kubelet.key", "kind: KubeletConfiguration", "enabled: false", "- 10.32.0.10"} {
		if !strings.Contains(w.Config, want) {
			t.Errorf("kubelet config lacks %q:\n%s", want, w.Config)
		}
	}
	if strings.Contains(w.Config, "0s") {
		t.Errorf("kubelet config carries zero durations:\n%s", w.Config)
	}
}

func TestRootAndExternalCA(t *testing.T) {
	c, pl := plan(t, catalog.Kubeadm)
	w, err := For(c, pl, KubeControllerManager, "", Options{Root: "/srv/n", ExternalCA: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range w.Flags {
		if strings.HasPrefix(f, "--cluster-signing-") {
			t.Errorf("external CA: %s set, but there is no key to sign with", f)
		}
		if _, v, _ := strings.Cut(f, "="); strings.HasPrefix(v, "/") && !strings.HasPrefix(v, "/srv/n/") {
			t.Errorf("%s not under --root", f)
		}
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		profile catalog.Profile
		comp    Component
		node    string
		want    string
	}{
		{catalog.Hardway, "kube-dns", "", "unknown component"},
		{catalog.Hardway, KubeAPIServer, "nope", `no node "nope"`},
		{catalog.Hardway, KubeAPIServer, "node-0", "runs on control-plane nodes"},
		{catalog.Hardway, Kubelet, "server", "no worker role"},
		{catalog.Kubeadm, KubeProxy, "", "ServiceAccount"},
	}
	for _, tc := range tests {
		t.Run(string(tc.comp)+"/"+tc.node, func(t *testing.T) {
			c, pl := plan(t, tc.profile)
			if _, err := For(c, pl, tc.comp, tc.node, Options{}); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestClusterDNS(t *testing.T) {
	for cidr, want := range map[string]string{"10.32.0.0/24": "10.32.0.10", "10.96.0.0/12": "10.96.0.10"} {
		if got, err := clusterDNS(cidr); err != nil || got != want {
			t.Errorf("clusterDNS(%s) = %s, %v; want %s", cidr, got, err, want)
		}
	}
	if _, err := clusterDNS("10.0.0.0/29"); err == nil {
		t.Error("a /29 has no tenth address")
	}
}

// TestExternalEtcd: with etcd.external, kube-apiserver dials every endpoint
// with the files the spec names (kubeadm's catalog then has no etcd CA and
// no apiserver-etcd-client), and etcd itself is not wired.
func TestExternalEtcd(t *testing.T) {
	full := &cluster.ExternalEtcd{
		Endpoints: []string{"https://10.0.0.21:2379", "https://10.0.0.22:2379"},
		CAFile:    "/etc/etcd/ca.pem", CertFile: "/etc/etcd/client.pem", KeyFile: "/etc/etcd/client-key.pem",
	}
	tests := []struct {
		name    string
		profile catalog.Profile
		x       *cluster.ExternalEtcd
		want    []string
	}{
		{"kubeadm", catalog.Kubeadm, full, []string{"--etcd-servers=https://10.0.0.21:2379,https://10.0.0.22:2379", "--etcd-cafile=/etc/etcd/ca.pem", "--etcd-certfile=/etc/etcd/client.pem", "--etcd-keyfile=/etc/etcd/client-key.pem"}},
		{"hardway", catalog.Hardway, full, []string{"--etcd-servers=https://10.0.0.21:2379,https://10.0.0.22:2379", "--etcd-cafile=/etc/etcd/ca.pem", "--etcd-certfile=/etc/etcd/client.pem", "--etcd-keyfile=/etc/etcd/client-key.pem"}},
		{"endpoint only", catalog.Kubeadm, &cluster.ExternalEtcd{Endpoints: []string{"http://127.0.0.1:2379"}}, []string{"--etcd-servers=http://127.0.0.1:2379"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := cluster.Default()
			c.Etcd.External = tc.x
			pl, err := catalog.New(c, tc.profile)
			if err != nil {
				t.Fatal(err)
			}
			w, err := For(c, pl, KubeAPIServer, "", Options{Root: "/srv/n"})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range w.Flags {
				if strings.HasPrefix(f, "--etcd-") {
					got = append(got, f)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("etcd flags:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if _, err := For(c, pl, Etcd, "", Options{}); err == nil || !strings.Contains(err.Error(), "etcd is external") || !strings.Contains(err.Error(), tc.x.Endpoints[0]) {
				t.Errorf("wiring etcd with an external etcd: err = %v", err)
			}
		})
	}
}

// TestDefaultNode: with no --node, a spec of one node (kubeadm's default,
// a lone control plane) wires every component there, kubelet included; a
// larger spec picks by role as before, and when no node has the role the
// error names the nodes to choose from.
func TestDefaultNode(t *testing.T) {
	node := func(name string, roles ...cluster.Role) cluster.Node {
		return cluster.Node{Name: name, Roles: roles, IPs: []string{"10.0.0.1"}}
	}
	kubeadmDefault := cluster.KubeadmDefault(cluster.Host{Name: "cp1", IPs: []string{"10.0.0.10"}})
	threeCP := cluster.KubeadmDefault(cluster.Host{Name: "cp1", IPs: []string{"10.0.0.10"}})
	threeCP.Nodes = []cluster.Node{node("cp1", cluster.RoleControlPlane), node("cp2", cluster.RoleControlPlane), node("cp3", cluster.RoleControlPlane)}
	tests := []struct {
		name     string
		c        *cluster.Cluster
		profile  catalog.Profile
		comp     Component
		wantNode string
		wantErr  string
	}{
		{"kubeadm default kubelet", kubeadmDefault, catalog.Kubeadm, Kubelet, "cp1", ""},
		{"kubeadm default apiserver", kubeadmDefault, catalog.Kubeadm, KubeAPIServer, "cp1", ""},
		{"hard way kubelet: first worker", cluster.Default(), catalog.Hardway, Kubelet, "node-0", ""},
		{"hard way etcd: first control plane", cluster.Default(), catalog.Hardway, Etcd, "server", ""},
		// kubeadm runs a kubelet and kube-proxy on every node.
		{"kubeadm three control planes, kubelet", threeCP, catalog.Kubeadm, Kubelet, "cp1", ""},
		{"hard way three control planes, kubelet", threeCP, catalog.Hardway, Kubelet, "", "no worker node to run kubelet on by default; pass --node (one of cp1, cp2, cp3)"},
		{"one node without the role", kubeadmDefault, catalog.Hardway, Kubelet, "", "kubelet does not run on node cp1 in the hardway layout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pl, err := catalog.New(tc.c, tc.profile)
			if err != nil {
				t.Fatal(err)
			}
			w, err := For(tc.c, pl, tc.comp, "", Options{})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if w.Node != tc.wantNode {
				t.Errorf("node %s, want %s", w.Node, tc.wantNode)
			}
		})
	}
}
