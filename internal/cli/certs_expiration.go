package cli

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"kubepki.dev/kubepki/internal/lifecycle"
)

// ExitExpired is check-expiration's exit code when a certificate has
// expired (ExitFindings, 3, means one expires within --warn-within, is
// missing or is unreadable).
const ExitExpired = 4

// expirationFlags are check-expiration's own flags.
type expirationFlags struct {
	output     string
	warnWithin string
	scan       []string
}

func newCheckExpirationCmd(e *env) *cobra.Command {
	var (
		f  specFlags
		xf expirationFlags
	)
	cmd := &cobra.Command{
		Use:   "check-expiration",
		Short: "Report when every certificate of the PKI expires, as kubeadm does",
		Long: `Report when every certificate of the plan expires, in kubeadm's format: one
table with every leaf certificate of --dir and the client certificate of every
kubeconfig in --kubeconfig-dir (admin.conf, super-admin.conf,
controller-manager.conf, scheduler.conf and, unlike kubeadm, the kubelets'
kubelet-<node>.conf; on a real node its kubelet.conf, with the kubelet's own
certificate when it points at kubelet-client-current.pem, and not the other
nodes'), then one with the CAs: every CA of a CA file that holds several (a
trust bundle during a rotation: ca, ca#2, …). Columns, order, date and residual time ("364d", "9y", "<invalid>" once
expired) are kubeadm's; a missing file says <missing>. EXTERNALLY MANAGED is
"yes" when the signing CA's certificate is present without its key (external
CA mode): kubepki cannot renew that certificate.

With --scan PATH..., the plan is not used: every file under the paths (any
name, up to 1 MiB, symbolic links inside the trees not followed) is searched
for PEM certificates and for kubeconfigs with embedded certificates, and each
certificate is one row: path and entry (#N for the Nth certificate of a PEM
file, "user NAME" or "cluster NAME" in a kubeconfig), subject CN, expiry,
residual time, issuer CN. Meant for a fleet's collected files.

-o json or yaml prints both lists with notAfter (RFC 3339), residualSeconds,
residual, ca, externallyManaged, missing, expired and expiringSoon.

--warn-within takes a Go duration (720h) or days (30d, 1d12h); 0 turns the
warning off.

Exit codes, for scripts:
  0  nothing expired, missing, unreadable or expiring within --warn-within
  1  error (for --scan: a path cannot be read)
  2  usage
  3  something expires within --warn-within, or is missing or unreadable
  4  something has expired`,
		Example: `  kubepki certs check-expiration --dir /etc/kubernetes/pki --profile kubeadm
  kubepki certs check-expiration --dir ./pki --warn-within 60d -o json
  kubepki certs check-expiration --scan ./fleet /etc/kubernetes -o yaml`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 && len(xf.scan) == 0 {
				return usageError("unexpected arguments %q (paths to scan follow --scan)", args)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if xf.output != "table" && xf.output != "text" && xf.output != "json" && xf.output != "yaml" {
				return usageError("unknown output format %q (want table, json or yaml)", xf.output)
			}
			within, err := lifecycle.ParseWarnWithin(xf.warnWithin)
			if err != nil {
				return usageError("--warn-within: %v", err)
			}
			if len(xf.scan) > 0 {
				for _, name := range []string{"config", "dir", "profile", "kubeconfig-dir"} {
					if cmd.Flags().Changed(name) {
						return usageError("--%s does not apply to --scan, which reads files, not the plan", name)
					}
				}
				return runScan(cmd, e, append(xf.scan, args...), within, xf.output)
			}
			ro, err := f.openRead(e, "check-expiration")
			if err != nil {
				return err
			}
			defer ro.release()
			plan, st, leftovers := ro.plan, ro.st, ro.leftovers
			// An interrupted write is not finished here (only a write
			// command does that); the dates below are what is on disk.
			for _, l := range leftovers {
				fmt.Fprintf(e.stderr, "warning: %s\n", l)
			}
			rep := lifecycle.Expiration(plan, st, e.now()).Within(within)
			if err := print(e.stdout, textFormat(xf.output), rep, func(w io.Writer) error {
				return lifecycle.WriteTable(w, rep)
			}); err != nil {
				return err
			}
			for _, l := range [][]lifecycle.Expiry{rep.Certificates, rep.CertificateAuthorities} {
				for _, x := range l {
					if x.Error != "" {
						fmt.Fprintf(e.stderr, "kubepki: %s: %s\n", x.Name, x.Error)
					}
				}
			}
			return expirationExit(rep.Summary, within)
		},
	}
	f.add(cmd, false)
	cmd.Flags().StringVarP(&xf.output, "output", "o", "table", "output format: table, json or yaml")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json", "yaml"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.Flags().StringVar(&xf.warnWithin, "warn-within", "30d", "warn (exit 3) about certificates that expire within this time: a Go duration or days (30d); 0 disables")
	cmd.Flags().StringArrayVar(&xf.scan, "scan", nil, "scan files and directories for certificates and kubeconfigs instead of reading the plan; more paths may follow as arguments")
	return cmd
}

// textFormat maps check-expiration's "table" to print's text format.
func textFormat(output string) string {
	if output == "table" {
		return "text"
	}
	return output
}

func runScan(cmd *cobra.Command, e *env, paths []string, within time.Duration, output string) error {
	rep, err := lifecycle.Scan(cmd.Context(), paths, e.now())
	if err != nil {
		return err
	}
	rep = rep.Within(within)
	if err := print(e.stdout, textFormat(output), rep, func(w io.Writer) error {
		return lifecycle.WriteScanTable(w, rep)
	}); err != nil {
		return err
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(e.stderr, "kubepki: %s: %s\n", p.Path, p.Error)
	}
	return expirationExit(rep.Summary, within)
}

// expirationExit turns a summary into check-expiration's exit code.
func expirationExit(s lifecycle.Summary, within time.Duration) error {
	msg := s.String()
	if s.ExpiringSoon > 0 {
		msg += fmt.Sprintf(" (within %s)", lifecycle.FormatResidual(int64(within/time.Second)))
	}
	switch s.Severity() {
	case lifecycle.SeverityExpired:
		return &exitError{code: ExitExpired, err: fmt.Errorf("certificates: %s", msg)}
	case lifecycle.SeverityWarning:
		return findings("certificates: %s", msg)
	}
	return nil
}
