package exporter

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/pkitest"
)

// BenchmarkScrape10000 scrapes, over HTTP, an exporter watching 10,000
// certificate files, b.N times (run it with -benchtime 1000x), and reports
// the process's RSS and the Go heap after the first scrape and after the
// last: files are read once, then only stat'ed, and nothing is kept per
// scrape. Not a test: nothing is asserted; docs/benchmarks.md records it.
//
//	go test ./internal/exporter -run '^$' -bench BenchmarkScrape10000 -benchtime 1000x -timeout 60m
func BenchmarkScrape10000(b *testing.B) {
	const n = 10000
	dir := b.TempDir()
	now := time.Now()
	ca := pkitest.CA(b, "bench-ca", 400*24*time.Hour, now)
	key := pkitest.Key(b, pki.ECDSAP256)
	for i := range n {
		c := pkitest.Issue(b, ca, key.Public(), pki.Profile{Subject: pki.Subject{CommonName: fmt.Sprintf("cert-%05d", i), Organization: []string{"bench"}},
			Usages: []pki.Usage{pki.UsageClientAuth}, Validity: time.Duration(1+i%365) * 24 * time.Hour}, now)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("cert-%05d.crt", i)), pki.EncodeCert(c), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	e := New(Config{WatchFiles: []string{filepath.Join(dir, "*.crt")}})
	url := serve(b, e, time.Hour)
	get := func() int {
		resp, err := http.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		nb, err := io.Copy(io.Discard, resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("scrape: %v %s", err, resp.Status)
		}
		return int(nb)
	}
	size := get() // the first scrape reads and parses every file
	rss0, heap0 := memory()
	b.ResetTimer()
	for b.Loop() {
		get()
	}
	b.StopTimer()
	rss1, heap1 := memory()
	b.ReportMetric(float64(rss0)/(1<<20), "MiB-rss-before")
	b.ReportMetric(float64(rss1)/(1<<20), "MiB-rss-after")
	b.ReportMetric(float64(heap0)/(1<<20), "MiB-heap-before")
	b.ReportMetric(float64(heap1)/(1<<20), "MiB-heap-after")
	b.Logf("%d certificates, %d bytes per scrape, %d file reads in all", n, size, e.cache.reads)
}

// memory is the process's resident set (VmRSS) and the Go heap in use
// after a collection, in bytes.
func memory() (rss, heap uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	data, _ := os.ReadFile("/proc/self/status")
	for line := range strings.Lines(string(data)) {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			rss = kb << 10
		}
	}
	return rss, ms.HeapInuse
}
