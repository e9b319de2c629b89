package controller

import (
	"testing"

	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kubepki.dev/kubepki/internal/csr"
)

// TestSlimCSR: the CSR cache's transform drops the request only where the
// controller cannot need it, and never changes what the triage decides.
func TestSlimCSR(t *testing.T) {
	cond := func(typ certv1.RequestConditionType) certv1.CertificateSigningRequestCondition {
		return certv1.CertificateSigningRequestCondition{Type: typ, Status: corev1.ConditionTrue, Reason: "Test", LastUpdateTime: metav1.Now()}
	}
	approvedCond, deniedCond, failedCond := cond(certv1.CertificateApproved), cond(certv1.CertificateDenied), cond(certv1.CertificateFailed)
	r, _, _ := testReconciler(t, fakeClient(t, nil), clientSigner)
	for _, tc := range []struct {
		name       string
		conditions []certv1.CertificateSigningRequestCondition
		cert       []byte
		signer     string
		approve    bool
		keep       bool // spec.request stays
	}{
		{name: "pending, approver off", signer: clientSigner},
		{name: "pending, approver on", signer: clientSigner, approve: true, keep: true},
		{name: "approved", conditions: []certv1.CertificateSigningRequestCondition{approvedCond}, signer: clientSigner, keep: true},
		{name: "approved, approver on", conditions: []certv1.CertificateSigningRequestCondition{approvedCond}, signer: clientSigner, approve: true, keep: true},
		{name: "approved, another signer", conditions: []certv1.CertificateSigningRequestCondition{approvedCond}, signer: servingSigner, keep: true},
		{name: "issued", conditions: []certv1.CertificateSigningRequestCondition{approvedCond}, cert: []byte("-----BEGIN CERTIFICATE-----"), signer: clientSigner, approve: true},
		{name: "denied", conditions: []certv1.CertificateSigningRequestCondition{deniedCond}, signer: clientSigner, approve: true},
		{name: "failed", conditions: []certv1.CertificateSigningRequestCondition{approvedCond, failedCond}, signer: clientSigner, approve: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCSR(t, "c", tc.signer, "alice", []string{"devs"}, request{cn: "alice"}, clientUsages...)
			c.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationUpdate}}
			c.Status.Conditions, c.Status.Certificate = tc.conditions, tc.cert
			before := c.DeepCopy()
			out, err := slimCSR(tc.approve)(c)
			if err != nil {
				t.Fatal(err)
			}
			got := out.(*certv1.CertificateSigningRequest)
			if got.ManagedFields != nil {
				t.Errorf("managed fields kept: %v", got.ManagedFields)
			}
			if kept := len(got.Spec.Request) > 0; kept != tc.keep {
				t.Errorf("request kept = %v, want %v", kept, tc.keep)
			}
			if tc.keep && (len(got.Spec.Groups) == 0 || len(got.Spec.Usages) == 0) {
				t.Errorf("spec of a CSR the controller may act on lost fields: %+v", got.Spec)
			}
			if got.Name != before.Name || got.UID != before.UID || got.Spec.SignerName != before.Spec.SignerName || got.Spec.Username != before.Spec.Username {
				t.Errorf("identity changed: %s/%s %s %s", got.Name, got.UID, got.Spec.SignerName, got.Spec.Username)
			}
			if r.Relevant(got) != r.Relevant(before) || csr.NeedsSigning(got) != csr.NeedsSigning(before) ||
				csr.Decided(got) != csr.Decided(before) || csr.State(got) != csr.State(before) {
				t.Errorf("triage changed: relevant %v→%v, state %s→%s", r.Relevant(before), r.Relevant(got), csr.State(before), csr.State(got))
			}
		})
	}
	// Not a CSR: passed through.
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}}
	if out, err := slimCSR(false)(n); err != nil || out != n {
		t.Errorf("a Node came back as %v, %v", out, err)
	}
}
