// Package testenv runs a real etcd, kube-apiserver and kubectl (and later
// kube-controller-manager and kube-scheduler) on 127.0.0.1 for kubepki's
// end-to-end tests.
//
// It is a test-only helper: every function takes a testing.TB, fails the test
// on error and registers t.Cleanup hooks so that nothing outlives the test.
//
// The binaries are built from the pinned tool modules in test/tools/kube and
// test/tools/etcd the first time they are needed and cached outside the
// repository (see Build). The first build takes several minutes, so run the
// e2e tests with a generous timeout, as the README does:
//
//	go test ./... -timeout 60m
//
// Build itself stops and fails with an explanatory message shortly before the
// test binary's -timeout would otherwise kill the build without a word.
package testenv

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Binaries holds paths to the real Kubernetes and etcd binaries.
type Binaries struct {
	Etcd                  string
	KubeAPIServer         string
	KubeControllerManager string
	KubeScheduler         string
	Kubectl               string
	Kubeadm               string
}

const (
	// rootModule is the module path of the repository root go.mod.
	rootModule = "kubepki.dev/kubepki"
	// cacheEnv overrides the parent directory of the binary cache.
	cacheEnv = "KUBEPKI_TOOLS_CACHE"
	// completeMarker is written last into a finished cache directory.
	completeMarker = "complete"
	// buildMargin is how long before the test deadline a build is abandoned
	// so that the failure is reported instead of the test binary panicking.
	buildMargin = 30 * time.Second
	// buildRecipe is hashed into the cache key; bump it when the way the
	// binaries are built (flags, set of commands) changes.
	buildRecipe = "kubepki-testenv-build-2"
)

// kubeCommands returns the packages built from test/tools/kube; the binary
// name is the last path element.
func kubeCommands() []string {
	return []string{
		"k8s.io/kubernetes/cmd/kube-apiserver",
		"k8s.io/kubernetes/cmd/kube-controller-manager",
		"k8s.io/kubernetes/cmd/kube-scheduler",
		"k8s.io/kubernetes/cmd/kubectl",
		"k8s.io/kubernetes/cmd/kubeadm",
	}
}

// etcdCommand is the package built from test/tools/etcd (the etcd server's
// module root is its main package).
const etcdCommand = "go.etcd.io/etcd/server/v3"

// binariesIn returns the binary paths inside dir.
func binariesIn(dir string) Binaries {
	return Binaries{
		Etcd:                  filepath.Join(dir, "etcd"),
		KubeAPIServer:         filepath.Join(dir, "kube-apiserver"),
		KubeControllerManager: filepath.Join(dir, "kube-controller-manager"),
		KubeScheduler:         filepath.Join(dir, "kube-scheduler"),
		Kubectl:               filepath.Join(dir, "kubectl"),
		Kubeadm:               filepath.Join(dir, "kubeadm"),
	}
}

func (b Binaries) all() []string {
	return []string{b.Etcd, b.KubeAPIServer, b.KubeControllerManager, b.KubeScheduler, b.Kubectl, b.Kubeadm}
}

// Build returns the binaries, building them once and caching them outside
// the repository.
//
// The cache directory is <parent>/<key>, where <parent> is
// $KUBEPKI_TOOLS_CACHE if set and os.UserCacheDir()/kubepki/tools otherwise,
// and <key> is a short SHA-256 of the tool modules' go.mod, go.sum and
// tools.go, the output of `go version` and the build recipe, so bumping a
// version rebuilds.
//
// Several test packages may call Build concurrently (go test runs packages in
// parallel): an exclusive flock on <parent>/<key>.lock lets only one of them
// build, into a temporary directory that is renamed into place with a
// "complete" marker once everything is built.
//
// Building takes ~5-10 minutes on the first run (longer with a cold Go build
// cache), which is why the README runs the tests with -timeout 60m. With
// -short, Build skips the test: -short is the fast loop, without them.
func Build(t testing.TB) Binaries {
	t.Helper()
	if testing.Short() {
		t.Skip("testenv: -short skips the tests that run the Kubernetes binaries")
	}
	bins, err := build(t)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return bins
}

func build(t testing.TB) (Binaries, error) {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		return Binaries{}, err
	}
	kubeMod := filepath.Join(root, "test", "tools", "kube")
	etcdMod := filepath.Join(root, "test", "tools", "etcd")

	goBin, err := exec.LookPath("go")
	if err != nil {
		return Binaries{}, fmt.Errorf("find go command: %w", err)
	}
	versionCmd := exec.Command(goBin, "version")
	versionCmd.Env = buildEnv()
	goVersion, err := versionCmd.Output()
	if err != nil {
		return Binaries{}, fmt.Errorf("go version: %w", err)
	}
	key, err := cacheKey(goVersion, kubeMod, etcdMod)
	if err != nil {
		return Binaries{}, err
	}

	parent := os.Getenv(cacheEnv)
	if parent == "" {
		userCache, err := os.UserCacheDir()
		if err != nil {
			return Binaries{}, fmt.Errorf("locate user cache dir (set $%s): %w", cacheEnv, err)
		}
		parent = filepath.Join(userCache, "kubepki", "tools")
	}
	dir := filepath.Join(parent, key)
	bins := binariesIn(dir)

	// Fast path: the directory is renamed into place only when complete.
	if complete(dir) {
		return bins, nil
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return Binaries{}, fmt.Errorf("create tools cache: %w", err)
	}
	unlock, err := lock(t, filepath.Join(parent, key+".lock"))
	if err != nil {
		return Binaries{}, err
	}
	defer unlock()

	// Another test package may have finished the build while we waited.
	if complete(dir) {
		return bins, nil
	}
	if err := removeStale(parent, key); err != nil {
		return Binaries{}, err
	}
	tmp, err := os.MkdirTemp(parent, key+".tmp-")
	if err != nil {
		return Binaries{}, fmt.Errorf("create build dir: %w", err)
	}
	defer os.RemoveAll(tmp) // no-op after a successful rename
	if err := os.Chmod(tmp, 0o755); err != nil {
		return Binaries{}, fmt.Errorf("create build dir: %w", err)
	}

	ctx := context.Background()
	if d, ok := deadline(t); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-buildMargin))
		defer cancel()
	}

	names := make([]string, 0, len(kubeCommands()))
	for _, c := range kubeCommands() {
		names = append(names, filepath.Base(c))
	}
	ldflags, err := kubeLDFlags(ctx, goBin, kubeMod)
	if err != nil {
		return Binaries{}, err
	}
	// go build -o DIR/ with several main packages writes one binary per
	// package, named after the last path element.
	kubeArgs := append([]string{"build", "-ldflags=" + ldflags, "-o", tmp + string(filepath.Separator)}, kubeCommands()...)
	if err := goBuild(ctx, t, goBin, kubeMod, strings.Join(names, ", "), kubeArgs...); err != nil {
		return Binaries{}, err
	}
	if err := goBuild(ctx, t, goBin, etcdMod, "etcd", "build", "-ldflags=-s -w", "-o", filepath.Join(tmp, "etcd"), etcdCommand); err != nil {
		return Binaries{}, err
	}
	for _, b := range binariesIn(tmp).all() {
		if _, err := os.Stat(b); err != nil {
			return Binaries{}, fmt.Errorf("build did not produce %s: %w", filepath.Base(b), err)
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, completeMarker), goVersion, 0o644); err != nil {
		return Binaries{}, fmt.Errorf("write complete marker: %w", err)
	}
	// A leftover incomplete dir (e.g. from an older layout) would make the
	// rename fail; it is ours to replace while we hold the lock.
	if err := os.RemoveAll(dir); err != nil {
		return Binaries{}, fmt.Errorf("remove incomplete cache dir: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return Binaries{}, fmt.Errorf("move binaries into cache: %w", err)
	}
	t.Logf("testenv: cached Kubernetes binaries in %s", dir)
	return bins, nil
}

// goBuild runs one go build in modDir, reporting a deadline hit explicitly.
func goBuild(ctx context.Context, t testing.TB, goBin, modDir, what string, args ...string) error {
	t.Helper()
	t.Logf("testenv: building %s in %s (first run only, ~5-10 minutes)...", what, modDir)
	start := time.Now()
	cmd := exec.CommandContext(ctx, goBin, args...)
	cmd.Dir = modDir
	cmd.Env = buildEnv()
	// Kill the whole group (go and its compile/link children) on timeout,
	// and have the kernel kill go if the test binary dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return fmt.Errorf("build %s: stopped after %v because the test -timeout is near; "+
			"the first build takes several minutes, rerun with -timeout 60m (binaries are cached afterwards): %w\n%s",
			what, time.Since(start).Round(time.Second), ctx.Err(), out)
	}
	if err != nil {
		return fmt.Errorf("build %s: %w\n%s", what, err, out)
	}
	t.Logf("testenv: built %s in %v", what, time.Since(start).Round(time.Second))
	return nil
}

// kubeLDFlags returns the linker flags that stamp the Kubernetes version
// into the binaries, as the upstream release build does; without them they
// report v0.0.0-master, which kubeadm and version skew checks reject. DWARF
// is stripped (-s -w) like in release builds, which also speeds up linking.
func kubeLDFlags(ctx context.Context, goBin, modDir string) (string, error) {
	cmd := exec.CommandContext(ctx, goBin, "list", "-m", "-f", "{{.Version}}", "k8s.io/kubernetes")
	cmd.Dir = modDir
	cmd.Env = buildEnv()
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("find Kubernetes version: %w", err)
	}
	version := strings.TrimSpace(string(out))
	major, rest, _ := strings.Cut(strings.TrimPrefix(version, "v"), ".")
	minor, _, _ := strings.Cut(rest, ".")
	flags := []string{"-s", "-w"}
	for _, pkg := range []string{"k8s.io/client-go/pkg/version", "k8s.io/component-base/version"} {
		flags = append(flags,
			"-X", pkg+".gitVersion="+version,
			"-X", pkg+".gitMajor="+major,
			"-X", pkg+".gitMinor="+minor,
			"-X", pkg+".gitTreeState=clean",
		)
	}
	return strings.Join(flags, " "), nil
}

// buildEnv is the environment of the go commands run by Build.
func buildEnv() []string {
	return append(os.Environ(), "GOTOOLCHAIN=local", "GOFLAGS=-mod=mod")
}

// lock takes an exclusive flock on path, logging if it has to wait.
func lock(t testing.TB, path string) (unlock func(), err error) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		t.Logf("testenv: waiting for another test process to finish building the binaries (lock %s)", path)
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// Closing the file releases the lock.
	return func() { f.Close() }, nil
}

// complete reports whether dir holds a finished build.
func complete(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, completeMarker))
	return err == nil
}

// removeStale deletes temporary build dirs left by killed builds of key. It
// must be called with the key's lock held.
func removeStale(parent, key string) error {
	stale, err := filepath.Glob(filepath.Join(parent, key+".tmp-*"))
	if err != nil {
		return fmt.Errorf("find stale build dirs: %w", err)
	}
	for _, s := range stale {
		if err := os.RemoveAll(s); err != nil {
			return fmt.Errorf("remove stale build dir: %w", err)
		}
	}
	return nil
}

// cacheKey hashes the go version and the tool modules' definitions.
func cacheKey(goVersion []byte, modDirs ...string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%q\n", buildRecipe, goVersion, kubeCommands())
	for _, d := range modDirs {
		for _, name := range []string{"go.mod", "go.sum", "tools.go"} {
			b, err := os.ReadFile(filepath.Join(d, name))
			if err != nil && !(errors.Is(err, fs.ErrNotExist) && name != "go.mod") {
				return "", fmt.Errorf("hash tool module: %w", err)
			}
			fmt.Fprintf(h, "%s/%s %d\n", filepath.Base(d), name, len(b))
			h.Write(b)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// moduleRoot walks up from the working directory to the directory whose
// go.mod declares the kubepki module.
func moduleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find module root: %w", err)
	}
	for dir := wd; ; {
		if modulePath(filepath.Join(dir, "go.mod")) == rootModule {
			return dir, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", fmt.Errorf("find module root: no go.mod for module %s above %s", rootModule, wd)
		}
		dir = up
	}
}

// modulePath returns the module path declared in a go.mod file, or "".
func modulePath(gomod string) string {
	f, err := os.Open(gomod)
	if err != nil {
		return ""
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) >= 2 && fields[0] == "module" {
			return strings.Trim(fields[1], `"`)
		}
	}
	return ""
}

// deadline returns the test's deadline if t has one (*testing.T does).
func deadline(t testing.TB) (time.Time, bool) {
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		return d.Deadline()
	}
	return time.Time{}, false
}
