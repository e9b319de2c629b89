package cli

import (
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/spf13/cobra"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/reconcile"
	"kubepki.dev/kubepki/internal/store"
)

// verifyReport is what verify prints with -o json|yaml.
type verifyReport struct {
	Dir     string             `json:"dir"`
	Profile string             `json:"profile"`
	Clean   bool               `json:"clean"`
	CAKeys  map[string]bool    `json:"caKeysPresent"`
	Items   []reconcile.Status `json:"items"`
	// Findings are every problem, one line each, "path: message".
	Findings []string `json:"findings"`
}

func newVerifyCmd(e *env) *cobra.Command {
	var (
		f      specFlags
		output string
	)
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Audit a PKI directory against the plan",
		Long: `Audit a PKI directory against the plan of --config (or the embedded default):
every certificate chains to its CA, each key matches its certificate, CN, O,
usages and SANs are what the catalog says, certificates are within their
validity, file modes are safe. Also reports which CA keys are present
(a CA without its key is an external CA), and what an interrupted kubepki
left: a commit killed half-way is finished first (from its journal in
DIR/.backup/); temporary files of killed writes, which may hold private
keys, are findings ('kubepki init' removes them).

Works on directories kubepki did not write, such as one made by kubeadm or by
openssl commands: pass the spec that describes that cluster.

One line per finding; exit 0 only when clean, 3 when there are findings.`,
		Example: `  kubepki verify --dir ./pki
  kubepki verify --dir /etc/kubernetes/pki --profile kubeadm --config cluster.yaml -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, plan, err := f.load()
			if err != nil {
				return err
			}
			if _, err := os.Stat(f.dir); err != nil {
				return fmt.Errorf("verify: %w", err)
			}
			st := f.store(plan.Profile)
			release, leftovers, err := forRead(e, st)
			if err != nil {
				return err
			}
			defer release()
			rep := verifyReport{Dir: f.dir, Profile: string(plan.Profile), CAKeys: map[string]bool{}, Findings: []string{}}
			rep.Items = reconcile.Examine(plan, st, e.now())
			for _, s := range rep.Items {
				if s.IsCA {
					rep.CAKeys[s.Name] = s.KeyPresent
				}
				if s.State != reconcile.Valid && s.State != reconcile.External {
					for _, m := range s.Findings {
						rep.Findings = append(rep.Findings, fmt.Sprintf("%s: %s: %s", s.Path, s.State, m))
					}
				}
			}
			rep.Findings = append(rep.Findings, modeFindings(plan, st)...)
			rep.Findings = append(rep.Findings, leftovers...)
			rep.Clean = len(rep.Findings) == 0
			if err := print(e.stdout, output, rep, func(w io.Writer) error {
				return writeVerifyText(w, rep)
			}); err != nil {
				return err
			}
			if !rep.Clean {
				return findings("%s: %d finding(s)", f.dir, len(rep.Findings))
			}
			return nil
		},
	}
	f.add(cmd, false)
	addOutputFlag(cmd, &output)
	return cmd
}

func writeVerifyText(w io.Writer, rep verifyReport) error {
	for _, l := range rep.Findings {
		fmt.Fprintln(w, l)
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
	}
	if rep.Clean {
		fmt.Fprintf(w, "%s (%s): %d items verified, no findings\n", rep.Dir, rep.Profile, len(rep.Items))
	}
	return nil
}

// modeFindings checks that private keys are readable by their owner only,
// and that nothing kubepki manages is writable by group or others.
func modeFindings(plan *catalog.Plan, st store.Store) []string {
	var out []string
	check := func(path string, forbidden os.FileMode, why string) {
		fi, err := os.Stat(path)
		if err != nil {
			return // a missing file is reported by Examine
		}
		if m := fi.Mode().Perm(); m&forbidden != 0 {
			out = append(out, fmt.Sprintf("%s: mode %04o: %s", path, m, why))
		}
	}
	dirs := map[string]bool{}
	for _, c := range plan.Certs {
		check(st.KeyPath(c.Path), 0o077, "private key readable by group or others, want 0600")
		check(st.CertPath(c.Path), 0o022, "writable by group or others, want 0644")
		dirs[filepath.Dir(st.KeyPath(c.Path))] = true
	}
	for _, k := range plan.Keys {
		check(st.KeyPath(k.Path), 0o077, "private key readable by group or others, want 0600")
		check(st.PubPath(k.Path), 0o022, "writable by group or others, want 0644")
		dirs[filepath.Dir(st.KeyPath(k.Path))] = true
	}
	for _, k := range plan.Kubeconfigs {
		check(st.KubeconfigPath(k.File), 0o077, "kubeconfig holds a private key but is readable by group or others, want 0600")
	}
	for _, d := range slices.Sorted(maps.Keys(dirs)) {
		check(d, 0o022, "key directory writable by group or others, want 0700")
	}
	return out
}
