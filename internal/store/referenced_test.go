package store

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// refLayout is a kubeconfig directory whose admin.conf refers to files in
// another directory (certs/), and a kubelet whose kubelet.conf refers to
// the link kubelet/pki/kubelet-client-current.pem.
type refLayout struct {
	st                                Store
	adminCrt, adminKey, adminConf     string
	kubeletDir, link, oldPEM, newPEM  string
	passwd, besideKubelet, kubeletSub string
}

func newRefLayout(t *testing.T) refLayout {
	t.Helper()
	root := t.TempDir()
	l := refLayout{
		st:            Store{Dir: filepath.Join(root, "k8s", "pki"), KubeconfigDir: filepath.Join(root, "k8s")},
		adminCrt:      filepath.Join(root, "certs", "admin.crt"),
		adminKey:      filepath.Join(root, "certs", "admin.key"),
		adminConf:     filepath.Join(root, "k8s", "admin.conf"),
		kubeletDir:    filepath.Join(root, "kubelet", "pki"),
		passwd:        filepath.Join(root, "certs", "passwd"),
		besideKubelet: filepath.Join(root, "kubelet", "pki", "kubelet-server-current.pem"),
		kubeletSub:    filepath.Join(root, "kubelet", "pki", "sub", "kubelet-client-2026-03-14-15-09-26.pem"),
	}
	l.link = filepath.Join(l.kubeletDir, "kubelet-client-current.pem")
	l.oldPEM = filepath.Join(l.kubeletDir, "kubelet-client-2025-03-14-15-09-26.pem")
	l.newPEM = filepath.Join(l.kubeletDir, "kubelet-client-2026-03-14-15-09-26.pem")
	for _, p := range []string{l.adminCrt, l.adminKey, l.adminConf, l.oldPEM, l.passwd, l.besideKubelet} {
		if err := Replace(p, []byte("old "+filepath.Base(p)), KeyMode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(l.oldPEM, l.link); err != nil {
		t.Fatal(err)
	}
	// What kubeconfig.ReferencedFiles finds for these kubeconfigs.
	l.st.Referenced = Referenced{
		Files:       []string{l.adminCrt, l.adminKey, l.link},
		KubeletDirs: []string{l.kubeletDir},
	}
	return l
}

// TestRecoverReferencedFiles: a commit killed while it wrote files a
// kubeconfig refers to, outside the PKI and kubeconfig directories, is
// finished (or, killed before it began, undone) by Recover when the store
// knows them as Referenced, and refused when it does not.
func TestRecoverReferencedFiles(t *testing.T) {
	type staged struct {
		path, link string // link: a symbolic link to link, not a file
	}
	cases := []struct {
		name  string
		files func(l refLayout) []staged
	}{
		{"referenced pair and its kubeconfig", func(l refLayout) []staged {
			return []staged{{path: l.adminKey}, {path: l.adminCrt}, {path: l.adminConf}}
		}},
		{"kubelet rotation", func(l refLayout) []staged {
			return []staged{{path: l.newPEM}, {path: l.link, link: l.newPEM}}
		}},
	}
	steps := []string{"backup-0", "backup-1", "rename-0", "rename-1", "commit"}
	for _, tc := range cases {
		for _, step := range steps {
			for _, known := range []bool{true, false} {
				name := tc.name + "/" + step
				if !known {
					name += "/not-referenced"
				}
				t.Run(name, func(t *testing.T) {
					l := newRefLayout(t)
					tx := l.st.NewTransaction()
					files := tc.files(l)
					for _, f := range files {
						var err error
						if f.link != "" {
							err = tx.StageSymlink(f.path, f.link)
						} else {
							err = tx.Stage(f.path, []byte("new "+filepath.Base(f.path)), KeyMode)
						}
						if err != nil {
							t.Fatal(err)
						}
					}
					tx.crashAt = func(s string) bool { return s == step }
					if _, err := tx.Commit(testNow); !errors.Is(err, errCrashed) {
						t.Fatalf("Commit = %v, want it stopped at %s", err, step)
					}
					st := l.st
					if !known {
						st.Referenced = Referenced{}
					}
					_, err := st.Recover()
					if !known {
						if err == nil || !strings.Contains(err.Error(), "not a file of") {
							t.Fatalf("Recover without the references = %v, want a refusal", err)
						}
						return
					}
					if err != nil {
						t.Fatalf("Recover: %v", err)
					}
					want := "new "
					if strings.HasPrefix(step, "backup") {
						want = "old "
					}
					for _, f := range files {
						if f.link != "" {
							got, _ := os.Readlink(f.path)
							if wantLink := map[string]string{"new ": l.newPEM, "old ": l.oldPEM}[want]; got != wantLink {
								t.Errorf("%s links to %q, want %q", f.path, got, wantLink)
							}
							continue
						}
						data, err := os.ReadFile(f.path)
						if want == "old " && f.path == l.newPEM {
							if !errors.Is(err, os.ErrNotExist) {
								t.Errorf("%s exists after an undone commit: %q, %v", f.path, data, err)
							}
							continue
						}
						if string(data) != want+filepath.Base(f.path) {
							t.Errorf("%s holds %q, want %q", f.path, data, want+filepath.Base(f.path))
						}
					}
					if temps := jtTemps(t, st); len(temps) != 0 {
						t.Errorf("temporary files left: %q", temps)
					}
					if left, _ := st.Unfinished(); len(left) != 0 {
						t.Errorf("journals left unfinished: %q", left)
					}
				})
			}
		}
	}
}

// TestRecoverRefusesUnreferenced: with references known, a journal naming
// any other file outside the store — beside a referenced file, in the
// kubelet's directory but not named as the kubelet names its files, or
// staged away from its target — is still refused and nothing is touched.
func TestRecoverRefusesUnreferenced(t *testing.T) {
	cases := []struct {
		name          string
		target        func(l refLayout) string
		staged        func(l refLayout, target string) string
		refusedByPath bool
	}{
		{"file beside a referenced file", func(l refLayout) string { return l.passwd }, nil, true},
		{"/etc/passwd", func(l refLayout) string { return "/etc/passwd" }, nil, true},
		{"kubelet dir, not a kubelet-client-<timestamp>.pem", func(l refLayout) string { return l.besideKubelet }, nil, true},
		{"kubelet-client-<timestamp>.pem below the kubelet dir", func(l refLayout) string { return l.kubeletSub }, nil, true},
		{"unclean path to a referenced file", func(l refLayout) string {
			return filepath.Dir(l.adminCrt) + "/../certs/admin.crt"
		}, nil, true},
		{"referenced file staged elsewhere", func(l refLayout) string { return l.adminCrt },
			func(l refLayout, _ string) string { return filepath.Join(filepath.Dir(l.passwd), ".passwd.tmp-1") }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newRefLayout(t)
			target := tc.target(l)
			staged := filepath.Join(filepath.Dir(target), "."+filepath.Base(target)+".tmp-1")
			if tc.staged != nil {
				staged = tc.staged(l, target)
			}
			before, _ := os.ReadFile(target)
			dir := filepath.Join(l.st.Dir, ".backup", "20260314T150926Z")
			if err := Replace(filepath.Join(dir, "victim"), []byte("evil"), CertMode); err != nil {
				t.Fatal(err)
			}
			j := &journal{State: stateBegin, Files: []journalEntry{{Path: target, Staged: staged, Backup: "victim", SHA256: "00"}}}
			if err := writeJournal(dir, j); err != nil {
				t.Fatal(err)
			}
			_, err := l.st.Recover()
			if err == nil || !strings.Contains(err.Error(), "not a file of") {
				t.Fatalf("Recover = %v, want a refusal", err)
			}
			if after, _ := os.ReadFile(target); string(after) != string(before) {
				t.Errorf("%s changed to %q", target, after)
			}
		})
	}
}

// TestSweepReferenced: Recover removes the temporary files of referenced
// files (a staged link too), and only those, from their directories.
func TestSweepReferenced(t *testing.T) {
	l := newRefLayout(t)
	stale := []string{
		filepath.Join(filepath.Dir(l.adminCrt), ".admin.crt.tmp-12"),
		filepath.Join(l.kubeletDir, ".kubelet-client-2026-03-14-15-09-26.pem.tmp-3"),
	}
	kept := []string{
		filepath.Join(filepath.Dir(l.passwd), ".passwd.tmp-1"),
		filepath.Join(l.kubeletDir, ".kubelet-server-current.pem.tmp-4"),
	}
	for _, p := range append(slices.Clone(stale), kept...) {
		if err := os.WriteFile(p, []byte("secret"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	staleLink := filepath.Join(l.kubeletDir, ".kubelet-client-current.pem.tmp-5")
	if err := os.Symlink(l.newPEM, staleLink); err != nil {
		t.Fatal(err)
	}
	stale = append(stale, staleLink)
	rec, err := l.st.Recover()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(rec.Swept)
	if want := slices.Sorted(slices.Values(stale)); !slices.Equal(rec.Swept, want) {
		t.Errorf("swept %q, want %q", rec.Swept, want)
	}
	for _, p := range kept {
		if !Exists(p) {
			t.Errorf("%s removed, it is not the temporary file of a referenced file", p)
		}
	}
}

func TestReferencedHolds(t *testing.T) {
	r := Referenced{Files: []string{"/srv/certs/admin.crt"}, KubeletDirs: []string{"/var/lib/kubelet/pki"}}
	for _, tc := range []struct {
		path string
		want bool
	}{
		{"/srv/certs/admin.crt", true},
		{"/srv/certs/admin.key", false},
		{"/srv/certs/../certs/admin.crt", false},
		{"srv/certs/admin.crt", false},
		{"/var/lib/kubelet/pki/kubelet-client-2026-03-14-15-09-26.pem", true},
		{"/var/lib/kubelet/pki/kubelet-client-current.pem", false},
		{"/var/lib/kubelet/pki/kubelet-client-2026.pem", false},
		{"/var/lib/kubelet/pki/kubelet.crt", false},
		{"/var/lib/kubelet/kubelet-client-2026-03-14-15-09-26.pem", false},
	} {
		if got := r.Holds(tc.path); got != tc.want {
			t.Errorf("Holds(%q) = %v, want %v", tc.path, got, tc.want)
		}
	}
}
