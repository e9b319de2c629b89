package cli_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/kubeconfig"
	"kubepki.dev/kubepki/internal/pkitest"
	"kubepki.dev/kubepki/internal/reconcile"
	"kubepki.dev/kubepki/internal/store"
	"kubepki.dev/kubepki/internal/testenv"
	"kubepki.dev/kubepki/internal/treetest"
)

// crashRun runs kubepki to the end and returns its exit code and output.
func crashRun(t *testing.T, bin string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String()
	case err != nil:
		t.Fatalf("kubepki %s: %v", strings.Join(args, " "), err)
	}
	return 0, out.String()
}

// crashKill starts kubepki with a pause of delay after each file it writes
// (the test-only store.TestWriteDelayEnv), SIGKILLs it after wait, and
// reports whether the kill came before it exited.
func crashKill(t *testing.T, bin string, delay, wait time.Duration, args ...string) bool {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), store.TestWriteDelayEnv+"="+delay.String())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("kubepki %s (not killed): %v", strings.Join(args, " "), err)
		}
		return false
	case <-time.After(wait):
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	err := <-done
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return true
		}
	}
	if err != nil {
		t.Fatalf("kubepki %s: %v", strings.Join(args, " "), err)
	}
	return false // it finished just before the signal
}

// crashDelay is the pause after each file written while a kill is pending.
const crashDelay = time.Millisecond

// crashWorkDir is where the trials run: a directory on /dev/shm when there
// is one. A SIGKILL loses no page cache, so a tmpfs shows what a disk
// would, without the cost of the fsyncs of a few thousand writes.
func crashWorkDir(t *testing.T) string {
	t.Helper()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "kubepki-crash-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return t.TempDir()
}

// crashCopy copies a directory tree with its modes.
func crashCopy(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(target, fi.Mode().Perm())
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, fi.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// crashTemps lists kubepki temporary files under root, failing the test
// for one that holds a private key and is readable by others.
func crashTemps(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.Contains(d.Name(), ".tmp-") {
			return nil
		}
		out = append(out, p)
		fi, _ := d.Info()
		if data, _ := os.ReadFile(p); bytes.Contains(data, []byte("PRIVATE KEY")) && fi != nil && fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("temporary file %s holds a private key with mode %04o", p, fi.Mode().Perm())
		}
		return nil
	})
	return out
}

// crashUnchanged fails when a snapshot differs from before.
func crashUnchanged(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	for p, d := range before {
		if after[p] != d {
			t.Errorf("%s changed %s: %q, was %q", what, p, after[p], d)
		}
	}
	for p, d := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s created %s (%s)", what, p, d)
		}
	}
}

// crashRecover does what every write command does first (forWrite):
// lock the store, learn the files its kubeconfigs refer to, and Recover.
func crashRecover(t *testing.T, st store.Store) {
	t.Helper()
	release, err := st.Lock(true)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	kc := st.KubeconfigDir
	if kc == "" {
		kc = st.Dir
	}
	if st.Referenced, err = kubeconfig.ReferencedFiles(kc); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recover(); err != nil {
		t.Errorf("recover: %v", err)
	}
}

// crashJournals fails unless every journal under the store's backups is
// finished and its backup holds every file it names.
func crashJournals(t *testing.T, st store.Store) {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(st.Dir, ".backup", "*", store.JournalFile))
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var j struct {
			State string `json:"state"`
			Files []struct {
				Backup string `json:"backup"`
			} `json:"files"`
		}
		if err := json.Unmarshal(data, &j); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if j.State != "committed" && j.State != "rolled-back" {
			t.Errorf("%s: state %q after recovery", p, j.State)
		}
		for _, f := range j.Files {
			if f.Backup != "" && !store.Exists(filepath.Join(filepath.Dir(p), f.Backup)) {
				t.Errorf("%s: backup %s missing: a partial backup", p, f.Backup)
			}
		}
	}
}

// crashConsistent fails if the directory holds a certificate beside a key
// that is not its own, a kubeconfig embedding a certificate other than the
// one on disk, or anything else but valid or (after a killed init) missing.
func crashConsistent(t *testing.T, plan *catalog.Plan, st store.Store, allowMissing bool) {
	t.Helper()
	for _, s := range reconcile.Examine(plan, st, time.Now()) {
		if s.State == reconcile.Valid || s.State == reconcile.Missing && allowMissing {
			continue
		}
		t.Errorf("%s %s is %s: %v", s.Kind, s.Name, s.State, s.Findings)
	}
}

// TestCrashSafety SIGKILLs the real kubepki binary at random moments of
// `init` and `certs renew all` (the writes slowed by the test-only
// KUBEPKI_TEST_WRITE_DELAY so that the kills land in the write phase), in
// both layouts, and checks after each kill:
//   - verify, which only reads, exits 0 or 3 and changes nothing on disk:
//     it neither finishes nor rolls back a journal;
//   - once recovery ran (what every write command does first), no
//     certificate sits beside a key that is not its own, no kubeconfig
//     embeds a stale certificate, and every journal is finished with a
//     complete backup;
//   - a temporary file holding a private key is never readable by others;
//   - rerunning the killed command completes, leaves no temporary file,
//     and verify then exits 0.
//
// The seed is printed; KUBEPKI_CRASH_SEED=N replays a run.
func TestCrashSafety(t *testing.T) {
	// Trials go on until wantKills runs were killed before they ended (a
	// run can finish before its kill is due), at most maxTrials.
	wantKills, maxTrials := 200, 400
	if testing.Short() {
		wantKills, maxTrials = 20, 60
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("KUBEPKI_CRASH_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("KUBEPKI_CRASH_SEED: %v", err)
		}
	}
	t.Logf("seed %d (replay with KUBEPKI_CRASH_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	bin := testenv.Kubepki(t)
	work := crashWorkDir(t)

	type kind struct {
		profile catalog.Profile
		cmd     string // "init" or "renew"
	}
	var kinds []kind
	for _, p := range catalog.Profiles() {
		kinds = append(kinds, kind{p, "init"}, kind{p, "renew"})
	}
	// Per kind: a directory after init (what renew starts from), and how
	// long the command takes with the write delay, unkilled.
	templates := map[catalog.Profile]string{}
	spans := map[kind]time.Duration{}
	plans := map[catalog.Profile]*catalog.Plan{}
	// One spec for both layouts (kubeadm's own default would be this host).
	spec := pkitest.SpecFile(t, nil)
	args := func(k kind, root string) []string {
		a := []string{"init"}
		if k.cmd == "renew" {
			a = []string{"certs", "renew", "all"}
		}
		return append(a, "--dir", filepath.Join(root, "pki"), "--profile", string(k.profile), "--config", spec)
	}
	for _, k := range kinds {
		if plans[k.profile] == nil {
			plan, err := catalog.New(cluster.Default(), k.profile)
			if err != nil {
				t.Fatal(err)
			}
			plans[k.profile] = plan
			templates[k.profile] = filepath.Join(work, "template-"+string(k.profile))
			if code, out := crashRun(t, bin, args(kind{k.profile, "init"}, templates[k.profile])...); code != 0 {
				t.Fatalf("init: exit %d\n%s", code, out)
			}
		}
		root := filepath.Join(work, "calibrate-"+string(k.profile)+"-"+k.cmd)
		if k.cmd == "renew" {
			crashCopy(t, templates[k.profile], root)
		}
		start := time.Now()
		if crashKill(t, bin, crashDelay, time.Hour, args(k, root)...) {
			t.Fatal("calibration run killed")
		}
		spans[k] = time.Since(start)
	}

	killed := map[kind]int{}
	kills, trials := 0, 0
	for i := 0; kills < wantKills && i < maxTrials; i++ {
		trials++
		k := kinds[i%len(kinds)]
		root := filepath.Join(work, fmt.Sprintf("trial-%03d", i))
		if k.cmd == "renew" {
			crashCopy(t, templates[k.profile], root)
		}
		st := store.Store{Dir: filepath.Join(root, "pki"), KubeconfigDir: k.profile.KubeconfigDir(filepath.Join(root, "pki"))}
		plan := plans[k.profile]
		// Over the first 80% of an unkilled run: nearly all of it is the
		// write phase, slowed down.
		wait := time.Duration(rng.Int64N(int64(spans[k]) * 8 / 10))
		if crashKill(t, bin, crashDelay, wait, args(k, root)...) {
			killed[k]++
			kills++
		}
		crashTemps(t, root) // only for the modes of keys: they are swept below

		// verify reports an interrupted commit and the temporary files
		// left, and changes nothing; a write command's recovery then
		// finishes or undoes the commit.
		verify := []string{"verify", "--dir", st.Dir, "--profile", string(k.profile), "--config", spec}
		// (A kill before init made the directory leaves nothing to look at.)
		if store.Exists(st.Dir) {
			before := treetest.Snapshot(t, root)
			if code, out := crashRun(t, bin, verify...); code != 0 && code != 3 {
				t.Fatalf("trial %d (%s %s, killed after %v): verify: exit %d\n%s", i, k.profile, k.cmd, wait, code, out)
			}
			crashUnchanged(t, "verify", before, treetest.Snapshot(t, root))
			crashRecover(t, st)
		}
		crashConsistent(t, plan, st, k.cmd == "init")
		crashJournals(t, st)

		// Rerunning completes, sweeps, and leaves a clean directory.
		if code, out := crashRun(t, bin, args(k, root)...); code != 0 {
			t.Fatalf("trial %d (%s %s, killed after %v): rerun: exit %d\n%s", i, k.profile, k.cmd, wait, code, out)
		}
		if temps := crashTemps(t, root); len(temps) > 0 {
			t.Errorf("trial %d (%s %s, killed after %v): temporary files after the rerun: %q", i, k.profile, k.cmd, wait, temps)
		}
		if code, out := crashRun(t, bin, verify...); code != 0 {
			t.Errorf("trial %d (%s %s, killed after %v): verify after the rerun: exit %d\n%s", i, k.profile, k.cmd, wait, code, out)
		}
		crashConsistent(t, plan, st, false)
		crashJournals(t, st)
		if t.Failed() {
			t.Fatalf("trial %d (%s %s, killed after %v of %v) failed; seed %d", i, k.profile, k.cmd, wait, spans[k], seed)
		}
		if err := os.RemoveAll(root); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d trials, %d killed before the end; per kind: %v", trials, kills, killed)
	if kills < wantKills {
		t.Errorf("only %d of %d runs were killed before they ended, want %d kills", kills, trials, wantKills)
	}
}
