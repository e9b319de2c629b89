// Package controller is kubepki's in-cluster signer and approver for the
// Certificates API: a controller-runtime manager that watches
// CertificateSigningRequests, approves or denies the pending ones its
// policies judge (internal/csr), signs the approved ones for the signer
// names it holds a CA for, and runs as several replicas of which only the
// holder of a Lease acts. It serves Prometheus metrics, /healthz and
// /readyz, and logs structured records that never contain key material,
// requests or certificates.
package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	crcontroller "sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"kubepki.dev/kubepki/internal/csr"
	"kubepki.dev/kubepki/internal/store"
)

// Defaults for Options.
const (
	DefaultMaxDuration      = 365 * 24 * time.Hour // kube-controller-manager's --cluster-signing-duration
	DefaultLeaderElectionID = "kubepki-controller"
	// DefaultWorkers: with no client-side limit the API server's latency
	// bounds a signer, and requests in flight are what it has. On the
	// benchmark's two busy cores 16 workers sometimes took nearly twice as
	// long as 32 and otherwise were within the noise (docs/benchmarks.md).
	// Under a rate limit the extra workers wait on the limiter and cost only
	// their goroutines.
	DefaultWorkers = 32
	DefaultQPS     = 200
	DefaultBurst   = 400
)

// SignerFiles names a signer and its CA files.
type SignerFiles struct {
	Name, CertFile, KeyFile string
}

// Options configure Run.
type Options struct {
	// Signers the controller issues certificates for.
	Signers []SignerFiles
	// InsecureKeys reads CA keys whatever their owner, mode and links.
	// Otherwise a key may be a link only inside its directory, as in a
	// Secret volume (ca.key -> ..data/ca.key), owned by the user or root,
	// and closed to others (a Secret's defaultMode 0400, or 0440 with an
	// fsGroup).
	InsecureKeys bool
	// MaxDuration caps every certificate (and is the approver's limit on
	// spec.expirationSeconds).
	MaxDuration time.Duration
	// Approve turns the approver on: kubelet client renewal always,
	// kubelet-serving once KubeletServing (with ClientPolicy's
	// kubeletServing section added) declares node IP ranges,
	// kube-apiserver-client when ClientPolicy is set.
	Approve      bool
	ClientPolicy *csr.ApprovalPolicy
	// KubeletServing bounds what kubelet serving certificates may name.
	KubeletServing csr.ServingBounds
	// DryRun makes the approver log its decisions and write nothing.
	DryRun bool
	// Workers is the number of CSRs handled at once.
	Workers int
	// LeaderElection makes replicas share one Lease; only its holder
	// acts. The Lease's namespace must exist (Run checks).
	LeaderElection          bool
	LeaderElectionNamespace string
	LeaderElectionID        string
	LeaseDuration           time.Duration
	RenewDeadline           time.Duration
	RetryPeriod             time.Duration
	// ReleaseOnCancel gives the lease up on a clean stop, so that another
	// replica takes over at once instead of after LeaseDuration.
	ReleaseOnCancel bool
	// HTTPAddress serves /metrics, /healthz and /readyz ("" or "0": off).
	HTTPAddress string
	// Profiling also serves Go's profiler at /debug/pprof/ on HTTPAddress,
	// as kube-controller-manager's --profiling does.
	Profiling bool
	// Log receives every record; nil discards.
	Log *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Run runs the controller until ctx is done. The rest config's QPS and
// Burst are used as they are (see the CLI's --kube-api-qps).
func Run(ctx context.Context, cfg *rest.Config, opts Options) error {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Workers <= 0 {
		opts.Workers = DefaultWorkers
	}
	if opts.MaxDuration <= 0 {
		opts.MaxDuration = DefaultMaxDuration
	}
	if len(opts.Signers) == 0 && !opts.Approve {
		return errors.New("nothing to do: configure at least one signer or the approver")
	}
	if opts.LeaderElection && opts.LeaderElectionNamespace == "" {
		return errors.New("leader election needs the Lease's namespace: set --leader-election-namespace")
	}
	log := opts.Log
	metrics := NewMetrics()
	bounds := opts.KubeletServing
	if opts.Approve {
		if opts.ClientPolicy != nil {
			if err := opts.ClientPolicy.KubeletServing.AddTo(&bounds); err != nil {
				return fmt.Errorf("approval policy: %w", err)
			}
		}
		if err := bounds.Validate(); err != nil {
			return err
		}
	}

	signers := map[string]*Signer{}
	for _, sf := range opts.Signers {
		if err := csr.ValidateSignerName(sf.Name); err != nil {
			return err
		}
		if _, dup := signers[sf.Name]; dup {
			return fmt.Errorf("signer %s configured twice", sf.Name)
		}
		name := sf.Name
		keys := store.KeyPolicy{SecretVolume: true, Insecure: opts.InsecureKeys}
		ca, err := LoadCAFiles(sf.CertFile, sf.KeyFile, keys, log.With("signer", name), metrics.caReloaded(name))
		if err != nil {
			return fmt.Errorf("signer %s: %w", name, err)
		}
		metrics.caStale.WithLabelValues(name).Set(0)
		signers[name] = &Signer{Name: name, CA: ca}
	}

	scheme := runtime.NewScheme()
	if err := certv1.AddToScheme(scheme); err != nil {
		return fmt.Errorf("scheme: %w", err)
	}
	if err := corev1.AddToScheme(scheme); err != nil {
		return fmt.Errorf("scheme: %w", err)
	}
	skip := true
	mopts := manager.Options{
		Scheme:                        scheme,
		Logger:                        logr.FromSlogHandler(log.Handler()),
		LeaderElection:                opts.LeaderElection,
		LeaderElectionNamespace:       opts.LeaderElectionNamespace,
		LeaderElectionID:              opts.LeaderElectionID,
		LeaderElectionReleaseOnCancel: opts.ReleaseOnCancel,
		Metrics:                       metricsserver.Options{BindAddress: "0"}, // served below, with our registry
		HealthProbeBindAddress:        "0",
		Cache: cache.Options{
			// The CSR informer holds every CSR of the cluster; managed
			// fields are most of an object's size and never read.
			DefaultTransform: cache.TransformStripManagedFields(),
			ByObject: map[client.Object]cache.ByObject{
				&corev1.Node{}:                      {Transform: nodeAddressesOnly},
				&certv1.CertificateSigningRequest{}: {Transform: slimCSR(opts.Approve)},
			},
		},
		Controller: config.Controller{SkipNameValidation: &skip},
	}
	if opts.LeaseDuration > 0 {
		mopts.LeaseDuration = &opts.LeaseDuration
	}
	if opts.RenewDeadline > 0 {
		mopts.RenewDeadline = &opts.RenewDeadline
	}
	if opts.RetryPeriod > 0 {
		mopts.RetryPeriod = &opts.RetryPeriod
	}
	mgr, err := ctrl.NewManager(cfg, mopts)
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	if opts.LeaderElection {
		if err := checkNamespace(ctx, mgr.GetAPIReader(), opts.LeaderElectionNamespace, log); err != nil {
			return err
		}
	}

	r := &Reconciler{
		Client:      mgr.GetClient(),
		Live:        mgr.GetAPIReader(),
		Signers:     signers,
		DryRun:      opts.DryRun,
		MaxDuration: opts.MaxDuration,
		Metrics:     metrics,
		Log:         log,
		Events:      mgr.GetEventRecorder("kubepki-controller"),
		Now:         opts.Now,
	}
	if opts.Approve {
		if err := mgr.GetFieldIndexer().IndexField(ctx, &corev1.Node{}, nodeAddressIndex, nodeAddressKeys); err != nil {
			return fmt.Errorf("index nodes by address: %w", err)
		}
		nodes := &nodeSource{cache: mgr.GetClient(), live: mgr.GetAPIReader()}
		if bounds.Enabled() {
			log.Info("approving kubelet serving certificates within the declared bounds",
				"ipRanges", prefixStrings(bounds.IPRanges), "dnsSuffixes", bounds.DNSSuffixes,
				"serviceCIDRs", prefixStrings(bounds.ServiceCIDRs), "clusterDomain", bounds.ClusterDomain)
		} else {
			log.Warn("not approving kubelet serving certificates: no node IP ranges declared (--kubelet-serving-ip-ranges, or kubeletServing.ipRanges in --approve-policy); they are left for a person")
		}
		if r.Approver, err = csr.NewApprover(ApproverChains(nodes, opts.MaxDuration, bounds, opts.ClientPolicy)...); err != nil {
			return err
		}
	}
	relevant := predicate.Funcs{
		CreateFunc:  func(e event.CreateEvent) bool { return r.Relevant(e.Object) },
		UpdateFunc:  func(e event.UpdateEvent) bool { return r.Relevant(e.ObjectNew) },
		DeleteFunc:  func(event.DeleteEvent) bool { return false },
		GenericFunc: func(e event.GenericEvent) bool { return r.Relevant(e.Object) },
	}
	err = ctrl.NewControllerManagedBy(mgr).
		Named("kubepki-csr").
		For(&certv1.CertificateSigningRequest{}, builder.WithPredicates(relevant)).
		WithOptions(crcontroller.Options{MaxConcurrentReconciles: opts.Workers}).
		Complete(r)
	if err != nil {
		return fmt.Errorf("create controller: %w", err)
	}
	// Start the CSR informer on every replica, not only on the leader, so
	// that a replica taking over has a warm cache and starts at once.
	if _, err := mgr.GetCache().GetInformer(ctx, &certv1.CertificateSigningRequest{}, cache.BlockUntilSynced(false)); err != nil {
		return fmt.Errorf("CSR informer: %w", err)
	}

	var synced atomic.Bool
	var srv *http.Server
	if opts.HTTPAddress != "" && opts.HTTPAddress != "0" {
		l, err := net.Listen("tcp", opts.HTTPAddress)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", opts.HTTPAddress, err)
		}
		srv = &http.Server{Handler: httpHandler(metrics, &synced, signers, opts.Profiling), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("HTTP server stopped", "err", err)
			}
		}()
		log.Info("serving /metrics, /healthz and /readyz", "address", l.Addr().String())
	}
	if err := mgr.Add(&syncWatcher{cache: mgr.GetCache(), synced: &synced}); err != nil {
		return err
	}
	if err := mgr.Add(&caWatcher{signers: signers, every: caCheckInterval}); err != nil {
		return err
	}
	go func() {
		select {
		case <-mgr.Elected():
			metrics.leader.Set(1)
			log.Info("leading: approving and signing", "lease", opts.LeaderElectionNamespace+"/"+opts.LeaderElectionID)
		case <-ctx.Done():
		}
	}()

	names := make([]string, 0, len(signers))
	for n := range signers {
		names = append(names, n)
	}
	slices.Sort(names)
	log.Info("starting", "signers", names, "approve", opts.Approve, "dryRun", opts.DryRun, "workers", opts.Workers,
		"maxDuration", opts.MaxDuration.String(), "leaderElection", opts.LeaderElection)
	runErr := mgr.Start(ctx)
	metrics.leader.Set(0)
	if srv != nil {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = srv.Shutdown(shutdownCtx)
		cancel()
	}
	t := metrics.Totals()
	log.Info("stopped", "signed", t[metricSigned], "failed", t[metricFailed], "approved", t[metricApproved], "denied", t[metricDenied])
	if runErr != nil {
		return fmt.Errorf("controller: %w", runErr)
	}
	return nil
}

// syncWatcher flips synced once the informer cache has synced; it runs on
// every replica.
type syncWatcher struct {
	cache  cache.Cache
	synced *atomic.Bool
}

// Start waits for the cache, then for the end.
func (s *syncWatcher) Start(ctx context.Context) error {
	if s.cache.WaitForCacheSync(ctx) {
		s.synced.Store(true)
	}
	<-ctx.Done()
	return nil
}

// NeedLeaderElection is false: standby replicas are ready too.
func (s *syncWatcher) NeedLeaderElection() bool { return false }

// caCheckInterval is how often the CA files are looked at when no request
// comes to make the signer look: so that a broken file shows in the log
// and metrics of an idle controller, and of a standby replica, too.
const caCheckInterval = 10 * time.Second

// caWatcher looks at every signer's CA files now and then; it runs on every
// replica.
type caWatcher struct {
	signers map[string]*Signer
	every   time.Duration
}

// Start checks the files every c.every until ctx is done.
func (c *caWatcher) Start(ctx context.Context) error {
	t := time.NewTicker(c.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			for _, s := range c.signers {
				s.CA.Current()
			}
		}
	}
}

// NeedLeaderElection is false: standby replicas report a broken CA file too.
func (c *caWatcher) NeedLeaderElection() bool { return false }

// httpHandler serves the metrics (ours and controller-runtime's global
// registry), liveness and readiness: ready once the cache has synced (every
// CA loaded at start, or Run would have failed); with profiling, Go's
// profiler too.
func httpHandler(m *Metrics, synced *atomic.Bool, signers map[string]*Signer, profiling bool) http.Handler {
	mux := http.NewServeMux()
	if profiling {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("/metrics", promhttp.HandlerFor(prometheus.Gatherers{m.Registry, crmetrics.Registry}, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !synced.Load() {
			http.Error(w, "informer cache not synced", http.StatusServiceUnavailable)
			return
		}
		// A CA file that no longer loads leaves the replica ready: it
		// signs with the CA it loaded before. Restarting it would not
		// help (a restarted replica could not even start), so it stays
		// in service and the body and kubepki_ca_stale say what is wrong.
		names := make([]string, 0, len(signers))
		for n := range signers {
			names = append(names, n)
		}
		slices.Sort(names)
		var b strings.Builder
		b.WriteString("ok\n")
		for _, n := range names {
			if stale, since, err := signers[n].CA.Stale(); stale {
				fmt.Fprintf(&b, "warning: signer %s: CA files do not load since %s (%v); signing with the CA loaded before\n",
					n, since.UTC().Format(time.RFC3339), err)
			}
		}
		_, _ = w.Write([]byte(b.String()))
	})
	return mux
}

// nodeSource reads Nodes for the kubelet-serving policies from the informer
// cache, and from the API server when the cache has not seen the Node: a
// kubelet registers its Node and asks for a serving certificate at once,
// and must not be denied for the informer's lag.
type nodeSource struct {
	cache, live client.Reader
}

// Node implements csr.NodeSource.
func (n *nodeSource) Node(ctx context.Context, name string) (*corev1.Node, error) {
	var node corev1.Node
	key := client.ObjectKey{Name: name}
	err := n.cache.Get(ctx, key, &node)
	if apierrors.IsNotFound(err) {
		err = n.live.Get(ctx, key, &node)
	}
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &node, nil
}

// NodesWithAddress implements csr.NodeSource from the informer cache's
// index of status.addresses. A Node the cache has not seen yet holds
// nothing: the declared ranges still bound what is approved.
func (n *nodeSource) NodesWithAddress(ctx context.Context, address string) ([]string, error) {
	var list corev1.NodeList
	if err := n.cache.List(ctx, &list, client.MatchingFields{nodeAddressIndex: csr.AddressKey(address)}); err != nil {
		return nil, err
	}
	names := make([]string, len(list.Items))
	for i := range list.Items {
		names[i] = list.Items[i].Name
	}
	return names, nil
}

// nodeAddressIndex indexes cached Nodes by each of their status.addresses.
const nodeAddressIndex = "kubepki.status.addresses"

// nodeAddressKeys returns a Node's addresses as csr.AddressKey forms.
func nodeAddressKeys(obj client.Object) []string {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return nil
	}
	var keys []string
	for _, a := range n.Status.Addresses {
		if k := csr.AddressKey(a.Address); k != "" && !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	return keys
}

// checkNamespace fails at once when the Lease's namespace does not exist:
// the elector would otherwise retry "namespaces not found" forever and
// never lead. Any other answer is not an error here: a requester not
// allowed to read namespaces (deploy/'s RBAC grants Leases only) runs in
// its Pod's own, and an API server not reachable yet is waited for by the
// elector.
func checkNamespace(ctx context.Context, r client.Reader, name string, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := r.Get(ctx, client.ObjectKey{Name: name}, &corev1.Namespace{})
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("leader election: namespace %q does not exist: create it or set --leader-election-namespace", name)
	case err != nil && !apierrors.IsForbidden(err):
		log.Warn("cannot check the Lease's namespace", "namespace", name, "err", err)
	}
	return nil
}

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// nodeAddressesOnly keeps of a cached Node what the approver reads: its
// name and status.addresses. A Node's images and conditions are most of
// its size; a cluster of thousands would otherwise cost the controller
// hundreds of megabytes.
func nodeAddressesOnly(obj any) (any, error) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil
	}
	return &corev1.Node{
		TypeMeta:   n.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{Name: n.Name, UID: n.UID, ResourceVersion: n.ResourceVersion},
		Status:     corev1.NodeStatus{Addresses: n.Status.Addresses},
	}, nil
}

// slimCSR is the CSR cache's transform. Besides managed fields, it drops the
// spec (the request, the requester's groups and extra, the usages) of a CSR
// this controller will not act on as it stands: one that is finished
// (issued, failed or denied), or, with the approver off, one that waits for
// a person's decision. Only the signer name, the requester's name and the
// status stay, which is what Relevant, Reconcile's triage and the log read
// of such a CSR. A later version that needs acting on (a person approves)
// comes in a new event and is cached whole. In a cluster of tens of
// thousands of CSRs, most are finished and the request is much of each.
func slimCSR(approve bool) toolscache.TransformFunc {
	stripManaged := cache.TransformStripManagedFields()
	return func(obj any) (any, error) {
		obj, err := stripManaged(obj)
		if err != nil {
			return obj, err
		}
		c, ok := obj.(*certv1.CertificateSigningRequest)
		if !ok {
			return obj, nil
		}
		if csr.Issued(c) || csr.Failed(c) || csr.Denied(c) || (!approve && !csr.Decided(c)) {
			c.Spec = certv1.CertificateSigningRequestSpec{SignerName: c.Spec.SignerName, Username: c.Spec.Username}
		}
		return c, nil
	}
}

// ApproverChains are the approver's policy chains, in order: kubelet
// serving certificates within bounds, kubelet client renewals, and with a
// client policy, kube-apiserver client certificates it allows.
func ApproverChains(nodes csr.NodeSource, maxDuration time.Duration, bounds csr.ServingBounds, clientPolicy *csr.ApprovalPolicy) []csr.Chain {
	chains := []csr.Chain{
		csr.KubeletServingChain(nodes, maxDuration, bounds),
		csr.KubeletClientRenewalChain(maxDuration),
	}
	if clientPolicy != nil {
		chains = append(chains, csr.APIServerClientChain(clientPolicy, maxDuration))
	}
	return chains
}
