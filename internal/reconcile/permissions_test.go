package reconcile

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/pkitest"
	"kubepki.dev/kubepki/internal/store"
)

// TestPermissions: every unsafe mode, link and owner in a PKI directory is
// a finding naming the path; what chmod fixes, Tighten fixes (and Apply
// then runs); what it cannot (a link, another owner) stops Apply with a
// refusal. kubeadm's own 0755 directories are a warning, never a finding.
func TestPermissions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		profile catalog.Profile
		// break_ damages a directory Apply made, relative paths under root.
		break_ func(t *testing.T, st store.Store, root string)
		// want are the findings, "path: problem" relative to root; warn
		// the warnings.
		want, warn []string
		// refusal is what Apply says after Tighten, "" if it runs.
		refusal string
	}{
		{name: "clean hardway", profile: catalog.Hardway},
		{
			name: "clean kubeadm", profile: catalog.Kubeadm,
			// Apply makes its directories 0700; kubeadm makes them 0755.
			break_: func(t *testing.T, st store.Store, _ string) {
				chmod(t, st.Dir, 0o755)
				chmod(t, filepath.Join(st.Dir, "etcd"), 0o755)
			},
			warn: []string{
				"pki: mode 0755: key directory readable by group or others, as kubeadm makes it; its keys are 0600",
				"pki/etcd: mode 0755: key directory readable by group or others, as kubeadm makes it; its keys are 0600",
			},
		},
		{
			name: "0644 CA key", profile: catalog.Hardway,
			break_: func(t *testing.T, st store.Store, _ string) { chmod(t, st.KeyPath("ca"), 0o644) },
			want:   []string{"pki/ca.key: mode 0644: private key readable by group or others, want 0600"},
		},
		{
			name: "0640 leaf key", profile: catalog.Kubeadm,
			break_: func(t *testing.T, st store.Store, _ string) { chmod(t, st.KeyPath("etcd/peer"), 0o640) },
			want:   []string{"pki/etcd/peer.key: mode 0640: private key readable by group or others, want 0600"},
		},
		{
			name: "0644 kubeconfig and 0666 certificate", profile: catalog.Hardway,
			break_: func(t *testing.T, st store.Store, _ string) {
				chmod(t, st.KubeconfigPath("admin.kubeconfig"), 0o644)
				chmod(t, st.CertPath("ca"), 0o666)
			},
			want: []string{
				"pki/ca.crt: mode 0666: writable by group or others, want 0644",
				"pki/admin.kubeconfig: mode 0644: kubeconfig holds a private key but is readable by group or others, want 0600",
			},
		},
		{
			name: "0777 hardway directory", profile: catalog.Hardway,
			break_: func(t *testing.T, st store.Store, _ string) { chmod(t, st.Dir, 0o777) },
			want:   []string{"pki: mode 0777: key directory writable by group or others, want 0700"},
		},
		{
			name: "0755 hardway directory", profile: catalog.Hardway,
			break_: func(t *testing.T, st store.Store, _ string) { chmod(t, st.Dir, 0o755) },
			want:   []string{"pki: mode 0755: key directory readable by group or others, want 0700"},
		},
		{
			name: "0777 kubeadm directory", profile: catalog.Kubeadm,
			break_: func(t *testing.T, st store.Store, _ string) { chmod(t, filepath.Join(st.Dir, "etcd"), 0o777) },
			want:   []string{"pki/etcd: mode 0777: key directory writable by group or others, want 0755"},
		},
		{
			name: "CA key linked to a 0644 file elsewhere", profile: catalog.Hardway,
			break_: func(t *testing.T, st store.Store, root string) {
				moveAndLink(t, st.KeyPath("ca"), filepath.Join(root, "elsewhere", "ca.key"), 0o644)
			},
			want:    []string{"pki/ca.key: symbolic link to ROOT/elsewhere/ca.key: kubepki reads keys and certificates only from regular files; put the file itself here"},
			refusal: "pki/ca.key: is a symbolic link (to ROOT/elsewhere/ca.key)",
		},
		{
			name: "leaf key linked to a 0600 file", profile: catalog.Hardway,
			break_: func(t *testing.T, st store.Store, root string) {
				moveAndLink(t, st.KeyPath("admin"), filepath.Join(root, "elsewhere", "admin.key"), 0o600)
			},
			want:    []string{"pki/admin.key: symbolic link to ROOT/elsewhere/admin.key: kubepki reads keys and certificates only from regular files; put the file itself here"},
			refusal: "pki/admin.key: is a symbolic link",
		},
		{
			name: "key of another owner", profile: catalog.Hardway,
			break_: func(t *testing.T, st store.Store, _ string) {
				if os.Geteuid() != 0 {
					t.Skip("giving a file to another owner needs root")
				}
				if err := os.Chown(st.KeyPath("node-0"), 4242, 4242); err != nil {
					t.Fatal(err)
				}
			},
			want:    []string{"pki/node-0.key: owned by uid 4242, not by uid 0 that runs kubepki: fix with chown 0 pki/node-0.key"},
			refusal: "pki/node-0.key: owned by uid 4242, not by uid 0 that runs kubepki; fix with chown 0 ",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan := pkitest.Plan(t, tc.profile, nil)
			st, root := pkitest.Store(t, tc.profile)
			mustApply(t, plan, st, testNow, Options{})
			if tc.break_ != nil {
				tc.break_(t, st, root)
			}
			rel := func(s string) string { return strings.ReplaceAll(s, root+"/", "") }
			abs := func(s string) string { return strings.ReplaceAll(s, "ROOT", root) }
			var got, warn []string
			for _, p := range Permissions(plan, st) {
				if p.Warning {
					warn = append(warn, rel(p.Path+": "+p.Problem))
				} else {
					got = append(got, rel(p.Path+": "+p.Problem))
				}
			}
			for i := range tc.want {
				tc.want[i] = rel(abs(tc.want[i]))
			}
			if !slices.Equal(got, tc.want) || !slices.Equal(warn, tc.warn) {
				t.Fatalf("Permissions:\n findings %q\n warnings %q\nwant\n findings %q\n warnings %q", got, warn, tc.want, tc.warn)
			}

			// The chmod-fixable findings are gone after Tighten; the
			// warnings stay (kubeadm's 0755 is not kubepki's to change).
			done, err := Tighten(Permissions(plan, st))
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range Permissions(plan, st) {
				if p.Tighten && !p.Warning {
					t.Errorf("after Tighten (%v): %s: %s", done, p.Path, p.Problem)
				}
			}
			if len(done) != countTighten(tc.want) {
				t.Errorf("Tighten changed %v, want %d changes", done, countTighten(tc.want))
			}

			_, err = Apply(context.Background(), plan, st, testNow, Options{})
			var unsafe *store.UnsafeFileError
			switch {
			case tc.refusal == "" && err != nil:
				t.Fatalf("Apply after Tighten: %v", err)
			case tc.refusal != "" && (!errors.As(err, &unsafe) || !strings.Contains(err.Error(), abs(tc.refusal))):
				t.Fatalf("Apply: %v, want a refusal with %q", err, abs(tc.refusal))
			}
			// Examine still checks the key it will not use: only the
			// permission finding is reported for it.
			for _, s := range Examine(plan, st, testNow) {
				if s.State != Valid && s.State != External {
					t.Errorf("Examine: %s is %s: %q", id(s), s.State, s.Findings)
				}
			}
		})
	}
}

func countTighten(findings []string) int {
	n := 0
	for _, f := range findings {
		if strings.Contains(f, ": mode 0") {
			n++
		}
	}
	return n
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// moveAndLink moves a file to dst (with mode) and leaves a link to it.
func moveAndLink(t *testing.T, path, dst string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path, dst); err != nil {
		t.Fatal(err)
	}
	chmod(t, dst, mode)
	if err := os.Symlink(dst, path); err != nil {
		t.Fatal(err)
	}
}
