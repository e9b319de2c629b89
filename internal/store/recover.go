package store

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// Recovery is what Recover (or FinishJournals) did to a store.
type Recovery struct {
	// Finished are journals of interrupted commits whose remaining files
	// were renamed into place (rolled forward).
	Finished []string `json:"finished,omitempty"`
	// RolledBack are journals whose files were restored from the backup
	// beside them, because their new content was no longer complete.
	RolledBack []string `json:"rolledBack,omitempty"`
	// Discarded are backup directories of commits killed before they
	// replaced anything: incomplete copies, removed.
	Discarded []string `json:"discarded,omitempty"`
	// Swept are stale temporary files of killed writes, removed.
	Swept []string `json:"swept,omitempty"`
	// Displaced are the files a roll-back found in place of a backup it
	// restored, each kept beside the backup ("<target> -> <copy>"), so a
	// roll-back never loses what was there.
	Displaced []string `json:"displaced,omitempty"`
}

// Empty reports whether there was nothing to repair.
func (r Recovery) Empty() bool {
	return len(r.Finished)+len(r.RolledBack)+len(r.Discarded)+len(r.Swept)+len(r.Displaced) == 0
}

// Lines describes the repairs, one line each.
func (r Recovery) Lines() []string {
	var out []string
	for _, p := range r.Finished {
		out = append(out, fmt.Sprintf("finished an interrupted write: %s", p))
	}
	for _, p := range r.RolledBack {
		out = append(out, fmt.Sprintf("rolled back an interrupted write from its backup: %s", p))
	}
	for _, p := range r.Displaced {
		out = append(out, fmt.Sprintf("kept the file the roll-back replaced: %s", p))
	}
	for _, p := range r.Discarded {
		out = append(out, fmt.Sprintf("removed the incomplete backup of a write that never began: %s", p))
	}
	for _, p := range r.Swept {
		out = append(out, fmt.Sprintf("removed a temporary file of an interrupted write: %s", p))
	}
	return out
}

// Recover repairs what a killed kubepki left in the store: it finishes
// every unfinished journal (FinishJournals) and removes stale temporary
// files (Sweep). The caller holds the store's exclusive lock (Lock), so no
// temporary file belongs to a running writer.
func (s Store) Recover() (Recovery, error) {
	r, err := s.FinishJournals()
	if err != nil {
		return r, err
	}
	r.Swept, r.Discarded, err = s.sweep(r.Discarded)
	return r, err
}

// FinishJournals completes or undoes every transaction a crash interrupted,
// by one rule:
//
//   - a journal in state "prepare" had replaced nothing: its staged files
//     and its (possibly partial) backup directory are removed;
//   - a journal in state "begin" is rolled forward: each staged file still
//     there with the content the journal records is renamed over its
//     target. Only if that cannot complete the set — a staged file gone
//     while its target lacks the new content — is every file restored
//     from the backup instead (rolled back).
//
// Either way every file of the transaction ends up from the same side:
// never a new certificate beside an old key. A roll-back keeps each file
// it replaces (Recovery.Displaced).
//
// Only a journal kubepki could have written is acted on (trustJournal):
// one in a directory another user owns or can write is refused, and
// nothing is touched. The caller holds the lock.
func (s Store) FinishJournals() (Recovery, error) {
	var r Recovery
	journals, err := s.journals()
	if err != nil {
		return r, err
	}
	for _, path := range journals {
		j, err := readJournal(path)
		if err != nil {
			if terr := trustJournal(path, nil); terr != nil {
				return r, terr
			}
			return r, fmt.Errorf("%w; inspect it and the files it lists by hand", err)
		}
		dir := filepath.Dir(path)
		switch j.State {
		case stateCommitted, stateRolledBack:
			continue
		case statePrepare, stateBegin:
		default:
			return r, fmt.Errorf("%s: unknown state %q", path, j.State)
		}
		if err := trustJournal(path, j); err != nil {
			return r, err
		}
		if err := s.checkJournal(path, j); err != nil {
			return r, err
		}
		if j.State == statePrepare {
			for _, e := range j.Files {
				if err := removeIfExists(e.Staged); err != nil {
					return r, err
				}
			}
			if err := os.RemoveAll(dir); err != nil {
				return r, fmt.Errorf("remove incomplete backup %s: %w", dir, err)
			}
			r.Discarded = append(r.Discarded, dir)
			continue
		}
		forward, displaced, err := finish(dir, j)
		r.Displaced = append(r.Displaced, displaced...)
		if err != nil {
			return r, fmt.Errorf("finish the interrupted write of %s: %w", path, err)
		}
		if forward {
			r.Finished = append(r.Finished, path)
		} else {
			r.RolledBack = append(r.RolledBack, path)
		}
	}
	return r, nil
}

// journals lists Dir/.backup/*/journal.json.
func (s Store) journals() ([]string, error) {
	out, err := filepath.Glob(filepath.Join(s.Dir, ".backup", "*", JournalFile))
	if err != nil {
		return nil, err
	}
	slices.Sort(out)
	return out, nil
}

// checkJournal refuses a journal that names files kubepki does not manage:
// targets must lie in Dir, directly in KubeconfigDir, or be files the
// kubeconfigs refer to (Referenced); staged files beside their targets
// with kubepki's temporary name, backups inside the journal's directory.
// A journal is a file in the PKI directory; it must not become a way to
// overwrite anything else.
func (s Store) checkJournal(path string, j *journal) error {
	dir, err := filepath.Abs(s.Dir)
	if err != nil {
		return err
	}
	kcDir := s.KubeconfigDir
	if kcDir == "" {
		kcDir = s.Dir
	}
	if kcDir, err = filepath.Abs(kcDir); err != nil {
		return err
	}
	for _, e := range j.Files {
		p := filepath.Clean(e.Path)
		ok := p == e.Path && filepath.IsAbs(p) &&
			(strings.HasPrefix(p, dir+string(filepath.Separator)) || filepath.Dir(p) == kcDir || s.Referenced.Holds(p)) &&
			filepath.Dir(e.Staged) == filepath.Dir(p) && isTempOf(filepath.Base(e.Staged), filepath.Base(p)) &&
			(e.Backup == "" || filepath.IsLocal(e.Backup) && e.Backup != JournalFile)
		if !ok {
			return fmt.Errorf("%s lists %s, which is not a file of %s or %s nor one their kubeconfigs refer to; inspect it by hand", path, e.Path, dir, kcDir)
		}
	}
	return nil
}

// finish rolls a journal in state "begin" forward if it can, back if not,
// and reports which, and what a roll-back displaced.
func finish(dir string, j *journal) (bool, []string, error) {
	forward := true
	for _, e := range j.Files {
		if !e.holdsNew(e.Path) && !e.holdsNew(e.Staged) {
			forward = false
			break
		}
	}
	if !forward {
		displaced, err := rollBack(dir, j)
		return false, displaced, err
	}
	for _, e := range j.Files {
		if e.holdsNew(e.Path) {
			if err := removeIfExists(e.Staged); err != nil {
				return true, nil, err
			}
			continue
		}
		// Only a staged file whose content is the journal's is renamed.
		if err := os.Rename(e.Staged, e.Path); err != nil {
			return true, nil, fmt.Errorf("write %s: %w", e.Path, err)
		}
	}
	if err := syncDirs(j.Files, func(e journalEntry) string { return e.Path }); err != nil {
		return true, nil, err
	}
	j.State = stateCommitted
	return true, nil, writeJournal(dir, j)
}

// rollBack restores every file of a journal from its backup (removing
// files that did not exist before, when they hold the new content) and
// removes the staged files. A file in place of a backup that differs from
// it is first copied into the backup directory (displace), so nothing is
// lost even if the journal was wrong; it returns those, "<target> -> <copy>".
func rollBack(dir string, j *journal) ([]string, error) {
	var displaced []string
	for _, e := range j.Files {
		if e.Backup == "" {
			if e.holdsNew(e.Path) {
				if err := removeIfExists(e.Path); err != nil {
					return displaced, err
				}
			}
		} else {
			backup := filepath.Join(dir, e.Backup)
			kept, err := displace(e.Path, backup)
			if err != nil {
				return displaced, fmt.Errorf("restore %s: keep the file there: %w", e.Path, err)
			}
			if kept != "" {
				displaced = append(displaced, e.Path+" -> "+kept)
			}
			if err := backupFile(backup, e.Path, 0); err != nil {
				return displaced, fmt.Errorf("restore %s: %w", e.Path, err)
			}
		}
		if err := removeIfExists(e.Staged); err != nil {
			return displaced, err
		}
	}
	j.State = stateRolledBack
	return displaced, writeJournal(dir, j)
}

// displace copies path, about to be restored from backup, to a free name
// "<backup>.displaced[.N]" beside the backup, unless it is missing or
// already the same as the backup (same bytes, or a link to the same
// place). It returns the copy's path, "" when none was needed.
func displace(path, backup string) (string, error) {
	if same, err := sameFile(path, backup); err != nil || same {
		return "", err
	}
	for i := 1; ; i++ {
		kept := backup + ".displaced"
		if i > 1 {
			kept = fmt.Sprintf("%s.%d", kept, i)
		}
		if _, err := os.Lstat(kept); err == nil {
			continue
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		if err := backupFile(path, kept, 0); err != nil {
			return "", err
		}
		return kept, nil
	}
}

// sameFile reports whether path matches backup, as a rollback would leave
// it; true when path does not exist (there is nothing to keep).
func sameFile(path, backup string) (bool, error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	bi, err := os.Lstat(backup)
	if err != nil {
		return false, err
	}
	if fi.Mode().Type() != bi.Mode().Type() {
		return false, nil
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		a, errA := os.Readlink(path)
		b, errB := os.Readlink(backup)
		return errA == nil && errB == nil && a == b, nil
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != bi.Mode().Perm() {
		return false, nil
	}
	a, errA := ReadFile(path, KeyPolicy{})
	b, errB := ReadFile(backup, KeyPolicy{})
	return errA == nil && errB == nil && bytes.Equal(a, b), nil
}

// trustJournal refuses a journal kubepki could not have written: every
// directory from Dir/.backup down to each backup the journal would
// restore, the journal and those backups must be what they claim (a
// directory, a regular file; a symbolic link only as the backup of a link
// the journal swings), owned by this user or root, and writable by no one
// else. A journal anyone else could plant or edit would otherwise make
// recovery replace the user's files with theirs.
// With j nil, only the directories and the journal are checked.
func trustJournal(path string, j *journal) error {
	dir := filepath.Dir(path)
	check := func(p string, want fs.FileMode, linkOK bool) error {
		fi, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("%s: %w: inspect it by hand", p, err)
		}
		if why := untrusted(fi, want, linkOK); why != "" {
			return fmt.Errorf("%s: %s: not a journal kubepki wrote; inspect it by hand", p, why)
		}
		return nil
	}
	if err := check(filepath.Dir(dir), fs.ModeDir, false); err != nil {
		return err
	}
	if err := check(dir, fs.ModeDir, false); err != nil {
		return err
	}
	if err := check(path, 0, false); err != nil {
		return err
	}
	if j == nil || j.State != stateBegin {
		return nil
	}
	for _, e := range j.Files {
		if e.Backup == "" || !filepath.IsLocal(e.Backup) {
			continue // checkJournal refuses a backup outside dir
		}
		p := dir
		parts := strings.Split(filepath.Clean(e.Backup), string(filepath.Separator))
		for i, part := range parts {
			p = filepath.Join(p, part)
			last := i == len(parts)-1
			want := fs.ModeDir
			if last {
				want = 0
			}
			err := check(p, want, last && e.Link != "")
			if last && errors.Is(err, fs.ErrNotExist) {
				// A backup gone: the roll-back says so when it needs it.
				break
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// untrusted says why a file kubepki would have written is not trusted as
// such ("" when it is): not of the type want (0: a regular file; a
// symbolic link only if linkOK), another owner than this user or root, or
// a mode that lets group or others write it.
func untrusted(fi fs.FileInfo, want fs.FileMode, linkOK bool) string {
	typ := fi.Mode().Type()
	switch {
	case typ == fs.ModeSymlink && !linkOK:
		return "is a symbolic link"
	case typ != want && typ != fs.ModeSymlink:
		if want == fs.ModeDir {
			return "is not a directory"
		}
		return fmt.Sprintf("is not a regular file (%s)", typ)
	}
	if uid, euid := owner(fi), os.Geteuid(); uid != euid && uid != 0 {
		return fmt.Sprintf("owned by uid %d, not by this user (uid %d)", uid, euid)
	}
	if typ != fs.ModeSymlink && fi.Mode().Perm()&0o022 != 0 {
		return fmt.Sprintf("mode %04o lets group or others write it", fi.Mode().Perm())
	}
	return ""
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

// tempName matches the temporary files kubepki's writes create:
// ".<base>.tmp-<random digits>" (os.CreateTemp's pattern ".<base>.tmp-*").
var tempName = regexp.MustCompile(`^\..+\.tmp-[0-9]+$`)

// tempPrefix is the start of the name of path's temporary files.
func tempPrefix(path string) string { return "." + filepath.Base(path) + ".tmp-" }

// isTempOf reports whether name is a temporary file of the file base.
func isTempOf(name, base string) bool {
	return strings.HasPrefix(name, tempPrefix(base)) && tempName.MatchString(name)
}

// Leftovers lists what interrupted writes left in the store, changing
// nothing: journals not finished and temporary files, one line each
// ("path: what it is").
func (s Store) Leftovers() ([]string, error) {
	var out []string
	journals, err := s.journals()
	if err != nil {
		return nil, err
	}
	for _, path := range journals {
		j, err := readJournal(path)
		if err != nil {
			if terr := trustJournal(path, nil); terr != nil {
				out = append(out, terr.Error())
				continue
			}
			out = append(out, fmt.Sprintf("%s: unreadable journal of an interrupted write: %v", path, err))
			continue
		}
		if j.State == statePrepare || j.State == stateBegin {
			if err := trustJournal(path, j); err != nil {
				out = append(out, err.Error())
				continue
			}
			out = append(out, fmt.Sprintf("an interrupted write (%s, state %s); run 'kubepki init' (or the command that was interrupted) to finish it", path, j.State))
		}
	}
	temps, err := s.tempFiles()
	if err != nil {
		return nil, err
	}
	for _, p := range temps {
		out = append(out, fmt.Sprintf("%s: temporary file of an interrupted write (it may hold a private key); kubepki init removes it", p))
	}
	return out, nil
}

// sweep removes stale temporary files and empty backup directories (a
// commit killed before its journal was written); discarded is extended
// with the latter.
func (s Store) sweep(discarded []string) ([]string, []string, error) {
	temps, err := s.tempFiles()
	if err != nil {
		return nil, discarded, err
	}
	for _, p := range temps {
		if err := removeIfExists(p); err != nil {
			return nil, discarded, err
		}
	}
	backups, err := os.ReadDir(filepath.Join(s.Dir, ".backup"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return temps, discarded, fmt.Errorf("sweep: %w", err)
	}
	for _, b := range backups {
		p := filepath.Join(s.Dir, ".backup", b.Name())
		if entries, err := os.ReadDir(p); b.IsDir() && err == nil && len(entries) == 0 {
			if err := os.Remove(p); err == nil {
				discarded = append(discarded, p)
			}
		}
	}
	return temps, discarded, nil
}

// tempFiles lists kubepki temporary files: anywhere under Dir (backups
// included), directly in KubeconfigDir, and beside the Referenced files
// (of those files only). Only regular files with kubepki's temporary name
// count, and beside the Referenced files the links StageSymlink stages.
func (s Store) tempFiles() ([]string, error) {
	var out []string
	err := filepath.WalkDir(s.Dir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == s.Dir {
			return filepath.SkipAll
		}
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && tempName.MatchString(d.Name()) {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("look for temporary files in %s: %w", s.Dir, err)
	}
	if kc := s.KubeconfigDir; kc != "" && !within(kc, s.Dir) {
		entries, err := os.ReadDir(kc)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("look for temporary files in %s: %w", kc, err)
		}
		for _, d := range entries {
			if d.Type().IsRegular() && tempName.MatchString(d.Name()) {
				out = append(out, filepath.Join(kc, d.Name()))
			}
		}
	}
	kc := s.KubeconfigDir
	if kc == "" {
		kc = s.Dir
	}
	ref, err := s.referencedTemps(func(dir string) bool {
		return within(dir, s.Dir) || sameDir(dir, kc)
	})
	if err != nil {
		return nil, err
	}
	return append(out, ref...), nil
}

// sameDir reports whether two paths name the same directory path.
func sameDir(a, b string) bool {
	a, errA := filepath.Abs(a)
	b, errB := filepath.Abs(b)
	return errA == nil && errB == nil && a == b
}

// within reports whether path is dir or inside it.
func within(path, dir string) bool {
	a, errA := filepath.Abs(path)
	b, errB := filepath.Abs(dir)
	if errA != nil || errB != nil {
		return false
	}
	return a == b || strings.HasPrefix(a, b+string(filepath.Separator))
}

// Unfinished lists the journals of commits a crash interrupted.
func (s Store) Unfinished() ([]string, error) {
	journals, err := s.journals()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, path := range journals {
		if j, err := readJournal(path); err != nil || j.State == statePrepare || j.State == stateBegin {
			out = append(out, path)
		}
	}
	return out, nil
}
