package e2e

import (
	"context"
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	certv1 "k8s.io/api/certificates/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"kubepki.dev/kubepki/internal/csr"
	"kubepki.dev/kubepki/internal/pki"
)

// csrListDoc is the documented -o json|yaml output of kubepki csr list.
type csrListDoc struct {
	APIVersion string        `json:"apiVersion"`
	Kind       string        `json:"kind"`
	Items      []csr.Summary `json:"items"`
}

// TestCSRList runs kubepki csr list on a real API server holding what an
// operator meets: a node's pending kubelet serving request, a user's client
// request approved (kubectl certificate approve) and issued, and one denied
// (kubepki csr deny). It checks the table against kubectl get csr's own
// columns, the decoded subject and SANs, --pending, --signer, -o json and
// yaml, and paging with one object per page.
func TestCSRList(t *testing.T) {
	e := newCertAPI(t)
	// stdout and stderr of a kubepki run that must exit 0.
	list := func(args ...string) (string, string) {
		t.Helper()
		cmd := exec.Command(e.kubepki, append([]string{"csr", "list", "--kubeconfig", e.admin}, args...)...)
		var errOut strings.Builder
		cmd.Stderr = &errOut
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("kubepki csr list %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut.String())
		}
		return string(out), errOut.String()
	}
	decode := func(out string, unmarshal func([]byte, any) error) csrListDoc {
		t.Helper()
		var doc csrListDoc
		if err := unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("csr list output does not decode: %v\n%s", err, out)
		}
		if doc.APIVersion != "kubepki.dev/v1alpha1" || doc.Kind != "CertificateSigningRequestSummaryList" {
			t.Errorf("envelope %s %s", doc.APIVersion, doc.Kind)
		}
		return doc
	}

	// Nothing yet: exit 0, an empty table, and [] (not null) in JSON.
	if out, errOut := list(); out != "" || !strings.Contains(errOut, "No CertificateSigningRequests found") {
		t.Errorf("empty list: stdout %q, stderr %q", out, errOut)
	}
	if out, _ := list("-o", "json"); !strings.Contains(out, `"items": []`) {
		t.Errorf("empty list as JSON:\n%s", out)
	}

	_, nodeA := e.userKubeconfig("system:node:node-a", "system:nodes")
	e.submit(nodeA, "node-a-serving", certv1.KubeletServingSignerName, requestOpts{
		cn: "system:node:node-a", o: []string{"system:nodes"}, dns: []string{"node-a", "node-a.cluster.internal"}, ips: []string{"10.0.0.1", "fd00::1"},
	})
	e.submit(e.adminCS, "jane", certv1.KubeAPIServerClientSignerName, requestOpts{cn: "jane", o: []string{"developers"}, exp: time.Hour})
	e.submit(e.adminCS, "bob", certv1.KubeAPIServerClientSignerName, requestOpts{cn: "bob", o: []string{"qa"}})
	e.approve("jane")
	run(t, e.kubepki, "csr", "deny", "bob", "--kubeconfig", e.admin)
	e.sign("jane")

	// The table: kubectl get csr's columns agree with kubectl's own
	// (but AGE, which may tick between the two runs), then CN, O, SANS.
	out, _ := list()
	t.Logf("kubepki csr list:\n%s", out)
	rows := tableRows(t, out)
	kubectlRows := tableRows(t, e.kubectl("get", "csr"))
	if len(rows) != 3 || len(kubectlRows) != 3 {
		t.Fatalf("kubepki lists %d requests, kubectl %d; want 3:\n%s", len(rows), len(kubectlRows), out)
	}
	for name, k := range kubectlRows {
		r := rows[name]
		if r == nil || !slices.Equal(r[2:6], k[2:6]) {
			t.Errorf("%s: kubepki %q, kubectl %q", name, r, k)
		}
	}
	want := map[string][]string{
		"node-a-serving": {certv1.KubeletServingSignerName, "system:node:node-a", "<none>", "Pending", "system:node:node-a", "system:nodes",
			"DNS:node-a,DNS:node-a.cluster.internal,IP:10.0.0.1,IP:fd00::1"},
		"jane": {certv1.KubeAPIServerClientSignerName, "admin", "60m", "Approved,Issued", "jane", "developers", "<none>"},
		"bob":  {certv1.KubeAPIServerClientSignerName, "admin", "<none>", "Denied", "bob", "qa", "<none>"},
	}
	for name, w := range want {
		if got := rows[name]; len(got) != 9 || !slices.Equal(got[2:], w) {
			t.Errorf("row %s = %q, want [%s AGE %q]", name, got, name, w)
		}
	}
	if hdr := strings.Fields(strings.SplitN(out, "\n", 2)[0]); !slices.Equal(hdr, []string{"NAME", "AGE", "SIGNERNAME", "REQUESTOR", "REQUESTEDDURATION", "CONDITION", "CN", "O", "SANS"}) {
		t.Errorf("header %q", hdr)
	}

	// --pending: only what still awaits a decision.
	out, _ = list("--pending")
	if rows := tableRows(t, out); len(rows) != 1 || rows["node-a-serving"] == nil {
		t.Errorf("csr list --pending:\n%s", out)
	}

	// -o json: every decoded field, in the documented structure.
	out, _ = list("-o", "json")
	doc := decode(out, json.Unmarshal)
	names := make([]string, 0, len(doc.Items))
	for _, it := range doc.Items {
		names = append(names, it.Name)
	}
	if !slices.Equal(names, []string{"bob", "jane", "node-a-serving"}) {
		t.Fatalf("items %v, want bob, jane, node-a-serving in that order", names)
	}
	bob, jane, node := doc.Items[0], doc.Items[1], doc.Items[2]
	if !node.Pending || node.Condition != "Pending" || node.CommonName != "system:node:node-a" ||
		!slices.Equal(node.Organizations, []string{"system:nodes"}) ||
		!slices.Equal(node.DNSNames, []string{"node-a", "node-a.cluster.internal"}) ||
		!slices.Equal(node.IPAddresses, []string{"10.0.0.1", "fd00::1"}) ||
		node.Requestor != "system:node:node-a" || node.ExpirationSeconds != nil || node.RequestError != "" ||
		!slices.Equal(node.Usages, []string{"digital signature", "server auth"}) {
		t.Errorf("node-a-serving: %+v", node)
	}
	if jane.Pending || jane.Condition != "Approved,Issued" || jane.ExpirationSeconds == nil || *jane.ExpirationSeconds != 3600 ||
		jane.CommonName != "jane" || len(jane.DNSNames)+len(jane.IPAddresses) != 0 || jane.SignerName != certv1.KubeAPIServerClientSignerName {
		t.Errorf("jane: %+v", jane)
	}
	if bob.Pending || bob.Condition != "Denied" || bob.CommonName != "bob" {
		t.Errorf("bob: %+v", bob)
	}
	if age := time.Since(node.CreationTimestamp); age < 0 || age > 10*time.Minute {
		t.Errorf("node-a-serving creationTimestamp %v", node.CreationTimestamp)
	}

	// --signer, as YAML; the API server filters by field selector.
	out, _ = list("--signer", certv1.KubeAPIServerClientSignerName, "-o", "yaml")
	doc = decode(out, func(b []byte, v any) error { return yaml.UnmarshalStrict(b, v) })
	if len(doc.Items) != 2 || doc.Items[0].Name != "bob" || doc.Items[1].Name != "jane" {
		t.Errorf("--signer kube-apiserver-client:\n%s", out)
	}
	out, _ = list("--signer", certv1.KubeletServingSignerName, "--pending", "-o", "json")
	if doc = decode(out, json.Unmarshal); len(doc.Items) != 1 || doc.Items[0].Name != "node-a-serving" {
		t.Errorf("--signer kubelet-serving --pending:\n%s", out)
	}

	// One object per page: the continue tokens are followed to the end.
	out, _ = list("--chunk-size", "1", "-o", "json")
	if doc = decode(out, json.Unmarshal); len(doc.Items) != 3 {
		t.Errorf("--chunk-size 1 listed %d requests, want 3:\n%s", len(doc.Items), out)
	}
}

// sign does what a signer does for an approved request: the certificate
// from the cluster CA in status.certificate.
func (e *certAPI) sign(name string) {
	e.t.Helper()
	api := e.adminCS.CertificatesV1().CertificateSigningRequests()
	c, err := api.Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	req, err := csr.ParseRequest(c.Spec.Request)
	if err != nil {
		e.t.Fatal(err)
	}
	cert, err := e.ca.Issue(req.PublicKey, pki.Profile{
		Subject: pki.Subject{CommonName: req.Subject.CommonName, Organization: req.Subject.Organization},
		Usages:  []pki.Usage{pki.UsageClientAuth}, Validity: time.Hour,
	}, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	c.Status.Certificate = pki.EncodeCert(cert)
	if _, err := api.UpdateStatus(context.Background(), c, metav1.UpdateOptions{}); err != nil {
		e.t.Fatalf("update status of %s: %v", name, err)
	}
}

// tableRows splits a kubectl-style table into its rows by NAME, each the
// fields of its line.
func tableRows(t *testing.T, out string) map[string][]string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	rows := map[string][]string{}
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "NAME") {
		t.Fatalf("not a table:\n%s", out)
	}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		rows[f[0]] = f
	}
	return rows
}
