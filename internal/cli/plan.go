package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"kubepki.dev/kubepki/internal/reconcile"
)

// planItem is one line of `kubepki plan`.
type planItem struct {
	reconcile.Status
	// Action is what `kubepki init` (or renew) would do.
	Action string `json:"action"`
}

func newPlanCmd(e *env) *cobra.Command {
	var (
		f          specFlags
		output     string
		warnWithin time.Duration
	)
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show what init would do: missing, valid, drifted, expiring",
		Long: `Compare the PKI directory with the plan of the spec and say, for every
certificate, key pair and kubeconfig, what 'kubepki init' would do:

  create    missing: init creates it
  keep      present and valid
  reissue   drifted from the spec, with the exact difference; 'init --apply-drift'
            reissues it (after a backup)
  renew     expired or expiring within --warn-within: 'kubepki certs renew'
  tighten   a key, kubeconfig or key directory group or others can read, or a
            file they can write: init chmods it
  fix       invalid (unreadable, wrong key, wrong CA), or a key that is a
            symbolic link or another user's: needs a person
  elsewhere another node's kubelet kubeconfig, in a directory that is a real
            node's (its own is kubelet.conf): it lives on that node
  external  a CA without its key: certificates it signs come from outside;
            a missing certificate it signs: 'kubepki certs generate-csr NAME',
            have it signed, then 'kubepki certs install'

Exit 0 when there is nothing to do (a CA without its key is not a task), 3
otherwise.`,
		Example: "  kubepki plan --config cluster.yaml --dir ./pki",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, plan, err := f.load()
			if err != nil {
				return err
			}
			now := e.now()
			st := f.store(e, plan.Profile)
			release, leftovers, err := forRead(e, st)
			if err != nil {
				return err
			}
			defer release()
			// The steps init executes (reconcile.Apply), as they are.
			var items []planItem
			todo := 0
			for _, s := range reconcile.Steps(plan, st, now, warnWithin) {
				it := planItem{Status: s.Status, Action: string(s.Action)}
				if s.Action == reconcile.ActRenew && s.State == reconcile.Valid {
					it.Findings = append(it.Findings, "expires on "+s.NotAfter.UTC().Format(time.RFC3339)+", within "+warnWithin.String())
				}
				if s.Todo() {
					todo++
				}
				items = append(items, it)
			}
			todo += len(leftovers)
			if output == "json" || output == "yaml" {
				// Not plan items: said on stderr, counted in the exit code.
				for _, l := range leftovers {
					fmt.Fprintf(e.stderr, "repair %s\n", l)
				}
			}
			if err := print(e.stdout, output, items, func(w io.Writer) error {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ACTION\tNAME\tKIND\tPATH")
				var details []string
				for _, it := range items {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", it.Action, it.Name, it.Kind, it.Path)
					if it.Action != "keep" && it.Action != string(reconcile.ActElsewhere) {
						for _, m := range it.Findings {
							details = append(details, fmt.Sprintf("%s %s: %s", it.Kind, it.Name, m))
						}
					}
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				if len(details) > 0 {
					fmt.Fprintf(w, "\n%s\n", strings.Join(details, "\n"))
				}
				for _, l := range leftovers {
					fmt.Fprintf(w, "repair %s\n", l)
				}
				if todo == 0 {
					fmt.Fprintln(w, "nothing to do")
				}
				return nil
			}); err != nil {
				return err
			}
			if todo > 0 {
				return findings("%d item(s) to act on", todo)
			}
			return nil
		},
	}
	f.add(cmd, false)
	addOutputFlag(cmd, &output)
	cmd.Flags().DurationVar(&warnWithin, "warn-within", 30*24*time.Hour, "call certificates expiring within this window due for renewal")
	return cmd
}
