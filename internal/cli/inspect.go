package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"kubepki.dev/kubepki/internal/inspect"
)

func newInspectCmd(e *env) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "inspect FILE...",
		Short: "Describe certificates, CSRs, keys and kubeconfigs, and the Kubernetes identity they carry",
		Long: `Describe every certificate, certificate request, private key and public key in
the files given ("-" reads standard input): PEM files with any number of blocks
(PKCS#8, PKCS#1 and SEC 1 keys alike), a single DER certificate, request or key,
or a kubeconfig, whose embedded certificate-authority-data, client-certificate-data
and client-key-data are described.

For a certificate: subject and issuer, serial, validity and the time left, SANs,
key usages, CA flag, key algorithm, key identifiers, SHA-256 fingerprint (as
openssl x509 -fingerprint -sha256 prints it), and, when it can be used as a
client certificate, the identity kube-apiserver gives its holder when it
trusts the issuer as a client CA (user = CN, groups = O), with what that
identity may do in a default cluster:
system:masters bypasses authorization altogether, a system:node:NAME in
system:nodes is a kubelet confined to its node, system:kube-scheduler is
bound to its role by a default ClusterRoleBinding, a system:system: group is
a typo nothing binds.

Private keys are never printed: a key is shown by its algorithm and the
SHA-256 of its public key, and every key is matched against the certificates,
requests and public keys of all the files given, so that
  kubepki inspect admin.crt admin.key
says which key belongs to which certificate. Certificates are likewise linked
to the CA certificates given that signed them.

Files are read whole, up to 10 MiB each. A file with nothing recognisable, a
block that does not parse, or a certificate request whose self-signature does
not verify (corrupt or forged: its key did not sign it) is an error (exit 1),
reported after the rest is printed: inspect describes what it is given, and
input it cannot trust is an error, as openssl req -verify treats it, not a
finding about a PKI (exit 3 is for verify, lint and plan).`,
		Example: `  # what is this certificate, and who does it authenticate as?
  kubepki inspect /etc/kubernetes/pki/apiserver-kubelet-client.crt

  # does the key match the certificate, and is it signed by that CA?
  kubepki inspect ca.crt admin.crt admin.key

  # the identities in a kubeconfig
  kubepki inspect ~/.kube/config

  # from a Secret, as JSON
  kubectl get secret tls -o jsonpath='{.data.tls\.crt}' | base64 -d | kubepki inspect - -o json`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError("inspect: name at least one FILE (\"-\" for standard input)")
			}
			if n := countStdin(args); n > 1 {
				return usageError("inspect: \"-\" (standard input) given %d times; it can be read only once", n)
			}
			return nil
		},
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
			return nil, cobra.ShellCompDirectiveDefault
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			switch output {
			case "text", "json", "yaml":
			default:
				return usageError("unknown output format %q (want text, json or yaml)", output)
			}
			var (
				objs []inspect.Object
				errs []error
			)
			for _, path := range args {
				name := path
				if path == "-" {
					name = "(stdin)"
				}
				data, err := readInput(e, path)
				if err != nil {
					errs = append(errs, fmt.Errorf("inspect: %w", err))
					continue
				}
				found, err := inspect.Describe(name, data, e.now())
				if err != nil {
					errs = append(errs, err)
					continue
				}
				for _, o := range found {
					switch {
					case o.Error != "":
						errs = append(errs, fmt.Errorf("inspect %s (%s): %s", o.File, o.Location, o.Error))
					case o.CertificateRequest != nil && !o.CertificateRequest.SignatureValid:
						// openssl req -verify refuses such a request too: the
						// key in it did not sign it.
						errs = append(errs, fmt.Errorf("inspect %s (%s): certificate request signature does not verify with the request's own key: corrupt or forged", o.File, o.Location))
					}
				}
				objs = append(objs, found...)
			}
			inspect.Link(objs)
			if objs == nil {
				objs = []inspect.Object{}
			}
			if err := print(e.stdout, output, objs, func(w io.Writer) error {
				return inspect.WriteText(w, objs)
			}); err != nil {
				return err
			}
			// Every error but the last is reported here; Main reports the
			// last and sets the exit code.
			for _, err := range errs[:max(len(errs)-1, 0)] {
				fmt.Fprintf(e.stderr, "kubepki: %v\n", err)
			}
			if len(errs) > 0 {
				return errs[len(errs)-1]
			}
			return nil
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

// countStdin counts the "-" arguments.
func countStdin(args []string) int {
	n := 0
	for _, a := range args {
		if a == "-" {
			n++
		}
	}
	return n
}
