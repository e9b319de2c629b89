package deploy

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/testenv"
)

// caSecret is a kubernetes.io/tls Secret as kustomization.yaml makes it.
func caSecret() *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "kubepki-ca", Namespace: namespace},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{"tls.crt": []byte("certificate\n"), "tls.key": []byte("key\n")},
	}
}

func ptr[T any](v T) *T { return &v }

// entry is what a path of the volume must be.
type entry struct {
	path   string
	mode   os.FileMode // full mode, type bits included
	gid    uint32
	target string // symlinks: where they point
}

// TestSecretVolumeLayout pins WriteVolume to what the kubelet makes of a
// Secret volume, mode by mode, for the old manifest (0400, no fsGroup: the
// key is root's alone), for deploy/deployment.yaml as it is, and for items
// with their own mode.
func TestSecretVolumeLayout(t *testing.T) {
	requireRoot(t)
	_, spec, _ := load(t)
	var deployed *corev1.SecretVolumeSource
	for _, v := range spec.Volumes {
		if v.Name == caVolume {
			deployed = v.Secret
		}
	}
	link := func(p, target string) entry { return entry{path: p, mode: os.ModeSymlink | 0o777, target: target} }
	for _, tc := range []struct {
		name    string
		src     *corev1.SecretVolumeSource
		fsGroup *int64
		want    []entry
	}{
		{
			name: "old manifest: 0400, no fsGroup",
			src:  &corev1.SecretVolumeSource{SecretName: "kubepki-ca", DefaultMode: ptr[int32](0o400)},
			want: []entry{
				{path: ".", mode: os.ModeDir | os.ModeSticky | 0o777, gid: 0},
				{path: "..data/", mode: os.ModeDir | 0o755, gid: 0},
				{path: "..data/tls.key", mode: 0o400, gid: 0},
				{path: "..data/tls.crt", mode: 0o400, gid: 0},
				link("tls.key", "..data/tls.key"),
				link("..data", "..TS"),
			},
		},
		{
			name:    "deploy/deployment.yaml",
			src:     deployed,
			fsGroup: spec.SecurityContext.FSGroup,
			want: []entry{
				{path: ".", mode: os.ModeDir | os.ModeSticky | os.ModeSetgid | 0o777, gid: nonroot},
				{path: "..data/", mode: os.ModeDir | os.ModeSetgid | 0o755, gid: nonroot},
				{path: "..data/tls.key", mode: 0o440, gid: nonroot},
				{path: "..data/tls.crt", mode: 0o440, gid: nonroot},
				link("tls.key", "..data/tls.key"),
				link("tls.crt", "..data/tls.crt"),
			},
		},
		{
			name: "0400 with fsGroup: the kubelet adds group read",
			src:  &corev1.SecretVolumeSource{SecretName: "kubepki-ca", DefaultMode: ptr[int32](0o400)},
			// The kubelet ORs 0440 in: it cannot give fsGroup less.
			fsGroup: ptr[int64](nonroot),
			want:    []entry{{path: "..data/tls.key", mode: 0o440, gid: nonroot}},
		},
		{
			name: "items with their own mode, in a subdirectory",
			src: &corev1.SecretVolumeSource{SecretName: "kubepki-ca", DefaultMode: ptr[int32](0o644),
				Items: []corev1.KeyToPath{{Key: "tls.key", Path: "keys/ca.key", Mode: ptr[int32](0o600)}}},
			fsGroup: ptr[int64](nonroot),
			want: []entry{
				{path: "..data/keys/", mode: os.ModeDir | os.ModeSetgid | 0o755, gid: nonroot},
				{path: "..data/keys/ca.key", mode: 0o640, gid: nonroot},
				link("keys", "..data/keys"),
			},
		},
		{
			name: "no defaultMode: the API server's 0644",
			src:  &corev1.SecretVolumeSource{SecretName: "kubepki-ca"},
			want: []entry{{path: "..data/tls.key", mode: 0o644}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files, err := SecretPayload(tc.src, caSecret())
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(t.TempDir(), "ca")
			if err := WriteVolume(dir, files, tc.fsGroup, time.Now()); err != nil {
				t.Fatal(err)
			}
			ts, err := os.Readlink(filepath.Join(dir, "..data"))
			if err != nil {
				t.Fatal(err)
			}
			if matched, _ := filepath.Match("..[0-9][0-9][0-9][0-9]_[0-9][0-9]_[0-9][0-9]_[0-9][0-9]_[0-9][0-9]_[0-9][0-9].*", ts); !matched {
				t.Errorf("..data -> %s, want a timestamped directory", ts)
			}
			for _, w := range tc.want {
				p := filepath.Join(dir, w.path)
				stat := os.Lstat
				if strings.HasSuffix(w.path, "/") { // through the ..data symlink
					stat = os.Stat
				}
				fi, err := stat(p)
				if err != nil {
					t.Error(err)
					continue
				}
				if fi.Mode() != w.mode {
					t.Errorf("%s: mode %v, want %v", w.path, fi.Mode(), w.mode)
				}
				st := fi.Sys().(*syscall.Stat_t)
				if w.target == "" && (st.Uid != 0 || st.Gid != w.gid) {
					t.Errorf("%s: owner %d:%d, want 0:%d", w.path, st.Uid, st.Gid, w.gid)
				}
				if w.target != "" {
					got, _ := os.Readlink(p)
					if w.target == "..TS" {
						w.target = ts
					}
					if got != w.target {
						t.Errorf("%s -> %s, want -> %s", w.path, got, w.target)
					}
				}
			}
		})
	}
}

// TestCAReadableByTheControllerOnly reads the CA key through the volume's
// symlink, with the kernel's own permission checks, as the processes that
// might try: the controller as deployment.yaml runs it (65532, fsGroup
// 65532) can, another non-root user cannot, and with the old manifest's
// volume (0400 root:root, no fsGroup) the controller could not either:
// the crash loop the old manifest would have had.
func TestCAReadableByTheControllerOnly(t *testing.T) {
	requireRoot(t)
	_, spec, c := load(t)
	cred, err := Credential(spec, c)
	if err != nil {
		t.Fatal(err)
	}
	if cred.Uid != nonroot || cred.Gid != nonroot || len(cred.Groups) != 1 || cred.Groups[0] != nonroot {
		t.Fatalf("container credential %+v, want 65532:65532 with groups [65532]", cred)
	}
	var deployed *corev1.SecretVolumeSource
	for _, v := range spec.Volumes {
		if v.Name == caVolume {
			deployed = v.Secret
		}
	}
	other := &syscall.Credential{Uid: 65533, Gid: 65533, Groups: []uint32{65533}}
	old := &corev1.SecretVolumeSource{SecretName: "kubepki-ca", DefaultMode: ptr[int32](0o400)}
	for _, tc := range []struct {
		name     string
		src      *corev1.SecretVolumeSource
		fsGroup  *int64
		as       *syscall.Credential
		readable bool
	}{
		{"controller, deployment.yaml", deployed, spec.SecurityContext.FSGroup, cred, true},
		{"another user, deployment.yaml", deployed, spec.SecurityContext.FSGroup, other, false},
		{"controller, old manifest", old, nil, cred, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files, err := SecretPayload(tc.src, caSecret())
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(HostDir(t), "ca")
			if err := WriteVolume(dir, files, tc.fsGroup, time.Now()); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("cat", filepath.Join(dir, "tls.key"))
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: tc.as}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if tc.readable && (err != nil || string(out) != "key\n") {
				t.Errorf("cat tls.key as %d: %v %s", tc.as.Uid, err, stderr.String())
			}
			if !tc.readable && (err == nil || !bytes.Contains(stderr.Bytes(), []byte("Permission denied"))) {
				t.Errorf("cat tls.key as %d: %v %q, want Permission denied", tc.as.Uid, err, stderr.String())
			}
		})
	}
}

// TestHostArgs: the Deployment's paths become the host's.
func TestHostArgs(t *testing.T) {
	_, _, c := load(t)
	args, err := HostArgs(c, map[string]string{"ca": "/h/ca", "policy": "/h/policy"})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range args {
		if strings.Contains(a, "/etc/kubepki/") {
			t.Errorf("argument %q still names a path in the container", a)
		}
	}
	if _, err := HostArgs(c, map[string]string{"ca": "/h/ca"}); err == nil {
		t.Error("a volume without a host directory was accepted")
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("laying out a volume as the kubelet does (chown to fsGroup) and running as another user need root")
	}
}

// TestControllerLoadsCAThroughSecretVolume runs the real kubepki binary
// as deployment.yaml's container (its user and groups, its args with the
// volumes' host directories) against volumes laid out as the kubelet lays
// them out (tls.key -> ..data/tls.key -> ..2026_…/tls.key). No API server
// answers (test/e2e TestDeployManifests has one): the controller loads its
// CAs first, so with the manifest as it is it must get past them and fail
// on the API server; with the old manifest's volume (0400, no fsGroup) it
// must fail on the CA.
func TestControllerLoadsCAThroughSecretVolume(t *testing.T) {
	requireRoot(t)
	m, spec, c := load(t)
	bin := testenv.KubepkiIn(t, HostDir(t))
	if err := os.Chmod(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.NewCA(key, pki.Profile{Subject: pki.Subject{CommonName: "kubernetes"}, Validity: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := pki.EncodeKey(key)
	if err != nil {
		t.Fatal(err)
	}
	secret := caSecret()
	secret.Data = map[string][]byte{"tls.crt": pki.EncodeCert(ca.Cert), "tls.key": keyPEM}

	for _, tc := range []struct {
		name string
		old  bool
		want string
	}{
		{"deploy/deployment.yaml", false, "connection refused"},
		{"old manifest: 0400, no fsGroup", true, "read CA certificate: open "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := spec.DeepCopy()
			if tc.old {
				pod.SecurityContext.FSGroup = nil
				for i := range pod.Volumes {
					if pod.Volumes[i].Secret != nil {
						pod.Volumes[i].Secret.DefaultMode = ptr[int32](0o400)
					}
				}
			}
			cred, err := Credential(pod, c)
			if err != nil {
				t.Fatal(err)
			}
			base := HostDir(t)
			dirs := map[string]string{}
			for _, v := range pod.Volumes {
				var files map[string]File
				switch {
				case v.Secret != nil:
					files, err = SecretPayload(v.Secret, secret)
				case v.ConfigMap != nil:
					var cm *corev1.ConfigMap
					if cm, err = m.ConfigMap(v.ConfigMap.Name); err == nil {
						files, err = ConfigMapPayload(v.ConfigMap, cm)
					}
				default:
					t.Fatalf("volume %s: neither Secret nor ConfigMap", v.Name)
				}
				if err != nil {
					t.Fatal(err)
				}
				dirs[v.Name] = filepath.Join(base, v.Name)
				if err := WriteVolume(dirs[v.Name], files, pod.SecurityContext.FSGroup, time.Now()); err != nil {
					t.Fatal(err)
				}
			}
			if fi, err := os.Lstat(filepath.Join(dirs[caVolume], "tls.key")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
				t.Fatalf("tls.key is not a symlink into ..data (%v)", err)
			}
			// Nothing listens on 127.0.0.1:1.
			kubeconfig := filepath.Join(base, "kubeconfig")
			if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: none}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o644); err != nil {
				t.Fatal(err)
			}
			args, err := HostArgs(&pod.Containers[0], dirs)
			if err != nil {
				t.Fatal(err)
			}
			args = append(args, "--kubeconfig="+kubeconfig, "--http-address=127.0.0.1:0")
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, args...)
			cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/"}
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 || !bytes.Contains(out, []byte(tc.want)) {
				t.Fatalf("kubepki controller as %d: %v, want exit 1 with %q:\n%s", cred.Uid, err, tc.want, out)
			}
			if !tc.old && bytes.Contains(out, []byte("CA")) {
				t.Errorf("the controller did not get past its CA:\n%s", out)
			}
			if tc.old && !bytes.Contains(out, []byte("permission denied")) {
				t.Errorf("the old manifest's CA failed for another reason than its mode:\n%s", out)
			}
		})
	}
}
