package cli

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"kubepki.dev/kubepki/internal/csr"
)

// TestCSRRow: each table row shows kubectl get csr's cells, then the
// decoded subject and SANs; an unparseable request says so; text from the
// request can never break the table or reach the terminal raw.
func TestCSRRow(t *testing.T) {
	now := time.Date(2030, 1, 2, 12, 0, 0, 0, time.UTC)
	hour := int32(3600)
	base := func(mutate func(*csr.Summary)) csr.Summary {
		s := csr.Summary{
			Name: "csr-abc", CreationTimestamp: now.Add(-90 * time.Second), SignerName: "kubernetes.io/kubelet-serving",
			Requestor: "system:node:node-a", Condition: "Pending", Pending: true,
			CommonName: "system:node:node-a", Organizations: []string{"system:nodes"},
			DNSNames: []string{"node-a"}, IPAddresses: []string{"10.0.0.1", "fd00::1"},
		}
		if mutate != nil {
			mutate(&s)
		}
		return s
	}
	tests := []struct {
		name string
		s    csr.Summary
		want []string
	}{
		{
			name: "kubelet serving, pending",
			s:    base(nil),
			want: []string{"csr-abc", "90s", "kubernetes.io/kubelet-serving", "system:node:node-a", "<none>", "Pending",
				"system:node:node-a", "system:nodes", "DNS:node-a,IP:10.0.0.1,IP:fd00::1"},
		},
		{
			name: "client with duration, issued, several groups, no SANs",
			s: base(func(s *csr.Summary) {
				s.CreationTimestamp = now.Add(-50 * time.Hour)
				s.SignerName, s.Requestor, s.ExpirationSeconds = "kubernetes.io/kube-apiserver-client", "admin", &hour
				s.Condition, s.Pending = "Approved,Issued", false
				s.CommonName, s.Organizations, s.DNSNames, s.IPAddresses = "jane", []string{"developers", "oncall"}, nil, nil
			}),
			want: []string{"csr-abc", "2d2h", "kubernetes.io/kube-apiserver-client", "admin", "60m", "Approved,Issued",
				"jane", "developers,oncall", "<none>"},
		},
		{
			name: "email and URI SANs, empty CN, no timestamp, no signer",
			s: base(func(s *csr.Summary) {
				s.CreationTimestamp, s.SignerName = time.Time{}, ""
				s.CommonName, s.Organizations, s.DNSNames, s.IPAddresses = "", nil, nil, nil
				s.EmailAddresses, s.URIs = []string{"x@example.com"}, []string{"spiffe://td/ns/a"}
			}),
			want: []string{"csr-abc", "<unknown>", "<none>", "system:node:node-a", "<none>", "Pending",
				"<none>", "<none>", "email:x@example.com,URI:spiffe://td/ns/a"},
		},
		{
			name: "unparseable request",
			s: base(func(s *csr.Summary) {
				s.CommonName, s.Organizations, s.DNSNames, s.IPAddresses = "", nil, nil, nil
				s.RequestError = "certificate request is not PEM"
			}),
			want: []string{"csr-abc", "90s", "kubernetes.io/kubelet-serving", "system:node:node-a", "<none>", "Pending",
				"<unparseable>", "<unparseable>", "unparseable request: certificate request is not PEM"},
		},
		{
			name: "control characters in the request are quoted",
			s: base(func(s *csr.Summary) {
				s.CommonName = "evil\tcn\x1b[31m"
				s.Organizations = []string{"a\nb"}
				s.DNSNames, s.IPAddresses = []string{"x\u202ey"}, nil
			}),
			want: []string{"csr-abc", "90s", "kubernetes.io/kubelet-serving", "system:node:node-a", "<none>", "Pending",
				`"evil\tcn\x1b[31m"`, `"a\nb"`, `"DNS:x\u202ey"`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := csrRow(tc.s, now)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("csrRow =\n%q\nwant\n%q", got, tc.want)
			}
			if len(got) != len(csrListHeader) {
				t.Errorf("%d cells for %d columns", len(got), len(csrListHeader))
			}
		})
	}
}

// TestWriteCSRTable: a header like kubectl's, then one aligned line per
// request in the order given.
func TestWriteCSRTable(t *testing.T) {
	now := time.Date(2030, 1, 2, 12, 0, 0, 0, time.UTC)
	items := []csr.Summary{
		{Name: "a", CreationTimestamp: now.Add(-time.Minute), SignerName: "kubernetes.io/kube-apiserver-client", Requestor: "admin", Condition: "Denied", CommonName: "bob"},
		{Name: "node-csr-long-name", CreationTimestamp: now.Add(-time.Hour), SignerName: "kubernetes.io/kubelet-serving", Requestor: "system:node:n", Condition: "Pending", CommonName: "system:node:n", DNSNames: []string{"n"}},
	}
	var buf bytes.Buffer
	if err := writeCSRTable(&buf, items, now); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), buf.String())
	}
	if f := strings.Fields(lines[0]); !reflect.DeepEqual(f, csrListHeader) {
		t.Errorf("header %q", f)
	}
	col := strings.Index(lines[0], "AGE")
	for _, l := range lines[1:] {
		if l[col-1] != ' ' || l[col] == ' ' {
			t.Errorf("AGE column not aligned at %d:\n%s", col, buf.String())
		}
	}
	if !strings.HasPrefix(lines[1], "a ") || !strings.HasPrefix(lines[2], "node-csr-long-name ") {
		t.Errorf("rows out of order:\n%s", buf.String())
	}
}

// FuzzCSRRow: whatever a request holds, every cell is one printable line
// without tabs, so the table keeps its shape and the terminal gets no
// control sequence.
func FuzzCSRRow(f *testing.F) {
	f.Add("jane", "developers", "node-a", "bad\x1b]0;title\x07")
	f.Add("a\tb", "c\nd", "\u202e", "")
	f.Add("\x9b31m", "\xff", "ok", "")
	f.Fuzz(func(t *testing.T, cn, o, dns, reqErr string) {
		s := csr.Summary{Name: cn, Requestor: o, CommonName: cn, Organizations: []string{o}, DNSNames: []string{dns}, RequestError: reqErr}
		for i, c := range csrRow(s, time.Now()) {
			if !utf8.ValidString(c) {
				t.Fatalf("cell %d %q is not UTF-8", i, c)
			}
			for _, r := range c {
				if r == '\t' || !unicode.IsGraphic(r) {
					t.Fatalf("cell %d %q holds %U", i, c, r)
				}
			}
		}
	})
}
