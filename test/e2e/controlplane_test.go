package e2e

import (
	"crypto/tls"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/kubeconfig"
	"kubepki.dev/kubepki/internal/live"
	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/testenv"
)

// TestControlPlaneFromWiring brings up etcd, kube-apiserver,
// kube-controller-manager and kube-scheduler on the control-plane node's
// bundle, each started with exactly the flags `kubepki wiring` prints (with
// --root pointing at the bundle), for both layouts.
func TestControlPlaneFromWiring(t *testing.T) {
	bins := testenv.Build(t)
	bin := testenv.Kubepki(t)
	tests := []struct {
		profile   string
		admin     string // kubeconfig with cluster-admin rights
		scheduler string
		node      string // a kubelet kubeconfig
	}{
		{
			profile: "hardway", admin: "admin.kubeconfig", scheduler: "kube-scheduler.kubeconfig", node: "node-0.kubeconfig",
		},
		{
			profile: "kubeadm", admin: "super-admin.conf", scheduler: "scheduler.conf", node: "kubelet-node-0.conf",
		},
	}
	for _, tc := range tests {
		t.Run(tc.profile, func(t *testing.T) {
			var spec []func(*cluster.Cluster)
			if tc.profile == "hardway" {
				// The hard way's ca.conf: the scheduler and the controller
				// manager serve their own certificate (verify --live below).
				spec = append(spec, servingComponents)
			}
			w := newWiredCluster(t, bin, tc.profile, testenv.FreePort(t), spec...)
			work, pkiDir, kcDir, common := w.work, w.pkiDir, w.kcDir, w.common
			wired := func(component string) []string { return w.flags(t, component) }
			testenv.Start(t, "etcd", bins.Etcd, wired("etcd")...)
			testenv.Start(t, "kube-apiserver", bins.KubeAPIServer, wired("kube-apiserver")...)
			admin := filepath.Join(kcDir, tc.admin)
			waitFor(t, 60*time.Second, "kube-apiserver /readyz", func() error {
				_, err := testenv.Kubectl(t, bins, admin, "get", "--raw", "/readyz")
				return err
			})
			testenv.Start(t, "kube-controller-manager", bins.KubeControllerManager, wired("kube-controller-manager")...)
			scheduler := testenv.Start(t, "kube-scheduler", bins.KubeScheduler, wired("kube-scheduler")...)

			// An extra user's kubeconfig, issued on demand.
			jane := filepath.Join(work, "jane.kubeconfig")
			run(t, bin, append([]string{"kubeconfig", "user", "jane", "--group", "developers", "--group", "oncall", "--ttl", "1h", "--out", jane}, common...)...)
			assertIdentity(t, bins, jane, "jane", "developers", "oncall", "system:authenticated")
			if out, code := runCode(t, bin, append([]string{"kubeconfig", "user", "root", "--group", "system:masters", "--out", filepath.Join(work, "root.kubeconfig")}, common...)...); code != 2 {
				t.Errorf("kubeconfig user with system:masters: exit %d, want 2 (refused)\n%s", code, out)
			}

			for _, id := range identities(tc.profile) {
				assertIdentity(t, bins, filepath.Join(kcDir, id.file), id.user, append(id.groups, "system:authenticated")...)
			}

			// Both components answer /healthz and hold their leader-election
			// Lease, which the default RBAC only allows their users.
			for name, p := range map[string]int{"kube-controller-manager": 10257, "kube-scheduler": 10259} {
				waitFor(t, 60*time.Second, name+" /healthz", func() error { return healthz(p) })
				waitFor(t, 60*time.Second, name+" lease", func() error {
					out, err := testenv.Kubectl(t, bins, admin, "get", "lease", "-n", "kube-system", name, "-o", "jsonpath={.spec.holderIdentity}")
					if err == nil && out == "" {
						return errString("lease has no holder yet")
					}
					return err
				})
			}

			// A scheduler whose certificate has the wrong user name (the group
			// is right, but RBAC binds the user) cannot lead.
			wrong := wrongScheduler(t, pkiDir, filepath.Join(kcDir, tc.scheduler))
			if out, _ := testenv.Kubectl(t, bins, wrong, "auth", "can-i", "update", "leases", "-n", "kube-system"); strings.TrimSpace(out) != "no" {
				t.Errorf("scheduler with a wrong CN may update leases: %q", out)
			}
			if out, _ := testenv.Kubectl(t, bins, filepath.Join(kcDir, tc.scheduler), "auth", "can-i", "update", "leases", "-n", "kube-system"); strings.TrimSpace(out) != "yes" {
				t.Errorf("kubepki's scheduler may not update leases: %q", out)
			}
			bad := testenv.Start(t, "kube-scheduler-wrong-cn", bins.KubeScheduler,
				"--kubeconfig="+wrong, "--authentication-kubeconfig="+wrong, "--authorization-kubeconfig="+wrong,
				"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(testenv.FreePort(t)),
				"--leader-elect=true", "--leader-elect-resource-name=kube-scheduler-wrong-cn")
			time.Sleep(5 * time.Second) // give it the chance to (wrongly) succeed
			if out, err := testenv.Kubectl(t, bins, admin, "get", "lease", "-n", "kube-system", "kube-scheduler-wrong-cn"); err == nil {
				t.Errorf("scheduler with a wrong CN acquired a lease:\n%s", out)
			}
			bad.Stop()
			if log, _ := os.ReadFile(bad.LogPath()); !strings.Contains(string(log), "forbidden") {
				t.Errorf("wrong-CN scheduler's log does not show RBAC refusing it")
			}

			if tc.profile == "kubeadm" {
				// kubeadm init binds its admins group to cluster-admin with
				// super-admin.conf; do the same, then admin.conf may list nodes.
				if out, err := testenv.Kubectl(t, bins, admin, "create", "clusterrolebinding", "kubeadm:cluster-admins", "--clusterrole=cluster-admin", "--group=kubeadm:cluster-admins"); err != nil {
					t.Fatalf("bind kubeadm:cluster-admins: %v\n%s", err, out)
				}
				admin = filepath.Join(kcDir, "admin.conf")
			}
			if _, err := testenv.Kubectl(t, bins, admin, "get", "nodes"); err != nil {
				t.Errorf("admin cannot list nodes: %v", err)
			}
			// The Node authorizer confines a kubelet to its own node's objects.
			if out, err := testenv.Kubectl(t, bins, filepath.Join(kcDir, tc.node), "get", "secrets", "-A"); err == nil || !strings.Contains(err.Error(), "forbidden") {
				t.Errorf("node kubeconfig lists secrets cluster-wide (err %v):\n%s", err, out)
			}

			// verify --live: what each component serves is its file, each
			// kubeconfig is who the plan says.
			if tc.profile == "kubeadm" {
				// kubeadm's scheduler and controller manager serve a
				// certificate they make in memory: information, not a finding.
				r := assertLiveClean(t, w, map[string]live.State{
					"kube-apiserver@server": live.Matches, "etcd@server": live.Matches, "etcd-peer@server": live.Matches,
					"kube-scheduler@server": live.SelfSigned, "kube-controller-manager@server": live.SelfSigned,
				})
				if len(r.Info) != 2 {
					t.Errorf("info %v, want the scheduler's and the controller manager's self-signed certificates", r.Info)
				}
			} else {
				liveRenewScenario(t, w, scheduler)
			}

			// A scheduler kubeconfig whose certificate has another CN than
			// the plan's: SelfSubjectReview tells.
			out, code := w.verifyLive(t, "--kubeconfig", wrong)
			if code != 3 || !strings.Contains(out, "wrong-scheduler.conf: authenticates as system:scheduler, want system:kube-scheduler") {
				t.Errorf("verify --live --kubeconfig (wrong CN): exit %d, want 3 naming the wrong user:\n%s", code, out)
			}
		})
	}
}

// wrongScheduler writes a copy of the scheduler kubeconfig whose client
// certificate says CN=system:scheduler (a plausible typo) with the right
// group, signed by the real CA.
func wrongScheduler(t *testing.T, pkiDir, kubeconfigPath string) string {
	t.Helper()
	cfg, err := kubeconfig.Load(kubeconfigPath)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := os.ReadFile(filepath.Join(pkiDir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := os.ReadFile(filepath.Join(pkiDir, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := pki.ParseCert(caCert)
	k, _ := pki.ParseKey(caKey)
	ca := &pki.CA{Cert: c, Key: k}
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	cert, err := ca.Issue(key.Public(), pki.Profile{
		Subject:  pki.Subject{CommonName: "system:scheduler", Organization: []string{"system:kube-scheduler"}},
		Usages:   []pki.Usage{pki.UsageClientAuth},
		Validity: time.Hour,
	}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := pki.EncodeKey(key)
	if err := kubeconfig.SetClientPair(cfg, caCert, pki.EncodeCert(cert), keyPEM); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "wrong-scheduler.conf")
	if err := kubeconfig.Create(path, cfg); err != nil {
		t.Fatal(err)
	}
	return path
}

// healthz asks a component's secure port for /healthz. Its serving
// certificate is self-signed in memory, so only the answer is checked.
func healthz(port int) error {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // self-signed in-memory serving cert
	}}
	resp, err := client.Get("https://127.0.0.1:" + strconv.Itoa(port) + "/healthz")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errString("status " + resp.Status)
	}
	return nil
}

type errString string

func (e errString) Error() string { return string(e) }

// waitFor polls f until it succeeds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
