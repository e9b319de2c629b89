package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"kubepki.dev/kubepki/internal/lifecycle"
	"kubepki.dev/kubepki/internal/reconcile"
)

// renewOutput is what renew prints with -o json|yaml.
type renewOutput struct {
	*lifecycle.RenewReport
	Restart []string `json:"restart,omitempty"`
}

func newRenewCmd(e *env) *cobra.Command {
	var (
		f        specFlags
		opts     lifecycle.RenewOptions
		validity time.Duration
		output   string
	)
	cmd := &cobra.Command{
		Use:   "renew all|NAME...",
		Short: "Reissue certificates (and kubeconfig client certificates) with the local CA",
		Long: `Reissue certificates with their CA from the PKI directory. By default each new
certificate copies the old one's subject, SANs and usages, with a new key of the
same kind, as far as they are within the plan: a leaf is always CA:FALSE, and
a certificate with a CN, group, usage or SAN the spec does not give it (a SAN
added by hand: name it in the spec) is refused, not narrowed. A certificate its
CA never signed is refused too. --from-spec reissues from the cluster spec
instead, fixing drift (a SAN the spec now needs) and replacing such files. The hard way's service-accounts certificate keeps
its key: a new one would invalidate every service-account token. Kubeconfigs keep their style (the rest of each file is kept, its CA data
refreshed with the CA file's every certificate): embedded certificates stay
embedded; a kubeconfig that refers to files gets new files and keeps the
references. kubelet.conf is renewed too; when it points at the kubelet's
kubelet-client-current.pem, a new kubelet-client-<timestamp>.pem is written
for the node's own key (--new-key for a new one) and the link swung, as the
kubelet does: this recovers a node whose client certificate has expired.

Every replaced file is first copied to DIR/.backup/<timestamp>/, then all new
files replace the old ones as one commit, recorded in journal.json beside the
backup: if the command is killed half-way, the next kubepki command finishes
the commit (verify, plan and bundle too), so a certificate never sits beside
another one's key. The command ends by naming the components to restart.

Certificates whose CA key is absent (external CA) are not renewed: they are
listed, with the command that makes CSRs for the external CA (exit 3).`,
		Example: `  kubepki certs renew all --dir /etc/kubernetes/pki --profile kubeadm
  kubepki certs renew apiserver --from-spec --config cluster.yaml
  kubepki certs renew admin.conf kubelet-node-0.conf --reuse-key
  kubepki certs renew kubelet.conf --dir /etc/kubernetes/pki --profile kubeadm`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if validity < 0 {
				return usageError("--validity must be positive (0 or unset: the spec's leaf validity)")
			}
			c, plan, err := f.load()
			if err != nil {
				return err
			}
			opts.Names, opts.Validity, opts.Now = args, validity, e.now()
			st := f.store(e, plan.Profile)
			release, err := forWrite(e, st)
			if err != nil {
				return err
			}
			defer release()
			// Renewal writes new keys into the directory as it is; say
			// what would let others read them ('kubepki init' tightens it).
			for _, p := range reconcile.Permissions(plan, st) {
				switch {
				case p.Tighten:
					fmt.Fprintf(e.stderr, "warning: %s: %s (kubepki init tightens it)\n", p.Path, p.Problem)
				case !p.Warning:
					fmt.Fprintf(e.stderr, "warning: %s: %s\n", p.Path, p.Problem)
				}
			}
			rep, err := lifecycle.Renew(plan, st, opts)
			if err != nil {
				return nameError(err)
			}
			for _, b := range rep.Trust {
				fmt.Fprintf(e.stderr, "warning: the kubeconfigs' certificate-authority-data now trust %d CAs of %s (CA %s): %s\n", len(b.CAs), b.Path, b.CA, strings.Join(b.CAs, "; "))
			}
			var names []string
			for _, r := range rep.Renewed {
				names = append(names, r.Name)
			}
			out := renewOutput{RenewReport: rep, Restart: lifecycle.Restarts(c, plan, names)}
			if err := print(e.stdout, output, out, func(w io.Writer) error {
				for _, r := range rep.Renewed {
					fmt.Fprintf(w, "renewed %s (until %s): %s\n", r.Name, r.NotAfter.UTC().Format(time.RFC3339), strings.Join(r.Files, ", "))
				}
				if rep.Backup != "" {
					fmt.Fprintf(w, "backup of the replaced files: %s\n", rep.Backup)
				}
				if len(out.Restart) > 0 {
					fmt.Fprintf(w, "restart to load the new certificates: %s\n", strings.Join(out.Restart, ", "))
					fmt.Fprintln(w, "and redistribute the node files: kubepki bundle / kubepki distribute")
				}
				return nil
			}); err != nil {
				return err
			}
			if len(rep.External) > 0 {
				return findings("not renewed, their CA key is absent (external CA): %s; make CSRs for the external CA with: kubepki certs generate-csr %s --csr-dir DIR",
					strings.Join(rep.External, ", "), strings.Join(rep.External, " "))
			}
			return nil
		},
	}
	f.add(cmd, false)
	cmd.Flags().BoolVar(&opts.ReuseKey, "reuse-key", false, "keep each certificate's private key")
	cmd.Flags().BoolVar(&opts.NewKey, "new-key", false, "give the kubelet's rotated pair (kubelet.conf pointing at kubelet-client-current.pem) a new key; by default its node key is kept")
	cmd.Flags().DurationVar(&validity, "validity", 0, "validity of the new certificates (default: the spec's leaf validity)")
	cmd.Flags().BoolVar(&opts.FromSpec, "from-spec", false, "reissue from the cluster spec (fixes drift) instead of copying the old certificate")
	addOutputFlag(cmd, &output)
	return cmd
}
