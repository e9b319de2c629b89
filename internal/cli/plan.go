package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/reconcile"
	"kubepki.dev/kubepki/internal/store"
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
			statuses := reconcile.Examine(plan, st, now)
			var items []planItem
			todo := 0
			for _, s := range statuses {
				it := planItem{Status: s}
				it.Action, it.Findings = planAction(s, now, warnWithin)
				if it.Action == "create" {
					if ca, ok := externalSigner(plan, st, statuses, s); ok {
						// init cannot issue it: say where it comes from.
						it.Action = "external"
						it.Findings = append(it.Findings, fmt.Sprintf("CA %s has no key here (external CA): kubepki certs generate-csr %s --csr-dir DIR, have it signed, then kubepki certs install", ca, certOf(plan, s)))
					}
				}
				if it.Action != "keep" && !(it.Action == "external" && s.IsCA) {
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
			for _, p := range reconcile.Permissions(plan, st) {
				if p.Warning {
					continue
				}
				it := planItem{Status: reconcile.Status{Name: p.Path, Kind: reconcile.KindPermissions, Path: p.Path, State: reconcile.Unsafe, Findings: []string{p.Problem}}, Action: "fix"}
				if p.Tighten {
					it.Action = "tighten"
				}
				todo++
				items = append(items, it)
			}
			if err := print(e.stdout, output, items, func(w io.Writer) error {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ACTION\tNAME\tKIND\tPATH")
				var details []string
				for _, it := range items {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", it.Action, it.Name, it.Kind, it.Path)
					if it.Action != "keep" {
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

// certOf is the certificate of the plan an item stands for: itself, or the
// one a kubeconfig embeds.
func certOf(plan *catalog.Plan, s reconcile.Status) string {
	if s.Kind == reconcile.KindKubeconfig {
		k, _ := plan.Kubeconfig(s.Name)
		return k.Cert
	}
	return s.Name
}

// externalSigner returns the CA of a missing item whose certificate init
// would have to issue with a CA whose key is absent.
func externalSigner(plan *catalog.Plan, st store.Store, statuses []reconcile.Status, s reconcile.Status) (string, bool) {
	if s.Kind != reconcile.KindCert && s.Kind != reconcile.KindKubeconfig {
		return "", false
	}
	c, ok := plan.Cert(certOf(plan, s))
	if !ok || c.Profile.IsCA {
		return "", false
	}
	// A kubeconfig of a certificate on disk is made without the CA key.
	if s.Kind == reconcile.KindKubeconfig && !c.Embedded && store.Exists(st.CertPath(c.Path)) {
		return "", false
	}
	for _, ca := range statuses {
		if ca.IsCA && ca.Name == c.CA && ca.State == reconcile.External {
			return c.CA, true
		}
	}
	return "", false
}

// planAction says what to do about an item, with the findings behind it.
func planAction(s reconcile.Status, now time.Time, window time.Duration) (string, []string) {
	switch s.State {
	case reconcile.Missing:
		return "create", s.Findings
	case reconcile.Drifted:
		return "reissue", s.Findings
	case reconcile.Expired:
		return "renew", s.Findings
	case reconcile.Invalid:
		return "fix", s.Findings
	case reconcile.External:
		return "external", s.Findings
	}
	if !s.NotAfter.IsZero() && s.NotAfter.Sub(now) < window {
		return "renew", append(s.Findings, "expires on "+s.NotAfter.UTC().Format(time.RFC3339)+", within "+window.String())
	}
	return "keep", s.Findings
}
