package e2e

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	certclient "k8s.io/client-go/kubernetes/typed/certificates/v1"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"kubepki.dev/kubepki/internal/csr"
	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/testenv"
)

// benchSigner is one signer configuration under comparison: a process
// (bin and args) or a writer inside the test process.
type benchSigner struct {
	name string
	bin  func(e *certAPI) string
	// args are the process's arguments; profile, when not empty, is a
	// path prefix for profiles of this run (kubepki's only).
	args   func(e *certAPI, profile string) []string
	writer func(ctx context.Context) error
}

// benchRun is one timed run.
type benchRun struct {
	total     time.Duration // signer start → last certificate
	first     time.Duration // signer start → first certificate
	usage     benchUsage    // the signer process's, read after the last certificate (zero for a writer)
	apiserver time.Duration // kube-apiserver's CPU time from signer start to last certificate
	test      time.Duration // the test process's CPU time, the same span: its watch, and a writer's work
}

// steady is the time from the first certificate to the last: the signer's
// throughput, without its start-up.
func (r benchRun) steady() time.Duration { return r.total - r.first }

// Names of the bare writers, the API server's own ceiling.
const (
	benchBare      = "bare writer (32 workers, protobuf, no limit, no watch)"
	benchBareWatch = "bare writer + watch on CSRs"
	benchBareSign  = "bare writer + watch + parse, verify and sign each request"
)

// BenchmarkCSRSigning times how long signers take to issue a backlog of
// approved CSRs on the same real API server with the same CA: per run, N
// approved kubernetes.io/kube-apiserver-client CSRs are waiting, the signer
// is started, and the clock stops when the last one carries a certificate
// (watched, not polled). The signers are kubepki's controller,
// kube-controller-manager's csrsigning controller, and two bare writers in
// the test process that only write a ready-made certificate with
// UpdateStatus (benchBareWriter), with and without a watch on CSRs: the
// API server's own write ceiling. The signers take turns within each run,
// each run starting one further down the list, so drift on the machine
// hits them alike. For the processes it reads CPU time and peak RSS from
// /proc after the last certificate. Then it measures the controller's
// resident memory with an empty cache and with M CSRs in it.
//
// It is not part of `go test ./...` (benchmarks only run with -bench) and
// needs KUBEPKI_BENCH=1 besides:
//
//	KUBEPKI_BENCH=1 go test ./test/e2e -run '^$' -bench BenchmarkCSRSigning -benchtime 1x -timeout 60m -v
//
// KUBEPKI_BENCH_CSRS (default 2000) and KUBEPKI_BENCH_RUNS (default 3)
// change the size; KUBEPKI_BENCH_ONLY (a regexp) keeps only the matching
// signers besides kubepki's default; KUBEPKI_BENCH_CACHE_CSRS (default
// 50000, 0 skips) is M; KUBEPKI_BENCH_PROFILE names a directory for the
// kubepki controller's CPU and allocation profiles of every run (read them
// with go tool pprof -top); KUBEPKI_BENCH_OUT names a file for the markdown
// table (docs/benchmarks.md quotes it).
func BenchmarkCSRSigning(b *testing.B) {
	if os.Getenv("KUBEPKI_BENCH") == "" {
		b.Skip("set KUBEPKI_BENCH=1 to run (it takes several minutes)")
	}
	n := benchEnvInt(b, "KUBEPKI_BENCH_CSRS", 2000, 1)
	runs := benchEnvInt(b, "KUBEPKI_BENCH_RUNS", 3, 1)
	cached := benchEnvInt(b, "KUBEPKI_BENCH_CACHE_CSRS", 50000, 0)
	profileDir := os.Getenv("KUBEPKI_BENCH_PROFILE")
	e := newCertAPI(b)
	fast, err := benchWriterClient(e.admin)
	if err != nil {
		b.Fatal(err)
	}

	reqs := make([][]byte, n)
	for i := range reqs {
		reqs[i] = benchRequest(b, fmt.Sprintf("bench-%04d", i))
	}
	// The bare writers' ready-made certificate: what kubepki would issue
	// for the first request, so that every write carries as many bytes.
	req, err := csr.ParseRequest(reqs[0])
	if err != nil {
		b.Fatal(err)
	}
	readyMade, err := csr.Sign(e.ca, req, benchUsages, time.Hour, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	readyPEM := pki.EncodeCert(readyMade)

	kubepkiBin := func(e *certAPI) string { return e.kubepki }
	kcmBin := func(e *certAPI) string { return e.bins.KubeControllerManager }
	ours := func(extra ...string) func(e *certAPI, profile string) []string {
		return func(e *certAPI, profile string) []string {
			args := append([]string{"controller", "--kubeconfig=" + e.admin,
				"--signer=kubernetes.io/kube-apiserver-client=" + e.caCert + "," + e.caKey,
				"--leader-elect=false", "--http-address=0"}, extra...)
			if profile != "" {
				args = append(args, "--cpu-profile="+profile+".cpu.pprof", "--mem-profile="+profile+".allocs.pprof")
			}
			return args
		}
	}
	kcm := func(extra ...string) func(e *certAPI, profile string) []string {
		return func(e *certAPI, _ string) []string {
			return append([]string{"--kubeconfig=" + e.admin, "--controllers=csrsigning",
				"--cluster-signing-cert-file=" + e.caCert, "--cluster-signing-key-file=" + e.caKey,
				"--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(testenv.FreePort(b))}, extra...)
		}
	}
	bare := func(watch bool, ca *pki.CA) func(ctx context.Context) error {
		return func(ctx context.Context) error { return benchBareWriter(ctx, fast, readyPEM, watch, ca) }
	}
	signers := []benchSigner{
		{name: "kubepki", bin: kubepkiBin, args: ours()},
		{name: "kube-controller-manager", bin: kcmBin, args: kcm()},
		// Each signer with the other's client limits and worker count,
		// to show where the difference comes from.
		{name: "kubepki --kube-api-qps=20 --kube-api-burst=30 --workers=5", bin: kubepkiBin, args: ours("--kube-api-qps=20", "--kube-api-burst=30", "--workers=5")},
		{name: "kube-controller-manager --kube-api-qps=200 --kube-api-burst=400", bin: kcmBin, args: kcm("--kube-api-qps=200", "--kube-api-burst=400")},
		// No client-side limit at all: what the API server itself allows.
		{name: "kubepki --kube-api-qps=-1", bin: kubepkiBin, args: ours("--kube-api-qps=-1")},
		// The default before it became 32.
		{name: "kubepki --kube-api-qps=-1 --workers=16", bin: kubepkiBin, args: ours("--kube-api-qps=-1", "--workers=16")},
		{name: "kube-controller-manager --kube-api-qps=-1", bin: kcmBin, args: kcm("--kube-api-qps=-1")},
		// The API server's own ceiling.
		{name: benchBare, writer: bare(false, nil)},
		{name: benchBareWatch, writer: bare(true, nil)},
		// The floor of any signer: the same writes, the watch, and the
		// request's signature checked and the certificate signed.
		{name: benchBareSign, writer: bare(true, e.ca)},
	}
	if only := os.Getenv("KUBEPKI_BENCH_ONLY"); only != "" {
		re, err := regexp.Compile(only)
		if err != nil {
			b.Fatalf("KUBEPKI_BENCH_ONLY: %v", err)
		}
		signers = slices.DeleteFunc(signers, func(s benchSigner) bool { return s.name != "kubepki" && !re.MatchString(s.name) })
	}
	load := []string{benchLoadavg(b)}
	results := map[string][]benchRun{}
	for run := 1; run <= runs; run++ {
		for i := range signers {
			s := signers[(i+run-1)%len(signers)]
			profile := ""
			if profileDir != "" && s.bin != nil && strings.HasPrefix(s.name, "kubepki") {
				profile = filepath.Join(profileDir, fmt.Sprintf("%s-run%d", benchSlug(s.name), run))
			}
			r := benchOnce(b, e, fast, s, reqs, profile)
			results[s.name] = append(results[s.name], r)
			b.Logf("run %d/%d %-62s %4d certificates in %7.2fs (first after %.2fs, first → last %.2fs; cpu %.2fs, peak RSS %d MiB; kube-apiserver cpu %.2fs, test cpu %.2fs)",
				run, runs, s.name, n, r.total.Seconds(), r.first.Seconds(), r.steady().Seconds(), r.usage.cpu.Seconds(), r.usage.peakRSS>>20,
				r.apiserver.Seconds(), r.test.Seconds())
		}
		load = append(load, benchLoadavg(b))
	}

	median := func(rs []benchRun, f func(benchRun) time.Duration) time.Duration {
		ds := make([]time.Duration, len(rs))
		for i, r := range rs {
			ds[i] = f(r)
		}
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	total := func(r benchRun) time.Duration { return r.total }
	steady := func(r benchRun) time.Duration { return r.steady() }
	cpu := func(r benchRun) time.Duration { return r.usage.cpu }
	apiCPU := func(r benchRun) time.Duration { return r.apiserver }
	testCPU := func(r benchRun) time.Duration { return r.test }
	perK := func(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()*1000/float64(n)) }
	peak := func(r benchRun) time.Duration { return time.Duration(r.usage.peakRSS) }
	rate := func(name string) float64 {
		rs := results[name]
		if len(rs) == 0 {
			return 0
		}
		return float64(n-1) / median(rs, steady).Seconds()
	}
	ceiling := rate(benchBareWatch)
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d approved CSRs, %d runs, median of each. Rate = (N − 1) / (first → last certificate); "+
		"× ceiling = rate / the bare writer with a watch's rate. CPU s per 1,000 CSRs, from start to the last certificate: "+
		"the signer process's (and its peak RSS), kube-apiserver's, and the test process's (its own watch, and a bare writer's work).\n\n", n, runs)
	sb.WriteString("| signer | runs: first → last (s) | certificates/s | × ceiling | median start → all issued (s) | signer CPU | kube-apiserver CPU | test CPU | peak RSS (MiB) |\n")
	sb.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range signers {
		rs := results[s.name]
		var each []string
		for _, r := range rs {
			each = append(each, fmt.Sprintf("%.2f", r.steady().Seconds()))
		}
		ratio, cpuCol, rssCol := "", "", ""
		if ceiling > 0 {
			ratio = fmt.Sprintf("%.2f", rate(s.name)/ceiling)
		}
		if s.bin != nil {
			cpuCol = perK(median(rs, cpu))
			rssCol = fmt.Sprintf("%d", int64(median(rs, peak))>>20)
		}
		fmt.Fprintf(&sb, "| %s | %s | %.0f | %s | %.2f | %s | %s | %s | %s |\n", s.name, strings.Join(each, ", "), rate(s.name), ratio,
			median(rs, total).Seconds(), cpuCol, perK(median(rs, apiCPU)), perK(median(rs, testCPU)), rssCol)
	}
	if cached > 0 {
		empty, full := benchCacheRSS(b, e, fast, cached)
		fmt.Fprintf(&sb, "\nkubepki controller resident memory (VmRSS) once its cache has synced: %d MiB with no CSR, "+
			"%d MiB with %d CSRs (pending kube-apiserver-client requests for a P-256 key, the request %d bytes of PEM).\n",
			empty.rss>>20, full.rss>>20, cached, len(benchRequest(b, "bench-cache")))
	}
	fmt.Fprintf(&sb, "\nLoad average (/proc/loadavg) at the start and after each run: %s\n", strings.Join(load, "; "))
	b.Logf("\n%s", sb.String())
	if ceiling > 0 {
		b.ReportMetric(rate("kubepki --kube-api-qps=-1")/ceiling, "kubepki/ceiling")
	}
	if out := os.Getenv("KUBEPKI_BENCH_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(sb.String()), 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

// benchUsages are the usages of every benchmark request.
var benchUsages = []certv1.KeyUsage{certv1.UsageDigitalSignature, certv1.UsageClientAuth}

// benchRequest is a PEM certificate request for CN cn with a fresh P-256 key.
func benchRequest(b *testing.B, cn string) []byte {
	b.Helper()
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		b.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn, Organization: []string{"bench"}}}, key)
	if err != nil {
		b.Fatal(err)
	}
	return pki.EncodeCSR(der)
}

// benchSlug is a signer's name as a file name.
func benchSlug(name string) string {
	return strings.Trim(regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.ToLower(name), "-"), "-")
}

// benchLoadavg is /proc/loadavg's three averages.
func benchLoadavg(b *testing.B) string {
	b.Helper()
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		b.Fatal(err)
	}
	return strings.Join(strings.Fields(string(data))[:3], " ")
}

// benchClear deletes every CSR and waits until none is left. Deleting tens
// of thousands takes the API server longer than its request timeout; it
// goes on deleting after it answered so, and the wait covers that.
func benchClear(b *testing.B, api certclient.CertificateSigningRequestInterface) {
	b.Helper()
	ctx := context.Background()
	if err := api.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil && !apierrors.IsTimeout(err) && !apierrors.IsServerTimeout(err) {
		b.Fatal(err)
	}
	for {
		l, err := api.List(ctx, metav1.ListOptions{Limit: 1})
		if err != nil {
			b.Fatal(err)
		}
		if len(l.Items) == 0 {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// benchCreate creates count CSRs 64 at a time, obj(i) the i-th, approving
// each if approve.
func benchCreate(b *testing.B, api certclient.CertificateSigningRequestInterface, count int, approve bool, obj func(i int) *certv1.CertificateSigningRequest) {
	b.Helper()
	ctx := context.Background()
	var (
		wg     sync.WaitGroup
		failed atomic.Value
		next   atomic.Int64
	)
	for range 64 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < count; i = int(next.Add(1)) - 1 {
				c, err := api.Create(ctx, obj(i), metav1.CreateOptions{})
				if err == nil && approve {
					c.Status.Conditions = append(c.Status.Conditions, certv1.CertificateSigningRequestCondition{
						Type: certv1.CertificateApproved, Status: corev1.ConditionTrue, Reason: "Bench", LastUpdateTime: metav1.Now()})
					_, err = api.UpdateApproval(ctx, c.Name, c, metav1.UpdateOptions{})
				}
				if err != nil {
					failed.Store(err)
				}
			}
		})
	}
	wg.Wait()
	if err, ok := failed.Load().(error); ok {
		b.Fatalf("create CSRs: %v", err)
	}
}

// benchOnce clears the CSRs, creates and approves len(reqs) new ones with
// no signer running, then starts the signer and times it until all are
// issued.
func benchOnce(b *testing.B, e *certAPI, cs kubernetes.Interface, s benchSigner, reqs [][]byte, profile string) benchRun {
	b.Helper()
	api := cs.CertificatesV1().CertificateSigningRequests()
	ctx := context.Background()
	benchClear(b, api)
	benchCreate(b, api, len(reqs), true, func(i int) *certv1.CertificateSigningRequest {
		return csr.NewObject(csr.Request{Name: fmt.Sprintf("bench-%04d", i), SignerName: certv1.KubeAPIServerClientSignerName,
			PEM: reqs[i], Usages: benchUsages})
	})

	// Watch for certificates before the signer starts.
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return api.List(ctx, o) },
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return api.Watch(ctx, o)
		},
	}
	synced := make(chan struct{})
	var start, first time.Time
	var firstOnce sync.Once
	issued := map[string]bool{}
	done := make(chan error, 1)
	wctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	go func() {
		_, err := watchtools.UntilWithSync(wctx, lw, &certv1.CertificateSigningRequest{},
			func(store cache.Store) (bool, error) { close(synced); return false, nil },
			func(ev watch.Event) (bool, error) {
				c, ok := ev.Object.(*certv1.CertificateSigningRequest)
				if !ok || !csr.Issued(c) {
					return false, nil
				}
				firstOnce.Do(func() { first = time.Now() })
				issued[c.Name] = true
				return len(issued) == len(reqs), nil
			})
		done <- err
	}()
	<-synced
	cpuNow := func() (api, test time.Duration) {
		a, err := benchReadUsage(e.apiserver.Pid())
		if err != nil {
			b.Fatal(err)
		}
		t, err := benchReadUsage(os.Getpid())
		if err != nil {
			b.Fatal(err)
		}
		return a.cpu, t.cpu
	}
	api0, test0 := cpuNow()
	start = time.Now()
	var r benchRun
	finish := func() {
		r.total, r.first = time.Since(start), first.Sub(start)
		api1, test1 := cpuNow()
		r.apiserver, r.test = api1-api0, test1-test0
	}
	if s.writer != nil {
		if err := s.writer(wctx); err != nil {
			b.Fatalf("%s: %v", s.name, err)
		}
		if err := <-done; err != nil {
			b.Fatalf("%s: waiting for certificates: %v (%d issued)", s.name, err, len(issued))
		}
		finish()
		return r
	}
	p := testenv.Start(b, "bench-"+strings.Fields(s.name)[0], s.bin(e), s.args(e, profile)...)
	if err := <-done; err != nil {
		b.Fatalf("%s: waiting for certificates: %v (%d issued; log %s)", s.name, err, len(issued), p.LogPath())
	}
	finish()
	usage, err := benchReadUsage(p.Pid())
	if err != nil {
		b.Fatalf("%s: %v", s.name, err)
	}
	p.Stop()
	r.usage = usage
	return r
}

// benchCacheRSS starts the kubepki controller with no CSR in the cluster,
// then with count pending ones, and reads its resident memory each time
// once its cache has synced (/readyz) and the queue has had a moment.
func benchCacheRSS(b *testing.B, e *certAPI, cs kubernetes.Interface, count int) (empty, full benchUsage) {
	b.Helper()
	api := cs.CertificatesV1().CertificateSigningRequests()
	measure := func() benchUsage {
		addr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(b))
		p := testenv.Start(b, "bench-cache", e.kubepki, "controller", "--kubeconfig="+e.admin,
			"--signer=kubernetes.io/kube-apiserver-client="+e.caCert+","+e.caKey,
			"--leader-elect=false", "--kube-api-qps=-1", "--http-address="+addr)
		defer p.Stop()
		deadline := time.Now().Add(10 * time.Minute)
		for {
			resp, err := http.Get("http://" + addr + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				b.Fatalf("controller not ready within 10 minutes (log %s)", p.LogPath())
			}
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(3 * time.Second) // the queue drains; the GC runs
		u, err := benchReadUsage(p.Pid())
		if err != nil {
			b.Fatal(err)
		}
		return u
	}
	benchClear(b, api)
	empty = measure()
	// One small request for all: the API server does not care, and
	// generating count keys would take longer than creating the objects.
	pem := benchRequest(b, "bench-cache")
	benchCreate(b, api, count, false, func(i int) *certv1.CertificateSigningRequest {
		return csr.NewObject(csr.Request{Name: fmt.Sprintf("bench-cache-%06d", i), SignerName: certv1.KubeAPIServerClientSignerName,
			PEM: pem, Usages: benchUsages})
	})
	full = measure()
	b.Logf("controller RSS: %d MiB with no CSR, %d MiB with %d (peak %d MiB)", empty.rss>>20, full.rss>>20, count, full.peakRSS>>20)
	return empty, full
}

// benchEnvInt reads a number of at least minimum from the environment.
func benchEnvInt(b *testing.B, name string, def, minimum int) int {
	b.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < minimum {
		b.Fatalf("%s=%q: want a number of at least %d", name, v, minimum)
	}
	return n
}
