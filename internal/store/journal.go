package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// A Transaction replaces several files so that a crash (SIGKILL, power
// loss) never leaves some replaced and others not for good: a certificate
// beside the key of another, a kubeconfig embedding a stale certificate.
//
// Stage writes each new content to a temporary file beside its target
// (fsynced, mode set before the first byte). Commit then:
//
//  1. writes the journal, Dir/.backup/<timestamp>/journal.json, in state
//     "prepare", listing every target, its staged file, its backup copy and
//     the SHA-256 of its new content;
//  2. copies every existing target into that backup directory (each copy
//     fsynced), so the backup is complete before anything is replaced;
//  3. moves the journal to state "begin";
//  4. renames each staged file over its target;
//  5. moves the journal to state "committed".
//
// The journal stays in the backup directory as the record of what was
// replaced. Recover, which every kubepki command that writes or audits a
// directory runs first, finishes what a killed Commit left; see Recover
// for the rule.
type Transaction struct {
	st      Store
	entries []journalEntry
	done    bool
	// crashAt, set by tests only, stops Commit dead at a named step, as
	// a SIGKILL would: nothing cleaned up.
	crashAt func(step string) bool
}

// errCrashed is what Commit returns when crashAt stopped it.
var errCrashed = errors.New("commit stopped by a test")

// crashed reports whether a test asked Commit to stop at step.
func (t *Transaction) crashed(step string) bool {
	if t.crashAt == nil || !t.crashAt(step) {
		return false
	}
	t.done = true // like a killed process: the staged files stay
	return true
}

// journal is the on-disk record of a Transaction.
type journal struct {
	State   string         `json:"state"`
	Started time.Time      `json:"started"`
	Files   []journalEntry `json:"files"`
}

// journalEntry is one file of a Transaction.
type journalEntry struct {
	// Path is the absolute path of the file replaced.
	Path string `json:"path"`
	// Staged is the absolute path of its new content until renamed.
	Staged string `json:"staged"`
	// Backup is the copy of the old file, relative to the journal's
	// directory; empty when the file did not exist.
	Backup string `json:"backup,omitempty"`
	// SHA256 is the hex digest of the new content.
	SHA256 string      `json:"sha256"`
	Mode   os.FileMode `json:"mode"`
	// Link, when set, says the new content is a symbolic link to Link
	// (the kubelet's kubelet-client-current.pem), not a file.
	Link string `json:"link,omitempty"`
}

// holdsNew reports whether path already has the entry's new content.
func (e journalEntry) holdsNew(path string) bool {
	if e.Link != "" {
		target, err := os.Readlink(path)
		return err == nil && target == e.Link
	}
	return digest(path) == e.SHA256
}

// Journal states.
const (
	statePrepare    = "prepare"
	stateBegin      = "begin"
	stateCommitted  = "committed"
	stateRolledBack = "rolled-back"
)

// JournalFile is the name of a transaction's journal in its backup directory.
const JournalFile = "journal.json"

// NewTransaction starts an empty transaction on the store.
func (s Store) NewTransaction() *Transaction { return &Transaction{st: s} }

// Len is the number of files staged.
func (t *Transaction) Len() int { return len(t.entries) }

// Stage writes data, the future content of path, to a temporary file in
// path's directory. Nothing is replaced until Commit.
func (t *Transaction) Stage(path string, data []byte, mode os.FileMode) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("stage %s: %w", path, err)
	}
	if slices.ContainsFunc(t.entries, func(e journalEntry) bool { return e.Path == abs }) {
		return fmt.Errorf("stage %s: staged twice", path)
	}
	staged, err := stage(abs, data, mode)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	t.entries = append(t.entries, journalEntry{Path: abs, Staged: staged, SHA256: hex.EncodeToString(sum[:]), Mode: mode})
	return nil
}

// StageSymlink makes path, on Commit, a symbolic link to target, as the
// kubelet swings kubelet-client-current.pem to a new
// kubelet-client-<timestamp>.pem. The old link (or file) is backed up as
// any other target.
func (t *Transaction) StageSymlink(path, target string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("stage %s: %w", path, err)
	}
	if slices.ContainsFunc(t.entries, func(e journalEntry) bool { return e.Path == abs }) {
		return fmt.Errorf("stage %s: staged twice", path)
	}
	tmp, err := os.CreateTemp(filepath.Dir(abs), tempPrefix(abs)+"*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	name := tmp.Name()
	tmp.Close()
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Symlink(target, name); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	sum := sha256.Sum256([]byte(target))
	t.entries = append(t.entries, journalEntry{Path: abs, Staged: name, SHA256: hex.EncodeToString(sum[:]), Link: target})
	return nil
}

// Abort removes the staged files of a transaction not committed. It is a
// no-op after Commit, so it can be deferred.
func (t *Transaction) Abort() {
	if t.done {
		return
	}
	for _, e := range t.entries {
		_ = os.Remove(e.Staged)
	}
	t.done = true
}

// Commit backs up every target that exists and replaces them all (see
// Transaction). It returns the backup directory, which also holds the
// journal ("" when nothing was staged). On an error before the first
// rename, nothing was replaced and neither the staged files nor the backup
// remain; on an error after it, Commit rolls back from the backup.
func (t *Transaction) Commit(now time.Time) (string, error) {
	if t.done {
		return "", errors.New("commit: transaction already finished")
	}
	if len(t.entries) == 0 {
		t.done = true
		return "", nil
	}
	defer t.Abort()
	dir, err := t.st.newBackupDir(now)
	if err != nil {
		return "", err
	}
	j := &journal{State: statePrepare, Started: now.UTC(), Files: t.entries}
	fail := func(err error) (string, error) {
		_ = os.RemoveAll(dir)
		return "", err
	}
	// Staged files are durable before the journal names them.
	if err := syncDirs(t.entries, func(e journalEntry) string { return e.Staged }); err != nil {
		return fail(err)
	}
	for i := range j.Files {
		e := &j.Files[i]
		rel, err := t.st.backupName(e.Path)
		if err != nil {
			return fail(err)
		}
		if slices.ContainsFunc(j.Files[:i], func(o journalEntry) bool { return o.Backup == rel }) {
			return fail(fmt.Errorf("backup %s: two files would share the backup name %s", e.Path, rel))
		}
		e.Backup = rel
	}
	if t.crashed("backup-dir") {
		return "", errCrashed
	}
	if err := writeJournal(dir, j); err != nil {
		return fail(err)
	}
	for i := range j.Files {
		if t.crashed(fmt.Sprintf("backup-%d", i)) {
			return "", errCrashed
		}
		e := &j.Files[i]
		copied, err := copyForBackup(e.Path, filepath.Join(dir, e.Backup))
		if err != nil {
			return fail(err)
		}
		if !copied {
			e.Backup = ""
		}
	}
	// The journal said where each backup would go; now it says which
	// exist, and that renaming begins.
	j.State = stateBegin
	if err := writeJournal(dir, j); err != nil {
		return fail(err)
	}
	for i, e := range j.Files {
		if t.crashed(fmt.Sprintf("rename-%d", i)) {
			return "", errCrashed
		}
		if err := os.Rename(e.Staged, e.Path); err != nil {
			err = fmt.Errorf("write %s: %w", e.Path, err)
			if _, rbErr := rollBack(dir, j); rbErr != nil {
				return dir, fmt.Errorf("%w; rolling back from %s failed too: %v", err, dir, rbErr)
			}
			return dir, fmt.Errorf("%w (every file restored from %s)", err, dir)
		}
		testPause()
	}
	if err := syncDirs(j.Files, func(e journalEntry) string { return e.Path }); err != nil {
		return dir, err
	}
	if t.crashed("commit") {
		return "", errCrashed
	}
	j.State = stateCommitted
	if err := writeJournal(dir, j); err != nil {
		return dir, err
	}
	t.done = true
	return dir, nil
}

// newBackupDir creates Dir/.backup/<UTC timestamp>, or <timestamp>.N when a
// backup of the same second exists.
func (s Store) newBackupDir(now time.Time) (string, error) {
	root := filepath.Join(s.Dir, ".backup")
	if err := MkdirAll(root); err != nil {
		return "", err
	}
	stamp := now.UTC().Format("20060102T150405Z")
	for i := 1; ; i++ {
		dir := filepath.Join(root, stamp)
		if i > 1 {
			dir = fmt.Sprintf("%s.%d", dir, i)
		}
		err := os.Mkdir(dir, KeyDirMode)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("backup: %w", err)
		}
		if err := os.Chmod(dir, KeyDirMode); err != nil {
			return "", fmt.Errorf("backup: %w", err)
		}
		if err := syncDir(root); err != nil {
			return "", err
		}
		return dir, nil
	}
}

// backupName is where a file goes in a backup directory: its path relative
// to Dir, or its base name for a file outside Dir (kubeadm's kubeconfigs),
// as Backup names them.
func (s Store) backupName(path string) (string, error) {
	dir, err := filepath.Abs(s.Dir)
	if err != nil {
		return "", fmt.Errorf("backup %s: %w", path, err)
	}
	rel, err := filepath.Rel(dir, path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		rel = filepath.Base(path)
	}
	if rel == JournalFile {
		return "", fmt.Errorf("backup %s: its name is the journal's", path)
	}
	return rel, nil
}

// copyForBackup copies src into the backup as backupFile does, never
// group- or other-writable (recovery trusts no such backup: see
// trustJournal); it reports false when there is no file.
func copyForBackup(src, dst string) (bool, error) {
	err := backupFile(src, dst, 0o022)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("backup %s: %w", src, err)
	}
	return true, nil
}

func writeJournal(dir string, j *journal) error {
	data, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return Replace(filepath.Join(dir, JournalFile), append(data, '\n'), KeyMode)
}

func readJournal(path string) (*journal, error) {
	// Like every file of the directory: never through a link, never
	// waiting on a FIFO.
	data, err := ReadFile(path, KeyPolicy{})
	if err != nil {
		return nil, err
	}
	var j journal
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return &j, nil
}

// stage writes data to a new temporary file in path's directory, named as
// every kubepki temporary file is (".<base>.tmp-<random>"), with its final
// mode, and fsyncs it. It returns the temporary file's path.
func stage(path string, data []byte, mode os.FileMode) (string, error) {
	dir := filepath.Dir(path)
	if err := MkdirAll(dir); err != nil {
		return "", err
	}
	// CreateTemp makes the file 0600: a key is never readable by others,
	// not even for a moment.
	tmp, err := os.CreateTemp(dir, tempPrefix(path)+"*")
	if err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	name := tmp.Name()
	err = tmp.Chmod(mode)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(name)
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	testPause()
	return name, nil
}

// syncDirs fsyncs the directory of each entry's file once.
func syncDirs(entries []journalEntry, file func(journalEntry) string) error {
	var done []string
	for _, e := range entries {
		d := filepath.Dir(file(e))
		if slices.Contains(done, d) {
			continue
		}
		if err := syncDir(d); err != nil {
			return err
		}
		done = append(done, d)
	}
	return nil
}

// digest is the hex SHA-256 of a file ("" if it cannot be read).
func digest(path string) string {
	data, err := ReadFile(path, KeyPolicy{Insecure: true})
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
