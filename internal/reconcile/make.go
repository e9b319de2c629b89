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

// fileWriters is how many items write their files at once: a few fsyncs in
// flight let the file system commit them together; many only contend.
const fileWriters = 4

// creation is the items Apply creates: what each needs, and what was made
// for it in memory before anything is written.
type creation struct {
	m     *resolve.Model
	st    store.Store
	items []item
	// create marks the items whose step is create; newKey those of them
	// that need a key (no key on disk, and not a copy of another's).
	create, newKey []bool
	// caItem is, by CA name, the item of each CA created here.
	caItem map[string]int
	// certItem is, for each certificate with files created here, its item.
	certItem map[*resolve.Cert]int
	made     []made
}

// made is what Apply makes in memory for one item it creates.
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

func newCreation(m *resolve.Model, st store.Store, items []item, steps []Step, results []Result) *creation {
	c := &creation{
		m: m, st: st, items: items,
		create: make([]bool, len(items)), newKey: make([]bool, len(items)),
		caItem: map[string]int{}, certItem: map[*resolve.Cert]int{},
		made: make([]made, len(items)),
	}
	for i, it := range items {
		if steps[i].Action != ActCreate {
			continue
		}
		c.create[i] = true
		c.newKey[i] = !results[i].KeyPresent && it.alg != ""
		if it.cert != nil {
			c.certItem[it.cert] = i
			if it.cert.Spec.Profile.IsCA {
				c.caItem[it.cert.Spec.Name] = i
			}
		}
	}
	return c
}

// cert is the certificate an item issues: its own, or the one that lives
// only in its kubeconfig; nil for key pairs and for kubeconfigs that copy
// a certificate of the PKI directory.
func (c *creation) cert(i int) *resolve.Cert {
	it := c.items[i]
	if it.cert != nil {
		return it.cert
	}
	if it.kubeconfig != nil {
		if cert, ok := c.m.Cert(it.kubeconfig.Spec.Cert); ok && cert.Kubeconfig == it.kubeconfig {
			return cert
		}
	}
	return nil
}

// makeAll generates every missing key and issues every missing certificate,
// in memory, on every core: workers take one job at a time — CA keys
// first, then the other keys in Examine's order — and sign each certificate
// as soon as its key and its CA are ready, so that signing runs beside the
// key generations still going instead of after the last one.
//
// A key that cannot be generated, or the end of ctx, fails the whole run
// (and nothing is written); an item that cannot be issued (its CA
// unusable, its key unreadable) has its made.err.
func (c *creation) makeAll(ctx context.Context, now time.Time, opts Options) error {
	var (
		jobs   []job
		keyJob = map[int]int{} // item → the job generating its key
	)
	for _, cas := range []bool{true, false} {
		for i, it := range c.items {
			if c.newKey[i] && (it.cert != nil && it.cert.Spec.Profile.IsCA) == cas {
				keyJob[i] = len(jobs)
				jobs = append(jobs, job{})
			}
		}
	}
	signJob := map[int]int{}
	for i := range c.items {
		if c.create[i] && c.cert(i) != nil {
			signJob[i] = len(jobs)
			jobs = append(jobs, job{first: true})
		}
	}

	var (
		mu    sync.Mutex
		done  int
		total = len(keyJob)
	)
	for i, j := range keyJob {
		alg := c.items[i].alg
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
			c.made[i].key = key
			return nil
		}
	}
	for i, j := range signJob {
		if k, ok := keyJob[i]; ok {
			jobs[j].after = append(jobs[j].after, k)
		}
		cert := c.cert(i)
		if ca, ok := c.caItem[cert.Spec.CA]; ok && ca != i {
			jobs[j].after = append(jobs[j].after, signJob[ca])
		}
		jobs[j].run = func() error {
			mk := &c.made[i]
			// The CA's sign job, if it is made here, is done.
			ca := c.signer(cert.Spec.CA, func(j int) bool { return c.made[j].ca != nil })
			if k := c.items[i].kubeconfig; k != nil {
				mk.cert, mk.err = issueKubeconfigCert(k, cert, mk.key, ca, now)
			} else {
				mk.cert, mk.ca, mk.err = issueCert(cert, c.st, mk.key, ca, now)
			}
			return nil
		}
	}

	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if err := runJobs(ctx, workers, jobs); err != nil {
		return err
	}
	return ctx.Err()
}

// signer is the CA named name: the one created here, if ok says it is
// usable, or else the one on disk; nil when there is none.
func (c *creation) signer(name string, ok func(item int) bool) *pki.CA {
	if j, here := c.caItem[name]; here {
		if ok(j) {
			return c.made[j].ca
		}
		return nil
	}
	if ca, found := c.m.CAs[name]; found {
		return ca.Signer
	}
	return nil
}

// writeAll writes what makeAll made and returns, per item, what stopped
// it. Each item writes its files in order (a new key before its
// certificate), a few items at once: each after the CA that signs it,
// so a leaf never reaches the disk before its CA, and a kubeconfig after
// the certificate it copies. Once begun, writing does not stop for ctx.
func (c *creation) writeAll() []error {
	errs := make([]error, len(c.items))
	written := func(j int) bool { return errs[j] == nil }
	var jobs []job
	for i, it := range c.items {
		if !c.create[i] {
			jobs = append(jobs, job{run: func() error { return nil }})
			continue
		}
		j := job{run: func() error {
			errs[i] = c.write(i, written)
			return nil
		}}
		cert := c.cert(i)
		if it.kubeconfig != nil && cert == nil {
			// A copy of the PKI directory's certificate, read back from disk.
			if pc, ok := c.m.Cert(it.kubeconfig.Spec.Cert); ok {
				cert = pc
				if ci, ok := c.certItem[pc]; ok {
					j.after = append(j.after, ci)
				}
			}
		}
		if cert != nil {
			if ca, ok := c.caItem[cert.Spec.CA]; ok && ca != i {
				j.after = append(j.after, ca)
			}
		}
		jobs = append(jobs, j)
	}
	// Writes return no error to runJobs, and ctx never ends: it runs all.
	_ = runJobs(context.Background(), fileWriters, jobs)
	return errs
}

// write writes item i's files; written tells whether an item before it
// (its CA) was written.
func (c *creation) write(i int, written func(item int) bool) error {
	mk, it := c.made[i], c.items[i]
	if mk.err != nil {
		return mk.err
	}
	switch {
	case it.cert != nil:
		return writeCert(it.cert, c.st, mk, c.signer(it.cert.Spec.CA, written))
	case it.keyPair != nil:
		return createKeyPair(*it.keyPair, c.st, mk.key)
	case it.kubeconfig != nil:
		k := it.kubeconfig
		cert, ok := c.m.Cert(k.Spec.Cert)
		if !ok {
			return fmt.Errorf("kubeconfig %s: certificate %s not in plan", k.Spec.Name, k.Spec.Cert)
		}
		return createKubeconfig(k, cert, mk, c.signer(cert.Spec.CA, written))
	}
	return nil
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
