package cli

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"k8s.io/klog/v2"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"kubepki.dev/kubepki/internal/controller"
	"kubepki.dev/kubepki/internal/csr"
)

func newControllerCmd(e *env) *cobra.Command {
	var (
		o                          controller.Options
		signers                    []string
		kubeconfigPath, policyFile string
		logFormat, logLevel        string
		qps                        float32
		burst                      int
	)
	cmd := &cobra.Command{
		Use:   "controller --signer NAME=CERT,KEY... [--approve]",
		Short: "Run the Certificates API signer and approver (in a cluster, or against one)",
		Long: `Run kubepki's controller for CertificateSigningRequests until stopped.

Signer: for each --signer NAME=CERT,KEY, sign approved requests whose
spec.signerName is NAME with that CA, after checking them against the rules
Kubernetes defines for NAME (kubernetes.io/kube-apiserver-client,
kubernetes.io/kube-apiserver-client-kubelet, kubernetes.io/kubelet-serving) or,
for a custom NAME such as kubepki.dev/etcd-client, kubepki's (leaf certificates
only). A request that breaks them gets the Failed condition and no certificate.
spec.expirationSeconds is honoured as kube-controller-manager does: at least
10 minutes, at most --max-duration, NotBefore back-dated 5 minutes, never past
the CA. The certificate is always CA:FALSE. The CA files are read again when
they change on disk (a Secret volume's update included); a change that does
not load (garbage, a truncated file, a key that is not the certificate's) is
logged once and shown by kubepki_ca_stale and /readyz, and the last good CA
goes on signing.

Approver (--approve): kubelet serving certificates for exactly the node's own
names and addresses (status.addresses of its Node), a node renewing its own
client certificate, and, with --approve-policy FILE, kube-apiserver client
certificates the policy allows (system:masters and system:nodes only when it
names them). Everything else for kubelet-serving is denied, with the reason in
the condition; other requests are left for a person. --dry-run logs the
decisions and writes none.

Several replicas share a Lease (--leader-elect); only its holder acts.
--http-address serves /metrics (Prometheus), /healthz and /readyz.`,
		Example: `  kubepki controller --kubeconfig admin.conf \
    --signer kubernetes.io/kube-apiserver-client=pki/ca.crt,pki/ca.key \
    --signer kubernetes.io/kubelet-serving=pki/ca.crt,pki/ca.key \
    --signer kubepki.dev/etcd-client=pki/etcd/ca.crt,pki/etcd/ca.key \
    --approve --approve-policy policy.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, s := range signers {
				sf, err := parseSignerFlag(s)
				if err != nil {
					return err
				}
				o.Signers = append(o.Signers, sf)
			}
			if policyFile != "" {
				if !o.Approve {
					return usageError("--approve-policy needs --approve")
				}
				data, err := os.ReadFile(policyFile)
				if err != nil {
					return fmt.Errorf("read approval policy: %w", err)
				}
				if o.ClientPolicy, err = csr.ParseApprovalPolicy(data); err != nil {
					return fmt.Errorf("%s: %w", policyFile, err)
				}
			}
			if o.DryRun && !o.Approve {
				return usageError("--dry-run applies to the approver: add --approve")
			}
			if len(o.Signers) == 0 && !o.Approve {
				return usageError("nothing to do: give at least one --signer, or --approve")
			}
			log, err := newLogger(e, logFormat, logLevel)
			if err != nil {
				return err
			}
			// controller-runtime and client-go (leader election) log
			// through process-wide loggers; route them to ours.
			lr := logr.FromSlogHandler(log.Handler())
			ctrllog.SetLogger(lr)
			klog.SetLogger(lr)
			o.Log, o.Now, o.InsecureKeys = log, e.now, e.insecureKeys

			cfg, err := clientConfig(kubeconfigPath).ClientConfig()
			if err != nil {
				return fmt.Errorf("load kubeconfig: %w", err)
			}
			cfg.QPS, cfg.Burst = qps, burst
			cfg.UserAgent = "kubepki-controller"
			return controller.Run(cmd.Context(), cfg, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&kubeconfigPath, "kubeconfig", "", "kubeconfig (default $KUBECONFIG, ~/.kube/config, or the in-cluster service account)")
	f.StringArrayVar(&signers, "signer", nil, "NAME=CERT,KEY: sign for signer NAME with this CA (repeatable)")
	f.DurationVar(&o.MaxDuration, "max-duration", controller.DefaultMaxDuration, "longest certificate issued (kube-controller-manager's --cluster-signing-duration); the approver denies longer expirationSeconds")
	f.BoolVar(&o.Approve, "approve", false, "approve or deny pending requests by kubepki's policies")
	f.StringVar(&policyFile, "approve-policy", "", "ApprovalPolicy file for kubernetes.io/kube-apiserver-client requests")
	f.BoolVar(&o.DryRun, "dry-run", false, "approver: log decisions, write none")
	f.IntVar(&o.Workers, "workers", controller.DefaultWorkers, "requests handled at once")
	f.Float32Var(&qps, "kube-api-qps", controller.DefaultQPS, "client-side limit on API requests per second (-1: none, API Priority and Fairness alone)")
	f.IntVar(&burst, "kube-api-burst", controller.DefaultBurst, "client-side burst of API requests")
	f.BoolVar(&o.LeaderElection, "leader-elect", true, "share a Lease with other replicas; only its holder acts")
	f.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", controller.DefaultLeaderElectionNamespace, "namespace of the Lease")
	f.StringVar(&o.LeaderElectionID, "leader-election-id", controller.DefaultLeaderElectionID, "name of the Lease")
	f.DurationVar(&o.LeaseDuration, "lease-duration", 15*time.Second, "how long a lease holder that stops renewing keeps the lease")
	f.DurationVar(&o.RenewDeadline, "renew-deadline", 10*time.Second, "how long the leader retries renewing before it gives up")
	f.DurationVar(&o.RetryPeriod, "retry-period", 2*time.Second, "interval between lease attempts")
	f.BoolVar(&o.ReleaseOnCancel, "leader-elect-release", true, "give the lease up on a clean stop, so another replica takes over at once")
	f.StringVar(&o.HTTPAddress, "http-address", "127.0.0.1:8080", `address for /metrics, /healthz and /readyz ("0" disables; ":8080" in a Pod)`)
	f.StringVar(&logFormat, "log-format", "json", "log format: json or text")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}

// parseSignerFlag reads NAME=CERT,KEY.
func parseSignerFlag(s string) (controller.SignerFiles, error) {
	name, files, ok := strings.Cut(s, "=")
	cert, key, ok2 := strings.Cut(files, ",")
	if !ok || !ok2 || name == "" || cert == "" || key == "" || strings.Contains(key, ",") {
		return controller.SignerFiles{}, usageError("--signer %q: want NAME=CERT,KEY, e.g. kubernetes.io/kube-apiserver-client=ca.crt,ca.key", s)
	}
	if err := csr.ValidateSignerName(name); err != nil {
		return controller.SignerFiles{}, usageError("--signer: %v", err)
	}
	return controller.SignerFiles{Name: name, CertFile: cert, KeyFile: key}, nil
}

// newLogger returns a structured logger on stderr.
func newLogger(e *env, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(e.stderr, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(e.stderr, opts)), nil
	}
	return nil, usageError("--log-format %q: want json or text", format)
}
