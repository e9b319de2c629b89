package controller

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"kubepki.dev/kubepki/internal/csr"
	"kubepki.dev/kubepki/internal/pki"
)

const (
	clientSigner  = certv1.KubeAPIServerClientSignerName
	servingSigner = certv1.KubeletServingSignerName
)

var clientUsages = []certv1.KeyUsage{"digital signature", "client auth"}

func reconcileOne(t *testing.T, r *Reconciler, name string) error {
	t.Helper()
	_, err := r.Reconcile(context.Background(), reconcile.Request{NamespacedName: client.ObjectKey{Name: name}})
	return err
}

func get(t *testing.T, c client.Client, name string) *certv1.CertificateSigningRequest {
	t.Helper()
	var obj certv1.CertificateSigningRequest
	if err := c.Get(context.Background(), client.ObjectKey{Name: name}, &obj); err != nil {
		t.Fatal(err)
	}
	return &obj
}

func TestReconcileSigns(t *testing.T) {
	obj := approved(newCSR(t, "jane", clientSigner, "admin", []string{"system:masters"}, request{cn: "jane", o: []string{"developers"}}, clientUsages...))
	ten := int32(10 * 365 * 24 * 3600)
	obj.Spec.ExpirationSeconds = &ten
	c := fakeClient(t, nil, obj)
	r, ca, logs := testReconciler(t, c, clientSigner)
	r.MaxDuration = 24 * time.Hour
	if err := reconcileOne(t, r, "jane"); err != nil {
		t.Fatal(err)
	}
	got := get(t, c, "jane")
	cert, err := pki.ParseCert(got.Status.Certificate)
	if err != nil {
		t.Fatalf("status.certificate: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("certificate does not verify as a client certificate of the CA: %v", err)
	}
	if cert.Subject.CommonName != "jane" || cert.IsCA {
		t.Errorf("cert = %v CA:%v", cert.Subject, cert.IsCA)
	}
	// Ten years asked, capped at --max-duration (24h): a long-lived
	// certificate's end is back-dated by 5 minutes like NotBefore.
	if life := cert.NotAfter.Sub(cert.NotBefore); life != 24*time.Hour {
		t.Errorf("lifetime %v, want 24h (capped)", life)
	}
	if n := testutil.ToFloat64(r.Metrics.signed.WithLabelValues(clientSigner)); n != 1 {
		t.Errorf("signed metric = %v", n)
	}
	// A second reconcile of the issued CSR does nothing.
	if err := reconcileOne(t, r, "jane"); err != nil {
		t.Fatal(err)
	}
	if again := get(t, c, "jane"); string(again.Status.Certificate) != string(got.Status.Certificate) {
		t.Error("an issued CSR was signed again")
	}
	// No key material in the logs: not the request, not the certificate.
	out := logs.String()
	for _, secret := range []string{"BEGIN", base64.StdEncoding.EncodeToString(obj.Spec.Request)[:40], base64.StdEncoding.EncodeToString(cert.Raw)[:40]} {
		if strings.Contains(out, secret) {
			t.Errorf("logs contain %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, `"msg":"issued"`) || !strings.Contains(out, `"serial":"`) {
		t.Errorf("logs lack the issued record:\n%s", out)
	}
}

func TestReconcileLeavesAlone(t *testing.T) {
	mk := func(name, signer string, conds ...certv1.RequestConditionType) *certv1.CertificateSigningRequest {
		c := newCSR(t, name, signer, "admin", nil, request{cn: name}, clientUsages...)
		for _, ct := range conds {
			c.Status.Conditions = append(c.Status.Conditions, certv1.CertificateSigningRequestCondition{Type: ct, Status: corev1.ConditionTrue})
		}
		return c
	}
	issued := mk("issued", clientSigner, certv1.CertificateApproved)
	issued.Status.Certificate = []byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
	objs := []*certv1.CertificateSigningRequest{
		mk("pending", clientSigner),
		mk("denied", clientSigner, certv1.CertificateDenied),
		mk("failed", clientSigner, certv1.CertificateApproved, certv1.CertificateFailed),
		mk("other-signer", "example.com/other", certv1.CertificateApproved),
		issued,
	}
	var cobjs []client.Object
	for _, o := range objs {
		cobjs = append(cobjs, o)
	}
	var writes atomic.Int32
	c := fakeClient(t, &interceptor.Funcs{
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			writes.Add(1)
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
	}, cobjs...)
	r, _, _ := testReconciler(t, c, clientSigner)
	for _, o := range append(objs, &certv1.CertificateSigningRequest{ObjectMeta: metav1.ObjectMeta{Name: "gone"}}) {
		if err := reconcileOne(t, r, o.Name); err != nil {
			t.Errorf("%s: %v", o.Name, err)
		}
		if o.Name != "gone" && o.Name != "issued" && r.Relevant(o) != (o.Name == "pending") {
			t.Errorf("Relevant(%s) = %v", o.Name, r.Relevant(o))
		}
	}
	if writes.Load() != 0 {
		t.Errorf("%d writes, want none", writes.Load())
	}
}

func TestReconcileFailsInvalid(t *testing.T) {
	tests := []struct {
		name   string
		obj    *certv1.CertificateSigningRequest
		reason string
		msg    string
	}{
		{"client SAN", approved(newCSR(t, "san", clientSigner, "admin", nil, request{cn: "jane", dns: []string{"jane.example.com"}}, clientUsages...)),
			ReasonSignerValidation, "takes no subjectAltNames"},
		{"serving without SAN", approved(newCSR(t, "nosan", servingSigner, "system:node:a", nil, request{cn: "system:node:a", o: []string{"system:nodes"}}, "digital signature", "server auth")),
			ReasonSignerValidation, "at least one DNS or IP"},
		{"garbled request", func() *certv1.CertificateSigningRequest {
			c := approved(newCSR(t, "garbled", clientSigner, "admin", nil, request{cn: "x"}, clientUsages...))
			c.Spec.Request = []byte("junk")
			return c
		}(), ReasonInvalidRequest, "not PEM"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := fakeClient(t, nil, tc.obj)
			r, _, _ := testReconciler(t, c, clientSigner, servingSigner)
			if err := reconcileOne(t, r, tc.obj.Name); err != nil {
				t.Fatal(err)
			}
			got := get(t, c, tc.obj.Name)
			f := csr.Condition(got, certv1.CertificateFailed)
			if f == nil || f.Reason != tc.reason || !strings.Contains(f.Message, tc.msg) {
				t.Fatalf("Failed condition = %+v, want %s containing %q", f, tc.reason, tc.msg)
			}
			if len(got.Status.Certificate) != 0 {
				t.Error("a failed CSR got a certificate")
			}
			if n := testutil.ToFloat64(r.Metrics.failed.WithLabelValues(tc.obj.Spec.SignerName, tc.reason)); n != 1 {
				t.Errorf("failed metric = %v", n)
			}
		})
	}
}

// TestReconcileConflict: the first status write conflicts. If the re-read
// object already has a certificate (another replica won), nothing more is
// written; if it still needs one, the same certificate is written once more.
func TestReconcileConflict(t *testing.T) {
	for _, otherWon := range []bool{true, false} {
		name := map[bool]string{true: "another writer won", false: "still pending"}[otherWon]
		t.Run(name, func(t *testing.T) {
			obj := approved(newCSR(t, "c", clientSigner, "admin", nil, request{cn: "jane"}, clientUsages...))
			var writes []string // certificates written, in order
			var calls atomic.Int32
			winner := []byte("-----BEGIN CERTIFICATE-----\nwinner\n-----END CERTIFICATE-----\n")
			funcs := &interceptor.Funcs{
				SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, o client.Object, opts ...client.SubResourceUpdateOption) error {
					u := o.(*certv1.CertificateSigningRequest)
					writes = append(writes, string(u.Status.Certificate))
					if calls.Add(1) == 1 {
						// Someone else writes between our read and our
						// write: either a certificate or an unrelated change.
						cur := &certv1.CertificateSigningRequest{}
						if err := c.Get(ctx, client.ObjectKeyFromObject(o), cur); err != nil {
							return err
						}
						if otherWon {
							cur.Status.Certificate = winner
						} else {
							cur.Labels = map[string]string{"touched": "yes"}
							if err := c.Update(ctx, cur); err != nil {
								return err
							}
							return apierrors.NewConflict(schema.GroupResource{Group: "certificates.k8s.io", Resource: "certificatesigningrequests"}, o.GetName(), nil)
						}
						if err := c.SubResource("status").Update(ctx, cur); err != nil {
							return err
						}
						return apierrors.NewConflict(schema.GroupResource{Group: "certificates.k8s.io", Resource: "certificatesigningrequests"}, o.GetName(), nil)
					}
					return c.SubResource(sub).Update(ctx, o, opts...)
				},
			}
			c := fakeClient(t, funcs, obj)
			r, _, _ := testReconciler(t, c, clientSigner)
			if err := reconcileOne(t, r, "c"); err != nil {
				t.Fatal(err)
			}
			got := get(t, c, "c")
			if otherWon {
				if len(writes) != 1 || string(got.Status.Certificate) != string(winner) {
					t.Fatalf("writes %d, stored %q; want our one refused write and the winner's certificate kept", len(writes), got.Status.Certificate)
				}
				if n := testutil.ToFloat64(r.Metrics.signed.WithLabelValues(clientSigner)); n != 0 {
					t.Errorf("signed metric = %v, want 0: we did not issue", n)
				}
				return
			}
			if len(writes) != 2 || writes[0] != writes[1] {
				t.Fatalf("writes = %d (same certificate: %v), want the one certificate written twice", len(writes), len(writes) == 2 && writes[0] == writes[1])
			}
			if string(got.Status.Certificate) != writes[0] {
				t.Error("stored certificate is not the one signed")
			}
			if n := testutil.ToFloat64(r.Metrics.conflicts.WithLabelValues(clientSigner)); n != 1 {
				t.Errorf("conflicts metric = %v", n)
			}
		})
	}
}

// fakeNodeSource serves Nodes from a map.
type fakeNodeSource map[string]*corev1.Node

func (f fakeNodeSource) Node(_ context.Context, name string) (*corev1.Node, error) {
	return f[name], nil
}

func (f fakeNodeSource) NodesWithAddress(_ context.Context, address string) ([]string, error) {
	var names []string
	for name, n := range f {
		if slices.Contains(nodeAddressKeys(n), csr.AddressKey(address)) {
			names = append(names, name)
		}
	}
	return names, nil
}

func TestReconcileApproves(t *testing.T) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}, Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: "10.0.0.1"}, {Type: corev1.NodeHostName, Address: "node-a"},
	}}}
	serving := []certv1.KeyUsage{"digital signature", "server auth"}
	nodeGroups := []string{"system:nodes", "system:authenticated"}
	caTrue, _ := asn1.Marshal(struct {
		IsCA bool `asn1:"optional"`
	}{true})
	tests := []struct {
		name     string
		obj      *certv1.CertificateSigningRequest
		dryRun   bool
		wantCond certv1.RequestConditionType // "" for none
		wantMsg  string
		issued   bool
	}{
		{"own names: approved, then issued",
			newCSR(t, "ok", servingSigner, "system:node:node-a", nodeGroups, request{cn: "system:node:node-a", o: []string{"system:nodes"}, dns: []string{"node-a"}, ips: []string{"10.0.0.1"}}, serving...),
			false, certv1.CertificateApproved, "all 17 policies passed", true},
		{"foreign IP denied",
			newCSR(t, "ip", servingSigner, "system:node:node-a", nodeGroups, request{cn: "system:node:node-a", o: []string{"system:nodes"}, ips: []string{"10.0.0.66"}}, serving...),
			false, certv1.CertificateDenied, "IP SAN 10.0.0.66 is not an address of node node-a", false},
		{"CA:TRUE denied",
			newCSR(t, "ca", servingSigner, "system:node:node-a", nodeGroups, request{cn: "system:node:node-a", o: []string{"system:nodes"}, dns: []string{"node-a"},
				exts: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Critical: true, Value: caTrue}}}, serving...),
			false, certv1.CertificateDenied, "CA:TRUE", false},
		{"dry run writes nothing",
			newCSR(t, "dry", servingSigner, "system:node:node-a", nodeGroups, request{cn: "system:node:node-b", o: []string{"system:nodes"}, dns: []string{"node-b"}}, serving...),
			true, "", "", false},
		{"no chain: left for a person",
			newCSR(t, "person", clientSigner, "admin", []string{"system:masters"}, request{cn: "jane"}, clientUsages...),
			false, "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			writes := map[string]int{}
			c := fakeClient(t, &interceptor.Funcs{
				SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, o client.Object, opts ...client.SubResourceUpdateOption) error {
					writes[sub]++
					return c.SubResource(sub).Update(ctx, o, opts...)
				},
			}, tc.obj)
			r, _, logs := testReconciler(t, c, servingSigner, clientSigner)
			r.DryRun = tc.dryRun
			var err error
			if r.Approver, err = csr.NewApprover(csr.KubeletServingChain(fakeNodeSource{"node-a": node}, time.Hour, csr.ServingBounds{IPRanges: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")}})); err != nil {
				t.Fatal(err)
			}
			// Twice: the approval's update event brings the second.
			for range 2 {
				if err := reconcileOne(t, r, tc.obj.Name); err != nil {
					t.Fatal(err)
				}
			}
			got := get(t, c, tc.obj.Name)
			if tc.wantCond == "" {
				if len(got.Status.Conditions) != 0 {
					t.Fatalf("conditions %+v, want none", got.Status.Conditions)
				}
				if tc.dryRun && !strings.Contains(logs.String(), "dry run: would deny") {
					t.Errorf("dry run did not log its decision:\n%s", logs)
				}
				return
			}
			cond := csr.Condition(got, tc.wantCond)
			if cond == nil || !strings.Contains(cond.Message, tc.wantMsg) {
				t.Fatalf("conditions %+v, want %s with %q", got.Status.Conditions, tc.wantCond, tc.wantMsg)
			}
			if csr.Issued(got) != tc.issued {
				t.Errorf("issued = %v, want %v", csr.Issued(got), tc.issued)
			}
			// One approval write; one status write if issued; nothing more.
			if want := map[bool]int{true: 1, false: 0}[tc.issued]; writes["approval"] != 1 || writes["status"] != want {
				t.Errorf("writes %v, want approval 1, status %d", writes, want)
			}
		})
	}
}

// TestReconcileLostAnswer: the status write reaches the API server but its
// answer is lost (a timeout, the replica being stopped). The re-read finds
// our certificate: it is counted as issued, and not signed again.
func TestReconcileLostAnswer(t *testing.T) {
	obj := approved(newCSR(t, "c", clientSigner, "admin", nil, request{cn: "jane"}, clientUsages...))
	var calls atomic.Int32
	c := fakeClient(t, &interceptor.Funcs{
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, o client.Object, opts ...client.SubResourceUpdateOption) error {
			calls.Add(1)
			if err := c.SubResource(sub).Update(ctx, o, opts...); err != nil {
				return err
			}
			return context.DeadlineExceeded
		},
	}, obj)
	r, _, _ := testReconciler(t, c, clientSigner)
	if err := reconcileOne(t, r, "c"); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 1 {
		t.Errorf("%d writes, want 1", calls.Load())
	}
	if !csr.Issued(get(t, c, "c")) {
		t.Error("not issued")
	}
	if n := testutil.ToFloat64(r.Metrics.signed.WithLabelValues(clientSigner)); n != 1 {
		t.Errorf("signed metric = %v, want 1", n)
	}
}

// flakyReader fails its first n reads, like an API server that is
// restarting, then reads from the client.
type flakyReader struct {
	client.Reader
	n     atomic.Int32
	calls atomic.Int32
}

func (f *flakyReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if f.calls.Add(1) <= f.n.Load() {
		return errors.New("dial tcp 127.0.0.1:6443: connect: connection refused")
	}
	return f.Reader.Get(ctx, key, obj, opts...)
}

// TestReconcileAPIServerDown: the certificate write fails while the API
// server restarts, either before it was applied or after (the answer lost),
// and reading it back fails a few times too. The reconcile waits for the API
// server, writes the same certificate once more only if it did not land,
// and counts it issued exactly once.
func TestReconcileAPIServerDown(t *testing.T) {
	for _, applied := range []bool{false, true} {
		name := map[bool]string{false: "write refused", true: "answer lost"}[applied]
		t.Run(name, func(t *testing.T) {
			obj := approved(newCSR(t, "c", clientSigner, "admin", nil, request{cn: "jane"}, clientUsages...))
			var writes []string
			c := fakeClient(t, &interceptor.Funcs{
				SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, o client.Object, opts ...client.SubResourceUpdateOption) error {
					writes = append(writes, string(o.(*certv1.CertificateSigningRequest).Status.Certificate))
					if len(writes) == 1 {
						if applied {
							if err := c.SubResource(sub).Update(ctx, o, opts...); err != nil {
								return err
							}
						}
						return apierrors.NewServiceUnavailable("the server is shutting down")
					}
					return c.SubResource(sub).Update(ctx, o, opts...)
				},
			}, obj)
			r, ca, logs := testReconciler(t, c, clientSigner)
			live := &flakyReader{Reader: c}
			live.n.Store(3)
			r.Live = live
			if err := reconcileOne(t, r, "c"); err != nil {
				t.Fatal(err)
			}
			wantWrites := map[bool]int{false: 2, true: 1}[applied]
			if len(writes) != wantWrites || writes[len(writes)-1] != writes[0] {
				t.Fatalf("%d writes (all the same certificate: %v), want %d", len(writes), writes[len(writes)-1] == writes[0], wantWrites)
			}
			got := get(t, c, "c")
			if string(got.Status.Certificate) != writes[0] {
				t.Error("stored certificate is not the one signed")
			}
			cert, err := pki.ParseCert(got.Status.Certificate)
			if err != nil {
				t.Fatal(err)
			}
			if err := cert.CheckSignatureFrom(ca.Cert); err != nil {
				t.Error(err)
			}
			if live.calls.Load() != 4 {
				t.Errorf("%d reads back, want 3 refused and 1 answered", live.calls.Load())
			}
			if n := testutil.ToFloat64(r.Metrics.signed.WithLabelValues(clientSigner)); n != 1 {
				t.Errorf("signed metric = %v, want 1", n)
			}
			if n := strings.Count(logs.String(), `"msg":"issued"`); n != 1 {
				t.Errorf("%d issued records, want 1", n)
			}
			// The next event for the object (the cache catching up) finds it done.
			if err := reconcileOne(t, r, "c"); err != nil || len(writes) != wantWrites {
				t.Errorf("second reconcile: %v, %d writes", err, len(writes))
			}
		})
	}
}
