package e2e

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/live"
	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/testenv"
)

// servingComponents is the hard way's ca.conf for kube-scheduler and
// kube-controller-manager: serverAuth and the names they are reached by on
// their node, so that `kubepki wiring` makes them serve their own file.
func servingComponents(c *cluster.Cluster) {
	x := cluster.Component{ExtraUsages: []pki.Usage{pki.UsageServerAuth}, ExtraSANs: []string{"127.0.0.1", "localhost"}}
	c.Components = map[string]cluster.Component{"kube-scheduler": x, "kube-controller-manager": x}
}

// liveReport is the part of `verify -o json` the live tests read.
type liveReport struct {
	Clean    bool         `json:"clean"`
	Findings []string     `json:"findings"`
	Live     *live.Result `json:"live"`
}

// verifyLive runs `kubepki verify --live` on the wired cluster. This
// control plane runs no kubelet: each node's kubelet endpoint is moved to a
// port nothing listens on (an unreachable endpoint is a warning, and does
// not make the check slow: probes run at once, each within --timeout).
func (w wiredCluster) verifyLive(t *testing.T, extra ...string) (string, int) {
	t.Helper()
	args := []string{"verify", "--live", "--timeout", "5s"}
	nodes := []string{"node-0", "node-1"}
	if w.profile == "kubeadm" {
		nodes = append(nodes, "server") // kubeadm runs a kubelet on every node
	}
	for _, n := range nodes {
		args = append(args, "--endpoint", "kubelet@"+n+"=127.0.0.1:"+strconv.Itoa(testenv.FreePort(t)))
	}
	return runCode(t, w.bin, append(append(args, extra...), w.common...)...)
}

// verifyLiveJSON is verifyLive -o json, decoded.
func (w wiredCluster) verifyLiveJSON(t *testing.T, extra ...string) (liveReport, int) {
	t.Helper()
	out, code := w.verifyLive(t, append([]string{"-o", "json"}, extra...)...)
	var rep liveReport
	// stderr's one line follows the JSON when there are findings.
	body := out[:strings.LastIndex(out, "}")+1]
	if err := json.Unmarshal([]byte(body), &rep); err != nil || rep.Live == nil {
		t.Fatalf("verify --live -o json: %v\n%s", err, out)
	}
	return rep, code
}

// probe returns the probe of an endpoint subject ("kube-scheduler@server").
func probe(t *testing.T, r *live.Result, subject string) live.Probe {
	t.Helper()
	i := slices.IndexFunc(r.Probes, func(p live.Probe) bool { return p.Endpoint.Subject() == subject })
	if i < 0 {
		t.Fatalf("no probe of %s", subject)
	}
	return r.Probes[i]
}

// assertLiveClean checks a clean verify --live: exit 0, every component of
// the control plane probed in the wanted state, every kubeconfig of the plan
// authenticated as the plan says, the kubelets (not running here) warnings.
func assertLiveClean(t *testing.T, w wiredCluster, states map[string]live.State) *live.Result {
	t.Helper()
	rep, code := w.verifyLiveJSON(t)
	if code != 0 || !rep.Clean || len(rep.Live.Findings) > 0 {
		t.Fatalf("verify --live: exit %d, findings %v, live findings %v", code, rep.Findings, rep.Live.Findings)
	}
	for subj, want := range states {
		if p := probe(t, rep.Live, subj); p.State != want {
			t.Errorf("%s at %s: state %s (%s), want %s", subj, p.Endpoint.Addr, p.State, p.Detail, want)
		}
	}
	for _, id := range identities(w.profile) {
		i := slices.IndexFunc(rep.Live.Kubeconfigs, func(k live.Identity) bool { return strings.HasSuffix(k.Path, "/"+id.file) })
		if i < 0 {
			t.Errorf("kubeconfig %s not checked", id.file)
			continue
		}
		if k := rep.Live.Kubeconfigs[i]; k.AuthUser != id.user || len(k.Access) == 0 || slices.ContainsFunc(k.Access, func(a live.Access) bool { return !a.Allowed }) {
			t.Errorf("kubeconfig %s: user %q access %+v, want %s with every need allowed", id.file, k.AuthUser, k.Access, id.user)
		}
	}
	kubelets := 0
	for _, wn := range rep.Live.Warnings {
		if strings.HasPrefix(wn.Subject, "kubelet@") && strings.Contains(wn.Message, "not checked") {
			kubelets++
		}
	}
	if kubelets == 0 {
		t.Errorf("the kubelets nothing listens for are not warnings: %v", rep.Live.Warnings)
	}
	return rep.Live
}

// liveRenewScenario is the hard way's: clean at first; the scheduler's
// certificate renewed centrally but its node's bundle not redistributed,
// so it still serves the old one: verify --live names it, its serial and
// what to do (exit 3); once the bundle is redistributed and the scheduler
// restarted, clean again.
func liveRenewScenario(t *testing.T, w wiredCluster, scheduler *testenv.Process) {
	t.Helper()
	matches := map[string]live.State{
		"kube-apiserver@server": live.Matches, "etcd@server": live.Matches, "etcd-peer@server": live.Matches,
		"kube-scheduler@server": live.Matches, "kube-controller-manager@server": live.Matches,
	}
	before := probe(t, assertLiveClean(t, w, matches), "kube-scheduler@server")

	w.run(t, "certs", "renew", "kube-scheduler")
	out, code := w.verifyLive(t)
	for _, want := range []string{
		"live: kube-scheduler@server: at 127.0.0.1:10259 serves another certificate than",
		"serves serial " + before.Served.Serial,
		"kubepki bundle --node server",
		"restart kube-scheduler on server",
		"restart: server: kube-scheduler",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("verify --live after a central renewal lacks %q:\n%s", want, out)
		}
	}
	if code != 3 {
		t.Errorf("verify --live after a central renewal: exit %d, want 3\n%s", code, out)
	}
	if strings.Contains(out, "live: kube-controller-manager") || strings.Contains(out, "live: kube-apiserver") {
		t.Errorf("components that were not renewed are named:\n%s", out)
	}

	// Redistribute (here: rewrite the node's bundle, which the components
	// read under --root) and restart the scheduler.
	w.run(t, "bundle", "--out", w.bundles)
	scheduler.Restart(t) // Stop, then Start with the same flags; stopped with the test
	waitFor(t, 60*time.Second, "kube-scheduler /healthz after its restart", func() error { return healthz(10259) })
	after := probe(t, assertLiveClean(t, w, matches), "kube-scheduler@server")
	if after.Served.Serial == before.Served.Serial {
		t.Errorf("the restarted scheduler still serves serial %s", before.Served.Serial)
	}
}
