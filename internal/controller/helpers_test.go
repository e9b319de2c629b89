package controller

import (
	"bytes"
	"crypto/x509/pkix"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"kubepki.dev/kubepki/internal/csr"
	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/pkitest"
	"kubepki.dev/kubepki/internal/store"
)

// writeCA writes a new CA pair into dir and returns the paths and the CA.
func writeCA(t *testing.T, dir, name string, validity time.Duration) (certFile, keyFile string, ca *pki.CA) {
	t.Helper()
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	ca, err = pki.NewCA(key, pki.Profile{Subject: pki.Subject{CommonName: name}, Validity: validity}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := pki.EncodeKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	replaceFile(t, certFile, pki.EncodeCert(ca.Cert))
	replaceFile(t, keyFile, keyPEM)
	return certFile, keyFile, ca
}

// replaceFile writes data to path by an atomic rename, as a Secret volume
// or kubepki's store does.
func replaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// request is a test request's subject and SANs.
type request struct {
	cn   string
	o    []string
	dns  []string
	ips  []string
	exts []pkix.Extension
}

func newRequestPEM(t *testing.T, r request) []byte {
	t.Helper()
	_, pemData := pkitest.CSR(t, pkitest.Request{CN: r.cn, O: r.o, DNS: r.dns, IPs: r.ips, Extensions: r.exts})
	return pemData
}

// newCSR returns a CSR object as the API server holds it.
func newCSR(t *testing.T, name, signer, user string, groups []string, r request, usages ...certv1.KeyUsage) *certv1.CertificateSigningRequest {
	t.Helper()
	c := csr.NewObject(csr.Request{Name: name, SignerName: signer, PEM: newRequestPEM(t, r), Usages: usages})
	c.Spec.Username, c.Spec.Groups = user, groups
	c.UID = types.UID("uid-" + name)
	return c
}

func approved(c *certv1.CertificateSigningRequest) *certv1.CertificateSigningRequest {
	c.Status.Conditions = append(c.Status.Conditions, certv1.CertificateSigningRequestCondition{
		Type: certv1.CertificateApproved, Status: corev1.ConditionTrue, Reason: "Test", LastUpdateTime: metav1.Now(),
	})
	return c
}

func testScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := certv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := corev1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// fakeClient is a controller-runtime fake holding objs, with the status
// (and approval) subresources and optional interceptors.
func fakeClient(t *testing.T, funcs *interceptor.Funcs, objs ...client.Object) client.WithWatch {
	t.Helper()
	b := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(objs...).WithStatusSubresource(&certv1.CertificateSigningRequest{})
	if funcs != nil {
		b = b.WithInterceptorFuncs(*funcs)
	}
	return b.Build()
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testReconciler returns a reconciler over c signing for the named signers
// with one CA, logging JSON into the returned buffer.
func testReconciler(t *testing.T, c client.Client, signers ...string) (*Reconciler, *pki.CA, *syncBuffer) {
	t.Helper()
	certFile, keyFile, ca := writeCA(t, t.TempDir(), "ca", 24*time.Hour)
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	files, err := LoadCAFiles(certFile, keyFile, store.KeyPolicy{SecretVolume: true}, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &Reconciler{
		Client: c, Live: c, Signers: map[string]*Signer{},
		MaxDuration: 8760 * time.Hour, Metrics: NewMetrics(), Log: log, Now: time.Now,
	}
	for _, s := range signers {
		r.Signers[s] = &Signer{Name: s, CA: files}
	}
	return r, ca, logs
}
