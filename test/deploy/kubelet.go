package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// File is one file of a Secret or ConfigMap volume.
type File struct {
	Data []byte
	Mode int32
}

// SecretPayload returns the files the kubelet writes for a Secret volume
// (pkg/volume/secret MakePayload): every key of the Secret with
// defaultMode, or, when items are listed, those keys only, at their paths,
// each with its own mode or defaultMode. An unset defaultMode is what the
// API server defaults it to, 0644.
func SecretPayload(src *corev1.SecretVolumeSource, secret *corev1.Secret) (map[string]File, error) {
	optional := src.Optional != nil && *src.Optional
	return payload(secret.Data, src.Items, src.DefaultMode, optional, "Secret "+secret.Name)
}

// ConfigMapPayload is SecretPayload for a ConfigMap volume (data and
// binaryData).
func ConfigMapPayload(src *corev1.ConfigMapVolumeSource, cm *corev1.ConfigMap) (map[string]File, error) {
	data := map[string][]byte{}
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	optional := src.Optional != nil && *src.Optional
	return payload(data, src.Items, src.DefaultMode, optional, "ConfigMap "+cm.Name)
}

func payload(data map[string][]byte, items []corev1.KeyToPath, defaultMode *int32, optional bool, what string) (map[string]File, error) {
	mode := int32(corev1.SecretVolumeSourceDefaultMode) // == ConfigMapVolumeSourceDefaultMode
	if defaultMode != nil {
		mode = *defaultMode
	}
	out := map[string]File{}
	if len(items) == 0 {
		for k, v := range data {
			out[k] = File{Data: v, Mode: mode}
		}
		return out, nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if optional {
				continue
			}
			return nil, fmt.Errorf("%s has no key %q", what, it.Key)
		}
		m := mode
		if it.Mode != nil {
			m = *it.Mode
		}
		out[it.Path] = File{Data: v, Mode: m}
	}
	return out, nil
}

// Kubelet's constants for a volume it manages (pkg/volume): a read-only
// volume (Secret, ConfigMap) gets group read when fsGroup is set, a
// directory also group search and setgid.
const (
	roMask   = os.FileMode(0o440)
	execMask = os.FileMode(0o110)
	// tmpfsRoot is the mode of a fresh tmpfs's root: Secret and ConfigMap
	// volumes are a memory-medium emptyDir.
	tmpfsRoot = os.FileMode(0o777) | os.ModeSticky
)

// WriteVolume lays out payload in dir as the kubelet does for a Secret or
// ConfigMap volume, running as root:
//
//   - dir is a tmpfs root (1777);
//   - the files are written, as root:root with their exact mode, into a
//     new timestamped directory ..2006_01_02_15_04_05.NNNN (0755)
//     (pkg/volume/util AtomicWriter);
//   - with fsGroup, every entry of the volume gets group fsGroup (lchown)
//     and, unless it is a symlink, mode |= 0440, directories also setgid
//     and 0110 (pkg/volume SetVolumeOwnership for a read-only volume);
//   - ..data is a symlink to the timestamped directory, swapped in with a
//     rename, and each top-level name is a symlink into ..data
//     (tls.key -> ..data/tls.key).
//
// The Pod sees dir at the volumeMount's mountPath.
func WriteVolume(dir string, files map[string]File, fsGroup *int64, now time.Time) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("volume %s: %w", dir, err)
	}
	if err := os.Chmod(dir, tmpfsRoot); err != nil {
		return fmt.Errorf("volume %s: %w", dir, err)
	}
	ts, err := os.MkdirTemp(dir, now.UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return fmt.Errorf("volume %s: %w", dir, err)
	}
	if err := os.Chmod(ts, 0o755); err != nil {
		return fmt.Errorf("volume %s: %w", dir, err)
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		if err := validPath(p); err != nil {
			return fmt.Errorf("volume %s: %w", dir, err)
		}
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		full := filepath.Join(ts, p)
		if err := os.MkdirAll(filepath.Dir(full), os.ModePerm); err != nil {
			return fmt.Errorf("volume %s: %w", dir, err)
		}
		mode := os.FileMode(files[p].Mode)
		if err := os.WriteFile(full, files[p].Data, mode); err != nil {
			return fmt.Errorf("volume %s: %w", dir, err)
		}
		if err := os.Chmod(full, mode); err != nil { // past the umask
			return fmt.Errorf("volume %s: %w", dir, err)
		}
	}
	if fsGroup != nil {
		if err := setVolumeOwnership(dir, *fsGroup); err != nil {
			return fmt.Errorf("volume %s: %w", dir, err)
		}
	}
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		return fmt.Errorf("volume %s: %w", dir, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		return fmt.Errorf("volume %s: %w", dir, err)
	}
	top := map[string]bool{}
	for _, p := range paths {
		name, _, _ := strings.Cut(p, "/")
		if top[name] {
			continue
		}
		top[name] = true
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("volume %s: %w", dir, err)
		}
	}
	return nil
}

// validPath is the AtomicWriter's rule: relative, no "..", no element
// starting with "..".
func validPath(p string) error {
	if p == "" || filepath.IsAbs(p) {
		return fmt.Errorf("invalid path %q", p)
	}
	for _, el := range strings.Split(p, "/") {
		if strings.HasPrefix(el, "..") {
			return fmt.Errorf("invalid path %q: an element starts with \"..\"", p)
		}
	}
	return nil
}

// setVolumeOwnership is the kubelet's walk for a read-only volume.
func setVolumeOwnership(dir string, fsGroup int64) error {
	return filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(path, -1, int(fsGroup)); err != nil {
			return err
		}
		if info.Mode()&os.ModeSymlink != 0 {
			return nil
		}
		mask := roMask
		if info.IsDir() {
			mask |= os.ModeSetgid | execMask
		}
		return os.Chmod(path, info.Mode()|mask)
	})
}

// Credential is the user and groups the container runtime runs the
// container's process with: runAsUser and runAsGroup (the container's over
// the Pod's), and as supplementary groups fsGroup and supplementalGroups.
// An unset runAsUser or runAsGroup is an error: the image would decide.
func Credential(pod *corev1.PodSpec, c *corev1.Container) (*syscall.Credential, error) {
	var uid, gid *int64
	var groups []uint32
	if sc := pod.SecurityContext; sc != nil {
		uid, gid = sc.RunAsUser, sc.RunAsGroup
		if sc.FSGroup != nil {
			groups = append(groups, uint32(*sc.FSGroup))
		}
		for _, g := range sc.SupplementalGroups {
			groups = append(groups, uint32(g))
		}
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			uid = sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			gid = sc.RunAsGroup
		}
	}
	if uid == nil || gid == nil {
		return nil, fmt.Errorf("container %s: runAsUser or runAsGroup unset, the image would choose", c.Name)
	}
	return &syscall.Credential{Uid: uint32(*uid), Gid: uint32(*gid), Groups: groups}, nil
}

// HostArgs returns the container's args with every volumeMount's mountPath
// replaced by the host directory of its volume (hostDirs: volume name →
// directory), so that the process reads what the Pod would read.
func HostArgs(c *corev1.Container, hostDirs map[string]string) ([]string, error) {
	var pairs []string
	for _, vm := range c.VolumeMounts {
		dir, ok := hostDirs[vm.Name]
		if !ok {
			return nil, fmt.Errorf("container %s: no host directory for volume %s", c.Name, vm.Name)
		}
		pairs = append(pairs, strings.TrimSuffix(vm.MountPath, "/")+"/", dir+"/")
	}
	r := strings.NewReplacer(pairs...)
	out := make([]string, len(c.Args))
	for i, a := range c.Args {
		out[i] = r.Replace(a)
	}
	return out, nil
}

// HostDir returns a new directory that any user may traverse (0755 all
// the way from /), for the files a test process running as the Pod's user
// must reach; t.TempDir's are 0700. It is removed when the test ends.
func HostDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "kubepki-pod-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
