package csr

import (
	"crypto/x509"
	"slices"
	"strings"
	"testing"

	certv1 "k8s.io/api/certificates/v1"

	"kubepki.dev/kubepki/internal/pki"
)

func TestKeyUsages(t *testing.T) {
	tests := []struct {
		name    string
		usages  []certv1.KeyUsage
		ku      x509.KeyUsage
		eku     []x509.ExtKeyUsage
		wantErr string
	}{
		{"none", nil, 0, nil, ""},
		{"client", []certv1.KeyUsage{"digital signature", "key encipherment", "client auth"},
			x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, ""},
		{"signing is digital signature", []certv1.KeyUsage{"signing"}, x509.KeyUsageDigitalSignature, nil, ""},
		{"ext sorted, deduplicated", []certv1.KeyUsage{"client auth", "server auth", "s/mime", "email protection"},
			0, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageEmailProtection}, ""},
		{"unknown", []certv1.KeyUsage{"client auth", "flying"}, 0, nil, `"flying"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ku, eku, err := KeyUsages(tc.usages)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ku != tc.ku || !slices.Equal(eku, tc.eku) {
				t.Fatalf("KeyUsages = %v %v, want %v %v", ku, eku, tc.ku, tc.eku)
			}
		})
	}
}

func TestDefaultUsages(t *testing.T) {
	rsaKey, err := pki.GenerateKey(pki.RSA2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		signer string
		rsa    bool
		want   []certv1.KeyUsage
	}{
		{certv1.KubeAPIServerClientSignerName, false, []certv1.KeyUsage{"digital signature", "client auth"}},
		{certv1.KubeAPIServerClientSignerName, true, []certv1.KeyUsage{"digital signature", "key encipherment", "client auth"}},
		{certv1.KubeletServingSignerName, false, []certv1.KeyUsage{"digital signature", "server auth"}},
		{"kubepki.dev/etcd-client", false, []certv1.KeyUsage{"digital signature", "client auth"}},
	}
	for _, tc := range tests {
		key := ecKey
		if tc.rsa {
			key = rsaKey
		}
		if got := DefaultUsages(tc.signer, key.Public()); !slices.Equal(got, tc.want) {
			t.Errorf("DefaultUsages(%s, rsa=%v) = %v, want %v", tc.signer, tc.rsa, got, tc.want)
		}
		// What kubepki asks for by default, its signers accept.
		if tc.signer != certv1.KubeletServingSignerName {
			req, _ := newRequest(t, reqSpec{cn: "system:node:n", o: []string{NodesGroup}, key: key})
			if err := ValidateForSigner(tc.signer, req, DefaultUsages(tc.signer, key.Public())); err != nil {
				t.Errorf("default usages refused by %s: %v", tc.signer, err)
			}
		}
	}
}
