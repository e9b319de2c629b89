package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"kubepki.dev/kubepki/internal/adopt"
	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/reconcile"
	"kubepki.dev/kubepki/internal/store"
)

func newConfigFromDirCmd(e *env) *cobra.Command {
	var (
		kcDir  string
		output string
	)
	cmd := &cobra.Command{
		Use:   "from-dir DIR",
		Short: "Print the cluster spec an existing PKI directory follows",
		Long: `Read a PKI directory made by kubeadm (/etc/kubernetes/pki), by the openssl
commands of "Kubernetes the Hard Way", or by kubepki, with its kubeconfigs, and
print the cluster spec it follows: the profile, cluster name, nodes with their
names, roles, IPs and hostnames, the API server endpoint and extra SANs, the
service CIDR (from the service IP), DNS domain, key algorithm, lifetimes, CA
subject, separate etcd and front-proxy CAs, users, and the kubeadm version
era (admin.conf in system:masters without super-admin.conf is kubeadm before
v1.29).

What no certificate says is a guess and is marked: as comments at the top of
the YAML, on stderr with -o json. Every command run on such a directory
without --config uses this spec; save it to keep it, and edit the guesses.`,
		Example: `  kubepki config from-dir /etc/kubernetes/pki > cluster.yaml
  kubepki verify --dir /etc/kubernetes/pki --config cluster.yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "yaml" && output != "json" {
				return usageError("--output: unknown format %q (want yaml or json)", output)
			}
			r, err := adopt.Infer(args[0], kcDir)
			if err != nil {
				return err
			}
			if output == "json" {
				for _, n := range r.Notes {
					fmt.Fprintf(e.stderr, "note: %s\n", n)
				}
				data, err := json.MarshalIndent(r.Spec, "", "  ")
				if err != nil {
					return err
				}
				_, err = e.stdout.Write(append(data, '\n'))
				return err
			}
			data, err := inferredYAML(args[0], r)
			if err != nil {
				return err
			}
			_, err = e.stdout.Write(data)
			return err
		},
	}
	cmd.Flags().StringVar(&kcDir, "kubeconfig-dir", "", "directory of the kubeconfigs (default: DIR for the hard way, its parent for kubeadm)")
	_ = cmd.MarkFlagDirname("kubeconfig-dir")
	cmd.Flags().StringVarP(&output, "output", "o", "yaml", "output format: yaml or json")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"yaml", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// inferredYAML is the spec with a header saying where it comes from and
// every guess as a comment.
func inferredYAML(dir string, r *adopt.Result) ([]byte, error) {
	spec, err := cluster.Marshal(r.Spec)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Inferred by kubepki from %s (profile %s, kubeconfigs in %s).\n", dir, r.Profile, r.KubeconfigDir)
	if len(r.Notes) > 0 {
		b.WriteString("# Guessed, check these:\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "# - %s\n", strings.ReplaceAll(n.String(), "\n", " "))
		}
	}
	b.Write(spec)
	return b.Bytes(), nil
}

// adopted is the spec inferred from --dir when no --config is given and
// --dir holds a PKI (adopt.Detect) that the embedded default does not
// explain; nil for the embedded default, as when --dir is empty or absent.
// A directory kubepki made from the default, even half-made (an init
// killed), is the default's: nothing in it drifted from that plan. Using
// the inferred spec is said once on stderr; a directory that cannot be
// read well enough to infer from falls back to the default, saying why,
// so that verify can report what is wrong with it.
func (f *specFlags) adopted(profile catalog.Profile) (*cluster.Cluster, error) {
	if _, ok := adopt.Detect(f.dir); !ok {
		return nil, nil
	}
	stderr := io.Discard
	if f.cmd != nil {
		stderr = f.cmd.ErrOrStderr()
	}
	st := store.Store{Dir: f.dir, KubeconfigDir: f.kcDir, Keys: store.KeyPolicy{Insecure: true}}
	if st.KubeconfigDir == "" {
		st.KubeconfigDir = profile.KubeconfigDir(f.dir)
	}
	defSpec, _ := defaultSpec(profile)
	if def, err := catalog.New(defSpec, profile); err == nil && !slices.ContainsFunc(reconcile.Examine(def, st, time.Now()), func(s reconcile.Status) bool {
		return s.State == reconcile.Drifted
	}) {
		return nil, nil
	}
	r, err := adopt.Infer(f.dir, f.kcDir)
	if err != nil {
		fmt.Fprintf(stderr, "no --config: cannot infer the spec from %s (%v); using the embedded default\n", f.dir, err)
		return nil, nil
	}
	fmt.Fprintf(stderr, "no --config: using the spec inferred from %s (kubepki config from-dir %s prints it)\n", f.dir, f.dir)
	return r.Spec, nil
}
