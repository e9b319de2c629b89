package pki

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"kubepki.dev/kubepki/internal/openssltest"
)

// Extension encodings written out here, not taken from csr.go, so that the
// test does not share a mistake with the code.
var (
	csrTestOIDBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}
	csrTestOIDExtKeyUsage      = asn1.ObjectIdentifier{2, 5, 29, 37}
	csrTestOIDServerAuth       = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 1}
	csrTestOIDClientAuth       = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 2}
	csrTestOIDCodeSigning      = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 3}
)

func csrTestEKU(t *testing.T, oids ...asn1.ObjectIdentifier) pkix.Extension {
	t.Helper()
	v, err := asn1.Marshal(oids)
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: csrTestOIDExtKeyUsage, Value: v}
}

func csrTestBasicConstraints(t *testing.T, isCA bool) pkix.Extension {
	t.Helper()
	type bc struct {
		IsCA bool `asn1:"optional"`
	}
	v, err := asn1.Marshal(bc{isCA})
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: csrTestOIDBasicConstraints, Critical: true, Value: v}
}

// csrTestRequest is what a CSR in the table asks for.
type csrTestRequest struct {
	cn     string
	org    []string
	dns    []string
	ips    []string
	emails []string
	uris   []string
	exts   []pkix.Extension
}

func (r csrTestRequest) make(t *testing.T) *x509.CertificateRequest {
	t.Helper()
	tmpl := &x509.CertificateRequest{
		Subject:         pkix.Name{CommonName: r.cn, Organization: r.org},
		DNSNames:        r.dns,
		EmailAddresses:  r.emails,
		ExtraExtensions: r.exts,
	}
	for _, ip := range r.ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	for _, u := range r.uris {
		parsed, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, parsed)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, cachedKey(t, ECDSAP256, 0))
	if err != nil {
		t.Fatal(err)
	}
	csr, err := ParseCSR(EncodeCSR(der))
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

// TestProfileFromCSR: what sign issues for a CSR, and what it refuses.
func TestProfileFromCSR(t *testing.T) {
	client, server := UsageClientAuth, UsageServerAuth
	tests := []struct {
		name     string
		req      csrTestRequest
		usages   []Usage
		validity time.Duration
		want     *Profile // nil: an error containing wantErr
		wantErr  string
	}{
		{
			name: "client", req: csrTestRequest{cn: "jane", org: []string{"developers", "oncall"}}, usages: []Usage{client},
			want: &Profile{Subject: Subject{CommonName: "jane", Organization: []string{"developers", "oncall"}}, Usages: []Usage{client}},
		},
		{
			name: "client with a DNS SAN", req: csrTestRequest{cn: "jane", dns: []string{"jane.example"}}, usages: []Usage{client},
			wantErr: "client-only certificate",
		},
		{
			name: "client with an IP SAN", req: csrTestRequest{cn: "jane", ips: []string{"10.0.0.1"}}, usages: []Usage{client},
			wantErr: "client-only certificate",
		},
		{
			name: "server with SANs", req: csrTestRequest{cn: "web", dns: []string{"web.example"}, ips: []string{"10.0.0.1", "::1"}}, usages: []Usage{server},
			want: &Profile{Subject: Subject{CommonName: "web"}, Usages: []Usage{server}, DNSNames: []string{"web.example"}, IPs: []net.IP{net.ParseIP("10.0.0.1"), net.ParseIP("::1")}},
		},
		{
			name: "client and server with SANs", req: csrTestRequest{cn: "system:node:node-0", org: []string{"system:nodes"}, dns: []string{"node-0"}, ips: []string{"192.168.10.101"}},
			usages: []Usage{client, server},
			want: &Profile{Subject: Subject{CommonName: "system:node:node-0", Organization: []string{"system:nodes"}}, Usages: []Usage{client, server},
				DNSNames: []string{"node-0"}, IPs: []net.IP{net.ParseIP("192.168.10.101")}},
		},
		{
			name: "email SAN", req: csrTestRequest{cn: "web", dns: []string{"web.example"}, emails: []string{"root@web.example"}}, usages: []Usage{server},
			wantErr: "email or URI SANs",
		},
		{
			name: "URI SAN", req: csrTestRequest{cn: "web", uris: []string{"spiffe://cluster.local/ns/default/sa/web"}}, usages: []Usage{server},
			wantErr: "email or URI SANs",
		},
		{
			name: "email SAN on a client", req: csrTestRequest{cn: "jane", emails: []string{"jane@example.com"}}, usages: []Usage{client},
			wantErr: "email or URI SANs",
		},
		{
			name: "CA:TRUE", req: csrTestRequest{cn: "evil-ca", exts: []pkix.Extension{csrTestBasicConstraints(t, true)}}, usages: []Usage{client},
			wantErr: "CA:TRUE",
		},
		{
			name: "CA:TRUE with server usage requested", req: csrTestRequest{cn: "evil-ca", exts: []pkix.Extension{csrTestBasicConstraints(t, true), csrTestEKU(t, csrTestOIDServerAuth)}},
			wantErr: "CA:TRUE",
		},
		{
			name: "CA:FALSE is fine", req: csrTestRequest{cn: "jane", exts: []pkix.Extension{csrTestBasicConstraints(t, false)}}, usages: []Usage{client},
			want: &Profile{Subject: Subject{CommonName: "jane"}, Usages: []Usage{client}},
		},
		{
			name: "no usage given or requested", req: csrTestRequest{cn: "jane"},
			wantErr: "no client or server auth usage",
		},
		{
			name: "only an unknown usage requested", req: csrTestRequest{cn: "jane", exts: []pkix.Extension{csrTestEKU(t, csrTestOIDCodeSigning)}},
			wantErr: "no client or server auth usage",
		},
		{
			name: "client auth requested", req: csrTestRequest{cn: "jane", org: []string{"dev"}, exts: []pkix.Extension{csrTestEKU(t, csrTestOIDClientAuth)}},
			want: &Profile{Subject: Subject{CommonName: "jane", Organization: []string{"dev"}}, Usages: []Usage{client}},
		},
		{
			name: "server and client auth requested, with SANs", req: csrTestRequest{cn: "etcd", dns: []string{"localhost"}, ips: []string{"127.0.0.1"},
				exts: []pkix.Extension{csrTestEKU(t, csrTestOIDServerAuth, csrTestOIDClientAuth)}},
			want: &Profile{Subject: Subject{CommonName: "etcd"}, Usages: []Usage{server, client}, DNSNames: []string{"localhost"}, IPs: []net.IP{net.ParseIP("127.0.0.1")}},
		},
		{
			name: "client auth requested with SANs", req: csrTestRequest{cn: "jane", dns: []string{"jane.example"}, exts: []pkix.Extension{csrTestEKU(t, csrTestOIDClientAuth)}},
			wantErr: "client-only certificate",
		},
		{
			name: "given usages override the request", req: csrTestRequest{cn: "web", dns: []string{"web.example"}, exts: []pkix.Extension{csrTestEKU(t, csrTestOIDClientAuth)}},
			usages: []Usage{server},
			want:   &Profile{Subject: Subject{CommonName: "web"}, Usages: []Usage{server}, DNSNames: []string{"web.example"}},
		},
		{
			name: "unknown usage given", req: csrTestRequest{cn: "jane"}, usages: []Usage{"code signing"},
			wantErr: `unknown usage "code signing"`,
		},
		{
			name: "malformed extended key usage", req: csrTestRequest{cn: "jane", exts: []pkix.Extension{{Id: csrTestOIDExtKeyUsage, Value: []byte{0x04, 0x01, 0x00}}}},
			wantErr: "extendedKeyUsage",
		},
		{
			name: "no common name", req: csrTestRequest{org: []string{"dev"}}, usages: []Usage{client},
			wantErr: "no common name",
		},
		{
			name: "no validity", req: csrTestRequest{cn: "jane"}, usages: []Usage{client}, validity: -1,
			wantErr: "validity must be positive",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			validity := 24 * time.Hour
			if tc.validity != 0 {
				validity = tc.validity
			}
			if tc.validity < 0 {
				validity = 0
			}
			got, err := ProfileFromCSR(tc.req.make(t), tc.usages, validity)
			if tc.want == nil {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ProfileFromCSR = %+v, %v; want an error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ProfileFromCSR: %v", err)
			}
			want := *tc.want
			want.Validity = validity
			if got.IsCA {
				t.Errorf("IsCA = true")
			}
			// Go encodes the groups as one multi-valued RDN, a DER SET OF,
			// whose order is the encoding's: compare them as a set.
			if got.Subject.CommonName != want.Subject.CommonName || !slices.Equal(sorted(got.Subject.Organization), sorted(want.Subject.Organization)) {
				t.Errorf("subject %+v, want %+v", got.Subject, want.Subject)
			}
			if !slices.Equal(got.Usages, want.Usages) {
				t.Errorf("usages %q, want %q", got.Usages, want.Usages)
			}
			if g, w := SANs(got.DNSNames, got.IPs), SANs(want.DNSNames, want.IPs); !slices.Equal(g, w) {
				t.Errorf("SANs %q, want %q", g, w)
			}
			if got.Validity != want.Validity {
				t.Errorf("validity %v, want %v", got.Validity, want.Validity)
			}
			// What it allows, Issue makes into a non-CA certificate.
			ca := mustCA(t, cachedKey(t, ECDSAP256, 1), caProfile("csr-test-ca"), testNow)
			cert := mustIssue(t, ca, cachedKey(t, ECDSAP256, 0).Public(), got, testNow)
			if cert.IsCA || len(Diff(cert, got)) > 0 {
				t.Errorf("issued certificate: IsCA %v, diff %v", cert.IsCA, Diff(cert, got))
			}
		})
	}
}

// TestRequestedOfOpenSSL decodes what openssl req -addext puts into a CSR.
func TestRequestedOfOpenSSL(t *testing.T) {
	tests := []struct {
		name   string
		addext []string
		want   Requested
	}{
		{"nothing", nil, Requested{}},
		{"client auth", []string{"extendedKeyUsage=clientAuth"}, Requested{Usages: []Usage{UsageClientAuth}}},
		{"server and client auth", []string{"extendedKeyUsage=serverAuth,clientAuth"}, Requested{Usages: []Usage{UsageServerAuth, UsageClientAuth}}},
		{"code signing too", []string{"extendedKeyUsage=clientAuth,codeSigning,emailProtection"}, Requested{Usages: []Usage{UsageClientAuth}, Unknown: 2}},
		{"CA:TRUE", []string{"basicConstraints=critical,CA:TRUE"}, Requested{IsCA: true}},
		{"CA:TRUE with a path length", []string{"basicConstraints=critical,CA:TRUE,pathlen:0", "extendedKeyUsage=serverAuth"}, Requested{IsCA: true, Usages: []Usage{UsageServerAuth}}},
		{"CA:FALSE", []string{"basicConstraints=CA:FALSE"}, Requested{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			args := []string{"req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
				"-keyout", filepath.Join(dir, "x.key"), "-out", filepath.Join(dir, "x.csr"), "-subj", "/CN=x"}
			for _, e := range tc.addext {
				args = append(args, "-addext", e)
			}
			openssltest.Run(t, dir, args...)
			csr, err := ParseCSR(readFile(t, dir, "x.csr"))
			if err != nil {
				t.Fatal(err)
			}
			got, err := RequestedOf(csr)
			if err != nil {
				t.Fatal(err)
			}
			if got.IsCA != tc.want.IsCA || got.Unknown != tc.want.Unknown || !slices.Equal(got.Usages, tc.want.Usages) {
				t.Errorf("RequestedOf = %+v, want %+v", got, tc.want)
			}
		})
	}
}
