package reconcile

import (
	"context"
	"crypto"
	"fmt"
	"runtime"
	"slices"
	"time"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/kubeconfig"
	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/resolve"
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
	// Workers bounds the keys generated and certificates signed at once;
	// default GOMAXPROCS, the cores Go may use.
	Workers int
	// OnTighten, if set, hears of each mode Apply tightened.
	OnTighten func(Tightened)
	// OnKey, if set, hears how long each generated key took (for
	// benchmarks: kubepki init's KUBEPKI_DEBUG_TIMING).
	OnKey func(KeyTime)
}

// KeyTime is how long the generation of one key took.
type KeyTime struct {
	Alg pki.KeyAlgorithm
	// Wall runs from the start of the generation to its end. CPU is the
	// processor time the generating thread spent, which other work on the
	// machine does not inflate (zero where the platform cannot tell).
	Wall, CPU time.Duration
}

// Apply does what Steps says init does, and nothing else: it tightens
// what chmod fixes (Options.OnTighten hears of each), then creates every
// item whose step is create — CAs first, reused keys whose certificate is
// missing, kubeconfigs — and keeps or leaves the rest as their steps say.
// Keys are generated and certificates signed in memory, on every core;
// then the files are written, a few items at a time, each after its CA.
// Results are in Examine's order.
//
// A key (or certificate) st's KeyPolicy refuses — a symbolic link, another
// owner's — stops Apply before it writes anything.
func Apply(ctx context.Context, plan *catalog.Plan, st store.Store, now time.Time, opts Options) ([]Result, error) {
	tightened, err := Tighten(Permissions(plan, st))
	for _, t := range tightened {
		if opts.OnTighten != nil {
			opts.OnTighten(t)
		}
	}
	if err != nil {
		return nil, err
	}
	if err := refuseUnsafe(plan, st); err != nil {
		return nil, err
	}
	steps := Steps(plan, st, now, 0)
	results := make([]Result, 0, len(steps))
	for _, s := range steps {
		if s.Kind == KindPermissions {
			continue // tightened above, or a person's to fix
		}
		r := Result{Status: s.Status, Action: Kept}
		if s.Action != ActKeep && s.Action != ActElsewhere && !(s.Action == ActExternal && s.IsCA) {
			r.Action = Untouched
		}
		results = append(results, r)
	}
	m := resolve.Resolve(plan, st)
	items := planItems(m)

	// Make everything missing in memory first, keys and certificates in
	// parallel, then write it: a canceled or failed key generation writes
	// nothing.
	c := newCreation(m, st, items, steps, results)
	if err := c.makeAll(ctx, now, opts); err != nil {
		return nil, err
	}
	errs := c.writeAll()
	fail := func(r *Result, err error) {
		r.Action, r.State, r.Findings = Failed, Invalid, []string{err.Error()}
	}
	for i, it := range items {
		r := &results[i]
		switch {
		case steps[i].Action == ActExternal && !steps[i].IsCA:
			// The step is the external CA's: init says it cannot issue.
			if ext, ok := externalItem(m, it); ok {
				fail(r, externalError(ext))
			}
		case !c.create[i]:
		case errs[i] != nil:
			fail(r, errs[i])
		default:
			r.Action, r.State, r.Findings = Created, Valid, nil
		}
	}
	if slices.ContainsFunc(results, func(r Result) bool { return r.Action == Kept }) {
		refreshKept(plan, st, now, results)
	}
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
	cert       *resolve.Cert
	keyPair    *catalog.KeySpec
	kubeconfig *resolve.Kubeconfig
	alg        pki.KeyAlgorithm
}

// planItems lists the resolved plan in Examine's order.
func planItems(m *resolve.Model) []item {
	var out []item
	for _, c := range m.Certs {
		if c.Kubeconfig == nil {
			out = append(out, item{cert: c, alg: c.Spec.KeyAlgorithm})
		}
	}
	for i := range m.Plan.Keys {
		out = append(out, item{keyPair: &m.Plan.Keys[i], alg: m.Plan.Keys[i].KeyAlgorithm})
	}
	for _, k := range m.Kubeconfigs {
		it := item{kubeconfig: k}
		// A kubeconfig whose certificate lives only inside it needs a key.
		if c, ok := m.Cert(k.Spec.Cert); ok && c.Kubeconfig == k {
			it.alg = c.Spec.KeyAlgorithm
		}
		out = append(out, it)
	}
	return out
}

// createKubeconfig writes a missing kubeconfig of certificate c, signed by
// ca: embedding either the certificate made for it (one that lives only
// there) or the certificate of the PKI directory, read back from disk.
func createKubeconfig(k *resolve.Kubeconfig, c *resolve.Cert, mk made, ca *pki.CA) error {
	if ca == nil {
		return fmt.Errorf("cannot issue %s: CA %s is unusable", c.Spec.Name, caFile(c))
	}
	cert, key := mk.cert, mk.key
	if c.Kubeconfig != k {
		var err error
		if cert, key, err = c.Location.Read(); err != nil {
			return fmt.Errorf("kubeconfig %s: %w", k.Spec.Name, err)
		}
		if key == nil {
			return fmt.Errorf("kubeconfig %s: %s missing", k.Spec.Name, fileKeyPath(c.Location))
		}
		// A certificate its CA does not sign (the CA was made anew beside
		// it) would give the new kubeconfig a client no API server trusts.
		signed := cert.CheckSignatureFrom(ca.Cert) == nil
		if c.CA != nil && len(c.CA.Certs) > 0 {
			_, signed = c.CA.SignerOf(cert)
		}
		if !signed {
			return fmt.Errorf("kubeconfig %s: %s is not signed by %s: renew it first (kubepki init --apply-drift, or kubepki certs renew %s)", k.Spec.Name, c.Location.Path(), caFile(c), c.Spec.Name)
		}
	}
	keyPEM, err := pki.EncodeKey(key)
	if err != nil {
		return err
	}
	caPEM := pki.EncodeCert(ca.Cert)
	if c.CA != nil && len(c.CA.Certs) > 0 {
		caPEM = c.CA.BundlePEM()
	}
	s := k.Spec
	cfg := kubeconfig.New(kubeconfig.Params{
		Cluster: s.Cluster, User: s.User, Context: s.Context(), Server: s.Server,
		CA: caPEM, Cert: pki.EncodeCert(cert), Key: keyPEM,
	})
	return kubeconfig.Create(k.Path, cfg)
}

// externalError says a certificate of an external CA cannot be issued here.
func externalError(c *resolve.Cert) error {
	return fmt.Errorf("cannot issue %s: %s is absent (external CA); have the external CA sign a CSR (kubepki certs generate-csr %s)", c.Spec.Name, c.CA.KeyPath, c.Spec.Name)
}

// writeCert writes a certificate made in memory, with its key if that is
// new. A leaf needs ca, its CA, usable: written now, or on disk.
func writeCert(c *resolve.Cert, st store.Store, mk made, ca *pki.CA) error {
	spec := c.Spec
	if !spec.Profile.IsCA && ca == nil {
		return fmt.Errorf("cannot issue %s: CA %s is unusable", spec.Name, caFile(c))
	}
	// The key goes first: if the certificate write fails, the next run finds
	// the key and issues a certificate for it.
	if mk.key != nil {
		if err := st.CreateKey(spec.Path, mk.key); err != nil {
			return err
		}
	}
	return st.CreateCert(spec.Path, mk.cert)
}

// createKeyPair writes a key pair: key, new, or the one on disk (nil).
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

// generateKey makes one key, and tells onKey, if set, how long it took.
func generateKey(alg pki.KeyAlgorithm, onKey func(KeyTime)) (crypto.Signer, error) {
	if onKey == nil {
		return pki.GenerateKey(alg)
	}
	// Pinned to its thread, the goroutine's processor time is the thread's.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start, cpu := time.Now(), threadCPU()
	key, err := pki.GenerateKey(alg)
	onKey(KeyTime{Alg: alg, Wall: time.Since(start), CPU: threadCPU() - cpu})
	return key, err
}
