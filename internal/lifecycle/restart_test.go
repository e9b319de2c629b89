package lifecycle_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/lifecycle"
	"kubepki.dev/kubepki/internal/pkitest"
)

// TestRestarts: renewing a certificate names exactly the components that
// read it at start-up, on the nodes they run on.
func TestRestarts(t *testing.T) {
	tests := []struct {
		profile catalog.Profile
		renewed []string
		want    []string
	}{
		{catalog.Kubeadm, []string{"apiserver"}, []string{"kube-apiserver on server"}},
		{catalog.Kubeadm, []string{"apiserver-kubelet-client"}, []string{"kube-apiserver on server"}},
		{catalog.Kubeadm, []string{"front-proxy-client"}, []string{"kube-apiserver on server"}},
		{catalog.Kubeadm, []string{"apiserver-etcd-client"}, []string{"kube-apiserver on server"}},
		{catalog.Kubeadm, []string{"etcd-server"}, []string{"etcd on server"}},
		{catalog.Kubeadm, []string{"etcd-peer"}, []string{"etcd on server"}},
		{catalog.Kubeadm, []string{"kubelet-node-0.conf"}, []string{"kubelet on node-0"}},
		{catalog.Kubeadm, []string{"kubelet-server.conf"}, []string{"kubelet on server"}},
		{catalog.Kubeadm, []string{"controller-manager.conf"}, []string{"kube-controller-manager on server"}},
		{catalog.Kubeadm, []string{"scheduler.conf"}, []string{"kube-scheduler on server"}},
		{catalog.Kubeadm, []string{"admin.conf"}, nil},
		{catalog.Kubeadm, []string{"super-admin.conf"}, nil},
		{catalog.Kubeadm, nil, nil},
		{catalog.Kubeadm, []string{"admin.conf", "kubelet-node-1.conf", "apiserver", "etcd-server"},
			[]string{"etcd on server", "kube-apiserver on server", "kubelet on node-1"}},
		{catalog.Hardway, []string{"kube-api-server"}, []string{"etcd on server", "kube-apiserver on server"}},
		{catalog.Hardway, []string{"service-accounts"}, []string{"kube-apiserver on server", "kube-controller-manager on server"}},
		{catalog.Hardway, []string{"node-0"}, []string{"kubelet on node-0"}},
		{catalog.Hardway, []string{"kube-proxy"}, []string{"kube-proxy on node-0", "kube-proxy on node-1"}},
		{catalog.Hardway, []string{"kube-scheduler"}, []string{"kube-scheduler on server"}},
		{catalog.Hardway, []string{"kube-controller-manager"}, []string{"kube-controller-manager on server"}},
		{catalog.Hardway, []string{"admin"}, nil},
	}
	for _, tc := range tests {
		t.Run(string(tc.profile)+"/"+strings.Join(tc.renewed, ","), func(t *testing.T) {
			c := cluster.Default()
			plan, err := catalog.New(c, tc.profile)
			if err != nil {
				t.Fatal(err)
			}
			got := lifecycle.Restarts(c, plan, tc.renewed)
			if !slices.Equal(got, tc.want) {
				t.Errorf("Restarts(%q) = %q, want %q", tc.renewed, got, tc.want)
			}
		})
	}
}

// TestRestartsAfterRenewAll: renewing everything names every control-plane
// component and every kubelet.
func TestRestartsAfterRenewAll(t *testing.T) {
	want := map[catalog.Profile][]string{
		catalog.Kubeadm: {
			"etcd on server", "kube-apiserver on server", "kube-controller-manager on server", "kube-scheduler on server",
			"kubelet on server", "kubelet on node-0", "kubelet on node-1",
		},
		catalog.Hardway: {
			"etcd on server", "kube-apiserver on server", "kube-controller-manager on server", "kube-scheduler on server",
			"kubelet on node-0", "kube-proxy on node-0", "kubelet on node-1", "kube-proxy on node-1",
		},
	}
	for _, profile := range rnProfiles {
		t.Run(string(profile), func(t *testing.T) {
			c := cluster.Default()
			plan, err := catalog.New(c, profile)
			if err != nil {
				t.Fatal(err)
			}
			st, _ := pkitest.Store(t, profile)
			rnApply(t, plan, st, rnNow)
			rep, err := lifecycle.Renew(plan, st, lifecycle.RenewOptions{Names: []string{"all"}, Now: rnNow.Add(time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			if got := lifecycle.Restarts(c, plan, rnNames(rep)); !slices.Equal(got, want[profile]) {
				t.Errorf("Restarts after renew all = %q, want %q", got, want[profile])
			}
		})
	}
}
