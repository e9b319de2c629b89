package lifecycle

import (
	"context"
	"crypto/x509"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"kubepki.dev/kubepki/internal/pki"
)

// Shape of the generated fleet: 10,000 certificates in all.
const (
	benchKubeconfigs = 20  // 2 certificates each: CA and client
	benchBundles     = 100 // 3 certificates each: leaf, CA, CA
	benchCerts       = 10000
	benchSingles     = benchCerts - 2*benchKubeconfigs - 3*benchBundles
)

// genFleet writes benchCerts certificates under dir, as a fleet's collected
// files might look: sites, racks, nodes, each node a PKI directory with
// single-certificate files (every tenth with its key beside it), and here
// and there a bundle or a kubeconfig. One CA and one ECDSA key sign and certify them
// all; validities vary so that some are expiring and some expired at
// expT0+30 days.
func genFleet(tb testing.TB, dir string) {
	tb.Helper()
	ca := newScanCA(tb, "fleet-ca")
	caPEM := pki.EncodeCert(ca.ca.Cert)
	keyPEM, err := pki.EncodeKey(ca.key)
	if err != nil {
		tb.Fatal(err)
	}
	n := benchSingles + benchBundles + benchKubeconfigs
	certs := make([]*x509.Certificate, n)
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				certs[i] = ca.leaf(tb, fmt.Sprintf("node-%05d", i), time.Duration(1+i%800)*expDay)
			}
		})
	}
	wg.Wait()
	// About 480 nodes of some 20 certificates each, in 4 sites of 10 racks.
	nodeDir := func(i int) string {
		node := i / 20
		return filepath.Join(dir, fmt.Sprintf("site-%d", node%4), fmt.Sprintf("rack-%02d", node/4%10), fmt.Sprintf("node-%03d", node), "pki")
	}
	for i := range benchSingles {
		d := nodeDir(i)
		writeScanFile(tb, filepath.Join(d, fmt.Sprintf("cert-%05d.crt", i)), pki.EncodeCert(certs[i]))
		if i%10 == 0 {
			writeScanFile(tb, filepath.Join(d, fmt.Sprintf("cert-%05d.key", i)), keyPEM)
		}
	}
	for i := range benchBundles {
		c := certs[benchSingles+i]
		writeScanFile(tb, filepath.Join(nodeDir(i*97), fmt.Sprintf("bundle-%03d.pem", i)), slices2(pki.EncodeCert(c), caPEM, caPEM))
	}
	for i := range benchKubeconfigs {
		c := certs[benchSingles+benchBundles+i]
		writeScanFile(tb, filepath.Join(nodeDir(i*400), "..", "kubelet.conf"), scanKubeconfigYAML(tb, ca.ca.Cert, c, c.Subject.CommonName))
	}
}

// BenchmarkScan10k scans a generated fleet of 10,000 certificates.
func BenchmarkScan10k(b *testing.B) {
	dir := b.TempDir()
	start := time.Now()
	genFleet(b, dir)
	b.Logf("generated %d certificates in %v", benchCerts, time.Since(start).Round(time.Millisecond))
	now := expT0.Add(30 * expDay)
	var r ScanReport
	for b.Loop() {
		var err error
		if r, err = Scan(context.Background(), []string{dir}, now); err != nil {
			b.Fatal(err)
		}
	}
	if len(r.Certificates) != benchCerts || len(r.Problems) != 0 {
		b.Fatalf("found %d certificates, %d problems; want %d, 0", len(r.Certificates), len(r.Problems), benchCerts)
	}
	b.ReportMetric(float64(len(r.Certificates)), "certs/op")
	b.ReportMetric(float64(r.Files), "files/op")
}

// BenchmarkExpiration reports on a kubepki init'ed kubeadm PKI (17 rows:
// 7 certificate files, 7 kubeconfigs, 3 CAs).
func BenchmarkExpiration(b *testing.B) {
	plan, st := expPKI(b, "kubeadm")
	now := expT0.Add(time.Hour)
	var r Report
	for b.Loop() {
		r = Expiration(plan, st, now)
	}
	if r.Summary.Total != 17 || r.Severity() != SeverityOK {
		b.Fatalf("summary %+v", r.Summary)
	}
}
