package store

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestStageSymlink swings a link as the kubelet swings
// kubelet-client-current.pem: the new file and the link are committed
// together, the old link is backed up as a link, and a commit killed
// after the journal began is finished by Recover.
func TestStageSymlink(t *testing.T) {
	for _, crash := range []string{"", "rename-0", "rename-1"} {
		t.Run("crash="+crash, func(t *testing.T) {
			dir := t.TempDir()
			st := Store{Dir: dir}
			oldFile := filepath.Join(dir, "kubelet-client-2020.pem")
			if err := Replace(oldFile, []byte("old"), KeyMode); err != nil {
				t.Fatal(err)
			}
			link := filepath.Join(dir, "kubelet-client-current.pem")
			if err := os.Symlink(oldFile, link); err != nil {
				t.Fatal(err)
			}
			newFile := filepath.Join(dir, "kubelet-client-2026.pem")
			tx := st.NewTransaction()
			if crash != "" {
				tx.crashAt = func(step string) bool { return step == crash }
			}
			if err := tx.Stage(newFile, []byte("new"), KeyMode); err != nil {
				t.Fatal(err)
			}
			if err := tx.StageSymlink(link, newFile); err != nil {
				t.Fatal(err)
			}
			backup, err := tx.Commit(time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC))
			if crash != "" {
				if err == nil {
					t.Fatal("commit did not stop")
				}
				if _, err := st.Recover(); err != nil {
					t.Fatal(err)
				}
				backup = filepath.Join(dir, ".backup", "20260314T150926Z")
			} else if err != nil {
				t.Fatal(err)
			}
			if got, _ := os.Readlink(link); got != newFile {
				t.Errorf("link points at %q, want %q", got, newFile)
			}
			if data, _ := os.ReadFile(link); string(data) != "new" {
				t.Errorf("link reads %q, want new", data)
			}
			if data, _ := os.ReadFile(oldFile); string(data) != "old" {
				t.Errorf("old file reads %q, want it kept", data)
			}
			if got, err := os.Readlink(filepath.Join(backup, "kubelet-client-current.pem")); err != nil || got != oldFile {
				t.Errorf("backup of the link: %q, %v; want a link to %s", got, err, oldFile)
			}
		})
	}
}
