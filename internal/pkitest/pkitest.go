// Package pkitest builds what kubepki's tests start from: keys, CAs,
// certificates and requests, the plan of a spec and a store laid out as the
// CLI lays it out. Every helper fails the test instead of returning an
// error. It depends on pki, cluster, catalog and store only, so the tests
// of every package above those can use it.
package pkitest

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/store"
)

// Key generates a key of algorithm alg.
func Key(t testing.TB, alg pki.KeyAlgorithm) crypto.Signer {
	t.Helper()
	k, err := pki.GenerateKey(alg)
	if err != nil {
		t.Fatalf("generate %s key: %v", alg, err)
	}
	return k
}

// EncodeKey is pki.EncodeKey or a test failure.
func EncodeKey(t testing.TB, k crypto.Signer) []byte {
	t.Helper()
	b, err := pki.EncodeKey(k)
	if err != nil {
		t.Fatalf("encode key: %v", err)
	}
	return b
}

// CA makes a self-signed CA named cn with a new ECDSA-P256 key, valid for
// validity from now.
func CA(t testing.TB, cn string, validity time.Duration, now time.Time) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA(Key(t, pki.ECDSAP256), pki.Profile{Subject: pki.Subject{CommonName: cn}, Validity: validity}, now)
	if err != nil {
		t.Fatalf("new CA %s: %v", cn, err)
	}
	return ca
}

// Issue signs pub with ca as p says, at now.
func Issue(t testing.TB, ca *pki.CA, pub crypto.PublicKey, p pki.Profile, now time.Time) *x509.Certificate {
	t.Helper()
	c, err := ca.Issue(pub, p, now)
	if err != nil {
		t.Fatalf("issue %q: %v", p.Subject.CommonName, err)
	}
	return c
}

// WriteCA writes ca's certificate and key as dir/name.crt and dir/name.key
// and returns their paths.
func WriteCA(t testing.TB, dir, name string, ca *pki.CA) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	WriteFile(t, certFile, pki.EncodeCert(ca.Cert), store.CertMode)
	WriteFile(t, keyFile, EncodeKey(t, ca.Key), store.KeyMode)
	return certFile, keyFile
}

// WriteFile writes data to path with mode, creating the parent directories.
func WriteFile(t testing.TB, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // whatever the umask
		t.Fatal(err)
	}
}

// ReadFile is os.ReadFile or a test failure.
func ReadFile(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// Request says what a test certificate request asks for.
type Request struct {
	CN     string
	O      []string
	DNS    []string
	IPs    []string
	Emails []string
	URIs   []string
	// Extensions are added as they are (a forged basicConstraints, say).
	Extensions []pkix.Extension
	// Key signs the request; nil means a new ECDSA-P256 key.
	Key crypto.Signer
}

// CSR returns the signed request r and its PEM.
func CSR(t testing.TB, r Request) (*x509.CertificateRequest, []byte) {
	t.Helper()
	key := r.Key
	if key == nil {
		key = Key(t, pki.ECDSAP256)
	}
	tmpl := &x509.CertificateRequest{
		Subject:         pkix.Name{CommonName: r.CN, Organization: r.O},
		DNSNames:        r.DNS,
		EmailAddresses:  r.Emails,
		ExtraExtensions: r.Extensions,
	}
	for _, s := range r.IPs {
		ip := net.ParseIP(s)
		if ip == nil {
			t.Fatalf("request %s: bad IP %q", r.CN, s)
		}
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
	}
	for _, s := range r.URIs {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatalf("create request %s: %v", r.CN, err)
	}
	req, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return req, pki.EncodeCSR(der)
}

// Spec is the embedded default cluster spec changed by mutate (nil: as is).
func Spec(mutate func(*cluster.Cluster)) *cluster.Cluster {
	c := cluster.Default()
	if mutate != nil {
		mutate(c)
	}
	return c
}

// SpecFile writes Spec(mutate) to a cluster.yaml in a new directory and
// returns its path, for the CLI's --config.
func SpecFile(t testing.TB, mutate func(*cluster.Cluster)) string {
	t.Helper()
	data, err := cluster.Marshal(Spec(mutate))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cluster.yaml")
	WriteFile(t, path, data, 0o644)
	return path
}

// Plan is the profile's catalog applied to Spec(mutate).
func Plan(t testing.TB, profile catalog.Profile, mutate func(*cluster.Cluster)) *catalog.Plan {
	t.Helper()
	p, err := catalog.New(Spec(mutate), profile)
	if err != nil {
		t.Fatalf("plan %s: %v", profile, err)
	}
	return p
}

// Store lays a store out in a new root as the CLI does: the PKI directory
// root/pki, kubeconfigs beside the certificates (hard way) or in its
// parent (kubeadm's /etc/kubernetes). Snapshot the root to see everything.
func Store(t testing.TB, profile catalog.Profile) (st store.Store, root string) {
	t.Helper()
	root = t.TempDir()
	st = store.Store{Dir: filepath.Join(root, "pki")}
	st.KubeconfigDir = profile.KubeconfigDir(st.Dir)
	return st, root
}
