package cli

import (
	"fmt"
	"io"
	"regexp"

	"github.com/spf13/cobra"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/cluster"
)

func newConfigCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print, check and import cluster specs",
	}
	cmd.AddCommand(newConfigDefaultCmd(e), newConfigLintCmd(e), newConfigImportCmd(e), newConfigFromDirCmd(e))
	return cmd
}

func newConfigDefaultCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "default",
		Short: "Print the embedded default cluster spec",
		Long: `Print the embedded default cluster spec: the topology of "Kubernetes the Hard Way"
(control plane "server", workers node-0 and node-1, service CIDR 10.32.0.0/24,
pod CIDR 10.200.0.0/16). Save it, edit it, and pass it to --config.`,
		Example: "  kubepki config default > cluster.yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := e.stdout.Write(cluster.DefaultYAML())
			return err
		},
	}
}

func newConfigLintCmd(e *env) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "lint FILE",
		Short: "Validate a cluster spec",
		Long: `Validate a cluster spec (or kubeadm's configuration, as --config reads it): unknown fields, CIDRs and IPs, node names, duplicate
nodes, nodes named like a certificate, key or kubeconfig of the catalog (a
worker called admin would get the admin certificate), validity periods and
risky identities. One line per finding; exit 3 if
any finding is an error, 0 otherwise.`,
		Example: "  kubepki config lint cluster.yaml",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := readInput(e, args[0])
			if err != nil {
				return err
			}
			c, fs, err := parseForLint(data, args[0])
			if err != nil {
				return err
			}
			fs = append(fs, catalog.Validate(c)...)
			if err := printFindings(e.stdout, output, args[0], fs); err != nil {
				return err
			}
			if cluster.HasErrors(fs) {
				return findings("%s: %d finding(s), errors among them", args[0], len(fs))
			}
			return nil
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

// parseForLint decodes a spec as cluster.Parse does, except that unknown
// fields, which Parse refuses, are returned as error findings: lint reports
// a misspelled field along with everything else wrong in the spec.
func parseForLint(data []byte, name string) (*cluster.Cluster, []cluster.Finding, error) {
	if cluster.IsKubeadmConfig(data) {
		kc, err := cluster.ParseKubeadm(data, name, cluster.LocalHost())
		if err != nil {
			return nil, nil, err
		}
		return kc.Cluster, nil, nil
	}
	c, err := cluster.Parse(data, name)
	if err == nil {
		return c, nil, nil
	}
	js, jerr := yaml.YAMLToJSONStrict(data)
	if jerr != nil {
		return nil, nil, err
	}
	var lenient cluster.Cluster
	strict, jerr := kjson.UnmarshalStrict(js, &lenient, kjson.DisallowUnknownFields)
	if jerr != nil || len(strict) == 0 || lenient.APIVersion != cluster.APIVersion || lenient.Kind != cluster.Kind {
		return nil, nil, err
	}
	var fs []cluster.Finding
	for _, e := range strict {
		f := cluster.Finding{Severity: cluster.Error, Message: e.Error()}
		if m := unknownField.FindStringSubmatch(f.Message); m != nil {
			f.Field, f.Message = m[1], "unknown field (misspelled?)"
		}
		fs = append(fs, f)
	}
	cluster.SetDefaults(&lenient)
	return &lenient, fs, nil
}

var unknownField = regexp.MustCompile(`^unknown field "(.+)"$`)

func printFindings(w io.Writer, output, name string, fs []cluster.Finding) error {
	if fs == nil {
		fs = []cluster.Finding{}
	}
	return print(w, output, fs, func(w io.Writer) error {
		if len(fs) == 0 {
			fmt.Fprintf(w, "%s: ok\n", name)
		}
		for _, f := range fs {
			fmt.Fprintf(w, "%s: %s\n", name, f)
		}
		return nil
	})
}

func newConfigImportCmd(e *env) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "import-openssl CA.CONF",
		Short: "Convert a Kubernetes-the-Hard-Way openssl ca.conf into a cluster spec",
		Long: `Read an openssl ca.conf in the style of "Kubernetes the Hard Way" and print the
equivalent cluster spec on stdout, with lint findings on stderr for the mistakes
that tutorial is known to carry (the system:system:kube-scheduler group,
kubernetes.svc.cluster.local, legacy nsCertType/nsComment, misshapen node
certificates, admin in system:masters). What the ca.conf declares and is no
such mistake is kept: the serverAuth usage and SANs the tutorial gives
kube-proxy, kube-scheduler and kube-controller-manager go into the spec's
components, so that verify accepts the certificates its openssl commands
make. Exit 3 if a finding is an error. A file openssl refuses is refused
with exit 1, naming the file and line: a section it does not have
(subjectAltName = @alt_names without [alt_names], req_extensions = missing)
or a $variable with no value.`,
		Example: "  kubepki config import-openssl ca.conf > cluster.yaml\n  kubepki init --config cluster.yaml",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := readInput(e, args[0])
			if err != nil {
				return err
			}
			c, fs, err := cluster.ImportOpenSSL(data, args[0])
			if err != nil {
				return err
			}
			spec, err := cluster.Marshal(c)
			if err != nil {
				return err
			}
			for _, f := range fs {
				fmt.Fprintf(e.stderr, "%s\n", f)
			}
			if out != "" {
				if err := writeUserFile(out, spec); err != nil {
					return err
				}
			} else if _, err := e.stdout.Write(spec); err != nil {
				return err
			}
			if cluster.HasErrors(fs) {
				return findings("%s: %d finding(s), errors among them", args[0], len(fs))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "out", "f", "", "write the spec to this file (refuses to overwrite) instead of stdout")
	return cmd
}
