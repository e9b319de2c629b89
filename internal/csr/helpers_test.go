package csr

import (
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"testing"
	"time"

	certv1 "k8s.io/api/certificates/v1"

	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/pkitest"
)

// reqSpec describes a test certificate request.
type reqSpec struct {
	cn     string
	o      []string
	dns    []string
	ips    []string
	emails []string
	uris   []string
	exts   []pkix.Extension
	key    crypto.Signer
}

// newRequest returns a signed request and its PEM.
func newRequest(t testing.TB, s reqSpec) (*x509.CertificateRequest, []byte) {
	t.Helper()
	return pkitest.CSR(t, pkitest.Request{CN: s.cn, O: s.o, DNS: s.dns, IPs: s.ips, Emails: s.emails, URIs: s.uris, Extensions: s.exts, Key: s.key})
}

// basicConstraintsExt is a basic constraints extension, as openssl req
// -addext basicConstraints=critical,CA:TRUE writes it.
func basicConstraintsExt(t testing.TB, isCA bool) pkix.Extension {
	t.Helper()
	v, err := asn1.Marshal(struct {
		IsCA bool `asn1:"optional"`
	}{isCA})
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: oidBasicConstraints(), Critical: true, Value: v}
}

// keyUsageExt is a key usage extension with the given bits (bit 0 is
// digitalSignature).
func keyUsageExt(t testing.TB, bits ...int) pkix.Extension {
	t.Helper()
	var b [2]byte
	n := 0
	for _, i := range bits {
		b[i/8] |= 0x80 >> (i % 8)
		if i+1 > n {
			n = i + 1
		}
	}
	v, err := asn1.Marshal(asn1.BitString{Bytes: b[:(n+7)/8], BitLength: n})
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: oidKeyUsage(), Critical: true, Value: v}
}

// csrObject returns a CertificateSigningRequest as the API server would
// hold it: requester set, request attached.
func csrObject(name, signer, user string, groups []string, pemData []byte, usages ...certv1.KeyUsage) *certv1.CertificateSigningRequest {
	c := NewObject(Request{Name: name, SignerName: signer, PEM: pemData, Usages: usages})
	c.Spec.Username = user
	c.Spec.Groups = groups
	return c
}

// newTestCA returns a CA valid from now.
func newTestCA(t testing.TB, validity time.Duration) *pki.CA {
	t.Helper()
	return pkitest.CA(t, "test-ca", validity, time.Now())
}

func seconds(d time.Duration) *int32 {
	v := int32(d / time.Second)
	return &v
}
