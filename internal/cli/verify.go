package cli

import (
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"kubepki.dev/kubepki/internal/live"
	"kubepki.dev/kubepki/internal/reconcile"
	"kubepki.dev/kubepki/internal/resolve"
)

// verifyReport is what verify prints with -o json|yaml.
type verifyReport struct {
	Dir     string          `json:"dir"`
	Profile string          `json:"profile"`
	Clean   bool            `json:"clean"`
	CAKeys  map[string]bool `json:"caKeysPresent"`
	// Bundles lists, for a CA file with several CAs (a trust bundle),
	// each of them.
	Bundles map[string][]string `json:"trustBundles,omitempty"`
	Items   []reconcile.Status  `json:"items"`
	// Findings are every problem, one line each, "path: message".
	Findings []string `json:"findings"`
	// Warnings are worth knowing but not findings, one line each.
	Warnings []string `json:"warnings,omitempty"`
	// Live is what the running cluster serves and who its kubeconfigs
	// are (--live).
	Live *live.Result `json:"live,omitempty"`
}

func newVerifyCmd(e *env) *cobra.Command {
	var (
		f      specFlags
		output string
		lf     liveFlags
	)
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Audit a PKI directory against the plan",
		Long: `Audit a PKI directory against the plan of --config (or the embedded default):
every certificate chains to its CA, each key matches its certificate, CN, O,
usages and SANs are what the catalog says, certificates are within their
validity, file modes are safe (keys and kubeconfigs 0600, no symbolic links,
key directories closed: 'kubepki init' tightens what chmod fixes). Also
reports which CA keys are present (a CA without its key is an external CA),
and what an interrupted kubepki left: a commit killed half-way is finished
first (from its journal in DIR/.backup/); temporary files of killed writes,
which may hold private keys, are findings ('kubepki init' removes them).

Works on directories kubepki did not write, such as one made by kubeadm or by
openssl commands: pass the spec that describes that cluster.

With --live, also checks the running cluster (see below).

One line per finding; exit 0 only when clean, 3 when there are findings.

` + liveHelp,
		Example: `  kubepki verify --dir ./pki
  kubepki verify --dir /etc/kubernetes/pki --profile kubeadm --config cluster.yaml -o json
  kubepki verify --dir ./pki --live
  kubepki verify --dir /etc/kubernetes/pki --live --kubeconfig ~/.kube/config --endpoint etcd@cp1=10.0.0.10:12379`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			overrides, err := lf.parse(cmd)
			if err != nil {
				return err
			}
			ro, err := f.openRead(e, "verify")
			if err != nil {
				return err
			}
			defer ro.release()
			c, plan, st, leftovers := ro.c, ro.plan, ro.st, ro.leftovers
			rep := verifyReport{Dir: f.dir, Profile: string(plan.Profile), CAKeys: map[string]bool{}, Findings: []string{}}
			rep.Items = reconcile.Examine(plan, st, e.now())
			for name, ca := range resolve.Resolve(plan, st).CAs {
				if len(ca.Certs) > 1 {
					if rep.Bundles == nil {
						rep.Bundles = map[string][]string{}
					}
					for i, c := range ca.Certs {
						key := "key here"
						if !ca.KeyHere(c) {
							key = "key not here"
						}
						rep.Bundles[name] = append(rep.Bundles[name], fmt.Sprintf("#%d %s, expires %s, %s",
							i+1, resolve.Describe(c), c.NotAfter.UTC().Format(time.RFC3339), key))
					}
				}
			}
			for _, s := range rep.Items {
				if s.IsCA {
					rep.CAKeys[s.Name] = s.KeyPresent
				}
				if s.State != reconcile.Valid && s.State != reconcile.External && s.State != reconcile.Elsewhere {
					for _, m := range s.Findings {
						rep.Findings = append(rep.Findings, fmt.Sprintf("%s: %s: %s", s.Path, s.State, m))
					}
				}
			}
			for _, p := range reconcile.Permissions(plan, st) {
				line := p.Path + ": " + p.Problem
				switch {
				case p.Warning:
					rep.Warnings = append(rep.Warnings, line)
				case p.Tighten:
					rep.Findings = append(rep.Findings, line+" (kubepki init tightens it)")
				default:
					rep.Findings = append(rep.Findings, line)
				}
			}
			rep.Findings = append(rep.Findings, leftovers...)
			rep.Clean = len(rep.Findings) == 0
			if lf.live {
				res, err := checkLive(cmd.Context(), e, c, plan, st, f.kubeconfig, overrides, lf.timeout)
				if err != nil {
					return err
				}
				rep.Live = res
				rep.Clean = rep.Clean && res.Clean()
			}
			if err := print(e.stdout, output, rep, func(w io.Writer) error {
				return writeVerifyText(w, rep)
			}); err != nil {
				return err
			}
			if !rep.Clean {
				n := len(rep.Findings)
				if rep.Live != nil {
					n += len(rep.Live.Findings)
				}
				return findings("%s: %d finding(s)", f.dir, n)
			}
			if rep.Live != nil {
				// Asked to look at the cluster and saw nothing of it: not
				// a clean bill of health.
				if answered, asked := rep.Live.Reached(); answered+asked == 0 {
					return fmt.Errorf("live: no endpoint answered and no kubeconfig reached an API server: run it where the cluster is reachable, or give --endpoint/--kubeconfig")
				}
			}
			return nil
		},
	}
	f.add(cmd, false)
	lf.add(cmd)
	addOutputFlag(cmd, &output)
	return cmd
}

func writeVerifyText(w io.Writer, rep verifyReport) error {
	for _, l := range rep.Findings {
		fmt.Fprintln(w, l)
	}
	for _, l := range rep.Warnings {
		fmt.Fprintln(w, "warning: "+l)
	}
	names := make([]string, 0, len(rep.CAKeys))
	for n := range rep.CAKeys {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		state := "present"
		if !rep.CAKeys[n] {
			state = "absent (external CA)"
		}
		fmt.Fprintf(w, "CA %s: key %s\n", n, state)
		// Every CA of a bundle, so that one nobody expected is seen.
		if b := rep.Bundles[n]; len(b) > 1 {
			fmt.Fprintf(w, "CA %s: trust bundle of %d CAs:\n", n, len(b))
			for _, l := range b {
				fmt.Fprintf(w, "CA %s %s\n", n, l)
			}
		}
	}
	if len(rep.Bundles) > 0 {
		// Which CA of a bundle signed each certificate.
		for _, s := range rep.Items {
			if s.SignedBy != "" {
				fmt.Fprintf(w, "%s: signed by %s\n", s.Path, s.SignedBy)
			}
		}
	}
	if rep.Live != nil {
		writeLiveText(w, rep.Live)
	}
	if rep.Clean {
		summary := ""
		if rep.Live != nil {
			// Say how many answered: a cluster that is not reachable at
			// all is "0 of 7", not "7 checked".
			answered, asked := rep.Live.Reached()
			summary = fmt.Sprintf(", live: %d of %d endpoints answered, %d of %d kubeconfigs checked", answered, len(rep.Live.Probes), asked, len(rep.Live.Kubeconfigs))
		}
		fmt.Fprintf(w, "%s (%s): %d items verified%s, no findings\n", rep.Dir, rep.Profile, len(rep.Items), summary)
	}
	return nil
}
