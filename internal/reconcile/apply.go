package reconcile

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"runtime"
	"sync"
	"time"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/kubeconfig"
	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/store"
)

// Action is what Apply did with one item.
type Action string

// Actions.
const (
	Created Action = "created"
	Kept    Action = "kept"
	// Untouched: the item is drifted, expired or invalid; Apply reports it and
	// leaves the user's files alone.
	Untouched Action = "untouched"
	Failed    Action = "failed"
	// Reissued: drifted, and reissued from the spec on request.
	Reissued Action = "reissued"
)

// Result is the outcome for one item of the plan.
type Result struct {
	Status
	Action Action `json:"action"`
}

// Options tune Apply.
type Options struct {
	// Progress, if set, is called after each generated key.
	Progress func(done, total int)
	// Workers bounds parallel key generation; default the number of CPUs.
	Workers int
}

// Apply creates every missing CA, certificate, key pair and kubeconfig of
// the plan, reuses existing CAs (and existing keys whose certificate is
// missing), and leaves everything else as it is. Keys are generated in
// parallel. Results are in Examine's order.
//
// A key (or certificate) st's KeyPolicy refuses — a symbolic link, another
// owner's, a mode open to others — stops Apply before it writes anything;
// run Tighten first to fix the modes.
func Apply(ctx context.Context, plan *catalog.Plan, st store.Store, now time.Time, opts Options) ([]Result, error) {
	if err := refuseUnsafe(plan, st); err != nil {
		return nil, err
	}
	statuses := Examine(plan, st, now)
	results := make([]Result, len(statuses))
	for i, s := range statuses {
		results[i] = Result{Status: s, Action: Kept}
		if s.State != Valid && s.State != External {
			results[i].Action = Untouched
		}
	}
	items := planItems(plan)

	// Generate every key that does not exist yet, in parallel: RSA-4096
	// takes around a second per key, and a cluster needs a dozen.
	algs := make([]pki.KeyAlgorithm, len(statuses))
	for i, s := range statuses {
		if s.State == Missing && !s.KeyPresent {
			algs[i] = items[i].alg
		}
	}
	keys, err := generateKeys(ctx, algs, opts)
	if err != nil {
		return nil, err
	}

	cas := map[string]*pki.CA{}
	fail := func(r *Result, err error) {
		r.Action, r.State, r.Findings = Failed, Invalid, []string{err.Error()}
	}
	for i, it := range items {
		r := &results[i]
		switch {
		case it.cert != nil:
			c := *it.cert
			if r.State != Missing {
				if c.Profile.IsCA {
					if ca, err := st.ReadCA(c.Path); err == nil {
						cas[c.Name] = ca
					}
				}
				continue
			}
			ca, err := createCert(plan, c, st, keys[i], cas, now)
			if err != nil {
				fail(r, err)
				continue
			}
			if c.Profile.IsCA {
				cas[c.Name] = ca
			}
		case it.keyPair != nil:
			if r.State != Missing {
				continue
			}
			if err := createKeyPair(*it.keyPair, st, keys[i]); err != nil {
				fail(r, err)
				continue
			}
		case it.kubeconfig != nil:
			if r.State != Missing {
				continue
			}
			if err := createKubeconfig(plan, *it.kubeconfig, st, keys[i], cas, now); err != nil {
				fail(r, err)
				continue
			}
		}
		r.Action, r.State, r.Findings = Created, Valid, nil
	}
	refreshKept(plan, st, now, results)
	return results, nil
}

// refreshKept re-examines what Apply kept, once everything is written: a
// kubeconfig kept as valid may embed a certificate Apply has just replaced
// (its file was missing), which it must report now, not on the next run.
func refreshKept(plan *catalog.Plan, st store.Store, now time.Time, results []Result) {
	after := Examine(plan, st, now)
	for i := range results {
		if results[i].Action == Kept && i < len(after) && after[i].State != results[i].State {
			results[i] = Result{Status: after[i], Action: Untouched}
		}
	}
}

// item is one entry of Examine's list, with what Apply needs to create it.
type item struct {
	cert       *catalog.CertSpec
	keyPair    *catalog.KeySpec
	kubeconfig *catalog.KubeconfigSpec
	alg        pki.KeyAlgorithm
}

// planItems lists the plan in Examine's order.
func planItems(plan *catalog.Plan) []item {
	var out []item
	for i := range plan.Certs {
		if c := &plan.Certs[i]; !c.Embedded {
			out = append(out, item{cert: c, alg: c.KeyAlgorithm})
		}
	}
	for i := range plan.Keys {
		out = append(out, item{keyPair: &plan.Keys[i], alg: plan.Keys[i].KeyAlgorithm})
	}
	for i := range plan.Kubeconfigs {
		k := &plan.Kubeconfigs[i]
		it := item{kubeconfig: k}
		// A kubeconfig whose certificate lives only inside it needs a key.
		if c, ok := plan.Cert(k.Cert); ok && c.Embedded {
			it.alg = c.KeyAlgorithm
		}
		out = append(out, it)
	}
	return out
}

// createKubeconfig writes a missing kubeconfig, embedding either a new
// certificate issued for it or the certificate of the PKI directory.
func createKubeconfig(plan *catalog.Plan, k catalog.KubeconfigSpec, st store.Store, key crypto.Signer, cas map[string]*pki.CA, now time.Time) error {
	c, ok := plan.Cert(k.Cert)
	if !ok {
		return fmt.Errorf("kubeconfig %s: certificate %s not in plan", k.Name, k.Cert)
	}
	ca, err := signingCA(plan, c, st, cas)
	if err != nil {
		return err
	}
	var cert *x509.Certificate
	if c.Embedded {
		if key == nil {
			return fmt.Errorf("kubeconfig %s: no key generated", k.Name)
		}
		if cert, err = ca.Issue(key.Public(), c.Profile, now); err != nil {
			return err
		}
	} else {
		if cert, err = st.ReadCert(c.Path); err != nil {
			return fmt.Errorf("kubeconfig %s: %w", k.Name, err)
		}
		if key, err = st.ReadKey(c.Path); err != nil {
			return fmt.Errorf("kubeconfig %s: %w", k.Name, err)
		}
	}
	keyPEM, err := pki.EncodeKey(key)
	if err != nil {
		return err
	}
	cfg := kubeconfig.New(kubeconfig.Params{
		Cluster: k.Cluster, User: k.User, Context: k.Context(), Server: k.Server,
		CA: pki.EncodeCert(ca.Cert), Cert: pki.EncodeCert(cert), Key: keyPEM,
	})
	return kubeconfig.Create(st.KubeconfigPath(k.File), cfg)
}

// signingCA returns the CA that signs c; it must have its key only when a
// certificate is to be issued (the caller checks via Issue).
func signingCA(plan *catalog.Plan, c catalog.CertSpec, st store.Store, cas map[string]*pki.CA) (*pki.CA, error) {
	ca, ok := cas[c.CA]
	caSpec, _ := plan.Cert(c.CA)
	switch {
	case !ok:
		return nil, fmt.Errorf("cannot issue %s: CA %s is unusable", c.Name, st.CertPath(caSpec.Path))
	case ca.Key == nil && (c.Embedded || !store.Exists(st.CertPath(c.Path))):
		return nil, fmt.Errorf("cannot issue %s: %s is absent (external CA); have the external CA sign a CSR (kubepki certs generate-csr %s)", c.Name, st.KeyPath(caSpec.Path), c.Name)
	}
	return ca, nil
}

// createCert issues one missing certificate, with a new key or the one on
// disk. It returns the CA when the certificate is one.
func createCert(plan *catalog.Plan, c catalog.CertSpec, st store.Store, key crypto.Signer, cas map[string]*pki.CA, now time.Time) (*pki.CA, error) {
	newKey := key != nil
	if !newKey {
		k, err := st.ReadKey(c.Path)
		if err != nil {
			return nil, err
		}
		key = k
	}
	var ca *pki.CA
	if c.Profile.IsCA {
		var err error
		if ca, err = pki.NewCA(key, c.Profile, now); err != nil {
			return nil, err
		}
	} else {
		signer, err := signingCA(plan, c, st, cas)
		if err != nil {
			return nil, err
		}
		cert, err := signer.Issue(key.Public(), c.Profile, now)
		if err != nil {
			return nil, err
		}
		ca = &pki.CA{Cert: cert}
	}
	// The key goes first: if the certificate write fails, the next run finds
	// the key and issues a certificate for it.
	if newKey {
		if err := st.CreateKey(c.Path, key); err != nil {
			return nil, err
		}
	}
	if err := st.CreateCert(c.Path, ca.Cert); err != nil {
		return nil, err
	}
	if !c.Profile.IsCA {
		return nil, nil
	}
	ca.Key = key
	return ca, nil
}

func createKeyPair(k catalog.KeySpec, st store.Store, key crypto.Signer) error {
	if key == nil {
		existing, err := st.ReadKey(k.Path)
		if err != nil {
			return err
		}
		key = existing
	} else if store.Exists(st.PubPath(k.Path)) {
		// A new private key could not match the public key already there
		// (which token verifiers may trust): write neither.
		return fmt.Errorf("%s exists without %s; restore the private key or remove the public key", st.PubPath(k.Path), st.KeyPath(k.Path))
	} else if err := st.CreateKey(k.Path, key); err != nil {
		return err
	}
	return st.CreatePublicKey(k.Path, key.Public())
}

// generateKeys makes a key for every non-empty algorithm, in parallel.
func generateKeys(ctx context.Context, algs []pki.KeyAlgorithm, opts Options) ([]crypto.Signer, error) {
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	total := 0
	for _, a := range algs {
		if a != "" {
			total++
		}
	}
	keys := make([]crypto.Signer, len(algs))
	errs := make([]error, len(algs))
	jobs := make(chan int)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		done int
	)
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				keys[i], errs[i] = pki.GenerateKey(algs[i])
				if opts.Progress != nil {
					mu.Lock()
					done++
					opts.Progress(done, total)
					mu.Unlock()
				}
			}
		})
	}
feed:
	for i, a := range algs {
		if a == "" {
			continue
		}
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("generate %s key: %w", algs[i], err)
		}
	}
	return keys, nil
}
