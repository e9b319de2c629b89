package csr

import (
	"time"

	certv1 "k8s.io/api/certificates/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Request is what a new CertificateSigningRequest object says.
type Request struct {
	// Name is the object's name.
	Name string
	// SignerName is spec.signerName, e.g. kubernetes.io/kube-apiserver-client.
	SignerName string
	// PEM is the PKCS#10 request, PEM-encoded (spec.request; the API
	// carries it base64-encoded, as the docs' `base64 | tr -d "\n"` does).
	PEM []byte
	// Usages is spec.usages.
	Usages []certv1.KeyUsage
	// Expiration is spec.expirationSeconds; zero leaves it to the signer.
	Expiration time.Duration
}

// NewObject returns the certificates.k8s.io/v1 CertificateSigningRequest for
// r, with apiVersion and kind set so that it prints as a manifest
// kubectl can create.
func NewObject(r Request) *certv1.CertificateSigningRequest {
	return &certv1.CertificateSigningRequest{
		TypeMeta:   metav1.TypeMeta{APIVersion: certv1.SchemeGroupVersion.String(), Kind: "CertificateSigningRequest"},
		ObjectMeta: metav1.ObjectMeta{Name: r.Name},
		Spec: certv1.CertificateSigningRequestSpec{
			Request:           r.PEM,
			SignerName:        r.SignerName,
			Usages:            r.Usages,
			ExpirationSeconds: ExpirationSeconds(r.Expiration),
		},
	}
}
