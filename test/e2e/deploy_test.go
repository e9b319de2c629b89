package e2e

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	authzv1 "k8s.io/api/authorization/v1"
	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kubepki.dev/kubepki/internal/testenv"
	"kubepki.dev/kubepki/test/deploy"
)

// TestDeployManifests renders deploy/ with kustomize (kubectl kustomize,
// with a CA in place of the operator's), has the API server validate every
// object with a server-side dry run, applies them, and then:
//
//   - asks the API server (SubjectAccessReview) what the controller's
//     ServiceAccount may do: everything the controller calls, and not the
//     neighbouring things (another signer, events elsewhere, Secrets);
//   - plays the kubelet for the stored Deployment: its Secret and ConfigMap
//     volumes laid out as the kubelet lays them out (modes, fsGroup, the
//     ..data symlinks), the real kubepki binary run as the container's
//     user and groups with the Deployment's arguments, which must load the
//     CA through the Secret volume and sign with it; and with the old
//     manifest's volume (0400, no fsGroup) the same run must fail.
func TestDeployManifests(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("playing the kubelet (chown to fsGroup, running as the Pod's user) needs root")
	}
	e := newCertAPI(t)
	path := e.renderDeploy()
	// The namespace must exist for a dry run of what goes in it.
	e.kubectl("apply", "-f", filepath.Join(deployDir(t), "namespace.yaml"))
	out, err := testenv.Kubectl(t, e.bins, e.admin, "apply", "--dry-run=server", "-f", path)
	if err != nil {
		t.Fatalf("server-side dry run of deploy/: %v\n%s", err, out)
	}
	for _, want := range []string{"deployment.apps/kubepki-controller", "clusterrole.rbac.authorization.k8s.io/kubepki-controller", "secret/kubepki-ca", "poddisruptionbudget.policy/kubepki-controller"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run did not create %s:\n%s", want, out)
		}
	}
	// The exporter's objects of the core API (its PodMonitor and
	// PrometheusRule need the prometheus-operator's CRDs, which this API
	// server has not): the namespace for real, the rest as a dry run,
	// which runs admission, Pod Security included, on the DaemonSet.
	exporterDir := filepath.Join(deployDir(t), "exporter")
	e.kubectl("apply", "-f", filepath.Join(exporterDir, "namespace.yaml"))
	for _, f := range []string{"serviceaccount.yaml", "daemonset.yaml"} {
		out, err := testenv.Kubectl(t, e.bins, e.admin, "apply", "--dry-run=server", "-f", filepath.Join(exporterDir, f))
		if err != nil {
			t.Errorf("server-side dry run of deploy/exporter/%s: %v\n%s", f, err, out)
		}
	}
	// For real: there is no kube-controller-manager, so no Pod is made;
	// the test below is the kubelet.
	e.kubectl("apply", "-f", path)

	e.checkControllerAccess(t)
	e.runDeployedController(t)
}

// renderDeploy copies deploy/ with a CA in place of the operator's and
// returns the file kubectl kustomize renders from it.
func (e *certAPI) renderDeploy() string {
	t := e.t
	t.Helper()
	dir := filepath.Join(t.TempDir(), "deploy")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(deployDir(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range entries {
		if ent.IsDir() {
			continue // deploy/exporter/ is a kustomization of its own
		}
		data, err := os.ReadFile(filepath.Join(deployDir(t), ent.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ent.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []struct{ from, to string }{{e.caCert, "ca.crt"}, {e.caKey, "ca.key"}} {
		data, _ := os.ReadFile(f.from)
		if err := os.WriteFile(filepath.Join(dir, f.to), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	rendered := e.kubectl("kustomize", dir)
	for _, want := range []string{"kind: Deployment", "replicas: 2", "kind: ClusterRole", "kind: Secret", "type: kubernetes.io/tls", "name: kubepki-ca"} {
		if !strings.Contains(rendered, want) {
			t.Errorf("kustomize output lacks %q", want)
		}
	}
	path := filepath.Join(t.TempDir(), "all.yaml")
	if err := os.WriteFile(path, []byte(rendered), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkControllerAccess asks the API server, one SubjectAccessReview per
// call, whether the controller's ServiceAccount may make it.
func (e *certAPI) checkControllerAccess(t *testing.T) {
	const ns = "kubepki-system"
	type access struct {
		verb, group, resource, sub, namespace, name string
	}
	csrs := func(verb, sub string) access {
		return access{verb, "certificates.k8s.io", "certificatesigningrequests", sub, "", ""}
	}
	signer := func(verb, name string) access { return access{verb, "certificates.k8s.io", "signers", "", "", name} }
	allowed := []access{
		csrs("get", ""), csrs("list", ""), csrs("watch", ""),
		csrs("update", "status"), csrs("update", "approval"),
		signer("sign", certv1.KubeAPIServerClientSignerName),
		signer("sign", certv1.KubeAPIServerClientKubeletSignerName),
		signer("sign", certv1.KubeletServingSignerName),
		signer("approve", certv1.KubeAPIServerClientSignerName),
		signer("approve", certv1.KubeAPIServerClientKubeletSignerName),
		signer("approve", certv1.KubeletServingSignerName),
		{"get", "", "nodes", "", "", "node-a"}, {"list", "", "nodes", "", "", ""}, {"watch", "", "nodes", "", "", ""},
		{"create", "coordination.k8s.io", "leases", "", ns, ""},
		{"get", "coordination.k8s.io", "leases", "", ns, "kubepki-controller"},
		{"update", "coordination.k8s.io", "leases", "", ns, "kubepki-controller"},
		{"create", "", "events", "", ns, ""}, {"patch", "", "events", "", ns, ""},
		{"create", "events.k8s.io", "events", "", "default", ""}, {"patch", "events.k8s.io", "events", "", "default", ""},
	}
	denied := []access{
		// Signers the Deployment does not run, and the wildcard.
		signer("sign", "kubepki.dev/etcd-client"),
		signer("sign", "kubernetes.io/legacy-unknown"),
		signer("sign", "kubernetes.io/*"),
		signer("approve", "kubepki.dev/etcd-client"),
		// Events only where the controller writes them.
		{"create", "", "events", "", "kube-system", ""},
		{"create", "events.k8s.io", "events", "", "kube-system", ""},
		{"create", "", "events", "", "default", ""},
		{"create", "events.k8s.io", "events", "", ns, ""},
		{"list", "events.k8s.io", "events", "", "default", ""},
		// Only its own Lease.
		{"update", "coordination.k8s.io", "leases", "", ns, "someone-else"},
		{"update", "coordination.k8s.io", "leases", "", "kube-system", "kube-controller-manager"},
		{"list", "coordination.k8s.io", "leases", "", ns, ""},
		// Never the CSR objects themselves, Secrets or Node writes.
		csrs("create", ""), csrs("delete", ""), csrs("update", ""), csrs("patch", "status"),
		{"get", "", "secrets", "", ns, "kubepki-ca"},
		{"list", "", "secrets", "", "", ""},
		{"patch", "", "nodes", "status", "", "node-a"},
	}
	sa := "system:serviceaccount:" + ns + ":kubepki-controller"
	groups := []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}
	for _, c := range []struct {
		list []access
		want bool
	}{{allowed, true}, {denied, false}} {
		for _, a := range c.list {
			review := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
				User: sa, Groups: groups,
				ResourceAttributes: &authzv1.ResourceAttributes{Verb: a.verb, Group: a.group, Resource: a.resource,
					Subresource: a.sub, Namespace: a.namespace, Name: a.name},
			}}
			got, err := e.adminCS.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), review, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got.Status.Allowed != c.want {
				t.Errorf("%s %s %s/%s ns=%q name=%q: allowed %v, want %v (%s)", sa, a.verb, a.resource, a.sub, a.namespace, a.name,
					got.Status.Allowed, c.want, got.Status.Reason)
			}
		}
	}
}

// podRun is the kubepki controller as a Pod made from the stored
// Deployment would run it: its volumes on disk, its user and its args.
type podRun struct {
	dir  string
	cred *syscall.Credential
	bin  string
	args []string
}

// podFromDeployment plays the kubelet for the Deployment the API server
// stored (defaults applied), with its Pod spec changed by mutate. The
// ServiceAccount token comes as a kubeconfig (the in-cluster config would
// need the Pod's network and /var/run/secrets), readable as the kubelet
// makes a projected token readable: root:fsGroup 0440.
func (e *certAPI) podFromDeployment(t *testing.T, kubeconfig string, mutate func(*corev1.PodSpec)) *podRun {
	t.Helper()
	ctx := context.Background()
	d, err := e.adminCS.AppsV1().Deployments("kubepki-system").Get(ctx, "kubepki-controller", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	spec := d.Spec.Template.Spec.DeepCopy()
	if mutate != nil {
		mutate(spec)
	}
	c := &spec.Containers[0]
	cred, err := deploy.Credential(spec, c)
	if err != nil {
		t.Fatal(err)
	}
	var fsGroup *int64
	if spec.SecurityContext != nil {
		fsGroup = spec.SecurityContext.FSGroup
	}
	p := &podRun{dir: deploy.HostDir(t), cred: cred}
	hostDirs := map[string]string{}
	for _, v := range spec.Volumes {
		var files map[string]deploy.File
		switch {
		case v.Secret != nil:
			s, err := e.adminCS.CoreV1().Secrets(d.Namespace).Get(ctx, v.Secret.SecretName, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			files, err = deploy.SecretPayload(v.Secret, s)
			if err != nil {
				t.Fatal(err)
			}
		case v.ConfigMap != nil:
			cm, err := e.adminCS.CoreV1().ConfigMaps(d.Namespace).Get(ctx, v.ConfigMap.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			files, err = deploy.ConfigMapPayload(v.ConfigMap, cm)
			if err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("volume %s: only Secret and ConfigMap volumes are laid out", v.Name)
		}
		dir := filepath.Join(p.dir, "volumes", v.Name)
		if err := deploy.WriteVolume(dir, files, fsGroup, time.Now()); err != nil {
			t.Fatal(err)
		}
		hostDirs[v.Name] = dir
	}
	p.args, err = deploy.HostArgs(c, hostDirs)
	if err != nil {
		t.Fatal(err)
	}

	// The image: the binary, executable by anyone.
	p.bin = filepath.Join(p.dir, "bin", "kubepki")
	copyFile(t, e.kubepki, p.bin, 0o755, -1, -1)
	// The token: with fsGroup the kubelet makes it root:fsGroup, group
	// readable; without, the runAsUser's own (projected token volumes).
	token := filepath.Join(p.dir, "token", "kubeconfig")
	if fsGroup != nil {
		copyFile(t, kubeconfig, token, 0o440, -1, int(*fsGroup))
	} else {
		copyFile(t, kubeconfig, token, 0o600, int(cred.Uid), -1)
	}
	p.args = append(p.args, "--kubeconfig="+token)
	return p
}

// copyFile copies src to dst (its directory 0755) with mode, owned by
// uid:gid (-1: root's).
func copyFile(t *testing.T, src, dst string, mode os.FileMode, uid, gid int) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dst, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dst, uid, gid); err != nil {
		t.Fatal(err)
	}
}

// command is the container's process: the pod's user and groups, nothing
// of the test's environment, in its own process group, killed with the
// test.
func (p *podRun) command(ctx context.Context, args []string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, p.bin, args...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/"}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// runDeployedController runs the controller as the Deployment's Pod and
// has it sign a request with the CA it read through the Secret volume;
// then shows the same run failing with the old manifest's CA volume.
func (e *certAPI) runDeployedController(t *testing.T) {
	sa := e.controllerIdentity()

	// The old manifest: defaultMode 0400 and no fsGroup. The kubelet
	// writes the files as root, 0400: the controller cannot read its CA
	// and exits, the crash loop the old deploy/ would have had.
	old := e.podFromDeployment(t, sa, func(s *corev1.PodSpec) {
		s.SecurityContext.FSGroup = nil
		for i := range s.Volumes {
			if s.Volumes[i].Secret != nil {
				s.Volumes[i].Secret.DefaultMode = ptrTo[int32](0o400)
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := old.command(ctx, old.args).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !bytes.Contains(out, []byte("permission denied")) ||
		!bytes.Contains(out, []byte("volumes/ca/tls.")) {
		t.Errorf("controller with the old manifest's CA volume: %v, want exit 1 with permission denied on the CA:\n%s", err, out)
	}

	// deploy/ as it is: ready, and signing with the CA.
	p := e.podFromDeployment(t, sa, nil)
	port := testenv.FreePort(t)
	args := make([]string, 0, len(p.args))
	for _, a := range p.args {
		if strings.HasPrefix(a, "--http-address=") {
			a = "--http-address=127.0.0.1:" + strconv.Itoa(port) // loopback only, in a test
		}
		args = append(args, a)
	}
	logPath := filepath.Join(t.TempDir(), "controller.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	runCtx, stop := context.WithCancel(context.Background())
	cmd := p.command(runCtx, args)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		stop()
		<-exited
		if t.Failed() {
			log, _ := os.ReadFile(logPath)
			t.Logf("controller log:\n%s", log)
		}
	})
	waitFor(t, 60*time.Second, "the controller ready", func() error {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("the controller exited: %v", err)
		default:
		}
		resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/readyz")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz %d: %s", resp.StatusCode, body)
		}
		return nil
	})
	// The process is who the Pod says.
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Uid:\t65532\t65532\t65532\t65532", "Gid:\t65532\t65532\t65532\t65532", "Groups:\t65532"} {
		if !bytes.Contains(status, []byte(want)) {
			t.Errorf("controller process: /proc status lacks %q:\n%s", want, status)
		}
	}

	e.submit(e.adminCS, "through-secret-volume", certv1.KubeAPIServerClientSignerName, requestOpts{cn: "volume-check"})
	e.approve("through-secret-volume")
	_, cert := e.waitIssued("through-secret-volume")
	verifyChain(t, cert, e.ca.Cert, x509.ExtKeyUsageClientAuth)

	log, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"forbidden", "PRIVATE KEY", "permission denied"} {
		if bytes.Contains(log, []byte(bad)) {
			t.Errorf("controller log contains %q", bad)
		}
	}
}

func ptrTo[T any](v T) *T { return &v }
