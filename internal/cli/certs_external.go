package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/lifecycle"
	"kubepki.dev/kubepki/internal/pki"
)

func newGenerateCSRCmd(e *env) *cobra.Command {
	var (
		f      specFlags
		csrDir string
		output string
	)
	cmd := &cobra.Command{
		Use:   "generate-csr [all|NAME...] --csr-dir DIR",
		Short: "Write new keys and CSRs for an external CA to sign",
		Long: `Write, for each certificate (all by default), a new private key (0600) and a CSR
carrying the subject, SANs and key/extended usages the plan asks for, into
--csr-dir. Have the external CA sign them (openssl x509 -req, a corporate CA,
...) and install the results with 'kubepki certs install'. Never overwrites.

Embedded kubeconfig certificates are named after their kubeconfig
(admin.conf.key, admin.conf.csr), as kubeadm names them.`,
		Example: `  kubepki certs generate-csr --dir /etc/kubernetes/pki --profile kubeadm --csr-dir ./csr
  kubepki certs generate-csr apiserver admin.conf --csr-dir ./csr`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if csrDir == "" {
				return usageError("--csr-dir is required")
			}
			_, plan, err := f.load()
			if err != nil {
				return err
			}
			files, err := lifecycle.GenerateCSRs(plan, f.store(e, plan.Profile), args, csrDir)
			if err != nil {
				return nameError(err)
			}
			return print(e.stdout, output, files, func(w io.Writer) error {
				for _, c := range files {
					fmt.Fprintf(w, "%s: %s (key %s)\n", c.Name, c.CSR, c.Key)
				}
				return nil
			})
		},
	}
	f.add(cmd, false)
	cmd.Flags().StringVar(&csrDir, "csr-dir", "", "directory for the keys and CSRs")
	_ = cmd.MarkFlagDirname("csr-dir")
	addOutputFlag(cmd, &output)
	return cmd
}

func newInstallCmd(e *env) *cobra.Command {
	var (
		f      specFlags
		csrDir string
		from   string
		output string
	)
	cmd := &cobra.Command{
		Use:   "install --csr-dir DIR --from SIGNED_DIR",
		Short: "Install certificates an external CA signed for 'generate-csr'",
		Long: `Install the certificates an external CA signed (SIGNED_DIR/<name>.crt for each
key in --csr-dir) with their keys into the PKI directory (or their kubeconfig).
Each is checked first: it matches the key generated with its CSR, chains to
the cluster's CA certificate, is valid now, and has the subject, SANs and
usages of the plan. One failed check refuses the whole install; replaced
files are backed up to DIR/.backup/<timestamp>/.`,
		Example: "  kubepki certs install --dir /etc/kubernetes/pki --profile kubeadm --csr-dir ./csr --from ./signed",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if csrDir == "" || from == "" {
				return usageError("--csr-dir and --from are required")
			}
			_, plan, err := f.load()
			if err != nil {
				return err
			}
			st := f.store(e, plan.Profile)
			release, err := forWrite(e, st)
			if err != nil {
				return err
			}
			defer release()
			rep, err := lifecycle.Install(plan, st, csrDir, from, e.now())
			if err != nil {
				return err
			}
			return print(e.stdout, output, rep, func(w io.Writer) error {
				for _, i := range rep.Installed {
					fmt.Fprintf(w, "installed %s (until %s): %v\n", i.Name, i.NotAfter.UTC().Format(time.RFC3339), i.Files)
				}
				if rep.Backup != "" {
					fmt.Fprintf(w, "backup of the replaced files: %s\n", rep.Backup)
				}
				return nil
			})
		},
	}
	f.add(cmd, false)
	cmd.Flags().StringVar(&csrDir, "csr-dir", "", "directory generate-csr wrote the keys and CSRs to")
	cmd.Flags().StringVar(&from, "from", "", "directory of the signed certificates")
	addOutputFlag(cmd, &output)
	return cmd
}

func newSignCmd(e *env) *cobra.Command {
	var (
		caCert, caKey, csrFile, out string
		usages                      []string
		ttl                         time.Duration
		client, server              bool
		config                      string
		allow                       catalog.Allow
	)
	cmd := &cobra.Command{
		Use:   "sign --ca-cert F --ca-key F --csr F [--client|--server|--usages ...]",
		Short: "Sign a CSR with a CA, as 'openssl x509 -req' but with Kubernetes' rules",
		Long: `Sign a CSR (made by openssl, kubepki or any tool) with a CA, the step
'openssl x509 -req -CA ca.crt -CAkey ca.key -copy_extensions copyall' of the
hard way, with the rules kubepki's catalog follows: the certificate is never a
CA (a CSR asking for CA:TRUE is refused); only client and server auth; SANs
from the CSR only for a serving certificate (a client certificate's identity is
its CN and O), and only DNS names and IPs; keyEncipherment only for RSA keys;
NotBefore back-dated 5 minutes; never valid past the CA.

It refuses, as 'kubepki kubeconfig user' does, and exits 2:
  - group system:masters, which bypasses RBAC (unless --allow-masters);
  - a kubelet's identity, CN=system:node:NAME or group system:nodes
    (unless --allow-nodes);
  - any other system identity, a CN or group starting with system:
    (system:kube-controller-manager, system:serviceaccount:NS:NAME,
    system:anonymous, …), which RBAC's default bindings give rights to
    (unless --allow-system);
  - RSA keys under 2048 bits and ECDSA curves under P-256 (no override);
  - SANs that impersonate the API server or every local endpoint: a
    wildcard, kubernetes, kubernetes.default, kubernetes.default.svc[.*], the
    service IP of the spec (--config; default the embedded spec's), localhost
    and loopback addresses, the API server's endpoint, and every name or
    address the spec gives a certificate of another identity (a node's IP,
    etcd's names) (unless --allow-san NAME for each), except those the spec
    gives a certificate of exactly the CSR's CN and O (the API server's CSR
    signed with --server); a CN that reads as a host name is judged the same
    way.
Before signing it prints the identity (CN, O), the SANs and the usages on
standard error.

Without --client, --server or --usages, the usages the CSR requests are used.`,
		Example: `  kubepki sign --ca-cert ca.crt --ca-key ca.key --csr admin.csr --client --out admin.crt
  kubepki sign --ca-cert ca.crt --ca-key ca.key --csr node-0.csr --client --server --allow-nodes --ttl 8760h
  kubepki sign --ca-cert ca.crt --ca-key ca.key --csr kube-api-server.csr --client --server --config cluster.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if caCert == "" || caKey == "" || csrFile == "" {
				return usageError("--ca-cert, --ca-key and --csr are required")
			}
			var us []pki.Usage
			for _, u := range usages {
				us = append(us, pki.Usage(u))
			}
			if client {
				us = append(us, pki.UsageClientAuth)
			}
			if server {
				us = append(us, pki.UsageServerAuth)
			}
			certPEM, err := readInput(e, caCert)
			if err != nil {
				return err
			}
			keyPEM, err := readKey(e, caKey)
			if err != nil {
				return err
			}
			csrPEM, err := readInput(e, csrFile)
			if err != nil {
				return err
			}
			cert, err := pki.ParseCert(certPEM)
			if err != nil {
				return fmt.Errorf("%s: %w", caCert, err)
			}
			key, err := pki.ParseKey(keyPEM)
			if err != nil {
				return fmt.Errorf("%s: %w", caKey, err)
			}
			if !cert.IsCA {
				return fmt.Errorf("%s: not a CA certificate (CA:FALSE)", caCert)
			}
			if !pki.KeyMatches(cert.PublicKey, key) {
				return fmt.Errorf("%s does not match %s", caKey, caCert)
			}
			csr, err := pki.ParseCSR(csrPEM)
			if err != nil {
				return fmt.Errorf("%s: %w", csrFile, err)
			}
			profile, err := pki.ProfileFromCSR(csr, us, ttl)
			if err != nil {
				return fmt.Errorf("%s: %w", csrFile, err)
			}
			spec, err := loadSpec(config)
			if err != nil {
				return err
			}
			req := catalog.Request{Subject: profile.Subject, DNSNames: profile.DNSNames, IPs: profile.IPs, PublicKey: csr.PublicKey}
			if err := catalog.RequestGate(spec, req, allow); err != nil {
				return usageError("%s: %v", csrFile, err)
			}
			fmt.Fprintf(e.stderr, "signing %s: CN=%s O=[%s] SANs=[%s] usages=[%s] key %s\n", csrFile,
				profile.Subject.CommonName, strings.Join(profile.Subject.Organization, ", "),
				strings.Join(pki.SANs(profile.DNSNames, profile.IPs), ", "), joinUsages(profile.Usages), pki.AlgorithmOf(csr.PublicKey))
			issued, err := (&pki.CA{Cert: cert, Key: key}).Issue(csr.PublicKey, profile, e.now())
			if err != nil {
				return err
			}
			if out == "" {
				_, err := e.stdout.Write(pki.EncodeCert(issued))
				return err
			}
			if err := writeUserFile(out, pki.EncodeCert(issued)); err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "signed %s: CN=%s, until %s\n", out, issued.Subject.CommonName, issued.NotAfter.UTC().Format(time.RFC3339))
			return nil
		},
	}
	cmd.Flags().StringVar(&caCert, "ca-cert", "", "CA certificate (PEM)")
	cmd.Flags().StringVar(&caKey, "ca-key", "", "CA private key (PEM)")
	cmd.Flags().StringVar(&csrFile, "csr", "", "certificate request (PEM), - for stdin")
	cmd.Flags().StringSliceVar(&usages, "usages", nil, `extended usages: "client auth", "server auth"`)
	cmd.Flags().BoolVar(&client, "client", false, "client auth usage")
	cmd.Flags().BoolVar(&server, "server", false, "server auth usage (allows the CSR's DNS and IP SANs)")
	cmd.Flags().DurationVar(&ttl, "ttl", 365*24*time.Hour, "validity (capped at the CA's NotAfter)")
	cmd.Flags().StringVar(&out, "out", "", "write the certificate here (refuses to overwrite) instead of stdout")
	cmd.Flags().StringVar(&config, "config", "", "cluster spec: its service IP is reserved, and the SANs it gives a certificate of the CSR's identity are allowed (default: the embedded default)")
	_ = cmd.MarkFlagFilename("config", "yaml", "yml")
	cmd.Flags().BoolVar(&allow.Masters, "allow-masters", false, "allow the system:masters group")
	cmd.Flags().BoolVar(&allow.Nodes, "allow-nodes", false, "allow a kubelet's identity (system:node:NAME, group system:nodes)")
	cmd.Flags().BoolVar(&allow.System, "allow-system", false, "allow another Kubernetes system identity (a CN or group starting with system:)")
	cmd.Flags().StringSliceVar(&allow.SANs, "allow-san", nil, "allow this reserved SAN (wildcard, kubernetes.default.svc, service IP, loopback), repeatable")
	return cmd
}

// loadSpec reads and validates a spec file, or returns the embedded
// default.
func loadSpec(path string) (*cluster.Cluster, error) {
	if path == "" {
		return cluster.Default(), nil
	}
	c, err := cluster.Load(path)
	if err != nil {
		return nil, err
	}
	if err := checkSpec(c, path); err != nil {
		return nil, err
	}
	return c, nil
}

func joinUsages(us []pki.Usage) string {
	var out []string
	for _, u := range us {
		out = append(out, string(u))
	}
	return strings.Join(out, ", ")
}
