package csr

import (
	"encoding/json"
	"encoding/pem"
	"reflect"
	"strings"
	"testing"
	"time"

	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func cond(t certv1.RequestConditionType, s corev1.ConditionStatus) certv1.CertificateSigningRequestCondition {
	return certv1.CertificateSigningRequestCondition{Type: t, Status: s}
}

// TestConditionColumn: the CONDITION column is kubectl's, and --pending
// keeps exactly the requests nobody approved, denied or failed.
func TestConditionColumn(t *testing.T) {
	approved, denied, failed := cond(certv1.CertificateApproved, corev1.ConditionTrue), cond(certv1.CertificateDenied, corev1.ConditionTrue), cond(certv1.CertificateFailed, corev1.ConditionTrue)
	tests := []struct {
		name    string
		conds   []certv1.CertificateSigningRequestCondition
		cert    bool
		want    string
		pending bool
	}{
		{"no condition", nil, false, "Pending", true},
		{"approved", []certv1.CertificateSigningRequestCondition{approved}, false, "Approved", false},
		{"approved and issued", []certv1.CertificateSigningRequestCondition{approved}, true, "Approved,Issued", false},
		{"denied", []certv1.CertificateSigningRequestCondition{denied}, false, "Denied", false},
		{"denied wins over approved", []certv1.CertificateSigningRequestCondition{approved, denied}, false, "Denied", false},
		{"approved then failed", []certv1.CertificateSigningRequestCondition{approved, failed}, false, "Approved,Failed", false},
		{"failed without approval is not pending", []certv1.CertificateSigningRequestCondition{failed}, false, "Pending,Failed", false},
		{"empty status counts as true", []certv1.CertificateSigningRequestCondition{cond(certv1.CertificateApproved, "")}, false, "Approved", false},
		{"approved False is still pending", []certv1.CertificateSigningRequestCondition{cond(certv1.CertificateApproved, corev1.ConditionFalse)}, false, "Pending", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &certv1.CertificateSigningRequest{}
			c.Status.Conditions = tc.conds
			if tc.cert {
				c.Status.Certificate = []byte("x")
			}
			if got := ConditionColumn(c); got != tc.want {
				t.Errorf("ConditionColumn = %q, want %q", got, tc.want)
			}
			if got := Pending(c); got != tc.pending {
				t.Errorf("Pending = %v, want %v", got, tc.pending)
			}
		})
	}
}

// TestSummarize decodes what each kind of request asks for, and lists a
// request that does not decode with the reason instead of failing.
func TestSummarize(t *testing.T) {
	_, serving := newRequest(t, reqSpec{cn: "system:node:node-a", o: []string{NodesGroup}, dns: []string{"node-a"}, ips: []string{"10.0.0.1", "fd00::1"}})
	_, client := newRequest(t, reqSpec{cn: "jane", o: []string{"developers", "oncall"}})
	_, odd := newRequest(t, reqSpec{cn: "x", emails: []string{"x@example.com"}, uris: []string{"spiffe://cluster.local/ns/a/sa/b"}})
	created := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	obj := func(pemData []byte, mutate func(*certv1.CertificateSigningRequest)) *certv1.CertificateSigningRequest {
		c := csrObject("r", certv1.KubeletServingSignerName, "system:node:node-a", []string{NodesGroup}, pemData, "digital signature", "server auth")
		c.CreationTimestamp = metav1.NewTime(created.In(time.FixedZone("x", 3600)))
		if mutate != nil {
			mutate(c)
		}
		return c
	}
	tests := []struct {
		name    string
		c       *certv1.CertificateSigningRequest
		want    Summary
		errPart string
	}{
		{
			name: "kubelet serving, pending",
			c:    obj(serving, nil),
			want: Summary{Name: "r", CreationTimestamp: created, SignerName: certv1.KubeletServingSignerName, Requestor: "system:node:node-a",
				Usages: []string{"digital signature", "server auth"}, Condition: "Pending", Pending: true,
				CommonName: "system:node:node-a", Organizations: []string{NodesGroup}, DNSNames: []string{"node-a"},
				IPAddresses: []string{"10.0.0.1", "fd00::1"}, EmailAddresses: []string{}, URIs: []string{}},
		},
		{
			name: "client, issued, with a requested duration",
			c: obj(client, func(c *certv1.CertificateSigningRequest) {
				c.Spec.SignerName, c.Spec.Username = certv1.KubeAPIServerClientSignerName, "admin"
				c.Spec.Usages = []certv1.KeyUsage{"client auth"}
				c.Spec.ExpirationSeconds = seconds(time.Hour)
				c.Status.Conditions = []certv1.CertificateSigningRequestCondition{cond(certv1.CertificateApproved, corev1.ConditionTrue)}
				c.Status.Certificate = []byte("cert")
			}),
			want: Summary{Name: "r", CreationTimestamp: created, SignerName: certv1.KubeAPIServerClientSignerName, Requestor: "admin",
				ExpirationSeconds: seconds(time.Hour), Usages: []string{"client auth"}, Condition: "Approved,Issued",
				// Go writes both O values in one RDN, a DER SET OF, which
				// sorts them by encoding (the shorter first): the listing
				// shows the request's own order.
				CommonName: "jane", Organizations: []string{"oncall", "developers"}, DNSNames: []string{}, IPAddresses: []string{},
				EmailAddresses: []string{}, URIs: []string{}},
		},
		{
			name: "email and URI SANs are shown too",
			c:    obj(odd, func(c *certv1.CertificateSigningRequest) { c.Spec.Usages = nil }),
			want: Summary{Name: "r", CreationTimestamp: created, SignerName: certv1.KubeletServingSignerName, Requestor: "system:node:node-a",
				Usages: []string{}, Condition: "Pending", Pending: true, CommonName: "x", Organizations: []string{}, DNSNames: []string{},
				IPAddresses: []string{}, EmailAddresses: []string{"x@example.com"}, URIs: []string{"spiffe://cluster.local/ns/a/sa/b"}},
		},
		{name: "not PEM", c: obj([]byte("hello"), nil), errPart: "not PEM"},
		{name: "empty", c: obj(nil, nil), errPart: "not PEM"},
		{name: "a certificate, not a request", c: obj([]byte("-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n"), nil), errPart: `"CERTIFICATE"`},
		{name: "garbage DER", c: obj([]byte("-----BEGIN CERTIFICATE REQUEST-----\nMAA=\n-----END CERTIFICATE REQUEST-----\n"), nil), errPart: "parse certificate request"},
		{name: "signature broken", c: obj(tamper(t, client), nil), errPart: "signature"},
		{name: "too large", c: obj(make([]byte, MaxRequestBytes+1), nil), errPart: "more than the"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Summarize(tc.c)
			if tc.errPart != "" {
				if !strings.Contains(got.RequestError, tc.errPart) {
					t.Errorf("RequestError = %q, want it to contain %q", got.RequestError, tc.errPart)
				}
				if got.CommonName != "" || len(got.Organizations)+len(got.DNSNames)+len(got.IPAddresses) != 0 {
					t.Errorf("an unparseable request has decoded fields: %+v", got)
				}
				if got.Name != "r" || got.Condition != "Pending" || got.Requestor != "system:node:node-a" {
					t.Errorf("the object's own fields are lost: %+v", got)
				}
				return
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Summarize =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

// tamper flips a bit in the request's signature, keeping it well-formed.
func tamper(t *testing.T, pemData []byte) []byte {
	t.Helper()
	req, err := ParseRequest(pemData)
	if err != nil {
		t.Fatal(err)
	}
	der := append([]byte(nil), req.Raw...)
	der[len(der)-3] ^= 1
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// TestSummaryJSON pins the documented -o json field names and that every
// list is [] rather than null: scripts depend on both.
func TestSummaryJSON(t *testing.T) {
	s := Summarize(&certv1.CertificateSigningRequest{ObjectMeta: metav1.ObjectMeta{Name: "bad"}, Spec: certv1.CertificateSigningRequestSpec{Request: []byte("x")}})
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"usages", "organizations", "dnsNames", "ipAddresses", "emailAddresses", "uris"} {
		if v, ok := m[k].([]any); !ok || len(v) != 0 {
			t.Errorf("%s = %#v, want []", k, m[k])
		}
	}
	for _, k := range []string{"name", "creationTimestamp", "signerName", "requestor", "condition", "pending", "commonName", "requestError"} {
		if _, ok := m[k]; !ok {
			t.Errorf("field %s missing from %s", k, data)
		}
	}
	if _, ok := m["expirationSeconds"]; ok {
		t.Errorf("expirationSeconds present though not requested: %s", data)
	}
}

func TestSortSummaries(t *testing.T) {
	s := []Summary{{Name: "node-b"}, {Name: "csr-1"}, {Name: "node-a"}}
	SortSummaries(s)
	if s[0].Name != "csr-1" || s[1].Name != "node-a" || s[2].Name != "node-b" {
		t.Errorf("order %v", s)
	}
}
