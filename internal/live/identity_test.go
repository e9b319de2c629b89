package live

import (
	"strings"
	"testing"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/cluster"
)

func TestExpect(t *testing.T) {
	tests := []struct {
		profile catalog.Profile
		name    string
		user    string
		groups  string
		master  bool
		needs   string
	}{
		{catalog.Hardway, "kube-scheduler", "system:kube-scheduler", "system:kube-scheduler", false, "update leases.coordination.k8s.io/kube-scheduler in kube-system"},
		{catalog.Hardway, "kube-controller-manager", "system:kube-controller-manager", "system:kube-controller-manager", false, "update leases.coordination.k8s.io/kube-controller-manager in kube-system"},
		{catalog.Hardway, "node-0", "system:node:node-0", "system:nodes", false, "get nodes/node-0"},
		{catalog.Hardway, "kube-proxy", "system:kube-proxy", "system:node-proxier", false, "list endpointslices.discovery.k8s.io"},
		{catalog.Hardway, "admin", "admin", "system:masters", true, "* *.*"},
		{catalog.Kubeadm, "admin.conf", "kubernetes-admin", "kubeadm:cluster-admins", false, "* *.*"},
		{catalog.Kubeadm, "super-admin.conf", "kubernetes-super-admin", "system:masters", true, "* *.*"},
		{catalog.Kubeadm, "scheduler.conf", "system:kube-scheduler", "", false, "update leases.coordination.k8s.io/kube-scheduler in kube-system"},
	}
	for _, tc := range tests {
		t.Run(string(tc.profile)+"/"+tc.name, func(t *testing.T) {
			plan, err := catalog.New(cluster.Default(), tc.profile)
			if err != nil {
				t.Fatal(err)
			}
			k, ok := plan.Kubeconfig(tc.name)
			if !ok {
				t.Fatalf("no kubeconfig %s", tc.name)
			}
			x := Expect(plan, k, "/x/"+k.File)
			var needs []string
			for _, a := range x.Needs {
				needs = append(needs, a.String())
			}
			if x.User != tc.user || strings.Join(x.Groups, ",") != tc.groups || x.MayBeMaster != tc.master || strings.Join(needs, ";") != tc.needs {
				t.Errorf("got %s %v master=%v needs %v; want %s %s master=%v needs %s", x.User, x.Groups, x.MayBeMaster, needs, tc.user, tc.groups, tc.master, tc.needs)
			}
		})
	}
}

func TestJudge(t *testing.T) {
	scheduler := Expectation{Path: "/k/kube-scheduler.kubeconfig", Kubeconfig: "kube-scheduler", User: "system:kube-scheduler", Groups: []string{"system:kube-scheduler"}}
	lease := Access{Verb: "update", Group: "coordination.k8s.io", Resource: "leases", Namespace: "kube-system", Name: "kube-scheduler"}
	id := func(x Expectation, user string, groups []string, access ...Access) Identity {
		return Identity{Expectation: x, AuthUser: user, AuthGroups: groups, Access: access}
	}
	allowed, denied := lease, lease
	allowed.Allowed = true
	tests := []struct {
		name     string
		id       Identity
		findings []string
		warning  string
	}{
		{"as planned", id(scheduler, "system:kube-scheduler", []string{"system:kube-scheduler", "system:authenticated"}, allowed), nil, ""},
		{"wrong CN", id(scheduler, "system:scheduler", []string{"system:kube-scheduler", "system:authenticated"}, denied),
			[]string{"kube-scheduler.kubeconfig: authenticates as system:scheduler, want system:kube-scheduler", "may not update leases.coordination.k8s.io/kube-scheduler in kube-system"}, ""},
		{"missing group", id(scheduler, "system:kube-scheduler", []string{"system:authenticated"}, allowed),
			[]string{"is in groups system:authenticated, want system:kube-scheduler,system:authenticated"}, ""},
		{"system:masters outside admin", id(scheduler, "system:kube-scheduler", []string{"system:kube-scheduler", "system:masters", "system:authenticated"}, allowed),
			[]string{"is in groups", "system:kube-scheduler is in system:masters, which bypasses RBAC"}, ""},
		{"admin in system:masters", id(Expectation{Path: "admin.kubeconfig", Kubeconfig: "admin", User: "admin", Groups: []string{"system:masters"}, MayBeMaster: true}, "admin", []string{"system:masters", "system:authenticated"}), nil, ""},
		{"not in the plan: reported only", id(Expectation{Path: "/tmp/jane.kubeconfig"}, "jane", []string{"dev", "system:authenticated"}), nil, ""},
		{"not in the plan, in system:masters", id(Expectation{Path: "/tmp/root.kubeconfig"}, "root", []string{"system:masters"}), []string{"root.kubeconfig: root is in system:masters"}, ""},
		{"unreachable", Identity{Expectation: scheduler, Error: "SelfSubjectReview at https://127.0.0.1:6443: connection refused"}, nil, "not checked: SelfSubjectReview"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, w := judge(tc.id)
			if len(f) != len(tc.findings) {
				t.Fatalf("findings %v, want %d", f, len(tc.findings))
			}
			for i, want := range tc.findings {
				if !strings.Contains(f[i].String(), want) {
					t.Errorf("finding %q lacks %q", f[i], want)
				}
			}
			assertOne(t, "warning", w, tc.warning)
		})
	}
}
