package reconcile

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/resolve"
	"kubepki.dev/kubepki/internal/store"
)

// Permission is a file or directory of the plan whose mode, owner or type
// is unsafe: a private key or kubeconfig group or others can read, a
// certificate or key directory they can write, a key that is a symbolic
// link or someone else's.
type Permission struct {
	Path string `json:"path"`
	// Problem is the finding after the path: "mode 0644: private key
	// readable by group or others, want 0600".
	Problem string `json:"problem"`
	// Tighten: chmod fixes it, and Tighten (kubepki init) does.
	Tighten bool `json:"tighten,omitempty"`
	// Warning: worth knowing, not a finding. kubeadm makes its key
	// directories 0755; what the real tool writes is never a finding.
	Warning bool `json:"warning,omitempty"`

	forbidden fs.FileMode
}

// Permissions audits the modes, owners and types of every file and key
// directory of the plan that exists. It never follows a link.
//
// Private keys and kubeconfigs (which embed one) must be closed to group
// and others, certificates and public keys not writable by them. Key
// directories: the hard way's are 0700, as kubepki makes them; kubeadm's
// are 0755 (kubeadm writes /etc/kubernetes/pki so, its keys 0600), so
// there only a directory others can write is a finding, and 0755 a
// warning.
func Permissions(plan *catalog.Plan, st store.Store) []Permission {
	var out []Permission
	euid := os.Geteuid()
	seen := map[string]bool{}
	check := func(path string, forbidden fs.FileMode, secret bool, what string) {
		if seen[path] {
			return
		}
		seen[path] = true
		fi, err := os.Lstat(path)
		if err != nil {
			return // a missing file is reported by Examine
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(path)
			out = append(out, Permission{Path: path, Problem: fmt.Sprintf("symbolic link to %s: kubepki reads keys and certificates only from regular files; put the file itself here", target)})
			return
		case !fi.Mode().IsRegular() && !fi.IsDir():
			out = append(out, Permission{Path: path, Problem: fmt.Sprintf("not a regular file (%s)", fi.Mode().Type())})
			return
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && secret && int(st.Uid) != euid {
			out = append(out, Permission{Path: path, Problem: fmt.Sprintf("owned by uid %d, not by uid %d that runs kubepki: fix with chown %d %s", st.Uid, euid, euid, path)})
			return
		}
		if n := store.HardLinks(fi); secret && n > 1 {
			out = append(out, Permission{Path: path, Problem: fmt.Sprintf("has %d hard links: another path can read or replace it; fix with cp %s %s.copy && mv %s.copy %s (and remove the other links)", n, path, path, path, path)})
			return
		}
		if m := fi.Mode().Perm(); m&forbidden != 0 {
			out = append(out, Permission{
				Path: path, Tighten: true, forbidden: forbidden,
				Problem: fmt.Sprintf("mode %04o: %s, want %04o", m, what, m&^forbidden),
			})
		}
	}
	dirs := map[string]bool{}
	// refDirs hold files a kubeconfig refers to (client-certificate,
	// client-key, the kubelet's pki directory): whoever can write there
	// can swap the identity, so group or others writing is a finding.
	refDirs := map[string]bool{}
	m := resolve.Resolve(plan, store.Store{Dir: st.Dir, KubeconfigDir: st.KubeconfigDir, Keys: store.KeyPolicy{Insecure: true}})
	for _, c := range m.Certs {
		switch {
		case c.Elsewhere():
		case c.Location.Kind() == resolve.Files:
			check(resolve.KeyFile(c.Location), 0o077, true, "private key readable by group or others")
			check(c.Location.Path(), 0o022, false, "writable by group or others")
			dirs[filepath.Dir(resolve.KeyFile(c.Location))] = true
		case resolve.KeyFile(c.Location) != "":
			// A kubeconfig's client-key file, or the kubelet's PEM (its
			// link is the kubelet's layout; the file it names is checked,
			// and must be beside it).
			if err := resolve.LinkOutside(c.Location); err != nil {
				out = append(out, Permission{Path: c.Location.Path(), Problem: strings.TrimPrefix(err.Error(), c.Location.Path()+": ")})
				seen[resolve.KeyFile(c.Location)] = true
				continue
			}
			check(resolve.KeyFile(c.Location), 0o077, true, "private key readable by group or others")
			refDirs[filepath.Dir(resolve.KeyFile(c.Location))] = true
			refDirs[filepath.Dir(c.Location.Path())] = true
			if c.Location.Kind() == resolve.Referenced {
				// A kubeconfig's client-certificate: as a key, a regular
				// file (renewal refuses a link) that others cannot write.
				check(c.Location.Path(), 0o022, false, "writable by group or others")
			}
		}
	}
	for _, k := range plan.Keys {
		check(st.KeyPath(k.Path), 0o077, true, "private key readable by group or others")
		check(st.PubPath(k.Path), 0o022, false, "writable by group or others")
		dirs[filepath.Dir(st.KeyPath(k.Path))] = true
	}
	for _, k := range m.Kubeconfigs {
		if k.Location.Kind() == resolve.Embedded {
			check(k.Path, 0o077, false, "kubeconfig holds a private key but is readable by group or others")
		}
	}
	for _, d := range slices.Sorted(maps.Keys(refDirs)) {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() && !dirs[d] && fi.Mode().Perm()&0o022 != 0 {
			check(d, 0o022, false, "directory of a kubeconfig's client certificate or key writable by group or others")
		}
	}
	for _, d := range slices.Sorted(maps.Keys(dirs)) {
		fi, err := os.Stat(d)
		if err != nil || !fi.IsDir() {
			continue
		}
		m := fi.Mode().Perm()
		switch {
		case m&0o022 != 0:
			check(d, dirForbidden(plan), false, "key directory writable by group or others")
		case plan.Profile == catalog.Kubeadm && m&0o055 != 0:
			out = append(out, Permission{Path: d, Warning: true, Problem: fmt.Sprintf("mode %04o: key directory readable by group or others, as kubeadm makes it; its keys are 0600", m)})
		case m&0o077 != 0:
			check(d, 0o077, false, "key directory readable by group or others")
		}
	}
	return out
}

// dirForbidden is what a key directory's mode must not have: kubepki's
// own are 0700; kubeadm's stay 0755, which its components may need.
func dirForbidden(plan *catalog.Plan) fs.FileMode {
	if plan.Profile == catalog.Kubeadm {
		return 0o022
	}
	return 0o077
}

// Tightened is a mode Tighten changed.
type Tightened struct {
	Path   string      `json:"path"`
	Before fs.FileMode `json:"before"`
	After  fs.FileMode `json:"after"`
}

// Tighten fixes the permissions chmod can fix (kubepki init does this
// before anything reads the keys) and returns what it changed. It never
// goes through a link, and leaves what is not the user's.
func Tighten(perms []Permission) ([]Tightened, error) {
	var out []Tightened
	for _, p := range perms {
		if !p.Tighten || p.Warning {
			continue
		}
		before, after, err := store.Tighten(p.Path, p.forbidden)
		if err != nil {
			return out, err
		}
		if before != after {
			out = append(out, Tightened{Path: p.Path, Before: before, After: after})
		}
	}
	return out, nil
}

// refuseUnsafe returns the first refusal st's key policy gives a key or
// certificate of the plan: Apply signs with these keys and hands them to
// the cluster's components, so it will not start on one it must not use.
func refuseUnsafe(plan *catalog.Plan, st store.Store) error {
	var unsafe *store.UnsafeFileError
	read := func(err error) error {
		if errors.As(err, &unsafe) {
			return err
		}
		return nil
	}
	for _, c := range resolve.Resolve(plan, st).Certs {
		if c.Elsewhere() {
			continue
		}
		if err := read(third(c.Location.Read())); err != nil {
			return err
		}
	}
	for _, k := range plan.Keys {
		if err := read(second(st.ReadKey(k.Path))); err != nil {
			return err
		}
	}
	return nil
}

func second[T any](_ T, err error) error { return err }

func third[T, U any](_ T, _ U, err error) error { return err }
