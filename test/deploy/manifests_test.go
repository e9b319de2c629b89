package deploy

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"kubepki.dev/kubepki/internal/controller"
	"kubepki.dev/kubepki/internal/csr"
)

// repoDeploy is the repository's deploy/ directory.
const repoDeploy = "../../deploy"

const (
	namespace      = "kubepki-system"
	deploymentName = "kubepki-controller"
	caVolume       = "ca"
	controlPlane   = "node-role.kubernetes.io/control-plane"
	nonroot        = 65532
)

func load(t *testing.T) (*Manifests, *corev1.PodSpec, *corev1.Container) {
	t.Helper()
	m, err := Load(repoDeploy)
	if err != nil {
		t.Fatal(err)
	}
	d, err := m.Deployment(deploymentName)
	if err != nil {
		t.Fatal(err)
	}
	spec := &d.Spec.Template.Spec
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(spec.Containers))
	}
	return m, spec, &spec.Containers[0]
}

// TestLoadIsStrict shows that a field the k8s.io/api types do not know, or
// a kind deploy/ should not hold, fails Load with the file named: the
// properties below are checked on what the API server would read.
func TestLoadIsStrict(t *testing.T) {
	good := "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n"
	kust := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- a.yaml\n"
	for _, tc := range []struct {
		name, kustomization, doc, want string
	}{
		{"good", kust, good, ""},
		{"comments only between documents", kust, "# a\n---\n" + good + "---\n# b\n", ""},
		{"unknown field", kust, "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\nspec:\n  template:\n    spec:\n      fsgroup: 1\n", `unknown field "spec.template.spec.fsgroup"`},
		{"misplaced fsGroup", kust, "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\nspec:\n  template:\n    spec:\n      containers:\n      - name: c\n        securityContext:\n          fsGroup: 1\n", `unknown field "spec.template.spec.containers[0].securityContext.fsGroup"`},
		{"unexpected kind", kust, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n", `unexpected kind "Pod"`},
		{"unknown kustomization field", kust + "namePrefix: x-\n", good, `unknown field "namePrefix"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, data := range map[string]string{"kustomization.yaml": tc.kustomization, "a.yaml": tc.doc} {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := Load(dir)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Load: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Load: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestDeploymentPlacement: the Pod holding the cluster CA key may only
// run on control-plane nodes (required, not preferred), and tolerates
// their taint.
func TestDeploymentPlacement(t *testing.T) {
	_, spec, _ := load(t)
	if spec.NodeName != "" || len(spec.NodeSelector) != 0 {
		t.Errorf("nodeName %q, nodeSelector %v: placement must come from the affinity alone", spec.NodeName, spec.NodeSelector)
	}
	if spec.Affinity == nil || spec.Affinity.NodeAffinity == nil || spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		t.Fatal("no required node affinity: the CA key could be scheduled onto a worker")
	}
	// Every term (they are ORed) must demand the control-plane label.
	terms := spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	if len(terms) == 0 {
		t.Fatal("required node affinity has no terms")
	}
	for i, term := range terms {
		ok := slices.ContainsFunc(term.MatchExpressions, func(r corev1.NodeSelectorRequirement) bool {
			return r.Key == controlPlane && r.Operator == corev1.NodeSelectorOpExists
		})
		if !ok {
			t.Errorf("node selector term %d does not require %s: %+v", i, controlPlane, term)
		}
	}
	tolerated := slices.ContainsFunc(spec.Tolerations, func(tl corev1.Toleration) bool {
		return tl.Key == controlPlane && tl.Operator == corev1.TolerationOpExists && tl.Effect == corev1.TaintEffectNoSchedule
	})
	if !tolerated {
		t.Errorf("no toleration for the %s:NoSchedule taint: %+v", controlPlane, spec.Tolerations)
	}
	for _, tl := range spec.Tolerations {
		if tl.Key == "" {
			t.Errorf("toleration %+v tolerates every taint", tl)
		}
	}
}

// TestDeploymentSecurityContext: non-root 65532 with fsGroup 65532, no
// privilege, a read-only root, every capability dropped, RuntimeDefault
// seccomp, and a CA volume whose key the kubelet makes 0440 root:65532.
func TestDeploymentSecurityContext(t *testing.T) {
	m, spec, c := load(t)
	psc := spec.SecurityContext
	if psc == nil {
		t.Fatal("no Pod securityContext")
	}
	eq := func(what string, got *int64, want int64) {
		if got == nil || *got != want {
			t.Errorf("%s = %v, want %d", what, deref(got), want)
		}
	}
	eq("runAsUser", psc.RunAsUser, nonroot)
	eq("runAsGroup", psc.RunAsGroup, nonroot)
	eq("fsGroup", psc.FSGroup, nonroot)
	if psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Error("runAsNonRoot is not true")
	}
	if psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("seccompProfile %+v, want RuntimeDefault", psc.SeccompProfile)
	}
	if len(psc.SupplementalGroups) != 0 {
		t.Errorf("supplementalGroups %v: the CA would be readable by more than the controller needs", psc.SupplementalGroups)
	}
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		t.Error("the Pod shares a host namespace")
	}
	// The controller needs its token (in-cluster config); nothing else
	// running as the ServiceAccount does.
	if spec.AutomountServiceAccountToken == nil || !*spec.AutomountServiceAccountToken {
		t.Error("the Pod does not mount its ServiceAccount token, the controller cannot authenticate")
	}
	for _, sa := range m.ServiceAccounts {
		if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
			t.Errorf("ServiceAccount %s mounts a token into every Pod that uses it", sa.Name)
		}
	}

	csc := c.SecurityContext
	if csc == nil {
		t.Fatal("no container securityContext")
	}
	if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation is not false")
	}
	if csc.Privileged != nil && *csc.Privileged {
		t.Error("privileged")
	}
	if csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
		t.Error("readOnlyRootFilesystem is not true")
	}
	if csc.Capabilities == nil || !slices.Equal(csc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(csc.Capabilities.Add) != 0 {
		t.Errorf("capabilities %+v, want drop [ALL] and no add", csc.Capabilities)
	}
	if csc.RunAsUser != nil || csc.RunAsGroup != nil {
		t.Error("the container overrides the Pod's user or group")
	}

	// The CA volume: a Secret mounted read-only, 0440, the key file
	// becoming root:65532 r--r----- (see TestSecretVolumeLayout).
	var ca *corev1.Volume
	for i := range spec.Volumes {
		if spec.Volumes[i].Name == caVolume {
			ca = &spec.Volumes[i]
		}
	}
	if ca == nil || ca.Secret == nil {
		t.Fatalf("no Secret volume %q", caVolume)
	}
	mode := ca.Secret.DefaultMode
	if mode == nil || *mode != 0o440 || len(ca.Secret.Items) != 0 {
		t.Errorf("CA volume defaultMode %v items %v, want 0440 and no items", deref32(mode), ca.Secret.Items)
	}
	for _, vm := range c.VolumeMounts {
		if !vm.ReadOnly {
			t.Errorf("volumeMount %s is writable", vm.Name)
		}
		if vm.SubPath != "" {
			t.Errorf("volumeMount %s uses subPath: a rotated Secret would never reach the Pod", vm.Name)
		}
	}
}

// TestRBACIsExactlyWhatTheControllerCalls compares every rule deploy/
// grants with the calls the controller makes for deployment.yaml's
// arguments, one by one: nothing missing, nothing more. Signer names come
// from the arguments themselves: "sign" on exactly the --signer names,
// "approve" on exactly the signers the approver judges.
func TestRBACIsExactlyWhatTheControllerCalls(t *testing.T) {
	m, _, c := load(t)

	var signers []string
	approve, policy := false, ""
	for _, a := range c.Args {
		switch {
		case strings.HasPrefix(a, "--signer="):
			name, _, _ := strings.Cut(strings.TrimPrefix(a, "--signer="), "=")
			signers = append(signers, name)
		case a == "--approve" || a == "--approve=true":
			approve = true
		case strings.HasPrefix(a, "--approve-policy="):
			policy = strings.TrimPrefix(a, "--approve-policy=")
		}
	}
	if len(signers) == 0 || !approve || policy == "" {
		t.Fatalf("deployment args %v: want --signer, --approve and --approve-policy", c.Args)
	}
	// The approver's chains, built as the controller builds them for
	// these flags, with the ConfigMap's policy.
	cm, err := m.ConfigMap("kubepki-approval-policy")
	if err != nil {
		t.Fatal(err)
	}
	pol, err := csr.ParseApprovalPolicy([]byte(cm.Data[filepath.Base(policy)]))
	if err != nil {
		t.Fatalf("approval policy: %v", err)
	}
	approver, err := csr.NewApprover(controller.ApproverChains(nil, time.Hour, csr.ServingBounds{}, pol)...)
	if err != nil {
		t.Fatal(err)
	}
	approved := approver.SignerNames()
	slices.Sort(signers)
	slices.Sort(approved)

	const sa = "system:serviceaccount:" + namespace + ":kubepki-controller"
	want := []string{
		// The CSR informer, and the re-read after a conflict.
		"cluster certificates.k8s.io certificatesigningrequests get",
		"cluster certificates.k8s.io certificatesigningrequests list",
		"cluster certificates.k8s.io certificatesigningrequests watch",
		// status.certificate or Failed; Approved or Denied.
		"cluster certificates.k8s.io certificatesigningrequests/status update",
		"cluster certificates.k8s.io certificatesigningrequests/approval update",
		// Node addresses for the kubelet-serving approver.
		"cluster core nodes get",
		"cluster core nodes list",
		"cluster core nodes watch",
		// Leader election: the Lease, and events about it.
		"ns/kubepki-system coordination.k8s.io leases create",
		"ns/kubepki-system coordination.k8s.io leases get kubepki-controller",
		"ns/kubepki-system coordination.k8s.io leases update kubepki-controller",
		"ns/kubepki-system core events create",
		"ns/kubepki-system core events patch",
		// Events about CSRs, which client-go puts in "default".
		"ns/default events.k8s.io events create",
		"ns/default events.k8s.io events patch",
	}
	for _, s := range signers {
		want = append(want, "cluster certificates.k8s.io signers sign "+s)
	}
	for _, s := range approved {
		want = append(want, "cluster certificates.k8s.io signers approve "+s)
	}
	got := granted(t, m, sa)
	slices.Sort(want)
	slices.Sort(got)
	for _, g := range got {
		if !slices.Contains(want, g) {
			t.Errorf("granted but never used: %s", g)
		}
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("used but not granted: %s", w)
		}
	}
	if !slices.Equal(approved, []string{certv1.KubeAPIServerClientSignerName, certv1.KubeAPIServerClientKubeletSignerName, certv1.KubeletServingSignerName}) {
		t.Errorf("approver judges %v", approved)
	}
}

// granted flattens every rule bound to user into "scope group resource
// verb [name]" lines; a wildcard anywhere is an error.
func granted(t *testing.T, m *Manifests, user string) []string {
	t.Helper()
	bound := func(subjects []rbacv1.Subject) bool {
		return slices.ContainsFunc(subjects, func(s rbacv1.Subject) bool {
			return s.Kind == rbacv1.ServiceAccountKind && "system:serviceaccount:"+s.Namespace+":"+s.Name == user
		})
	}
	var out []string
	flatten := func(scope string, rules []rbacv1.PolicyRule) {
		for _, r := range rules {
			if len(r.NonResourceURLs) != 0 {
				t.Errorf("%s: non-resource URLs %v", scope, r.NonResourceURLs)
			}
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					for _, v := range r.Verbs {
						if g == "*" || res == "*" || v == "*" {
							t.Errorf("%s: wildcard in %+v", scope, r)
						}
						if g == "" {
							g = "core"
						}
						line := fmt.Sprintf("%s %s %s %s", scope, g, res, v)
						if len(r.ResourceNames) == 0 {
							out = append(out, line)
						}
						for _, n := range r.ResourceNames {
							out = append(out, line+" "+n)
						}
					}
				}
			}
		}
	}
	for _, b := range m.ClusterRoleBindings {
		if !bound(b.Subjects) {
			continue
		}
		for _, r := range m.ClusterRoles {
			if b.RoleRef.Kind == "ClusterRole" && r.Name == b.RoleRef.Name {
				if r.AggregationRule != nil {
					t.Errorf("ClusterRole %s aggregates other roles", r.Name)
				}
				flatten("cluster", r.Rules)
			}
		}
	}
	for _, b := range m.RoleBindings {
		if !bound(b.Subjects) {
			continue
		}
		if b.RoleRef.Kind != "Role" {
			t.Errorf("RoleBinding %s/%s binds a %s", b.Namespace, b.Name, b.RoleRef.Kind)
		}
		for _, r := range m.Roles {
			if r.Namespace == b.Namespace && r.Name == b.RoleRef.Name {
				flatten("ns/"+r.Namespace, r.Rules)
			}
		}
	}
	return out
}

// TestCAFilesKeptOutOfGit asks git itself whether the files the
// kustomization tells the operator to copy into deploy/ (the cluster CA
// and its key) would be committed.
func TestCAFilesKeptOutOfGit(t *testing.T) {
	m, _, _ := load(t)
	root, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not a git checkout (%v): nothing to keep out of git", err)
	}
	var files []string
	for _, g := range m.Kustomization.SecretGenerator {
		files = append(files, g.FileNames()...)
	}
	if !slices.Contains(files, "ca.key") {
		t.Fatalf("the secretGenerator reads %v, no CA key", files)
	}
	for _, f := range files {
		rel := filepath.Join("deploy", f)
		cmd := exec.Command("git", "check-ignore", "--no-index", "-q", rel)
		cmd.Dir = strings.TrimSpace(string(root))
		if err := cmd.Run(); err != nil {
			t.Errorf("git check-ignore %s: %v: the file the kustomization asks for would be committed", rel, err)
		}
	}
	// And nothing else of deploy/ is ignored by these rules.
	cmd := exec.Command("git", "check-ignore", "--no-index", "-q", "deploy/deployment.yaml")
	cmd.Dir = strings.TrimSpace(string(root))
	if cmd.Run() == nil {
		t.Error("deploy/deployment.yaml is ignored")
	}
}

// TestNoSeedNames: deploy/ is read by operators; it cites real sources.
func TestNoSeedNames(t *testing.T) {
	err := filepath.WalkDir(repoDeploy, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.Contains(strings.ToLower(string(data)), "seed") {
			t.Errorf("%s names a seed document", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func deref(p *int64) any {
	if p == nil {
		return "unset"
	}
	return *p
}

func deref32(p *int32) any {
	if p == nil {
		return "unset"
	}
	return fmt.Sprintf("%#o", *p)
}
