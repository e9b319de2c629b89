package store

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"kubepki.dev/kubepki/internal/treetest"
)

// plantedJournal is a backup directory as the reviewer's repro planted it:
// a journal in state "begin" whose staged files are gone, so recovery
// would roll ca.crt and ca.key back to the "backups" beside it.
type plantedJournal struct {
	root, dir, journal string
	st                 Store
}

const (
	realCert = "the real CA certificate"
	realKey  = "the real CA key"
	evilCert = "an attacker's CA certificate"
	evilKey  = "an attacker's CA key"
)

func plantJournal(t *testing.T) plantedJournal {
	t.Helper()
	root := t.TempDir()
	st := Store{Dir: filepath.Join(root, "pki")}
	if err := Replace(st.CertPath("ca"), []byte(realCert), CertMode); err != nil {
		t.Fatal(err)
	}
	if err := Replace(st.KeyPath("ca"), []byte(realKey), KeyMode); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(st.Dir, ".backup", "20200101T000000Z")
	if err := Replace(filepath.Join(dir, "ca.crt"), []byte(evilCert), CertMode); err != nil {
		t.Fatal(err)
	}
	if err := Replace(filepath.Join(dir, "ca.key"), []byte(evilKey), KeyMode); err != nil {
		t.Fatal(err)
	}
	crt, key := st.CertPath("ca"), st.KeyPath("ca")
	j := &journal{State: stateBegin, Files: []journalEntry{
		{Path: crt, Staged: filepath.Join(st.Dir, ".ca.crt.tmp-1"), Backup: "ca.crt", SHA256: "00", Mode: CertMode},
		{Path: key, Staged: filepath.Join(st.Dir, ".ca.key.tmp-1"), Backup: "ca.key", SHA256: "00", Mode: KeyMode},
	}}
	if err := writeJournal(dir, j); err != nil {
		t.Fatal(err)
	}
	return plantedJournal{root: root, dir: dir, journal: filepath.Join(dir, JournalFile), st: st}
}

func chownAll(t *testing.T, uid int, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.Lchown(p, uid, uid); err != nil {
			t.Fatal(err)
		}
	}
}

// moveTo moves path to a fresh place outside the store and links path to
// it.
func moveTo(t *testing.T, p plantedJournal, path string) {
	t.Helper()
	elsewhere := filepath.Join(p.root, "elsewhere", filepath.Base(path))
	if err := os.MkdirAll(filepath.Dir(elsewhere), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path, elsewhere); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, path); err != nil {
		t.Fatal(err)
	}
}

// TestRecoverRefusesPlantedJournal: a journal kubepki could not have
// written — another owner, a directory others can write, a link anywhere
// on the way to it or to a backup — is refused by Recover with one line
// naming the file and why, and nothing under the store changes; Leftovers
// reports the same line.
func TestRecoverRefusesPlantedJournal(t *testing.T) {
	for _, tc := range []struct {
		name   string
		root   bool // chown needs root
		tamper func(t *testing.T, p plantedJournal)
		file   func(p plantedJournal) string
		why    string
	}{
		{
			name: "foreign owner", root: true,
			tamper: func(t *testing.T, p plantedJournal) {
				chownAll(t, 65534, p.dir, p.journal, filepath.Join(p.dir, "ca.crt"), filepath.Join(p.dir, "ca.key"))
			},
			file: func(p plantedJournal) string { return p.dir },
			why:  "owned by uid 65534, not by this user",
		},
		{
			name: "foreign journal only", root: true,
			tamper: func(t *testing.T, p plantedJournal) { chownAll(t, 65534, p.journal) },
			file:   func(p plantedJournal) string { return p.journal },
			why:    "owned by uid 65534, not by this user",
		},
		{
			name: "foreign backup file", root: true,
			tamper: func(t *testing.T, p plantedJournal) { chownAll(t, 65534, filepath.Join(p.dir, "ca.key")) },
			file:   func(p plantedJournal) string { return filepath.Join(p.dir, "ca.key") },
			why:    "owned by uid 65534, not by this user",
		},
		{
			name: "world-writable backup directory",
			tamper: func(t *testing.T, p plantedJournal) {
				if err := os.Chmod(p.dir, 0o777); err != nil {
					t.Fatal(err)
				}
			},
			file: func(p plantedJournal) string { return p.dir },
			why:  "mode 0777 lets group or others write it",
		},
		{
			name: "group-writable .backup",
			tamper: func(t *testing.T, p plantedJournal) {
				if err := os.Chmod(filepath.Dir(p.dir), 0o770); err != nil {
					t.Fatal(err)
				}
			},
			file: func(p plantedJournal) string { return filepath.Dir(p.dir) },
			why:  "mode 0770 lets group or others write it",
		},
		{
			name: "world-writable backup file",
			tamper: func(t *testing.T, p plantedJournal) {
				if err := os.Chmod(filepath.Join(p.dir, "ca.key"), 0o666); err != nil {
					t.Fatal(err)
				}
			},
			file: func(p plantedJournal) string { return filepath.Join(p.dir, "ca.key") },
			why:  "mode 0666 lets group or others write it",
		},
		{
			name:   "symlinked journal",
			tamper: func(t *testing.T, p plantedJournal) { moveTo(t, p, p.journal) },
			file:   func(p plantedJournal) string { return p.journal },
			why:    "is a symbolic link",
		},
		{
			name:   "symlinked backup file",
			tamper: func(t *testing.T, p plantedJournal) { moveTo(t, p, filepath.Join(p.dir, "ca.key")) },
			file:   func(p plantedJournal) string { return filepath.Join(p.dir, "ca.key") },
			why:    "is a symbolic link",
		},
		{
			name:   "symlinked backup directory",
			tamper: func(t *testing.T, p plantedJournal) { moveTo(t, p, p.dir) },
			file:   func(p plantedJournal) string { return p.dir },
			why:    "is a symbolic link",
		},
		{
			name:   "symlinked .backup",
			tamper: func(t *testing.T, p plantedJournal) { moveTo(t, p, filepath.Dir(p.dir)) },
			file:   func(p plantedJournal) string { return filepath.Dir(p.dir) },
			why:    "is a symbolic link",
		},
		{
			name: "backup file not a regular file",
			tamper: func(t *testing.T, p plantedJournal) {
				key := filepath.Join(p.dir, "ca.key")
				if err := os.Remove(key); err != nil {
					t.Fatal(err)
				}
				if err := os.Mkdir(key, 0o700); err != nil {
					t.Fatal(err)
				}
			},
			file: func(p plantedJournal) string { return filepath.Join(p.dir, "ca.key") },
			why:  "is not a regular file",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root && os.Geteuid() != 0 {
				t.Skip("chown to another user needs root")
			}
			p := plantJournal(t)
			tc.tamper(t, p)
			want := tc.file(p) + ": " + tc.why
			before := treetest.Snapshot(t, p.root)

			left, err := p.st.Leftovers()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(left, func(l string) bool { return strings.HasPrefix(l, want) }) {
				t.Errorf("Leftovers = %q, want a line starting %q", left, want)
			}

			r, err := p.st.Recover()
			if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), "not a journal kubepki wrote; inspect it by hand") {
				t.Errorf("Recover = %v, want a refusal starting %q", err, want)
			}
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Errorf("Recover error spans lines: %q", err)
			}
			if !r.Empty() {
				t.Errorf("Recover did %q", r.Lines())
			}
			if after := treetest.Snapshot(t, p.root); !maps.Equal(before, after) {
				t.Errorf("Recover changed the tree:\nbefore %q\nafter  %q", before, after)
			}
			assertFile(t, p.st.KeyPath("ca"), []byte(realKey), KeyMode)
			assertFile(t, p.st.CertPath("ca"), []byte(realCert), CertMode)
		})
	}
}

// TestRecoverHonestRollBackKeepsDisplaced: a journal kubepki wrote is
// still rolled back, and each file the roll-back replaces is kept beside
// its backup, so even an honest but wrong journal loses nothing.
func TestRecoverHonestRollBackKeepsDisplaced(t *testing.T) {
	p := plantJournal(t)
	r, err := p.st.Recover()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.RolledBack, []string{p.journal}) {
		t.Errorf("RolledBack = %q, want %q", r.RolledBack, p.journal)
	}
	assertFile(t, p.st.CertPath("ca"), []byte(evilCert), CertMode)
	assertFile(t, p.st.KeyPath("ca"), []byte(evilKey), KeyMode)
	assertFile(t, filepath.Join(p.dir, "ca.crt.displaced"), []byte(realCert), CertMode)
	assertFile(t, filepath.Join(p.dir, "ca.key.displaced"), []byte(realKey), KeyMode)
	want := []string{
		p.st.CertPath("ca") + " -> " + filepath.Join(p.dir, "ca.crt.displaced"),
		p.st.KeyPath("ca") + " -> " + filepath.Join(p.dir, "ca.key.displaced"),
	}
	if !slices.Equal(r.Displaced, want) {
		t.Errorf("Displaced = %q, want %q", r.Displaced, want)
	}
	j, err := readJournal(p.journal)
	if err != nil || j.State != stateRolledBack {
		t.Errorf("journal after recovery: %+v, %v; want state %s", j, err, stateRolledBack)
	}
	// Done: a second Recover has nothing to do, displaces nothing.
	if r, err := p.st.Recover(); err != nil || !r.Empty() {
		t.Errorf("second Recover = %q, %v; want nothing", r.Lines(), err)
	}
}

// TestRecoverDisplacesNothingIdentical: a target already equal to its
// backup (a roll-back interrupted after restoring it) is not copied again.
func TestRecoverDisplacesNothingIdentical(t *testing.T) {
	p := plantJournal(t)
	if err := Replace(p.st.KeyPath("ca"), []byte(evilKey), KeyMode); err != nil {
		t.Fatal(err)
	}
	r, err := p.st.Recover()
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Displaced) != 1 || !strings.HasPrefix(r.Displaced[0], p.st.CertPath("ca")+" -> ") {
		t.Errorf("Displaced = %q, want ca.crt only", r.Displaced)
	}
	if Exists(filepath.Join(p.dir, "ca.key.displaced")) {
		t.Error("ca.key, already the backup, was displaced")
	}
}

// TestBackupsNotWritableByOthers: a commit's backup of a group-writable
// file is not group-writable, so recovery trusts the journal kubepki wrote.
func TestBackupsNotWritableByOthers(t *testing.T) {
	root := t.TempDir()
	st := Store{Dir: filepath.Join(root, "pki")}
	path := filepath.Join(st.Dir, "shared.crt")
	if err := Replace(path, []byte("old"), 0o664); err != nil {
		t.Fatal(err)
	}
	tx := st.NewTransaction()
	if err := tx.Stage(path, []byte("new"), CertMode); err != nil {
		t.Fatal(err)
	}
	dir, err := tx.Commit(testNow)
	if err != nil {
		t.Fatal(err)
	}
	assertFile(t, filepath.Join(dir, "shared.crt"), []byte("old"), 0o644)
	j, err := readJournal(filepath.Join(dir, JournalFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := trustJournal(filepath.Join(dir, JournalFile), j); err != nil {
		t.Errorf("trustJournal of a commit's own journal: %v", err)
	}
}
