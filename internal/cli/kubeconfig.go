package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/kubeconfig"
	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/reconcile"
	"kubepki.dev/kubepki/internal/store"
)

func newKubeconfigCmd(e *env) *cobra.Command {
	var (
		f      specFlags
		output string
	)
	cmd := &cobra.Command{
		Use:   "kubeconfig [NAME...]",
		Short: "Create the plan's kubeconfigs, or one for an extra user",
		Long: `Create the kubeconfigs of the plan (all, or those named) that are missing, with
certificates embedded, written 0600 through client-go's clientcmd. Existing
kubeconfigs are kept, and reported if they drifted.

hardway: admin, kube-proxy, kube-controller-manager, kube-scheduler (these two
against https://127.0.0.1:PORT) and one per worker node.
kubeadm: admin.conf, super-admin.conf, controller-manager.conf, scheduler.conf
and kubelet-<node>.conf per node (installed as /etc/kubernetes/kubelet.conf).`,
		Example: `  kubepki kubeconfig --dir ./pki
  kubepki kubeconfig admin node-0 --dir ./pki
  kubepki kubeconfig user jane --group developers --dir ./pki`,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, plan, err := f.load()
			if err != nil {
				return err
			}
			for _, a := range args {
				if _, ok := plan.Kubeconfig(a); !ok {
					var names []string
					for _, k := range plan.Kubeconfigs {
						names = append(names, k.Name)
					}
					return usageError("no kubeconfig %q in the %s plan (have: %s)", a, plan.Profile, strings.Join(names, ", "))
				}
			}
			if len(args) > 0 {
				// Only the kubeconfigs named are to be created.
				named := *plan
				named.Kubeconfigs = slices.DeleteFunc(slices.Clone(plan.Kubeconfigs), func(k catalog.KubeconfigSpec) bool {
					return !slices.Contains(args, k.Name)
				})
				plan = &named
			}
			st := f.store(e, plan.Profile)
			release, err := forWrite(e, st)
			if err != nil {
				return err
			}
			defer release()
			results, err := reconcile.Apply(cmd.Context(), plan, st, e.now(), reconcile.Options{Progress: progress(e.stderr), OnTighten: func(t reconcile.Tightened) {
				fmt.Fprintf(e.stderr, "tightened %s: mode %04o -> %04o\n", t.Path, t.Before, t.After)
			}})
			if err != nil {
				return err
			}
			// The kubeconfigs, and any CA or certificate that had to be
			// created for them: no file is written unreported.
			results = slices.DeleteFunc(results, func(r reconcile.Result) bool {
				return r.Kind != reconcile.KindKubeconfig && r.Action != reconcile.Created
			})
			return reportResults(e, output, f.dir, plan.Profile, results)
		},
	}
	f.add(cmd, true)
	addOutputFlag(cmd, &output)
	cmd.AddCommand(newKubeconfigUserCmd(e))
	return cmd
}

func newKubeconfigUserCmd(e *env) *cobra.Command {
	var (
		f            specFlags
		groups       []string
		ttl          time.Duration
		server       string
		out          string
		allowMasters bool
		allowNodes   bool
		allowSystem  bool
	)
	cmd := &cobra.Command{
		Use:   "user NAME",
		Short: "Issue a client certificate for a person or bot and write its kubeconfig",
		Long: `Issue a client certificate (CN=NAME, O=each --group) from the cluster CA and
write a kubeconfig for it. The certificate is valid for --ttl, never past the
CA. NAME follows the rule of the spec's users (one plain file name: no
slashes, no leading dot). system:masters is refused unless --allow-masters:
that group bypasses RBAC, and a certificate cannot be revoked short of
rotating the CA; bind a ClusterRole to a group instead. A kubelet's identity
(system:node:NAME, group system:nodes) is refused unless --allow-nodes, and
any other system identity (system:kube-controller-manager,
system:serviceaccount:NS:NAME, a group starting with system:) unless
--allow-system: the plan's own kubeconfigs come from 'kubepki kubeconfig'.
These are the rules of 'kubepki sign' too; a refusal exits 2.`,
		Example: `  kubepki kubeconfig user jane --group developers --ttl 720h --dir ./pki
  kubepki kubeconfig user ci-bot --group ci --server https://api.example.com:6443 --out ci.kubeconfig`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := cluster.CheckUserName(name); err != nil {
				return usageError("user name: %v", err)
			}
			if ttl <= 0 {
				return usageError("--ttl must be positive")
			}
			c, plan, err := f.load()
			if err != nil {
				return err
			}
			alg, _ := pki.ParseKeyAlgorithm(c.KeyAlgorithm)
			spec := catalog.UserCert(c, name, groups, ttl, alg)
			if err := catalog.RequestGate(c, catalog.Request{Subject: spec.Profile.Subject}, catalog.Allow{Masters: allowMasters, Nodes: allowNodes, System: allowSystem}); err != nil {
				return usageError("%v", err)
			}
			st := f.store(e, plan.Profile)
			release, err := forWrite(e, st)
			if err != nil {
				return err
			}
			defer release()
			caSpec, _ := plan.Cert("ca")
			ca, err := st.ReadCA(caSpec.Path)
			if err != nil {
				return fmt.Errorf("read cluster CA: %w", err)
			}
			if ca.Key == nil {
				return fmt.Errorf("%s is absent (external CA): kubepki cannot issue %s's certificate here; have a CSR for CN=%s signed where the CA key is ('kubepki sign --client')", st.KeyPath(caSpec.Path), name, name)
			}
			if out == "" {
				out = st.KubeconfigPath(name + ".kubeconfig")
				// The plan's own kubeconfigs live in that directory too.
				for _, k := range plan.Kubeconfigs {
					if k.File == name+".kubeconfig" {
						return usageError("%s is the plan's %s kubeconfig; name the user differently or pass --out", out, k.Name)
					}
				}
			}
			if store.Exists(out) {
				return fmt.Errorf("%s already exists; not overwriting it", out)
			}
			key, err := pki.GenerateKey(alg)
			if err != nil {
				return err
			}
			cert, err := ca.Issue(key.Public(), spec.Profile, e.now())
			if err != nil {
				return err
			}
			keyPEM, err := pki.EncodeKey(key)
			if err != nil {
				return err
			}
			if server == "" {
				server = "https://" + c.APIServer.Endpoint
			}
			cfg := kubeconfig.New(kubeconfig.Params{
				Cluster: c.Name, User: name, Context: name + "@" + c.Name, Server: server,
				CA: pki.EncodeCert(ca.Cert), Cert: pki.EncodeCert(cert), Key: keyPEM,
			})
			if err := kubeconfig.Create(out, cfg); err != nil {
				if store.Exists(out) {
					return fmt.Errorf("%s already exists; not overwriting it", out)
				}
				return err
			}
			fmt.Fprintf(e.stdout, "wrote %s: user %s, groups [%s], valid until %s\n", out, name, strings.Join(groups, ", "), cert.NotAfter.UTC().Format(time.RFC3339))
			return nil
		},
	}
	f.add(cmd, false)
	cmd.Flags().StringSliceVar(&groups, "group", nil, "group (certificate O), repeatable")
	cmd.Flags().DurationVar(&ttl, "ttl", 720*time.Hour, "validity of the certificate")
	cmd.Flags().StringVar(&server, "server", "", "API server URL (default https://<spec apiServer.endpoint>)")
	cmd.Flags().StringVar(&out, "out", "", "kubeconfig file to write (default NAME.kubeconfig in the kubeconfig directory)")
	cmd.Flags().BoolVar(&allowMasters, "allow-masters", false, "allow the system:masters group")
	cmd.Flags().BoolVar(&allowNodes, "allow-nodes", false, "allow a kubelet's identity (system:node:NAME, group system:nodes)")
	cmd.Flags().BoolVar(&allowSystem, "allow-system", false, "allow another Kubernetes system identity (a CN or group starting with system:)")
	return cmd
}

// reportResults prints reconcile results and turns them into the exit
// status: 3 when something was left untouched or failed.
func reportResults(e *env, output, dir string, profile catalog.Profile, results []reconcile.Result) error {
	if err := print(e.stdout, output, results, func(w io.Writer) error {
		return writeInitText(w, dir, profile, results)
	}); err != nil {
		return err
	}
	bad := 0
	for _, r := range results {
		if r.Action == reconcile.Untouched || r.Action == reconcile.Failed {
			bad++
		}
	}
	if bad > 0 {
		return findings("%d item(s) need attention in %s (see above)", bad, dir)
	}
	return nil
}
