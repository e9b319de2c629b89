package cli

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/lifecycle"
	"kubepki.dev/kubepki/internal/reconcile"
	"kubepki.dev/kubepki/internal/store"
)

func newInitCmd(e *env) *cobra.Command {
	var (
		f          specFlags
		output     string
		applyDrift bool
	)
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create every CA, certificate and key the cluster needs",
		Long: `Create every CA, certificate and key of the profile in --dir, from --config or the
embedded default.

init is idempotent and never overwrites a file: a CA you placed in the
directory (ca.crt + ca.key) signs the rest; a valid certificate is kept; one
that no longer matches the spec (a SAN the spec now needs, a wrong group) is
reported as drift and left untouched; --apply-drift reissues it from the spec
after backing up the old files.

init first repairs what an interrupted kubepki left: it finishes (or rolls
back) a renewal killed half-way, from the journal in DIR/.backup/, and
removes the temporary files of killed writes, saying so on stderr. Keys are
generated in parallel; keys are written 0600, certificates 0644, the
directory 0700. A key, kubeconfig or key directory group or others can read
(or write) is tightened first, and said so on stderr; a key that is a
symbolic link or another user's is refused (--insecure-key-permissions
reads it anyway). 'kubepki plan' shows
what init would do.

Exit codes: 0 all present and valid, 1 error, 3 something was left untouched
(drifted, expired or invalid) or could not be issued.`,
		Example: `  kubepki init --dir ./pki
  kubepki init --dir /etc/kubernetes/pki --profile kubeadm --config cluster.yaml
  kubepki init --key-algorithm RSA-4096`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, plan, err := f.load()
			if err != nil {
				return err
			}
			st := f.store(e, plan.Profile)
			release, err := forWrite(e, st)
			if err != nil {
				return err
			}
			defer release()
			// Apply executes plan's steps: it first fixes the modes plan
			// and verify report (a 0644 key is tightened, not refused).
			opts := reconcile.Options{Progress: progress(e.stderr), OnTighten: func(t reconcile.Tightened) {
				fmt.Fprintf(e.stderr, "tightened %s: mode %04o -> %04o\n", t.Path, t.Before, t.After)
			}}
			if os.Getenv("KUBEPKI_DEBUG_TIMING") != "" {
				opts.OnKey = keyTiming(e.stderr)
			}
			results, err := reconcile.Apply(cmd.Context(), plan, st, e.now(), opts)
			if err != nil {
				return err
			}
			if applyDrift {
				if results, err = reissueDrifted(e, plan, st, results); err != nil {
					return err
				}
			}
			return reportResults(e, output, f.dir, plan.Profile, results)
		},
	}
	f.add(cmd, true)
	addOutputFlag(cmd, &output)
	cmd.Flags().BoolVar(&applyDrift, "apply-drift", false, "reissue drifted certificates from the spec (the old files are backed up first)")
	return cmd
}

// reissueDrifted renews every drifted certificate from the spec, backing
// up what it replaces, and marks those results as reissued.
func reissueDrifted(e *env, plan *catalog.Plan, st store.Store, results []reconcile.Result) ([]reconcile.Result, error) {
	var names []string
	for _, r := range results {
		if r.State != reconcile.Drifted {
			continue
		}
		name := r.Name
		if r.Kind == reconcile.KindKubeconfig {
			k, _ := plan.Kubeconfig(r.Name)
			name = k.Cert
		}
		if c, ok := plan.Cert(name); ok && !c.Profile.IsCA && !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return results, nil
	}
	rep, err := lifecycle.Renew(plan, st, lifecycle.RenewOptions{Names: names, FromSpec: true, Now: e.now()})
	if err != nil {
		return nil, err
	}
	var reissued []string
	for _, r := range rep.Renewed {
		reissued = append(reissued, r.Name)
	}
	if len(reissued) > 0 {
		fmt.Fprintf(e.stderr, "reissued from the spec: %s (backup: %s)\n", strings.Join(reissued, ", "), rep.Backup)
	}
	if len(rep.External) > 0 {
		fmt.Fprintf(e.stderr, "not reissued, their CA key is absent (external CA): %s; make CSRs for the external CA with: kubepki certs generate-csr %s --csr-dir DIR\n",
			strings.Join(rep.External, ", "), strings.Join(rep.External, " "))
	}
	after := reconcile.Examine(plan, st, e.now())
	for i := range results {
		if results[i].State == reconcile.Drifted && i < len(after) && after[i].State == reconcile.Valid {
			results[i].Status, results[i].Action = after[i], reconcile.Reissued
		}
	}
	return results, nil
}

// progress returns a key-generation reporter that stays quiet unless the work
// takes more than a moment (RSA-3072 and up). On a terminal it redraws one
// line; in a log it writes a line per quarter of the work.
func progress(w io.Writer) func(done, total int) {
	start, shown, lastQuarter := time.Now(), false, -1
	tty := isTerminal(w)
	return func(done, total int) {
		if !shown && time.Since(start) < time.Second {
			return
		}
		shown = true
		if tty {
			fmt.Fprintf(w, "\rgenerating keys: %d/%d", done, total)
			if done == total {
				fmt.Fprintln(w)
			}
			return
		}
		if q := done * 4 / total; q != lastQuarter {
			lastQuarter = q
			fmt.Fprintf(w, "generating keys: %d/%d\n", done, total)
		}
	}
}

// keyTiming returns a reporter that writes one line per generated key, for
// hack/bench-init.sh: "timing: key RSA-4096 cpu 0.512s wall 0.530s".
func keyTiming(w io.Writer) func(reconcile.KeyTime) {
	var mu sync.Mutex
	return func(k reconcile.KeyTime) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, "timing: key %s cpu %.6fs wall %.6fs\n", k.Alg, k.CPU.Seconds(), k.Wall.Seconds())
	}
}

// isTerminal reports whether w is a character device, such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func writeInitText(w io.Writer, dir string, profile catalog.Profile, results []reconcile.Result) error {
	counts := map[reconcile.Action]int{}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, r := range results {
		counts[r.Action]++
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Action, r.Name, r.Path)
		if r.Action != reconcile.Created && r.Action != reconcile.Kept {
			for _, f := range r.Findings {
				fmt.Fprintf(tw, "\t\t  %s: %s\n", r.State, f)
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if counts[reconcile.Created] == 0 && counts[reconcile.Reissued] == 0 && counts[reconcile.Untouched] == 0 && counts[reconcile.Failed] == 0 {
		fmt.Fprintf(w, "nothing to do: all %d items in %s (%s) are present and valid\n", len(results), dir, profile)
		return nil
	}
	fmt.Fprintf(w, "%s (%s): %d created, %d reissued, %d kept, %d untouched, %d failed\n", dir, profile,
		counts[reconcile.Created], counts[reconcile.Reissued], counts[reconcile.Kept], counts[reconcile.Untouched], counts[reconcile.Failed])
	return nil
}
