package reconcile

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"runtime"
	"sync"
	"time"

	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/resolve"
	"kubepki.dev/kubepki/internal/store"
)

// made is what Apply makes in memory for one item it creates, before it
// writes anything.
type made struct {
	// key is a new key; nil when the item's key is on disk already.
	key crypto.Signer
	// cert is the certificate issued for the item (a CA's is self-signed).
	cert *x509.Certificate
	// ca is the item's CA, when it is one, to sign the items after it.
	ca *pki.CA
	// err says why the item could not be made.
	err error
}

// makeItems generates every missing key and issues every missing
// certificate, in memory, on every core: workers take one job at a time —
// CA keys first, then the other keys in Examine's order — and sign each
// certificate as soon as its key and its CA are ready, so that signing runs
// beside the key generations still going instead of after the last one.
//
// A key that cannot be generated, or the end of ctx, fails the whole run
// (nothing is written); an item that cannot be issued (its CA unusable,
// its key unreadable) has its made.err.
func makeItems(ctx context.Context, m *resolve.Model, st store.Store, items []item, steps []Step, results []Result, now time.Time, opts Options) ([]made, error) {
	out := make([]made, len(items))
	create := func(i int) bool { return steps[i].Action == ActCreate }
	isCA := func(it item) bool { return it.cert != nil && it.cert.Spec.Profile.IsCA }

	var (
		jobs   []job
		keyJob = map[int]int{} // item → the job generating its key
		total  int
	)
	for _, cas := range []bool{true, false} {
		for i, it := range items {
			if !create(i) || results[i].KeyPresent || it.alg == "" || isCA(it) != cas {
				continue
			}
			keyJob[i] = len(jobs)
			jobs = append(jobs, job{})
			total++
		}
	}
	// Sign jobs: every certificate created, and every kubeconfig that holds
	// a certificate of its own.
	signJob, caItem := map[int]int{}, map[string]int{}
	for i, it := range items {
		if !create(i) {
			continue
		}
		if _, own := ownCert(m, it); it.cert != nil || own {
			signJob[i] = len(jobs)
			jobs = append(jobs, job{first: true})
		}
		if isCA(it) {
			caItem[it.cert.Spec.Name] = i
		}
	}
	// signer is the CA named name: the one made here when Apply creates it
	// (nil if that failed), else the one on disk. Read by a sign job that
	// comes after the CA's own, so out[j] is done.
	signer := func(name string) *pki.CA {
		if j, ok := caItem[name]; ok {
			return out[j].ca
		}
		if ca, ok := m.CAs[name]; ok {
			return ca.Signer
		}
		return nil
	}

	var (
		mu   sync.Mutex
		done int
	)
	for i, j := range keyJob {
		alg := items[i].alg
		jobs[j].run = func() error {
			key, err := generateKey(alg, opts.OnKey)
			if opts.Progress != nil {
				mu.Lock()
				done++
				opts.Progress(done, total)
				mu.Unlock()
			}
			if err != nil {
				return fmt.Errorf("generate %s key: %w", alg, err)
			}
			out[i].key = key
			return nil
		}
	}
	for i, j := range signJob {
		if k, ok := keyJob[i]; ok {
			jobs[j].after = append(jobs[j].after, k)
		}
		it := items[i]
		c := it.cert
		if c == nil {
			c, _ = ownCert(m, it)
		}
		if ca, ok := caItem[c.Spec.CA]; ok && ca != i {
			jobs[j].after = append(jobs[j].after, signJob[ca])
		}
		jobs[j].run = func() error {
			if it.cert != nil {
				out[i].cert, out[i].ca, out[i].err = issueCert(c, st, out[i].key, signer(c.Spec.CA), now)
			} else {
				out[i].cert, out[i].err = issueKubeconfigCert(it.kubeconfig, c, out[i].key, signer(c.Spec.CA), now)
			}
			return nil
		}
	}

	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if err := runJobs(ctx, workers, jobs); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// ownCert returns the certificate that lives only inside the item's
// kubeconfig, if the item is such a kubeconfig.
func ownCert(m *resolve.Model, it item) (*resolve.Cert, bool) {
	if it.kubeconfig == nil {
		return nil, false
	}
	c, ok := m.Cert(it.kubeconfig.Spec.Cert)
	return c, ok && c.Kubeconfig == it.kubeconfig
}

// issueCert issues certificate c for key, or for the key on disk when key
// is nil, signed by ca; a CA signs itself, and is returned.
func issueCert(c *resolve.Cert, st store.Store, key crypto.Signer, ca *pki.CA, now time.Time) (*x509.Certificate, *pki.CA, error) {
	spec := c.Spec
	if key == nil {
		k, err := st.ReadKey(spec.Path)
		if err != nil {
			return nil, nil, err
		}
		key = k
	}
	if spec.Profile.IsCA {
		self, err := pki.NewCA(key, spec.Profile, now)
		if err != nil {
			return nil, nil, err
		}
		return self.Cert, self, nil
	}
	switch {
	case ca == nil:
		return nil, nil, fmt.Errorf("cannot issue %s: CA %s is unusable", spec.Name, caFile(c))
	case ca.Key == nil:
		return nil, nil, externalError(c)
	}
	cert, err := ca.Issue(key.Public(), spec.Profile, now)
	return cert, nil, err
}

// issueKubeconfigCert issues the certificate c that lives only in
// kubeconfig k, for key, signed by ca.
func issueKubeconfigCert(k *resolve.Kubeconfig, c *resolve.Cert, key crypto.Signer, ca *pki.CA, now time.Time) (*x509.Certificate, error) {
	switch {
	case ca == nil:
		return nil, fmt.Errorf("cannot issue %s: CA %s is unusable", c.Spec.Name, caFile(c))
	case ca.Key == nil:
		return nil, externalError(c)
	case key == nil:
		return nil, fmt.Errorf("kubeconfig %s: no key generated", k.Spec.Name)
	}
	return ca.Issue(key.Public(), c.Spec.Profile, now)
}
