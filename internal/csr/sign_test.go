package csr

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	certv1 "k8s.io/api/certificates/v1"

	"kubepki.dev/kubepki/internal/pki"
)

func TestSign(t *testing.T) {
	ca := newTestCA(t, 24*time.Hour)
	now := time.Now()
	tests := []struct {
		name   string
		req    reqSpec
		usages []certv1.KeyUsage
		ttl    time.Duration
		check  func(t *testing.T, c *x509.Certificate)
	}{
		{
			name: "client", req: reqSpec{cn: "jane", o: []string{"developers", "oncall"}},
			usages: []certv1.KeyUsage{"digital signature", "client auth"}, ttl: time.Hour,
			check: func(t *testing.T, c *x509.Certificate) {
				// O values form one multi-valued RDN, a DER SET: order is not kept.
				if c.Subject.CommonName != "jane" || !slices.Equal(slices.Sorted(slices.Values(c.Subject.Organization)), []string{"developers", "oncall"}) {
					t.Errorf("subject = %v", c.Subject)
				}
				if c.KeyUsage != x509.KeyUsageDigitalSignature || !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
					t.Errorf("usages = %v %v", c.KeyUsage, c.ExtKeyUsage)
				}
				if !c.NotAfter.Equal(now.Add(time.Hour).Truncate(time.Second)) {
					t.Errorf("NotAfter = %v, want now+1h", c.NotAfter)
				}
				if !c.NotBefore.Equal(now.Add(-5 * time.Minute).Truncate(time.Second)) {
					t.Errorf("NotBefore = %v, want now-5m", c.NotBefore)
				}
			},
		},
		{
			name: "serving SANs copied", req: reqSpec{cn: "system:node:n1", o: []string{NodesGroup}, dns: []string{"n1"}, ips: []string{"10.0.0.1"}},
			usages: []certv1.KeyUsage{"digital signature", "server auth"}, ttl: time.Hour,
			check: func(t *testing.T, c *x509.Certificate) {
				if !slices.Equal(c.DNSNames, []string{"n1"}) || len(c.IPAddresses) != 1 || c.IPAddresses[0].String() != "10.0.0.1" {
					t.Errorf("SANs = %v %v", c.DNSNames, c.IPAddresses)
				}
			},
		},
		{
			name:   "CA:TRUE and keyCertSign are never honoured",
			req:    reqSpec{cn: "evil-ca", exts: []pkix.Extension{basicConstraintsExt(t, true), keyUsageExt(t, 0, 5, 6)}},
			usages: []certv1.KeyUsage{"digital signature", "client auth"}, ttl: time.Hour,
			check: func(t *testing.T, c *x509.Certificate) {
				if c.IsCA || !c.BasicConstraintsValid {
					t.Errorf("IsCA = %v, BasicConstraintsValid = %v; want CA:FALSE", c.IsCA, c.BasicConstraintsValid)
				}
				if c.KeyUsage&(x509.KeyUsageCertSign|x509.KeyUsageCRLSign) != 0 {
					t.Errorf("key usage %v includes certSign/cRLSign", c.KeyUsage)
				}
			},
		},
		{
			name: "capped at the CA's NotAfter", req: reqSpec{cn: "jane"},
			usages: []certv1.KeyUsage{"client auth"}, ttl: 10 * 365 * 24 * time.Hour,
			check: func(t *testing.T, c *x509.Certificate) {
				if !c.NotAfter.Equal(ca.Cert.NotAfter) {
					t.Errorf("NotAfter = %v, want the CA's %v", c.NotAfter, ca.Cert.NotAfter)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key, err := pki.GenerateKey(pki.ECDSAP256)
			if err != nil {
				t.Fatal(err)
			}
			tc.req.key = key
			req, _ := newRequest(t, tc.req)
			c, err := Sign(ca, req, tc.usages, tc.ttl, now)
			if err != nil {
				t.Fatal(err)
			}
			pool := x509.NewCertPool()
			pool.AddCert(ca.Cert)
			if _, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}, CurrentTime: now}); err != nil {
				t.Errorf("certificate does not chain to the CA: %v", err)
			}
			if !pki.KeyMatches(c.PublicKey, key) {
				t.Error("certificate is not for the request's key")
			}
			tc.check(t, c)
		})
	}
}

func TestSignSerialsUnique(t *testing.T) {
	ca := newTestCA(t, time.Hour)
	req, _ := newRequest(t, reqSpec{cn: "jane"})
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		c, err := Sign(ca, req, []certv1.KeyUsage{"client auth"}, time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if s := c.SerialNumber.String(); seen[s] {
			t.Fatalf("serial %s issued twice", s)
		} else {
			seen[s] = true
		}
	}
}

func TestSignRefuses(t *testing.T) {
	ca := newTestCA(t, time.Hour)
	req, _ := newRequest(t, reqSpec{cn: "jane"})
	if _, err := Sign(ca, req, []certv1.KeyUsage{"client auth"}, time.Hour, time.Now().Add(2*time.Hour)); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired CA: err = %v", err)
	}
	if _, err := Sign(&pki.CA{Cert: ca.Cert}, req, []certv1.KeyUsage{"client auth"}, time.Hour, time.Now()); err == nil {
		t.Error("CA without key signed")
	}
	if _, err := Sign(ca, req, []certv1.KeyUsage{"bogus"}, time.Hour, time.Now()); err == nil {
		t.Error("unknown usage signed")
	}
}

// TestSignOpenSSL has openssl read the issued certificate of a request that
// asked for CA:TRUE: it must print CA:FALSE.
func TestSignOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	ca := newTestCA(t, time.Hour)
	req, _ := newRequest(t, reqSpec{cn: "evil-ca", exts: []pkix.Extension{basicConstraintsExt(t, true)}})
	c, err := Sign(ca, req, []certv1.KeyUsage{"digital signature", "client auth"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "c.crt")
	if err := os.WriteFile(path, pki.EncodeCert(c), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("openssl", "x509", "-in", path, "-noout", "-text").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "CA:FALSE") || strings.Contains(string(out), "CA:TRUE") {
		t.Fatalf("openssl does not show CA:FALSE:\n%s", out)
	}
}
