package cli

import (
	"fmt"
	"os"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/kubeconfig"
	"kubepki.dev/kubepki/internal/store"
)

// forWrite locks the PKI directory for a command that writes it and
// repairs what a killed kubepki left there (store.Store.Recover): an
// unfinished commit is finished or rolled back, stale temporary files are
// removed. Every repair is said on stderr. The caller defers release.
func forWrite(e *env, st store.Store) (release func(), err error) {
	release, err = st.Lock(true)
	if err != nil {
		return nil, err
	}
	if st, err = withReferenced(st); err != nil {
		release()
		return nil, err
	}
	rec, err := st.Recover()
	for _, l := range rec.Lines() {
		fmt.Fprintf(e.stderr, "%s\n", l)
	}
	if err != nil {
		release()
		return nil, err
	}
	return release, nil
}

// withReferenced is st with the files its kubeconfigs refer to
// (kubeconfig.ReferencedFiles), which recovery may then finish writing:
// a renewal writes a referenced client-certificate where it is, and the
// kubelet's rotated pair beside kubelet-client-current.pem.
func withReferenced(st store.Store) (store.Store, error) {
	kc := st.KubeconfigDir
	if kc == "" {
		kc = st.Dir
	}
	ref, err := kubeconfig.ReferencedFiles(kc)
	if err != nil {
		return st, err
	}
	st.Referenced = ref
	return st, nil
}

// forRead locks the PKI directory (shared) for a command that reads it.
// It repairs nothing: an unfinished commit is neither finished nor rolled
// back by a command that only reads (only a write command does, see
// forWrite), so a journal planted in the directory cannot make an audit
// replace anything. The leftovers — unfinished journals and temporary
// files of killed writes — are returned for the command to report, and
// the command audits what is on disk; `kubepki init` repairs them.
// readOnly is a spec's plan and its directory, opened for a command that
// only reads it: locked shared, with the leftovers of interrupted writes.
type readOnly struct {
	c         *cluster.Cluster
	plan      *catalog.Plan
	st        store.Store
	leftovers []string
	release   func()
}

// openRead loads the spec and opens its existing directory for command,
// which only reads it; the caller defers release.
func (f *specFlags) openRead(e *env, command string) (*readOnly, error) {
	c, plan, err := f.load()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(f.dir); err != nil {
		return nil, fmt.Errorf("%s: %w", command, err)
	}
	st := f.store(e, plan.Profile)
	release, leftovers, err := forRead(e, st)
	if err != nil {
		return nil, err
	}
	return &readOnly{c: c, plan: plan, st: st, leftovers: leftovers, release: release}, nil
}

func forRead(_ *env, st store.Store) (release func(), leftovers []string, err error) {
	release, err = st.Lock(false)
	if err != nil {
		return nil, nil, err
	}
	// With the referenced files known, a killed renewal's temporary
	// files beside them are leftovers too; a kubeconfig directory that
	// cannot be listed only leaves them out.
	if rst, err := withReferenced(st); err == nil {
		st = rst
	}
	if leftovers, err = st.Leftovers(); err != nil {
		release()
		return nil, nil, err
	}
	return release, leftovers, nil
}

// forBundle is forRead for a command that copies the PKI out (bundle,
// distribute): an unfinished commit is an error, since half of it would
// go to the nodes.
func forBundle(e *env, st store.Store) (release func(), err error) {
	release, _, err = forRead(e, st)
	if err != nil {
		return nil, err
	}
	if unfinished, err := st.Unfinished(); err != nil || len(unfinished) > 0 {
		release()
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%s: an interrupted write (%s); run 'kubepki init' (or the command that was interrupted) to finish it first", st.Dir, unfinished[0])
	}
	return release, nil
}
