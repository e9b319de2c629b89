package deploy

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"

	"kubepki.dev/kubepki/internal/exporter"
	"kubepki.dev/kubepki/internal/testenv"
)

const exporterDeploy = "../../deploy/exporter"

// emitted are the metric names the exporter describes.
func emitted(t *testing.T) map[string]bool {
	t.Helper()
	ch := make(chan *prometheus.Desc)
	go func() {
		exporter.New(exporter.Config{}).Describe(ch)
		close(ch)
	}()
	names := map[string]bool{}
	re := regexp.MustCompile(`fqName: "([a-zA-Z_:][a-zA-Z0-9_:]*)"`)
	for d := range ch {
		m := re.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("cannot read a metric name from %s", d)
		}
		names[m[1]] = true
	}
	return names
}

// promqlWords are PromQL's keywords and the functions the rules may use.
var promqlWords = []string{"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
	"max", "min", "sum", "count", "avg", "time", "abs", "clamp_min", "max_over_time", "min_over_time", "changes", "increase"}

// TestExporterRulesUseEmittedMetrics: every identifier of every rule's
// expression is a metric the exporter emits (or PromQL), and the alerts
// the issue asks for are there with their severities.
func TestExporterRulesUseEmittedMetrics(t *testing.T) {
	m, err := Load(exporterDeploy)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.PrometheusRules) != 1 || len(m.PodMonitors) != 1 || len(m.DaemonSets) != 1 {
		t.Fatalf("want one PrometheusRule, PodMonitor and DaemonSet; have %d, %d, %d", len(m.PrometheusRules), len(m.PodMonitors), len(m.DaemonSets))
	}
	metrics := emitted(t)
	for _, name := range []string{"x509_cert_not_after", "x509_cert_expires_in_seconds", "x509_cert_expired", "x509_cert_error", "x509_read_errors",
		"kubepki_cert_key_mismatch", "kubepki_cert_chain_broken", "kubepki_served_cert_mismatch"} {
		if !metrics[name] {
			t.Errorf("the exporter does not describe %s", name)
		}
	}
	ident := regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	type alert struct{ expr, severity string }
	alerts := map[string]alert{}
	for _, g := range m.PrometheusRules[0].Spec.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("rule %q: want alert, expr, severity, summary and description", r.Alert)
			}
			alerts[r.Alert] = alert{r.Expr, r.Labels["severity"]}
			for _, id := range ident.FindAllString(r.Expr, -1) {
				if !metrics[id] && !slices.Contains(promqlWords, id) {
					t.Errorf("alert %s: %q in %q is no metric the exporter emits", r.Alert, id, r.Expr)
				}
			}
		}
	}
	for _, want := range []struct{ expr, severity string }{
		{"x509_cert_expires_in_seconds < 30 * 86400", "warning"},
		{"x509_cert_expires_in_seconds < 7 * 86400", "critical"},
		{"x509_cert_expired == 1", "critical"},
		{"kubepki_cert_key_mismatch == 1", "critical"},
		{"kubepki_served_cert_mismatch == 1", "warning"},
		{"kubepki_cert_chain_broken == 1", "critical"},
		{"x509_read_errors > 0", "warning"},
	} {
		found := false
		for _, a := range alerts {
			found = found || (strings.Contains(a.expr, want.expr) && a.severity == want.severity)
		}
		if !found {
			t.Errorf("no %s alert on %s", want.severity, want.expr)
		}
	}
}

// TestExporterDaemonSet: control-plane nodes only, the node's network,
// /etc/kubernetes and the kubelet's certificates read-only at the node's
// own paths, nothing writable, no capability, no API token.
func TestExporterDaemonSet(t *testing.T) {
	m, err := Load(exporterDeploy)
	if err != nil {
		t.Fatal(err)
	}
	ds := m.DaemonSets[0]
	spec := ds.Spec.Template.Spec
	if !spec.HostNetwork {
		t.Error("not on the host network: 127.0.0.1 is not the node's")
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("mounts an API token it never uses")
	}
	if !slices.ContainsFunc(spec.Tolerations, func(tl corev1.Toleration) bool {
		return tl.Key == "node-role.kubernetes.io/control-plane" && tl.Operator == corev1.TolerationOpExists && tl.Effect == corev1.TaintEffectNoSchedule
	}) {
		t.Error("does not tolerate the control-plane taint")
	}
	if _, ok := spec.NodeSelector["node-role.kubernetes.io/control-plane"]; !ok {
		t.Error("not limited to control-plane nodes")
	}
	hostPaths := map[string]string{}
	for _, v := range spec.Volumes {
		if v.HostPath == nil {
			t.Errorf("volume %s is not a hostPath", v.Name)
			continue
		}
		hostPaths[v.Name] = v.HostPath.Path
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(spec.Containers))
	}
	c := spec.Containers[0]
	for _, vm := range c.VolumeMounts {
		if !vm.ReadOnly {
			t.Errorf("%s is mounted writable", vm.MountPath)
		}
		if hostPaths[vm.Name] != vm.MountPath {
			t.Errorf("%s is mounted at %s: kubelet.conf's absolute paths need the node's own", hostPaths[vm.Name], vm.MountPath)
		}
	}
	if !slices.Contains(slices.Collect(mapValues(hostPaths)), "/etc/kubernetes") {
		t.Error("does not read /etc/kubernetes")
	}
	sc := c.SecurityContext
	switch {
	case sc == nil:
		t.Fatal("no securityContext")
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Error("root file system writable")
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Error("privilege escalation allowed")
	case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0:
		t.Error("capabilities not all dropped")
	case sc.Privileged != nil && *sc.Privileged:
		t.Error("privileged")
	}
	if len(m.PodMonitors[0].Spec.PodMetricsEndpoints) != 1 || m.PodMonitors[0].Spec.PodMetricsEndpoints[0].Port != c.Ports[0].Name {
		t.Error("the PodMonitor does not scrape the container's metrics port")
	}
	if ann := ds.Spec.Template.Annotations; ann["prometheus.io/port"] != "9794" || !strings.Contains(strings.Join(c.Args, " "), ":9794") {
		t.Error("the scrape annotation and --listen disagree on the port")
	}
}

func mapValues(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for _, v := range m {
			if !yield(v) {
				return
			}
		}
	}
}

// TestExporterDaemonSetArgsOnKubeadmNode runs the real binary with the
// DaemonSet's arguments on a directory the real kubeadm wrote (paths moved
// under the node's root, --listen on 127.0.0.1): it starts, and every
// certificate of /etc/kubernetes/pki and kubelet.conf's are exported.
func TestExporterDaemonSetArgsOnKubeadmNode(t *testing.T) {
	n := testenv.NewKubeadmNode(t, testenv.KubeadmNodeConfig{})
	n.KubeletClientCurrent(t)
	m, err := Load(exporterDeploy)
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	for _, a := range m.DaemonSets[0].Spec.Template.Spec.Containers[0].Args {
		a = strings.ReplaceAll(a, "=/etc/kubernetes", "="+filepath.Join(n.Root, "etc", "kubernetes"))
		a = strings.ReplaceAll(a, "=/var/lib/kubelet", "="+filepath.Join(n.Root, "var", "lib", "kubelet"))
		a = strings.ReplaceAll(a, "[$(HOST_IP)]:9794", "[127.0.0.1]:0")
		args = append(args, a)
	}
	if !slices.Contains(args, "--listen=[127.0.0.1]:0") {
		t.Fatalf("args %v: no --listen=[$(HOST_IP)]:9794 to move", args)
	}
	cmd := exec.Command(testenv.Kubepki(t), args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := bufio.NewScanner(stderr)
	var start struct{ Msg, Listen string }
	for lines.Scan() && start.Msg != "kubepki exporter started" {
		if err := json.Unmarshal(lines.Bytes(), &start); err != nil {
			t.Fatalf("%q: %v", lines.Text(), err)
		}
	}
	go func() { _, _ = io.Copy(io.Discard, stderr) }()
	resp, err := http.Get("http://" + start.Listen + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	metrics := string(body)
	_ = filepath.WalkDir(n.PKIDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".crt") && !strings.Contains(metrics, `filepath="`+p+`"`) {
			t.Errorf("no series for %s", p)
		}
		return nil
	})
	if !strings.Contains(metrics, `embedded_kind="user",filename="kubelet.conf"`) {
		t.Error("no series for kubelet.conf's client certificate")
	}
	if !strings.Contains(metrics, "x509_read_errors 0") {
		t.Errorf("read errors on kubeadm's own files:\n%s", grepLines(metrics, "x509_cert_error{", " 1"))
	}
}

func grepLines(s, prefix, suffix string) string {
	var out []string
	for l := range strings.Lines(s) {
		if strings.HasPrefix(l, prefix) && strings.HasSuffix(strings.TrimSpace(l), suffix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}
