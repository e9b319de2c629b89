package e2e

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"kubepki.dev/kubepki/internal/csr"
)

// setAddresses replaces a Node's status.addresses as the kubelet does, with
// the node's own credentials (a JSON merge patch of the status subresource
// replaces the whole list).
func setAddresses(cs kubernetes.Interface, node string, addrs []corev1.NodeAddress) error {
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"addresses": addrs}})
	if err != nil {
		return err
	}
	_, err = cs.CoreV1().Nodes().Patch(context.Background(), node, types.MergePatchType, patch, metav1.PatchOptions{}, "status")
	return err
}

// TestApproverNodeForgesItsStatus is the attack of a stolen kubelet
// credential on a real API server with kubeadm's admission (NodeRestriction
// on): node-a registers itself, then writes into its own Node status the
// API server's Service name, the kubernetes Service IP, node-b's IP and a
// wildcard — which NodeRestriction allows — and asks for a serving
// certificate for each. Every one is denied with a reason naming the SAN;
// its honest request is approved and signed by a kubelet-serving CA of its
// own, which API clients do not trust.
//
// The controller runs as the README shows it, from outside the cluster
// with an admin kubeconfig and no --leader-election-namespace: it must take
// its Lease in a namespace that exists and sign; given a namespace that does
// not exist it must stop at once with one line naming the flag.
func TestApproverNodeForgesItsStatus(t *testing.T) {
	e := newCertAPI(t)
	servingCA, servingCACert, servingCAKey := e.newCA("kubelet-serving-ca")

	// The nodes register themselves, as kubelets do. 192.0.2.0/24 is
	// documentation space: data, never dialled.
	nodes := map[string]kubernetes.Interface{}
	for _, n := range []struct{ name, ip string }{{"node-a", "192.0.2.10"}, {"node-b", "192.0.2.20"}} {
		_, cs := e.userKubeconfig("system:node:"+n.name, "system:nodes")
		nodes[n.name] = cs
		if _, err := cs.CoreV1().Nodes().Create(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.name}}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("%s registers itself: %v", n.name, err)
		}
		if err := setAddresses(cs, n.name, []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: n.ip}, {Type: corev1.NodeHostName, Address: n.name},
			{Type: corev1.NodeInternalDNS, Address: n.name + ".cluster.internal"},
		}); err != nil {
			t.Fatalf("%s sets its addresses: %v", n.name, err)
		}
	}
	nodeA := nodes["node-a"]
	// NodeRestriction is on: node-a may not touch node-b's status...
	if err := setAddresses(nodeA, "node-b", nil); !apierrors.IsForbidden(err) {
		t.Fatalf("node-a patched node-b's status (err %v): NodeRestriction is not on, the test would not show the real attack path", err)
	}

	// A Lease namespace that does not exist: one line naming the flag,
	// exit 1, at once.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, e.kubepki, "controller", "--kubeconfig="+e.admin, "--http-address=0",
		"--signer=kubernetes.io/kubelet-serving="+servingCACert+","+servingCAKey, "--leader-election-namespace=kubepki-nowhere").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || ctx.Err() != nil ||
		!strings.Contains(string(out), `kubepki: leader election: namespace "kubepki-nowhere" does not exist: create it or set --leader-election-namespace`) {
		t.Errorf("controller with a missing Lease namespace: %v\n%s", err, out)
	}

	// Run as the README shows: admin kubeconfig, no namespace flag.
	ctl := e.startController("kubepki-controller",
		"--kubeconfig="+e.admin,
		"--signer=kubernetes.io/kubelet-serving="+servingCACert+","+servingCAKey,
		"--approve",
		"--kubelet-serving-ip-ranges=192.0.2.0/24",
		"--kubelet-serving-dns-suffixes=cluster.internal",
	)

	// ...but its own, freely.
	if err := setAddresses(nodeA, "node-a", []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: "192.0.2.10"}, {Type: corev1.NodeHostName, Address: "node-a"},
		{Type: corev1.NodeInternalDNS, Address: "node-a.cluster.internal"},
		{Type: corev1.NodeInternalDNS, Address: "kubernetes.default.svc.cluster.local"},
		{Type: corev1.NodeInternalIP, Address: "10.96.0.1"},
		{Type: corev1.NodeExternalIP, Address: "192.0.2.20"},
		{Type: corev1.NodeExternalDNS, Address: "*.cluster.internal"},
	}); err != nil {
		t.Fatalf("node-a writes the forged addresses into its own status: %v", err)
	}
	waitFor(t, 30*time.Second, "node-a's forged status", func() error {
		n, err := e.adminCS.CoreV1().Nodes().Get(context.Background(), "node-a", metav1.GetOptions{})
		if err != nil || len(n.Status.Addresses) != 7 {
			return errString("not yet")
		}
		return nil
	})

	serving := []certv1.KeyUsage{"digital signature", "server auth"}
	req := func(dns []string, ips ...string) requestOpts {
		return requestOpts{cn: "system:node:node-a", o: []string{"system:nodes"}, dns: append([]string{"node-a"}, dns...), ips: append([]string{"192.0.2.10"}, ips...), usages: serving}
	}
	forged := []struct {
		name   string
		opts   requestOpts
		reason string
	}{
		{"forged-api-server-name", req([]string{"kubernetes.default.svc.cluster.local"}), "DNS SAN kubernetes.default.svc.cluster.local is a name of the API server"},
		{"forged-service-ip", req(nil, "10.96.0.1"), "IP SAN 10.96.0.1 is in the service CIDR 10.96.0.0/12"},
		{"forged-neighbour-ip", req(nil, "192.0.2.20"), "IP SAN 192.0.2.20 is an address of node node-b"},
		{"forged-wildcard", req([]string{"*.cluster.internal"}), "DNS SAN *.cluster.internal is a wildcard"},
	}
	for _, f := range forged {
		e.submit(nodeA, f.name, certv1.KubeletServingSignerName, f.opts)
	}
	e.submit(nodeA, "honest", certv1.KubeletServingSignerName, req([]string{"node-a.cluster.internal"}))

	for _, f := range forged {
		c := e.waitDecided(f.name)
		d := csr.Condition(c, certv1.CertificateDenied)
		if d == nil || !strings.Contains(d.Message, f.reason) || csr.Issued(c) {
			t.Errorf("%s: %+v, want Denied with %q", f.name, c.Status.Conditions, f.reason)
		}
	}
	c, cert := e.waitIssued("honest")
	if a := csr.Condition(c, certv1.CertificateApproved); a == nil || a.Reason != "AutoApproved" {
		t.Errorf("honest: not auto-approved: %+v", c.Status.Conditions)
	}
	if len(cert.DNSNames) != 2 || len(cert.IPAddresses) != 1 || cert.IPAddresses[0].String() != "192.0.2.10" {
		t.Errorf("honest: DNS %v IP %v", cert.DNSNames, cert.IPAddresses)
	}
	// Signed by the dedicated CA: a client trusting the cluster CA (every
	// Pod, every kubeconfig) does not accept it as any server.
	verifyChain(t, cert, servingCA.Cert, x509.ExtKeyUsageServerAuth)
	clusterRoots := x509.NewCertPool()
	clusterRoots.AddCert(e.ca.Cert)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: clusterRoots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("the kubelet serving certificate verifies against the cluster CA")
	}

	// The Lease is in the kubeconfig context's namespace: default.
	if _, err := e.adminCS.CoordinationV1().Leases("default").Get(context.Background(), "kubepki-controller", metav1.GetOptions{}); err != nil {
		t.Errorf("lease default/kubepki-controller: %v", err)
	}
	for _, line := range strings.Split(ctl.log(t), "\n") {
		if strings.Contains(line, "namespaces") && strings.Contains(line, "not found") {
			t.Errorf("controller log: %s", line)
		}
	}
	ctl.checkLog(t)
}
