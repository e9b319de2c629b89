package e2e

import (
	"context"
	"fmt"
	"testing"

	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kubepki.dev/kubepki/internal/csr"
	"kubepki.dev/kubepki/internal/pki"
)

// TestControllerSlimCacheLaterDecisions: the controller's CSR cache drops
// the request of a CSR it will not act on as it stands (pending, with the
// approver off; denied). A later change must bring the whole object back:
//   - a pending CSR, cached without its request, then touched by another
//     controller (a condition of its own), then approved by a person, is
//     issued a certificate for the key of its request;
//   - a denied CSR cannot be approved afterwards (the API server refuses
//     both Approved beside Denied and the removal of Denied), so no stale
//     cached copy can be signed.
//
// That the controller has cached a CSR is known without timing: a CSR
// created after it and approved is issued, and the informer delivers
// events in order.
func TestControllerSlimCacheLaterDecisions(t *testing.T) {
	e := newCertAPI(t)
	ctl := e.startController("kubepki-controller",
		"--kubeconfig="+e.controllerIdentity(),
		"--signer=kubernetes.io/kube-apiserver-client="+e.caCert+","+e.caKey,
		"--lease-duration=4s", "--renew-deadline=3s", "--retry-period=500ms",
	)
	const signer = "kubernetes.io/kube-apiserver-client"
	api := e.adminCS.CertificatesV1().CertificateSigningRequests()
	ctx := context.Background()
	barriers := 0
	// barrier returns once the controller has seen every event before it.
	barrier := func() {
		t.Helper()
		barriers++
		name := fmt.Sprintf("barrier-%d", barriers)
		e.submit(e.adminCS, name, signer, requestOpts{cn: name})
		e.approve(name)
		e.waitIssued(name)
	}

	_, key := e.submit(e.adminCS, "late", signer, requestOpts{cn: "late"})
	e.submit(e.adminCS, "denied", signer, requestOpts{cn: "denied"})
	e.kubectl("certificate", "deny", "denied")
	barrier() // both cached, without their requests

	// Another controller adds a condition of its own to the pending CSR.
	c, err := api.Get(ctx, "late", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.Status.Conditions = append(c.Status.Conditions, certv1.CertificateSigningRequestCondition{
		Type: "example.com/Seen", Status: corev1.ConditionTrue, Reason: "Seen", LastUpdateTime: metav1.Now(),
	})
	if _, err := api.UpdateStatus(ctx, c, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("add a condition of another controller: %v", err)
	}
	barrier()
	if c, _ := api.Get(ctx, "late", metav1.GetOptions{}); csr.Decided(c) || csr.Issued(c) || csr.Failed(c) {
		t.Fatalf("late is %s before anyone approved it", csr.State(c))
	}

	// A person approves it now: the certificate is for the request's key.
	e.approve("late")
	_, cert := e.waitIssued("late")
	if !pki.KeyMatches(cert.PublicKey, key) {
		t.Error("late: certificate for another key than the request's")
	}
	if cert.Subject.CommonName != "late" {
		t.Errorf("late: subject %s, want CN=late", cert.Subject)
	}

	// The denied CSR cannot be turned into an approved one.
	d, err := api.Get(ctx, "denied", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	approved := certv1.CertificateSigningRequestCondition{Type: certv1.CertificateApproved, Status: corev1.ConditionTrue, Reason: "Test", LastUpdateTime: metav1.Now()}
	for _, tc := range []struct {
		name       string
		conditions []certv1.CertificateSigningRequestCondition
	}{
		{"approved beside denied", append(d.DeepCopy().Status.Conditions, approved)},
		{"denied replaced by approved", []certv1.CertificateSigningRequestCondition{approved}},
	} {
		upd := d.DeepCopy()
		upd.Status.Conditions = tc.conditions
		if _, err := api.UpdateApproval(ctx, "denied", upd, metav1.UpdateOptions{}); err == nil {
			t.Errorf("%s: the API server accepted it", tc.name)
		}
	}
	barrier()
	if d, _ := api.Get(ctx, "denied", metav1.GetOptions{}); !csr.Denied(d) || csr.Issued(d) {
		t.Errorf("denied is %s, want Denied without a certificate", csr.State(d))
	}
	ctl.checkLog(t)
}
