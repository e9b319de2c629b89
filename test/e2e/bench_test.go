package e2e

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"os"
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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"kubepki.dev/kubepki/internal/csr"
	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/testenv"
)

// benchSigner is one signer configuration under comparison.
type benchSigner struct {
	name string
	bin  func(e *certAPI) string
	args func(e *certAPI) []string
}

// benchRun is one timed run.
type benchRun struct {
	total time.Duration // signer process start → last certificate
	first time.Duration // signer process start → first certificate
}

// BenchmarkCSRSigning times how long kubepki's controller and
// kube-controller-manager's csrsigning controller take to issue a backlog
// of approved CSRs on the same real API server with the same CA: per run,
// N approved kubernetes.io/kube-apiserver-client CSRs are waiting, the
// signer is started, and the clock stops when the last one carries a
// certificate (watched, not polled). The signers alternate within each
// run, so drift on the machine hits them alike.
//
// It is not part of `go test ./...` (benchmarks only run with -bench) and
// needs KUBEPKI_BENCH=1 besides:
//
//	KUBEPKI_BENCH=1 go test ./test/e2e -run '^$' -bench BenchmarkCSRSigning -benchtime 1x -timeout 60m -v
//
// KUBEPKI_BENCH_CSRS (default 2000) and KUBEPKI_BENCH_RUNS (default 3)
// change the size; KUBEPKI_BENCH_ONLY (a regexp) keeps only the matching
// signers besides kubepki's default; KUBEPKI_BENCH_OUT names a file for the
// markdown table (docs/benchmarks.md quotes it).
func BenchmarkCSRSigning(b *testing.B) {
	if os.Getenv("KUBEPKI_BENCH") == "" {
		b.Skip("set KUBEPKI_BENCH=1 to run (it takes several minutes)")
	}
	n := benchEnvInt(b, "KUBEPKI_BENCH_CSRS", 2000)
	runs := benchEnvInt(b, "KUBEPKI_BENCH_RUNS", 3)
	e := newCertAPI(b)
	admin := e.clientFor(e.admin)

	reqs := make([][]byte, n)
	for i := range reqs {
		key, err := pki.GenerateKey(pki.ECDSAP256)
		if err != nil {
			b.Fatal(err)
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: fmt.Sprintf("bench-%04d", i), Organization: []string{"bench"}}}, key)
		if err != nil {
			b.Fatal(err)
		}
		reqs[i] = pki.EncodeCSR(der)
	}

	kubepkiBin := func(e *certAPI) string { return e.kubepki }
	kcmBin := func(e *certAPI) string { return e.bins.KubeControllerManager }
	ours := func(extra ...string) func(e *certAPI) []string {
		return func(e *certAPI) []string {
			return append([]string{"controller", "--kubeconfig=" + e.admin,
				"--signer=kubernetes.io/kube-apiserver-client=" + e.caCert + "," + e.caKey,
				"--leader-elect=false", "--http-address=0"}, extra...)
		}
	}
	kcm := func(extra ...string) func(e *certAPI) []string {
		return func(e *certAPI) []string {
			return append([]string{"--kubeconfig=" + e.admin, "--controllers=csrsigning",
				"--cluster-signing-cert-file=" + e.caCert, "--cluster-signing-key-file=" + e.caKey,
				"--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(testenv.FreePort(b))}, extra...)
		}
	}
	signers := []benchSigner{
		{"kubepki", kubepkiBin, ours()},
		{"kube-controller-manager", kcmBin, kcm()},
		// Each signer with the other's client limits and worker count,
		// to show where the difference comes from.
		{"kubepki --kube-api-qps=20 --kube-api-burst=30 --workers=5", kubepkiBin, ours("--kube-api-qps=20", "--kube-api-burst=30", "--workers=5")},
		{"kube-controller-manager --kube-api-qps=200 --kube-api-burst=400", kcmBin, kcm("--kube-api-qps=200", "--kube-api-burst=400")},
		// No client-side limit at all: what the API server itself allows.
		{"kubepki --kube-api-qps=-1", kubepkiBin, ours("--kube-api-qps=-1")},
		{"kube-controller-manager --kube-api-qps=-1", kcmBin, kcm("--kube-api-qps=-1")},
	}
	if only := os.Getenv("KUBEPKI_BENCH_ONLY"); only != "" {
		re, err := regexp.Compile(only)
		if err != nil {
			b.Fatalf("KUBEPKI_BENCH_ONLY: %v", err)
		}
		signers = slices.DeleteFunc(signers, func(s benchSigner) bool { return s.name != "kubepki" && !re.MatchString(s.name) })
	}
	results := map[string][]benchRun{}
	for run := 1; run <= runs; run++ {
		for _, s := range signers {
			r := benchOnce(b, e, admin, s, reqs)
			results[s.name] = append(results[s.name], r)
			b.Logf("run %d/%d %-62s %4d certificates in %7.2fs (first after %.2fs)", run, runs, s.name, n, r.total.Seconds(), r.first.Seconds())
		}
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
	steady := func(r benchRun) time.Duration { return r.total - r.first }
	base := median(results["kubepki"], total)
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d approved CSRs, %d runs, median of each; ratio = median total / kubepki's median total.\n\n", n, runs)
	sb.WriteString("| signer | runs: start → all issued (s) | median (s) | median first → last (s) | certificates/s | ratio |\n")
	sb.WriteString("|---|---|---|---|---|---|\n")
	for _, s := range signers {
		rs := results[s.name]
		var each []string
		for _, r := range rs {
			each = append(each, fmt.Sprintf("%.2f", r.total.Seconds()))
		}
		m := median(rs, total)
		fmt.Fprintf(&sb, "| %s | %s | %.2f | %.2f | %.0f | %.2f |\n", s.name, strings.Join(each, ", "), m.Seconds(),
			median(rs, steady).Seconds(), float64(n)/m.Seconds(), m.Seconds()/base.Seconds())
	}
	b.Logf("\n%s", sb.String())
	b.ReportMetric(base.Seconds(), "kubepki-s")
	b.ReportMetric(median(results["kube-controller-manager"], total).Seconds(), "kcm-s")
	b.ReportMetric(median(results["kube-controller-manager"], total).Seconds()/base.Seconds(), "kcm/kubepki")
	if out := os.Getenv("KUBEPKI_BENCH_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(sb.String()), 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

// benchOnce clears the CSRs, creates and approves len(reqs) new ones with
// no signer running, then starts the signer and times it until all are
// issued.
func benchOnce(b *testing.B, e *certAPI, admin kubernetes.Interface, s benchSigner, reqs [][]byte) benchRun {
	b.Helper()
	api := admin.CertificatesV1().CertificateSigningRequests()
	ctx := context.Background()
	if err := api.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		b.Fatal(err)
	}
	for {
		l, err := api.List(ctx, metav1.ListOptions{Limit: 1})
		if err != nil {
			b.Fatal(err)
		}
		if len(l.Items) == 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	var (
		wg     sync.WaitGroup
		failed atomic.Value
		next   atomic.Int64
	)
	for range 32 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(reqs); i = int(next.Add(1)) - 1 {
				obj := csr.NewObject(csr.Request{Name: fmt.Sprintf("bench-%04d", i), SignerName: certv1.KubeAPIServerClientSignerName,
					PEM: reqs[i], Usages: []certv1.KeyUsage{"digital signature", "client auth"}})
				c, err := api.Create(ctx, obj, metav1.CreateOptions{})
				if err == nil {
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
		b.Fatalf("create and approve: %v", err)
	}

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
	start = time.Now()
	p := testenv.Start(b, "bench-"+strings.Fields(s.name)[0], s.bin(e), s.args(e)...)
	if err := <-done; err != nil {
		b.Fatalf("%s: waiting for certificates: %v (%d issued; log %s)", s.name, err, len(issued), p.LogPath())
	}
	end := time.Now()
	p.Stop()
	return benchRun{total: end.Sub(start), first: first.Sub(start)}
}

func benchEnvInt(b *testing.B, name string, def int) int {
	b.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}
