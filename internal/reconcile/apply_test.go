package reconcile

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/pkitest"
	"kubepki.dev/kubepki/internal/resolve"
	"kubepki.dev/kubepki/internal/store"
)

var planCases = []struct {
	name    string
	profile catalog.Profile
	mutate  func(*cluster.Cluster)
}{
	{"hardway", catalog.Hardway, nil},
	{"kubeadm", catalog.Kubeadm, nil},
	{"hardway-rsa2048", catalog.Hardway, func(c *cluster.Cluster) { c.KeyAlgorithm = "RSA-2048" }},
	{"kubeadm-ed25519", catalog.Kubeadm, func(c *cluster.Cluster) { c.KeyAlgorithm = "Ed25519" }},
	{"kubeadm-single-ca", catalog.Kubeadm, func(c *cluster.Cluster) {
		off := false
		c.CertificateAuthorities.Etcd, c.CertificateAuthorities.FrontProxy = &off, &off
	}},
	{"hardway-users", catalog.Hardway, func(c *cluster.Cluster) {
		c.Users = []cluster.User{{Name: "alice", Groups: []string{"devs"}}, {Name: "ci-bot"}}
	}},
}

// TestApplyEmptyDir: everything is created, correct, with the right modes,
// and a second Apply keeps every file as it is.
func TestApplyEmptyDir(t *testing.T) {
	for _, tc := range planCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			plan := pkitest.Plan(t, tc.profile, tc.mutate)
			st, root := pkitest.Store(t, tc.profile)

			before := Examine(plan, st, testNow)
			checkStates(t, before, Missing, nil)

			rs := mustApply(t, plan, st, testNow, Options{})
			for _, r := range rs {
				if r.Action != Created || r.State != Valid || r.Findings != nil {
					t.Errorf("%s: action %s, state %s, findings %q; want created, valid, none", id(r.Status), r.Action, r.State, r.Findings)
				}
			}
			snap := snapshot(t, root)
			if got, want := keysOf(snap), expectedFiles(t, plan, st, root); !slices.Equal(got, want) {
				t.Errorf("store holds\n%q\nwant exactly\n%q", got, want)
			}
			for p, s := range snap {
				var want os.FileMode
				switch {
				case p == "./":
					continue // t.TempDir's, not ours
				case strings.HasSuffix(p, "/"):
					want = os.ModeDir | store.KeyDirMode
				case strings.HasSuffix(p, ".crt"), strings.HasSuffix(p, ".pub"):
					want = store.CertMode
				default: // keys and kubeconfigs (which embed keys)
					want = store.KeyMode
				}
				if s.mode != want {
					t.Errorf("%s: mode %v, want %v", p, s.mode, want)
				}
			}
			checkPKI(t, plan, st)

			after := Examine(plan, st, testNow)
			checkStates(t, after, Valid, nil)
			checkStatusFields(t, plan, st, after)

			// Second run: nothing to do, nothing touched.
			ageFiles(t, root)
			snap = snapshot(t, root)
			var calls int
			rs = mustApply(t, plan, st, testNow.Add(time.Hour), Options{Progress: func(int, int) { calls++ }})
			for _, r := range rs {
				if r.Action != Kept || r.State != Valid || len(r.Findings) != 0 {
					t.Errorf("second Apply: %s: action %s, state %s, findings %q; want kept, valid", id(r.Status), r.Action, r.State, r.Findings)
				}
			}
			if calls != 0 {
				t.Errorf("second Apply reported progress %d times; it generates no key", calls)
			}
			assertUnchanged(t, snap, snapshot(t, root))
		})
	}
}

// checkStatusFields checks the descriptive fields of a complete store's
// statuses.
func checkStatusFields(t *testing.T, plan *catalog.Plan, st store.Store, ss []Status) {
	t.Helper()
	for _, s := range ss {
		if !s.KeyPresent {
			t.Errorf("%s: KeyPresent false in a complete store", id(s))
		}
		var wantPath string
		var wantNotAfter time.Time
		switch s.Kind {
		case KindCA, KindCert:
			c, ok := plan.Cert(s.Name)
			if !ok || c.Embedded {
				t.Errorf("%s: not a file certificate of the plan", id(s))
				continue
			}
			if s.IsCA != c.Profile.IsCA || (s.Kind == KindCA) != c.Profile.IsCA {
				t.Errorf("%s: IsCA %v", id(s), s.IsCA)
			}
			wantPath = st.CertPath(c.Path)
			wantNotAfter = readCert(t, st, c.Path).NotAfter
		case KindKeyPair:
			wantPath = st.KeyPath(plan.Keys[slices.IndexFunc(plan.Keys, func(k catalog.KeySpec) bool { return k.Name == s.Name })].Path)
		case KindKubeconfig:
			k, ok := plan.Kubeconfig(s.Name)
			if !ok {
				t.Errorf("%s: not a kubeconfig of the plan", id(s))
				continue
			}
			wantPath = st.KubeconfigPath(k.File)
			cert, _, _ := kubeconfigPair(t, st, k)
			wantNotAfter = cert.NotAfter
		default:
			t.Errorf("%s: unknown kind %q", id(s), s.Kind)
		}
		if s.Path != wantPath {
			t.Errorf("%s: path %s, want %s", id(s), s.Path, wantPath)
		}
		if !s.NotAfter.Equal(wantNotAfter) {
			t.Errorf("%s: NotAfter %v, want %v", id(s), s.NotAfter, wantNotAfter)
		}
	}
}

// checkPKI verifies every certificate and kubeconfig of a complete store
// with Go's verifier: algorithm, profile, chain, EKU, times and key.
func checkPKI(t *testing.T, plan *catalog.Plan, st store.Store) {
	t.Helper()
	for _, c := range plan.Certs {
		cert, key := certOf(t, plan, st, c)
		if !pki.KeyMatches(cert.PublicKey, key) {
			t.Errorf("%s: key does not match certificate", c.Name)
		}
		if got := pki.AlgorithmOf(cert.PublicKey); got != c.KeyAlgorithm {
			t.Errorf("%s: key algorithm %s, want %s", c.Name, got, c.KeyAlgorithm)
		}
		if d := pki.Diff(cert, c.Profile); len(d) != 0 {
			t.Errorf("%s: differs from its profile: %q", c.Name, d)
		}
		if want := testNow.Add(-pki.Backdate); !cert.NotBefore.Equal(want) {
			t.Errorf("%s: NotBefore %v, want %v", c.Name, cert.NotBefore, want)
		}
		if want := testNow.Add(c.Profile.Validity); !cert.NotAfter.Equal(want) {
			t.Errorf("%s: NotAfter %v, want %v", c.Name, cert.NotAfter, want)
		}
		if c.Profile.IsCA {
			if err := cert.CheckSignatureFrom(cert); err != nil {
				t.Errorf("%s: CA not self-signed: %v", c.Name, err)
			}
			continue
		}
		caSpec, ok := plan.Cert(c.CA)
		if !ok {
			t.Fatalf("%s: CA %s not in plan", c.Name, c.CA)
		}
		ca := readCert(t, st, caSpec.Path)
		roots := x509.NewCertPool()
		roots.AddCert(ca)
		eku, _ := pki.ExtKeyUsages(c.Profile.Usages)
		for _, u := range eku {
			if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: testNow, KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
				t.Errorf("%s: does not verify against %s for %v: %v", c.Name, c.CA, u, err)
			}
		}
		if !bytes.Equal(cert.AuthorityKeyId, ca.SubjectKeyId) {
			t.Errorf("%s: AKI %x, CA SKI %x", c.Name, cert.AuthorityKeyId, ca.SubjectKeyId)
		}
	}
	for _, k := range plan.Keys {
		key := readKey(t, st, k.Path)
		pub, err := st.ReadPublicKey(k.Path)
		if err != nil {
			t.Fatal(err)
		}
		if !pki.KeyMatches(pub, key) {
			t.Errorf("%s: .pub does not match .key", k.Name)
		}
		if got := pki.AlgorithmOf(pub); got != k.KeyAlgorithm || !got.CanSignTokens() {
			t.Errorf("%s: algorithm %s, want %s (able to sign tokens)", k.Name, got, k.KeyAlgorithm)
		}
	}
	for _, k := range plan.Kubeconfigs {
		cert, key, cl := kubeconfigPair(t, st, k)
		c, _ := plan.Cert(k.Cert)
		if !pki.KeyMatches(cert.PublicKey, key) {
			t.Errorf("kubeconfig %s: key does not match certificate", k.Name)
		}
		if cl.Server != k.Server || cl.Context != k.Context() {
			t.Errorf("kubeconfig %s: server %s, context %s; want %s, %s", k.Name, cl.Server, cl.Context, k.Server, k.Context())
		}
		if cert.Subject.CommonName != c.Profile.Subject.CommonName {
			t.Errorf("kubeconfig %s: client CN %q, want %q", k.Name, cert.Subject.CommonName, c.Profile.Subject.CommonName)
		}
		caSpec, _ := plan.Cert(c.CA)
		if ca := readCert(t, st, caSpec.Path); !bytes.Equal(cl.CAData, pki.EncodeCert(ca)) {
			t.Errorf("kubeconfig %s: certificate-authority-data is not %s", k.Name, caSpec.Path)
		}
		if !c.Embedded {
			if onDisk := readCert(t, st, c.Path); !onDisk.Equal(cert) {
				t.Errorf("kubeconfig %s: embeds a certificate other than %s.crt", k.Name, c.Path)
			}
		}
	}
}

// TestApplyUsesExistingCA: a CA the user brought (RSA, PKCS#1, while the
// plan asks for ECDSA) signs the new leaves and is not rewritten.
func TestApplyUsesExistingCA(t *testing.T) {
	for _, tc := range []struct {
		name    string
		profile catalog.Profile
		ca      string // plan name of the user's CA
		cn      string // "" keeps the plan's CN; a CA's CN is not compared
	}{
		{"hardway", catalog.Hardway, "ca", ""},
		{"kubeadm", catalog.Kubeadm, "ca", ""},
		{"kubeadm etcd CA", catalog.Kubeadm, "etcd-ca", ""},
		{"hardway CA with a foreign CN", catalog.Hardway, "ca", "Acme Root CA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			plan := pkitest.Plan(t, tc.profile, nil)
			st, root := pkitest.Store(t, tc.profile)
			spec, _ := plan.Cert(tc.ca)
			if spec.KeyAlgorithm != pki.ECDSAP256 {
				t.Fatalf("premise: plan CA algorithm %s", spec.KeyAlgorithm)
			}
			userKey := pkitest.Key(t, pki.RSA2048)
			prof := spec.Profile
			if tc.cn != "" {
				prof.Subject.CommonName = tc.cn
			}
			userCA, err := pki.NewCA(userKey, prof, testNow.Add(-24*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			certPEM := pki.EncodeCert(userCA.Cert)
			keyPEM := pemPKCS1(t, userKey)
			pkitest.WriteFile(t, st.CertPath(spec.Path), certPEM, 0o640)
			pkitest.WriteFile(t, st.KeyPath(spec.Path), keyPEM, 0o400)
			ageFiles(t, root)
			caBefore := snapshot(t, filepath.Dir(st.CertPath(spec.Path)))

			rs := byID(mustApply(t, plan, st, testNow, Options{}))
			// Whatever its CN, a user's CA is valid: it is used, not judged
			// by the plan's subject.
			wantState, wantAction := Valid, Kept
			if len(rs["ca/"+tc.ca].Findings) > 0 {
				t.Errorf("CA findings %q, want none", rs["ca/"+tc.ca].Findings)
			}
			if r := rs["ca/"+tc.ca]; r.State != wantState || r.Action != wantAction {
				t.Errorf("user CA: state %s, action %s; want %s, %s", r.State, r.Action, wantState, wantAction)
			}
			for n, r := range rs {
				if n != "ca/"+tc.ca && (r.Action != Created || r.State != Valid) {
					t.Errorf("%s: action %s, state %s; want created, valid (findings %q)", n, r.Action, r.State, r.Findings)
				}
			}
			// The CA files are byte-identical, same mode, same inode, same mtime.
			if got := pkitest.ReadFile(t, st.CertPath(spec.Path)); !bytes.Equal(got, certPEM) {
				t.Error("CA certificate rewritten")
			}
			if got := pkitest.ReadFile(t, st.KeyPath(spec.Path)); !bytes.Equal(got, keyPEM) {
				t.Error("CA key rewritten")
			}
			caAfter := snapshot(t, filepath.Dir(st.CertPath(spec.Path)))
			for _, f := range []string{filepath.Base(st.CertPath(spec.Path)), filepath.Base(st.KeyPath(spec.Path))} {
				assertUnchanged(t, map[string]fileState{f: caBefore[f]}, map[string]fileState{f: caAfter[f]})
			}

			// Every leaf of that CA, in a file or a kubeconfig, chains to
			// the user's CA and has a new ECDSA key with ECDSA key usage.
			n := 0
			for _, c := range plan.Leaves() {
				if c.CA != tc.ca {
					continue
				}
				n++
				leaf, _ := certOf(t, plan, st, c)
				if err := leaf.CheckSignatureFrom(userCA.Cert); err != nil {
					t.Errorf("%s: not signed by the user's CA: %v", c.Name, err)
				}
				if !bytes.Equal(leaf.AuthorityKeyId, userCA.Cert.SubjectKeyId) {
					t.Errorf("%s: AKI %x, want user CA SKI %x", c.Name, leaf.AuthorityKeyId, userCA.Cert.SubjectKeyId)
				}
				if !bytes.Equal(leaf.RawIssuer, userCA.Cert.RawSubject) {
					t.Errorf("%s: issuer is not the user CA's subject", c.Name)
				}
				if got := pki.AlgorithmOf(leaf.PublicKey); got != c.KeyAlgorithm || got == pki.RSA2048 {
					t.Errorf("%s: key %s, want the plan's %s", c.Name, got, c.KeyAlgorithm)
				}
				if leaf.KeyUsage != x509.KeyUsageDigitalSignature {
					t.Errorf("%s: key usage %v for an ECDSA key", c.Name, pki.KeyUsageNames(leaf.KeyUsage))
				}
			}
			if n == 0 {
				t.Fatal("premise: no leaf signed by the CA")
			}
			// Kubeconfigs carry the user's CA, byte for byte.
			for _, k := range plan.Kubeconfigs {
				if c, _ := plan.Cert(k.Cert); c.CA == tc.ca {
					if _, _, cl := kubeconfigPair(t, st, k); !bytes.Equal(cl.CAData, certPEM) {
						t.Errorf("kubeconfig %s: CA data is not the user's CA", k.Name)
					}
				}
			}
			if tc.cn == "" {
				checkStates(t, Examine(plan, st, testNow), Valid, nil)
			}
		})
	}
}

// TestApplyReusesExistingKey: a key without its certificate gets a
// certificate; the key file is not touched and no key is generated for it.
func TestApplyReusesExistingKey(t *testing.T) {
	for _, tc := range []struct {
		name    string
		profile catalog.Profile
		item    string // kind/name
		alg     pki.KeyAlgorithm
	}{
		{"hardway leaf", catalog.Hardway, "cert/admin", pki.ECDSAP256},
		{"hardway leaf with a key of another algorithm", catalog.Hardway, "cert/node-0", pki.RSA2048},
		{"hardway CA", catalog.Hardway, "ca/ca", pki.Ed25519},
		{"kubeadm etcd leaf", catalog.Kubeadm, "cert/etcd-server", pki.ECDSAP384},
		{"kubeadm sa key without sa.pub", catalog.Kubeadm, "keypair/sa", pki.RSA2048},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			plan := pkitest.Plan(t, tc.profile, nil)
			st, _ := pkitest.Store(t, tc.profile)
			key := pkitest.Key(t, tc.alg)
			keyPEM := pkitest.EncodeKey(t, key)
			_, name, _ := strings.Cut(tc.item, "/")
			var keyPath string
			if spec, ok := plan.Cert(name); ok {
				keyPath = st.KeyPath(spec.Path)
			} else {
				keyPath = st.KeyPath(plan.Keys[0].Path)
			}
			pkitest.WriteFile(t, keyPath, keyPEM, 0o600)

			s := byID(Examine(plan, st, testNow))[tc.item]
			if s.State != Missing || !s.KeyPresent {
				t.Fatalf("before Apply: state %s, KeyPresent %v; want missing, true", s.State, s.KeyPresent)
			}
			wantFinding := fmt.Sprintf("certificate missing; existing key %s will be reused", keyPath)
			if tc.item == "keypair/sa" {
				wantFinding = fmt.Sprintf("public key %s missing; it will be derived from the private key", strings.TrimSuffix(keyPath, ".key")+".pub")
			}
			if !slices.Equal(s.Findings, []string{wantFinding}) {
				t.Errorf("findings %q, want %q", s.Findings, wantFinding)
			}

			var mu sync.Mutex
			var calls, total int
			rs := byID(mustApply(t, plan, st, testNow, Options{Progress: func(_, tot int) {
				mu.Lock()
				calls, total = calls+1, tot
				mu.Unlock()
			}}))
			if want := keysToGenerate(plan) - 1; total != want || calls != want {
				t.Errorf("Apply generated %d keys (total %d), want %d: the existing key is reused", calls, total, want)
			}
			for n, r := range rs {
				if r.Action != Created || r.State != Valid {
					t.Errorf("%s: action %s, state %s (findings %q)", n, r.Action, r.State, r.Findings)
				}
			}
			if got := pkitest.ReadFile(t, keyPath); !bytes.Equal(got, keyPEM) {
				t.Error("existing key rewritten")
			}
			var pub any
			if spec, ok := plan.Cert(name); ok {
				pub = readCert(t, st, spec.Path).PublicKey
			} else if pub, _ = st.ReadPublicKey(plan.Keys[0].Path); pub == nil {
				t.Fatal("no sa.pub")
			}
			if !pki.KeyMatches(pub, key) {
				t.Error("the new certificate (or .pub) is not for the existing key")
			}
			// The store is complete and valid, even with a key of an
			// algorithm other than the plan's.
			checkStates(t, Examine(plan, st, testNow), Valid, nil)
		})
	}
}

// TestApplyProgress: the callback sees every generated key once, done
// counting up to a constant total, whatever the number of workers.
func TestApplyProgress(t *testing.T) {
	for _, workers := range []int{0, 1, 2, 16} {
		for _, profile := range catalog.Profiles() {
			t.Run(fmt.Sprintf("%s/workers=%d", profile, workers), func(t *testing.T) {
				t.Parallel()
				plan := pkitest.Plan(t, profile, nil)
				st, _ := pkitest.Store(t, profile)
				var (
					mu    sync.Mutex
					calls [][2]int
				)
				mustApply(t, plan, st, testNow, Options{Workers: workers, Progress: func(done, total int) {
					mu.Lock()
					defer mu.Unlock()
					calls = append(calls, [2]int{done, total})
				}})
				total := keysToGenerate(plan)
				if len(calls) != total {
					t.Fatalf("Progress called %d times, want %d: %v", len(calls), total, calls)
				}
				for i, c := range calls {
					if c != [2]int{i + 1, total} {
						t.Errorf("call %d: (%d, %d), want (%d, %d)", i, c[0], c[1], i+1, total)
					}
				}
			})
		}
	}
}

func TestApplyCanceled(t *testing.T) {
	plan := pkitest.Plan(t, catalog.Kubeadm, nil)
	st, root := pkitest.Store(t, catalog.Kubeadm)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rs, err := Apply(ctx, plan, st, testNow, Options{Workers: 1})
	if !errors.Is(err, context.Canceled) || rs != nil {
		t.Fatalf("Apply with a canceled context = %d results, %v; want context.Canceled", len(rs), err)
	}
	assertUnchanged(t, map[string]fileState{"./": snapshot(t, root)["./"]}, snapshot(t, root))

	// Canceled part-way: the error is returned and nothing is written.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	_, err = Apply(ctx, plan, st, testNow, Options{Workers: 1, Progress: func(done, _ int) {
		if done == 1 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply canceled after one key: %v", err)
	}
	assertUnchanged(t, map[string]fileState{"./": snapshot(t, root)["./"]}, snapshot(t, root))
}

// TestApplyPublicKeyWithoutPrivateKey: sa.pub without sa.key is not
// "missing": a new sa.key could never match it, so Apply fails the item
// and writes nothing, instead of leaving a mismatched pair.
func TestApplyPublicKeyWithoutPrivateKey(t *testing.T) {
	plan := pkitest.Plan(t, catalog.Kubeadm, nil)
	st, root := pkitest.Store(t, catalog.Kubeadm)
	mustApply(t, plan, st, testNow, Options{})
	mustRemove(t, st.KeyPath("sa"))
	ageFiles(t, root)
	before := snapshot(t, root)

	rs := mustApply(t, plan, st, testNow, Options{})
	checkActions(t, rs, Kept, map[string]Action{"keypair/sa": Failed})
	r := byID(rs)["keypair/sa"]
	if want := []string{st.PubPath("sa") + " exists without " + st.KeyPath("sa") + "; restore the private key or remove the public key"}; !slices.Equal(r.Findings, want) {
		t.Errorf("findings %q, want %q", r.Findings, want)
	}
	assertUnchanged(t, before, snapshot(t, root))

	// Once the stale public key is gone, Apply makes a matching pair.
	mustRemove(t, st.PubPath("sa"))
	rs = mustApply(t, plan, st, testNow, Options{})
	checkActions(t, rs, Kept, map[string]Action{"keypair/sa": Created})
	checkStates(t, Examine(plan, st, testNow), Valid, nil)
}

// TestApplyKeyError: a key that cannot be generated fails Apply with the
// algorithm named, and nothing is written, though the other keys (and
// the CA's certificate) were made in memory.
func TestApplyKeyError(t *testing.T) {
	for _, workers := range []int{1, 2} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			plan := pkitest.Plan(t, catalog.Hardway, nil)
			plan.Certs[len(plan.Certs)-1].KeyAlgorithm = "RSA-1"
			st, root := pkitest.Store(t, catalog.Hardway)
			before := snapshot(t, root)
			rs, err := Apply(context.Background(), plan, st, testNow, Options{Workers: workers})
			if err == nil || !strings.Contains(err.Error(), "generate RSA-1 key: unknown key algorithm") || rs != nil {
				t.Fatalf("Apply = %d results, %v; want the key's error", len(rs), err)
			}
			assertUnchanged(t, before, snapshot(t, root))
		})
	}
}

// TestApplyOnKey: OnKey hears of every generated key exactly once, with its
// algorithm, whatever the number of workers.
func TestApplyOnKey(t *testing.T) {
	for _, workers := range []int{1, 2, 16} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			plan := pkitest.Plan(t, catalog.Kubeadm, func(c *cluster.Cluster) { c.KeyAlgorithm = "Ed25519" })
			st, _ := pkitest.Store(t, catalog.Kubeadm)
			var (
				mu   sync.Mutex
				algs []pki.KeyAlgorithm
			)
			mustApply(t, plan, st, testNow, Options{Workers: workers, OnKey: func(k KeyTime) {
				mu.Lock()
				defer mu.Unlock()
				algs = append(algs, k.Alg)
			}})
			var want []pki.KeyAlgorithm
			for _, c := range plan.Certs {
				want = append(want, c.KeyAlgorithm) // each its own file's key, or its kubeconfig's
			}
			for _, k := range plan.Keys {
				want = append(want, k.KeyAlgorithm)
			}
			slices.Sort(algs)
			slices.Sort(want)
			if len(want) != keysToGenerate(plan) || !slices.Equal(algs, want) {
				t.Errorf("OnKey heard of %q, want %q", algs, want)
			}
			checkPKI(t, plan, st)
		})
	}
}

// TestWriteAllCAFails: when a CA made in memory is not written, every
// certificate it signed fails too and stays off the disk, whatever the
// order the writers reach them in, while the rest of the PKI is written.
func TestWriteAllCAFails(t *testing.T) {
	for _, caName := range []string{"ca", "etcd-ca", "front-proxy-ca"} {
		t.Run(caName, func(t *testing.T) {
			plan := pkitest.Plan(t, catalog.Kubeadm, func(c *cluster.Cluster) { c.KeyAlgorithm = "ECDSA-P256" })
			st, _ := pkitest.Store(t, catalog.Kubeadm)
			var steps []Step
			var results []Result
			for _, s := range Steps(plan, st, testNow, 0) {
				if s.Kind != KindPermissions {
					steps, results = append(steps, s), append(results, Result{Status: s.Status})
				}
			}
			m := resolve.Resolve(plan, st)
			c := newCreation(m, st, planItems(m), steps, results)
			if err := c.makeAll(context.Background(), testNow, Options{}); err != nil {
				t.Fatal(err)
			}
			errDisk := errors.New("disk on fire")
			c.made[c.caItem[caName]].err = errDisk
			errs := c.writeAll()

			signed := 0
			for i := range c.items {
				cert := c.cert(i)
				if k := c.items[i].kubeconfig; k != nil && cert == nil {
					cert, _ = m.Cert(k.Spec.Cert)
				}
				name := id(results[i].Status)
				switch {
				case i == c.caItem[caName]:
					if !errors.Is(errs[i], errDisk) {
						t.Errorf("%s: %v, want %v", name, errs[i], errDisk)
					}
				case cert != nil && cert.Spec.CA == caName && !cert.Spec.Profile.IsCA:
					signed++
					if want := "cannot issue " + cert.Spec.Name + ": CA " + caFile(cert) + " is unusable"; errs[i] == nil || errs[i].Error() != want {
						t.Errorf("%s: %v, want %q", name, errs[i], want)
					}
					if store.Exists(results[i].Path) {
						t.Errorf("%s: %s written, though its CA was not", name, results[i].Path)
					}
				case errs[i] != nil:
					t.Errorf("%s: %v", name, errs[i])
				case !store.Exists(results[i].Path):
					t.Errorf("%s: %s not written", name, results[i].Path)
				}
			}
			if signed == 0 {
				t.Fatalf("no item is signed by %s: the test proves nothing", caName)
			}
		})
	}
}

// TestApplyKubeconfigOfForeignCert: with the CA made anew beside an old
// leaf (its CA deleted), a missing kubeconfig is not made from that leaf,
// whose client certificate no API server would trust; the leaf itself is
// left alone (drift), and nothing else fails.
func TestApplyKubeconfigOfForeignCert(t *testing.T) {
	plan := pkitest.Plan(t, catalog.Hardway, nil)
	st, _ := pkitest.Store(t, catalog.Hardway)
	mustApply(t, plan, st, testNow, Options{})
	kc, ok := plan.Kubeconfig("admin")
	if !ok {
		t.Fatal("premise: no admin kubeconfig in the hard-way plan")
	}
	for _, p := range []string{st.CertPath("ca"), st.KeyPath("ca"), st.KubeconfigPath(kc.File)} {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := Apply(context.Background(), plan, st, testNow, Options{})
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	r := byID(rs)["kubeconfig/admin"]
	if r.Action != Failed || len(r.Findings) != 1 || !strings.Contains(r.Findings[0], "admin.crt is not signed by ca.crt: renew it first") {
		t.Errorf("admin kubeconfig: action %s, findings %q; want failed, not signed by the new CA", r.Action, r.Findings)
	}
	if store.Exists(st.KubeconfigPath(kc.File)) {
		t.Error("admin kubeconfig written with a certificate the new CA does not sign")
	}
	if r := byID(rs)["ca/ca"]; r.Action != Created {
		t.Errorf("CA: action %s, want created", r.Action)
	}
}
