package cli

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"kubepki.dev/kubepki/internal/reconcile"
)

func newInitCmd(e *env) *cobra.Command {
	var (
		f      specFlags
		output string
	)
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create every CA, certificate and key the cluster needs",
		Long: `Create every CA, certificate and key of the profile in --dir, from --config or the
embedded default.

init is idempotent and never overwrites a file: a CA you placed in the
directory (ca.crt + ca.key) signs the rest; a valid certificate is kept; one
that no longer matches the spec (a SAN the spec now needs, a wrong group) is
reported as drift and left untouched. Keys are generated in parallel; keys are
written 0600, certificates 0644, the directory 0700.

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
			opts := reconcile.Options{Progress: progress(e.stderr)}
			results, err := reconcile.Apply(cmd.Context(), plan, f.store(plan.Profile), e.now(), opts)
			if err != nil {
				return err
			}
			if err := print(e.stdout, output, results, func(w io.Writer) error {
				return writeInitText(w, f.dir, plan.Profile, results)
			}); err != nil {
				return err
			}
			return resultsExit(results, f.dir)
		},
	}
	f.add(cmd, true)
	addOutputFlag(cmd, &output)
	return cmd
}

// progress returns a key-generation reporter that stays quiet unless the work
// takes more than a moment (RSA-3072 and up).
func progress(w io.Writer) func(done, total int) {
	start, shown := time.Now(), false
	return func(done, total int) {
		if !shown && time.Since(start) < time.Second {
			return
		}
		shown = true
		fmt.Fprintf(w, "\rgenerating keys: %d/%d", done, total)
		if done == total {
			fmt.Fprintln(w)
		}
	}
}

func writeInitText(w io.Writer, dir, profile any, results []reconcile.Result) error {
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
	if counts[reconcile.Created] == 0 && counts[reconcile.Untouched] == 0 && counts[reconcile.Failed] == 0 {
		fmt.Fprintf(w, "nothing to do: all %d items in %s (%s) are present and valid\n", len(results), dir, profile)
		return nil
	}
	fmt.Fprintf(w, "%s (%s): %d created, %d kept, %d untouched, %d failed\n", dir, profile,
		counts[reconcile.Created], counts[reconcile.Kept], counts[reconcile.Untouched], counts[reconcile.Failed])
	return nil
}
