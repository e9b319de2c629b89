package cli

import (
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"runtime/pprof"
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
		servingRanges, suffixes    []string
		serviceCIDR                string
		cpuProfile, memProfile     string
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

Approver (--approve): a node renewing its own client certificate; with
--approve-policy FILE, kube-apiserver client certificates the policy allows
(system:masters and system:nodes only when it names them); and kubelet serving
certificates within the bounds the operator declares. A Node's status.addresses
are written by the kubelet itself, so they are not trusted alone: a serving
certificate is approved only for DNS names NODE or NODE.SUFFIX
(--kubelet-serving-dns-suffixes) and IPs inside --kubelet-serving-ip-ranges,
that the Node reports and no other Node holds; never a wildcard, loopback,
an address of --service-cluster-ip-range, a Service name under
svc.--cluster-domain (kubernetes.default.svc...), or the API server's host.
Without declared IP ranges (flag or the policy's kubeletServing.ipRanges),
kubelet serving requests are left for a person. Requests the approver judges
and refuses are denied with the reason in the condition; other requests are
left for a person. --dry-run logs the decisions and writes none.

Recommended: sign kubelet-serving with a CA of its own that API clients do not
trust (--signer kubernetes.io/kubelet-serving=kubelet-serving-ca.crt,...) and
give kube-apiserver --kubelet-certificate-authority=kubelet-serving-ca.crt;
then a kubelet certificate can never pass for the API server. See README.

Several replicas share a Lease (--leader-elect); only its holder acts. Its
namespace is the Pod's own in a cluster, else the kubeconfig context's, else
"default"; a namespace that does not exist is an error at start.
--http-address serves /metrics (Prometheus), /healthz and /readyz.`,
		Example: `  kubepki controller --kubeconfig admin.conf \
    --signer kubernetes.io/kube-apiserver-client=pki/ca.crt,pki/ca.key \
    --signer kubernetes.io/kubelet-serving=pki/kubelet-serving-ca.crt,pki/kubelet-serving-ca.key \
    --signer kubepki.dev/etcd-client=pki/etcd/ca.crt,pki/etcd/ca.key \
    --approve --approve-policy policy.yaml \
    --kubelet-serving-ip-ranges 192.0.2.0/24 --kubelet-serving-dns-suffixes nodes.example.com`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
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
			if o.KubeletServing.IPRanges, err = csr.ParsePrefixes(servingRanges); err != nil {
				return usageError("--kubelet-serving-ip-ranges: %v", err)
			}
			if o.KubeletServing.ServiceCIDRs, err = csr.ParsePrefixes(strings.Split(serviceCIDR, ",")); err != nil {
				return usageError("--service-cluster-ip-range: %v", err)
			}
			o.KubeletServing.DNSSuffixes = suffixes
			if err := o.KubeletServing.Validate(); err != nil {
				return usageError("--kubelet-serving-ip-ranges/--kubelet-serving-dns-suffixes: %v", err)
			}
			if o.DryRun && !o.Approve {
				return usageError("--dry-run applies to the approver: add --approve")
			}
			if len(o.Signers) == 0 && !o.Approve {
				return usageError("nothing to do: give at least one --signer, or --approve")
			}
			if o.Profiling && (o.HTTPAddress == "" || o.HTTPAddress == "0") {
				return usageError("--profiling serves on --http-address: give one")
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

			cc := clientConfig(kubeconfigPath)
			cfg, err := cc.ClientConfig()
			if err != nil {
				return fmt.Errorf("load kubeconfig: %w", err)
			}
			if o.LeaderElectionNamespace == "" {
				// In a Pod: its own namespace; else the context's, or "default".
				if o.LeaderElectionNamespace, _, err = cc.Namespace(); err != nil {
					return fmt.Errorf("load kubeconfig: %w", err)
				}
			}
			apiServerHost(cfg.Host, &o.KubeletServing)
			cfg.QPS, cfg.Burst = qps, burst
			cfg.UserAgent = "kubepki-controller"
			stop, err := startProfiles(cpuProfile, memProfile)
			if err != nil {
				return err
			}
			runErr := controller.Run(cmd.Context(), cfg, o)
			if err := stop(); err != nil && runErr == nil {
				runErr = err
			}
			return runErr
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
	f.StringSliceVar(&servingRanges, "kubelet-serving-ip-ranges", nil, "CIDRs node addresses come from: kubelet serving certificates are approved only for IPs inside them (none: left for a person)")
	f.StringSliceVar(&suffixes, "kubelet-serving-dns-suffixes", nil, "DNS suffixes: kubelet serving certificates may name NODE.SUFFIX besides NODE")
	f.StringVar(&serviceCIDR, "service-cluster-ip-range", csr.DefaultServiceCIDR, "kube-apiserver's --service-cluster-ip-range (comma-separated): never approved in a kubelet serving certificate")
	f.StringVar(&o.KubeletServing.ClusterDomain, "cluster-domain", csr.DefaultClusterDomain, "cluster DNS domain: names under svc.DOMAIN are never approved in a kubelet serving certificate")
	f.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", "", "namespace of the Lease (default: the Pod's namespace in a cluster, else the kubeconfig context's, else default)")
	f.StringVar(&o.LeaderElectionID, "leader-election-id", controller.DefaultLeaderElectionID, "name of the Lease")
	f.DurationVar(&o.LeaseDuration, "lease-duration", 15*time.Second, "how long a lease holder that stops renewing keeps the lease")
	f.DurationVar(&o.RenewDeadline, "renew-deadline", 10*time.Second, "how long the leader retries renewing before it gives up")
	f.DurationVar(&o.RetryPeriod, "retry-period", 2*time.Second, "interval between lease attempts")
	f.BoolVar(&o.ReleaseOnCancel, "leader-elect-release", true, "give the lease up on a clean stop, so another replica takes over at once")
	f.StringVar(&o.HTTPAddress, "http-address", "127.0.0.1:8080", `address for /metrics, /healthz and /readyz ("0" disables; ":8080" in a Pod)`)
	f.BoolVar(&o.Profiling, "profiling", false, "serve Go's profiler at /debug/pprof/ on --http-address")
	f.StringVar(&cpuProfile, "cpu-profile", "", "write a CPU profile of the whole run to this file when the controller stops")
	f.StringVar(&memProfile, "mem-profile", "", "write an allocation profile to this file when the controller stops")
	_ = f.MarkHidden("cpu-profile") // for benchmarks (docs/benchmarks.md)
	_ = f.MarkHidden("mem-profile")
	f.StringVar(&logFormat, "log-format", "json", "log format: json or text")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}

// apiServerHost adds the host of the API server URL to the names or
// addresses a kubelet serving certificate may never hold.
func apiServerHost(server string, b *csr.ServingBounds) {
	u, err := url.Parse(server)
	if err != nil || u.Hostname() == "" {
		return
	}
	if a, err := netip.ParseAddr(u.Hostname()); err == nil {
		b.APIServerIPs = append(b.APIServerIPs, a.Unmap())
		return
	}
	b.APIServerNames = append(b.APIServerNames, u.Hostname())
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

// startProfiles starts a CPU profile into cpuFile (if not empty); the
// returned stop ends it and writes the allocation profile into memFile (if
// not empty), as go test's -cpuprofile and -memprofile do.
func startProfiles(cpuFile, memFile string) (stop func() error, err error) {
	var cpu *os.File
	if cpuFile != "" {
		if cpu, err = os.Create(cpuFile); err != nil {
			return nil, fmt.Errorf("--cpu-profile: %w", err)
		}
		if err := pprof.StartCPUProfile(cpu); err != nil {
			cpu.Close()
			return nil, fmt.Errorf("--cpu-profile: %w", err)
		}
	}
	return func() error {
		if cpu != nil {
			pprof.StopCPUProfile()
			if err := cpu.Close(); err != nil {
				return fmt.Errorf("--cpu-profile: %w", err)
			}
		}
		if memFile == "" {
			return nil
		}
		f, err := os.Create(memFile)
		if err != nil {
			return fmt.Errorf("--mem-profile: %w", err)
		}
		err = pprof.Lookup("allocs").WriteTo(f, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("--mem-profile: %w", err)
		}
		return nil
	}, nil
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
