package cli

import "github.com/spf13/cobra"

// newCertsCmd groups the certificate lifecycle commands, after kubeadm's
// `kubeadm certs`.
func newCertsCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Check, renew and externally sign the cluster's certificates",
	}
	cmd.AddCommand(newRenewCmd(e), newGenerateCSRCmd(e), newInstallCmd(e), newCheckExpirationCmd(e))
	return cmd
}
