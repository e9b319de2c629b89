package csr

import (
	"bytes"
	"crypto/x509/pkix"
	"encoding/pem"
	"strings"
	"testing"
)

func TestParseRequest(t *testing.T) {
	_, good := newRequest(t, reqSpec{cn: "jane", o: []string{"developers"}})
	block, _ := pem.Decode(good)
	tampered := bytes.Clone(block.Bytes)
	tampered[len(tampered)-3] ^= 0xff // inside the signature
	tests := []struct {
		name    string
		data    []byte
		wantErr string
	}{
		{"valid", good, ""},
		{"valid with trailing data", append(bytes.Clone(good), "garbage"...), ""},
		{"empty", nil, "not PEM"},
		{"DER, not PEM", block.Bytes, "not PEM"},
		{"certificate block", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: block.Bytes}), `"CERTIFICATE"`},
		{"another block first", append(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}}), good...), `"PRIVATE KEY"`},
		{"garbage DER", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte{0x30, 0x03, 1, 2, 3}}), "parse certificate request"},
		{"bad signature", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: tampered}), ""},
		{"too large", append(bytes.Clone(good), make([]byte, MaxRequestBytes)...), "more than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := ParseRequest(tc.data)
			if tc.name == "bad signature" {
				// Flipping a signature byte either breaks the DER or the
				// signature; both must be refused.
				if err == nil {
					t.Fatal("tampered request accepted")
				}
				return
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseRequest: %v", err)
				}
				if req.Subject.CommonName != "jane" {
					t.Errorf("CN = %q", req.Subject.CommonName)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("ParseRequest error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestRequestsCA(t *testing.T) {
	tests := []struct {
		name string
		exts []pkix.Extension
		want string // substring of the reason; "" for a leaf
	}{
		{"plain leaf", nil, ""},
		{"CA:FALSE", []pkix.Extension{basicConstraintsExt(t, false)}, ""},
		{"CA:TRUE", []pkix.Extension{basicConstraintsExt(t, true)}, "CA:TRUE"},
		{"digitalSignature only", []pkix.Extension{keyUsageExt(t, 0)}, ""},
		{"keyCertSign", []pkix.Extension{keyUsageExt(t, 0, 5)}, "keyCertSign"},
		{"cRLSign", []pkix.Extension{keyUsageExt(t, 6)}, "cRLSign"},
		{"malformed basic constraints", []pkix.Extension{{Id: oidBasicConstraints(), Value: []byte{0x04, 0x00}}}, "malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := newRequest(t, reqSpec{cn: "x", exts: tc.exts})
			got := RequestsCA(req)
			if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Fatalf("RequestsCA = %q, want %q", got, tc.want)
			}
		})
	}
}
