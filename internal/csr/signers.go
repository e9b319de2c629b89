package csr

import (
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"

	certv1 "k8s.io/api/certificates/v1"
)

// Kubernetes' groups and name prefixes the signers and the approver check.
const (
	// NodesGroup is the group every kubelet's client certificate carries;
	// the Node authorizer only recognises a node in it.
	NodesGroup = "system:nodes"
	// MastersGroup bypasses RBAC: a certificate naming it is cluster-admin
	// forever (certificates cannot be revoked).
	MastersGroup = "system:masters"
	// NodeUserPrefix starts a node's user name: system:node:<nodeName>.
	NodeUserPrefix = "system:node:"
)

// The usage sets kube-controller-manager accepts for the kubelet signers
// (k8s.io/kubernetes/pkg/apis/certificates ValidateKubeletServingCSR and
// ValidateKubeletClientCSR): key encipherment is present for RSA keys and
// absent for ECDSA and Ed25519 ones, so both sets are allowed.
func kubeletServingUsages() []usageSet {
	return []usageSet{
		{certv1.UsageDigitalSignature, certv1.UsageKeyEncipherment, certv1.UsageServerAuth},
		{certv1.UsageDigitalSignature, certv1.UsageServerAuth},
	}
}

func kubeletClientUsages() []usageSet {
	return []usageSet{
		{certv1.UsageDigitalSignature, certv1.UsageKeyEncipherment, certv1.UsageClientAuth},
		{certv1.UsageDigitalSignature, certv1.UsageClientAuth},
	}
}

// KnownSigner reports whether kubepki knows the rules of a kubernetes.io
// signer name. Names outside kubernetes.io are custom signers, whose rules
// are kubepki's (see ValidateForSigner).
func KnownSigner(name string) bool {
	switch name {
	case certv1.KubeletServingSignerName, certv1.KubeAPIServerClientKubeletSignerName, certv1.KubeAPIServerClientSignerName:
		return true
	}
	return false
}

// ValidateSignerName checks a signer name a person configures: a known
// kubernetes.io signer, or a custom one of the form domain/path outside
// kubernetes.io (the API server requires the slash; kubernetes.io names are
// reserved for signers whose rules Kubernetes defines).
func ValidateSignerName(name string) error {
	if KnownSigner(name) {
		return nil
	}
	domain, path, ok := strings.Cut(name, "/")
	if !ok || domain == "" || path == "" {
		return fmt.Errorf("signer name %q: want DOMAIN/NAME, e.g. kubepki.dev/etcd-client", name)
	}
	if domain == "kubernetes.io" || strings.HasSuffix(domain, ".kubernetes.io") {
		return fmt.Errorf("signer name %q: kubepki does not implement this kubernetes.io signer (it signs %s, %s and %s)", name,
			certv1.KubeAPIServerClientSignerName, certv1.KubeAPIServerClientKubeletSignerName, certv1.KubeletServingSignerName)
	}
	return nil
}

// ValidateForSigner checks a request against the rules of its signer, as
// Kubernetes defines them for its own signers
// (https://kubernetes.io/docs/reference/access-authn-authz/certificate-signing-requests/#kubernetes-signers):
//
//   - kubernetes.io/kubelet-serving: O is exactly [system:nodes], CN starts
//     with system:node:, at least one DNS or IP SAN, no email or URI SAN,
//     usages {digital signature, server auth} plus key encipherment for RSA.
//   - kubernetes.io/kube-apiserver-client-kubelet: O is exactly
//     [system:nodes], CN starts with system:node:, no SAN of any kind,
//     usages {digital signature, client auth} plus key encipherment for RSA.
//   - kubernetes.io/kube-apiserver-client: usages within {digital
//     signature, key encipherment, client auth}, client auth required, and
//     no SAN: the API server authenticates a client by its CN and O alone,
//     so a SAN only makes the certificate usable somewhere else.
//     (kube-controller-manager copies SANs here; kubepki is stricter.)
//   - any other signer (custom, e.g. kubepki.dev/etcd-client): known usages
//     only, never cert sign, crl sign or any.
//
// A request that fails gets the Failed condition from the signer, never a
// certificate. Whether the request asks to be a CA is not checked here: the
// signer always issues CA:FALSE.
func ValidateForSigner(signerName string, req *x509.CertificateRequest, usages []certv1.KeyUsage) error {
	if _, _, err := KeyUsages(usages); err != nil {
		return err
	}
	switch signerName {
	case certv1.KubeletServingSignerName:
		return validateKubeletServing(req, usages)
	case certv1.KubeAPIServerClientKubeletSignerName:
		return validateKubeletClient(req, usages)
	case certv1.KubeAPIServerClientSignerName:
		return validateAPIServerClient(req, usages)
	}
	if err := ValidateSignerName(signerName); err != nil {
		return err
	}
	return validateCustom(usages)
}

func validateKubeletServing(req *x509.CertificateRequest, usages []certv1.KeyUsage) error {
	if err := nodeSubject(req); err != nil {
		return err
	}
	if len(req.DNSNames) == 0 && len(req.IPAddresses) == 0 {
		return errors.New("a kubelet serving certificate needs at least one DNS or IP subjectAltName")
	}
	if len(req.EmailAddresses) > 0 {
		return errors.New("email subjectAltNames are not allowed in a kubelet serving certificate")
	}
	if len(req.URIs) > 0 {
		return errors.New("URI subjectAltNames are not allowed in a kubelet serving certificate")
	}
	return usagesIn(usages, kubeletServingUsages(), "kubelet serving")
}

func validateKubeletClient(req *x509.CertificateRequest, usages []certv1.KeyUsage) error {
	if err := nodeSubject(req); err != nil {
		return err
	}
	if err := noSANs(req, "a kubelet client certificate"); err != nil {
		return err
	}
	return usagesIn(usages, kubeletClientUsages(), "kubelet client")
}

func validateAPIServerClient(req *x509.CertificateRequest, usages []certv1.KeyUsage) error {
	if err := noSANs(req, "a kube-apiserver client certificate"); err != nil {
		return err
	}
	return ClientUsages(usages)
}

// ClientUsages checks the usages of a kube-apiserver client certificate:
// client auth, optionally digital signature and key encipherment, nothing else.
func ClientUsages(usages []certv1.KeyUsage) error {
	for _, u := range usages {
		switch u {
		case certv1.UsageDigitalSignature, certv1.UsageKeyEncipherment, certv1.UsageClientAuth:
		default:
			return fmt.Errorf("usage %q is not allowed in a client certificate (allowed: digital signature, key encipherment, client auth)", u)
		}
	}
	if !slices.Contains(usages, certv1.UsageClientAuth) {
		return errors.New("a client certificate needs the client auth usage")
	}
	return nil
}

func validateCustom(usages []certv1.KeyUsage) error {
	for _, u := range usages {
		switch u {
		case certv1.UsageCertSign, certv1.UsageCRLSign:
			return fmt.Errorf("usage %q is not allowed: kubepki signers issue leaf certificates only", u)
		case certv1.UsageAny:
			return fmt.Errorf("usage %q is not allowed: name the usages the certificate needs", u)
		}
	}
	return nil
}

// nodeSubject checks the subject every kubelet certificate has.
func nodeSubject(req *x509.CertificateRequest) error {
	if !slices.Equal(req.Subject.Organization, []string{NodesGroup}) {
		return fmt.Errorf("subject O is [%s], want exactly [%s]", strings.Join(req.Subject.Organization, ", "), NodesGroup)
	}
	if !strings.HasPrefix(req.Subject.CommonName, NodeUserPrefix) || len(req.Subject.CommonName) == len(NodeUserPrefix) {
		return fmt.Errorf("subject CN %q does not name a node (want %s<nodeName>)", req.Subject.CommonName, NodeUserPrefix)
	}
	return nil
}

// noSANs refuses every kind of subjectAltName.
func noSANs(req *x509.CertificateRequest, what string) error {
	var kinds []string
	if len(req.DNSNames) > 0 {
		kinds = append(kinds, "DNS")
	}
	if len(req.IPAddresses) > 0 {
		kinds = append(kinds, "IP")
	}
	if len(req.EmailAddresses) > 0 {
		kinds = append(kinds, "email")
	}
	if len(req.URIs) > 0 {
		kinds = append(kinds, "URI")
	}
	if len(kinds) > 0 {
		return fmt.Errorf("%s takes no subjectAltNames; the request has %s", what, strings.Join(kinds, ", "))
	}
	return nil
}

// usagesIn checks that usages equal one of the allowed sets.
func usagesIn(usages []certv1.KeyUsage, allowed []usageSet, what string) error {
	for _, set := range allowed {
		if set.equal(usages) {
			return nil
		}
	}
	names := make([]string, len(allowed))
	for i, s := range allowed {
		names[i] = s.String()
	}
	return fmt.Errorf("usages %s are not a %s set (want %s)", usagesString(usages), what, strings.Join(names, " or "))
}
