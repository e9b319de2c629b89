package live

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// TestAskHostileKubeconfig: a kubeconfig of the directory under check is
// data. Its exec plugin is not run, and a file it names is read as the
// store reads every file (regular, at most 1 MiB), not with an unbounded
// read (/dev/zero) or one that blocks (a FIFO). Only the kubeconfig named
// with --kubeconfig (Trusted) may run its plugin, as kubectl would.
func TestAskHostileKubeconfig(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no", http.StatusForbidden)
	}))
	defer srv.Close()
	dir := t.TempDir()
	big := filepath.Join(dir, "big.crt")
	if err := os.WriteFile(big, make([]byte, 2<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	kubeconfig := func(name, user string) (path, marker string) {
		path = filepath.Join(dir, name+".kubeconfig")
		marker = filepath.Join(dir, name+".ran")
		user = strings.ReplaceAll(user, "MARKER", marker)
		data := "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: " + srv.URL +
			"\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user:\n" + user +
			"contexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\n"
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return path, marker
	}
	exec := "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      interactiveMode: Never\n      command: /bin/sh\n" +
		"      args: [\"-c\", \"touch MARKER; echo '{\\\"apiVersion\\\":\\\"client.authentication.k8s.io/v1\\\",\\\"kind\\\":\\\"ExecCredential\\\",\\\"status\\\":{\\\"token\\\":\\\"t\\\"}}'\"]\n"
	tests := []struct {
		name    string
		user    string
		trusted bool
		err     string
		ran     bool
	}{
		{"exec plugin of the directory", exec, false, "exec plugin or auth provider, not run", false},
		{"exec plugin of --kubeconfig", exec, true, "SelfSubjectReview", true},
		{"client certificate too large", "    client-certificate: " + big + "\n    client-key: " + big + "\n", false, "larger than 1 MiB", false},
		// A directory stands for /dev/zero or a FIFO, which a regression
		// would read forever.
		{"client certificate not a regular file", "    client-certificate: " + dir + "\n    client-key: " + dir + "\n", false, "not a regular file", false},
		{"token file not a regular file", "    tokenFile: " + dir + "\n", true, "not a regular file", false},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path, marker := kubeconfig(fmt.Sprint("k", i), tc.user)
			id := ask(context.Background(), Expectation{Path: path, Trusted: tc.trusted}, 10*time.Second)
			if !strings.Contains(id.Error, tc.err) {
				t.Errorf("error %q, want it to contain %q", id.Error, tc.err)
			}
			if _, err := os.Stat(marker); (err == nil) != tc.ran {
				t.Errorf("exec plugin ran: %v, want %v", err == nil, tc.ran)
			}
		})
	}
}
