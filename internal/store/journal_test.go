package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// jtFiles are the files of a transaction test: three that exist (one in a
// subdirectory, one outside Dir as kubeadm's kubeconfigs are) and one that
// the transaction creates.
type jtFiles struct {
	st    Store
	paths []string
	old   map[string]string // "" for a file that does not exist yet
	new   map[string]string
	modes map[string]os.FileMode
}

func newJTFiles(t *testing.T) jtFiles {
	t.Helper()
	root := t.TempDir()
	st := Store{Dir: filepath.Join(root, "pki"), KubeconfigDir: root}
	f := jtFiles{st: st, old: map[string]string{}, new: map[string]string{}, modes: map[string]os.FileMode{}}
	for _, x := range []struct {
		path, old string
		mode      os.FileMode
	}{
		{st.CertPath("etcd/server"), "old server cert", CertMode},
		{st.KeyPath("etcd/server"), "old server key", KeyMode},
		{filepath.Join(root, "admin.conf"), "old admin kubeconfig", KeyMode},
		{st.CertPath("new"), "", CertMode},
	} {
		f.paths = append(f.paths, x.path)
		f.old[x.path], f.new[x.path], f.modes[x.path] = x.old, "new "+filepath.Base(x.path), x.mode
		if x.old != "" {
			if err := Replace(x.path, []byte(x.old), x.mode); err != nil {
				t.Fatal(err)
			}
		}
	}
	return f
}

// side says whether every file holds its old content ("old"), every one
// its new content ("new"), or a mixture (a description of it).
func (f jtFiles) side(t *testing.T) string {
	t.Helper()
	var olds, news []string
	for _, p := range f.paths {
		data, err := os.ReadFile(p)
		got := string(data)
		if errors.Is(err, fs.ErrNotExist) {
			got = ""
		} else if err != nil {
			t.Fatal(err)
		}
		switch got {
		case f.old[p]:
			olds = append(olds, p)
		case f.new[p]:
			news = append(news, p)
			if fi, _ := os.Stat(p); fi.Mode().Perm() != f.modes[p] {
				t.Errorf("%s: mode %04o, want %04o", p, fi.Mode().Perm(), f.modes[p])
			}
		default:
			return fmt.Sprintf("%s holds %q", p, got)
		}
	}
	switch {
	case len(news) == 0:
		return "old"
	case len(olds) == 0:
		return "new"
	}
	return fmt.Sprintf("mixed: old %q, new %q", olds, news)
}

func (f jtFiles) stageAll(t *testing.T) *Transaction {
	t.Helper()
	tx := f.st.NewTransaction()
	for _, p := range f.paths {
		if err := tx.Stage(p, []byte(f.new[p]), f.modes[p]); err != nil {
			t.Fatal(err)
		}
	}
	return tx
}

func jtTemps(t *testing.T, st Store) []string {
	t.Helper()
	temps, err := st.tempFiles()
	if err != nil {
		t.Fatal(err)
	}
	return temps
}

func TestTransactionCommit(t *testing.T) {
	f := newJTFiles(t)
	tx := f.stageAll(t)
	if got := f.side(t); got != "old" {
		t.Fatalf("after Stage: %s, want nothing replaced", got)
	}
	if n := len(jtTemps(t, f.st)); n != len(f.paths) {
		t.Fatalf("%d staged files, want %d", n, len(f.paths))
	}
	dir, err := tx.Commit(testNow)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.side(t); got != "new" {
		t.Errorf("after Commit: %s", got)
	}
	if want := filepath.Join(f.st.Dir, ".backup", "20260314T150926Z"); dir != want {
		t.Errorf("backup %s, want %s", dir, want)
	}
	for rel, want := range map[string]string{"etcd/server.crt": "old server cert", "etcd/server.key": "old server key", "admin.conf": "old admin kubeconfig"} {
		assertFile(t, filepath.Join(dir, rel), []byte(want), f.modes[filepath.Join(f.st.Dir, rel)]|f.modes[filepath.Join(f.st.KubeconfigDir, rel)])
	}
	if Exists(filepath.Join(dir, "new.crt")) {
		t.Errorf("backup holds a copy of a file that did not exist")
	}
	j, err := readJournal(filepath.Join(dir, JournalFile))
	if err != nil || j.State != stateCommitted {
		t.Fatalf("journal %+v, %v; want state committed", j, err)
	}
	if temps := jtTemps(t, f.st); len(temps) != 0 {
		t.Errorf("temporary files left: %q", temps)
	}
	tx.Abort() // a no-op after Commit
	if got := f.side(t); got != "new" {
		t.Errorf("Abort after Commit undid it: %s", got)
	}
	if rec, err := f.st.Recover(); err != nil || !rec.Empty() {
		t.Errorf("Recover after a clean commit = %+v, %v; want nothing to do", rec, err)
	}
}

func TestTransactionAbort(t *testing.T) {
	f := newJTFiles(t)
	tx := f.stageAll(t)
	tx.Abort()
	if got := f.side(t); got != "old" {
		t.Errorf("after Abort: %s", got)
	}
	if temps := jtTemps(t, f.st); len(temps) != 0 {
		t.Errorf("Abort left %q", temps)
	}
	if Exists(filepath.Join(f.st.Dir, ".backup")) {
		t.Errorf("Abort made a backup")
	}
}

// TestRecoverAfterCrash stops Commit at every step, as SIGKILL would, and
// checks that Recover leaves every file from one side — the old files
// before the journal says "begin", the new ones after — with no temporary
// file and no incomplete backup.
func TestRecoverAfterCrash(t *testing.T) {
	steps := []string{"backup-dir", "backup-0", "backup-1", "backup-2", "backup-3", "rename-0", "rename-1", "rename-2", "rename-3", "commit"}
	for _, step := range steps {
		t.Run(step, func(t *testing.T) {
			f := newJTFiles(t)
			tx := f.stageAll(t)
			tx.crashAt = func(s string) bool { return s == step }
			if _, err := tx.Commit(testNow); !errors.Is(err, errCrashed) {
				t.Fatalf("Commit = %v, want it stopped at %s", err, step)
			}
			tx.Abort() // as the killed process's deferred Abort never ran: a no-op

			left, err := f.st.Leftovers()
			if err != nil {
				t.Fatal(err)
			}
			if len(left) == 0 {
				t.Errorf("Leftovers after a crash at %s: none", step)
			}
			rec, err := f.st.Recover()
			if err != nil {
				t.Fatalf("Recover: %v", err)
			}
			want := "new"
			if strings.HasPrefix(step, "backup") {
				want = "old"
			}
			if got := f.side(t); got != want {
				t.Errorf("after a crash at %s and Recover: %s, want %s", step, got, want)
			}
			if temps := jtTemps(t, f.st); len(temps) != 0 {
				t.Errorf("temporary files left: %q", temps)
			}
			if left, _ := f.st.Leftovers(); len(left) != 0 {
				t.Errorf("Leftovers after Recover: %q", left)
			}
			backups, _ := filepath.Glob(filepath.Join(f.st.Dir, ".backup", "*"))
			switch want {
			case "old":
				if len(backups) != 0 || len(rec.Discarded) != 1 {
					t.Errorf("a commit that never began left backups %q (recovery %+v)", backups, rec)
				}
			case "new":
				if len(backups) != 1 {
					t.Fatalf("backups %q, want the commit's", backups)
				}
				if step != "commit" && len(rec.Finished) != 1 {
					t.Errorf("recovery %+v, want the journal finished", rec)
				}
				j, err := readJournal(filepath.Join(backups[0], JournalFile))
				if err != nil || j.State != stateCommitted {
					t.Errorf("journal %+v, %v; want committed", j, err)
				}
				// The backup is complete: it restores the old files.
				assertFile(t, filepath.Join(backups[0], "etcd", "server.key"), []byte("old server key"), KeyMode)
			}
			if again, err := f.st.Recover(); err != nil || !again.Empty() {
				t.Errorf("second Recover = %+v, %v; want nothing to do", again, err)
			}
		})
	}
}

// TestRecoverRollsBack: when the new set cannot be completed (a staged
// file vanished before its rename), every file is restored from the backup
// and a file the commit created is removed.
func TestRecoverRollsBack(t *testing.T) {
	f := newJTFiles(t)
	tx := f.stageAll(t)
	tx.crashAt = func(s string) bool { return s == "rename-2" }
	if _, err := tx.Commit(testNow); !errors.Is(err, errCrashed) {
		t.Fatal(err)
	}
	if err := os.Remove(tx.entries[3].Staged); err != nil {
		t.Fatal(err)
	}
	if got := f.side(t); !strings.HasPrefix(got, "mixed") {
		t.Fatalf("before recovery: %s, want a mixture", got)
	}
	rec, err := f.st.Recover()
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.RolledBack) != 1 {
		t.Errorf("recovery %+v, want one journal rolled back", rec)
	}
	if got := f.side(t); got != "old" {
		t.Errorf("after rolling back: %s", got)
	}
	if temps := jtTemps(t, f.st); len(temps) != 0 {
		t.Errorf("temporary files left: %q", temps)
	}
}

// TestRecoverRefusesForeignJournal: a journal naming a file outside the
// store is not acted on.
func TestRecoverRefusesForeignJournal(t *testing.T) {
	root := t.TempDir()
	st := Store{Dir: filepath.Join(root, "pki")}
	victim := filepath.Join(root, "elsewhere", "passwd")
	if err := Replace(victim, []byte("root:x:0:0"), CertMode); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(st.Dir, ".backup", "20260314T150926Z")
	if err := Replace(filepath.Join(dir, "passwd"), []byte("evil"), CertMode); err != nil {
		t.Fatal(err)
	}
	j := &journal{State: stateBegin, Files: []journalEntry{{Path: victim, Staged: filepath.Join(root, "elsewhere", ".passwd.tmp-1"), Backup: "passwd", SHA256: "00"}}}
	if err := writeJournal(dir, j); err != nil {
		t.Fatal(err)
	}
	_, err := st.Recover()
	if err == nil || !strings.Contains(err.Error(), "not a file of") {
		t.Errorf("Recover = %v, want a refusal", err)
	}
	assertFile(t, victim, []byte("root:x:0:0"), CertMode)
}

// TestSweep removes kubepki's temporary files, and only those.
func TestSweep(t *testing.T) {
	root := t.TempDir()
	st := Store{Dir: filepath.Join(root, "pki"), KubeconfigDir: root}
	stale := []string{
		filepath.Join(st.Dir, ".admin.key.tmp-123456"),
		filepath.Join(st.Dir, "etcd", ".server.crt.tmp-42"),
		filepath.Join(st.Dir, ".backup", "20260314T150926Z", ".ca.key.tmp-7"),
		filepath.Join(root, ".admin.conf.tmp-99"),
	}
	kept := []string{
		filepath.Join(st.Dir, "admin.key"),
		filepath.Join(st.Dir, ".admin.key.tmp-abc"),
		filepath.Join(st.Dir, "admin.key.tmp-1"),
		filepath.Join(root, "other", ".x.tmp-1"), // not a directory of the store
	}
	for _, p := range append(slices.Clone(stale), kept...) {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("secret"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	left, err := st.Leftovers()
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != len(stale) {
		t.Errorf("Leftovers = %q, want the %d stale files", left, len(stale))
	}
	rec, err := st.Recover()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(rec.Swept)
	want := slices.Sorted(slices.Values(stale))
	if !slices.Equal(rec.Swept, want) {
		t.Errorf("swept %q, want %q", rec.Swept, want)
	}
	for _, p := range stale {
		if Exists(p) {
			t.Errorf("%s not removed", p)
		}
	}
	for _, p := range kept {
		if !Exists(p) {
			t.Errorf("%s removed, it is not a kubepki temporary file", p)
		}
	}
}

func TestLock(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	release, err := st.Lock(true)
	if err != nil {
		t.Fatal(err)
	}
	for _, excl := range []bool{true, false} {
		if _, err := st.Lock(excl); !errors.Is(err, ErrLocked) {
			t.Errorf("Lock(%v) while locked = %v, want ErrLocked", excl, err)
		}
	}
	release()
	r1, err := st.Lock(false)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := st.Lock(false)
	if err != nil {
		t.Errorf("two shared locks: %v", err)
	} else {
		r2()
	}
	if _, err := st.Lock(true); !errors.Is(err, ErrLocked) {
		t.Errorf("exclusive Lock under a shared one = %v, want ErrLocked", err)
	}
	r1()
	missing := Store{Dir: filepath.Join(t.TempDir(), "not-yet")}
	if release, err := missing.Lock(true); err != nil {
		t.Errorf("Lock of a directory not made yet: %v", err)
	} else {
		release()
	}
}
