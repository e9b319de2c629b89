// Package inspect describes PKI material found in untrusted input:
// certificates, certificate requests, private and public keys, in PEM or DER,
// and the certificates and keys embedded in a kubeconfig. For certificates
// and requests it also says what Kubernetes identity they carry when used
// for client authentication, and what that identity is allowed to do by
// default.
//
// Describe parses one input; Link relates the objects of several inputs
// (a key to its certificate, a certificate to its issuer); WriteText prints
// them for people, and the types marshal to JSON for machines.
package inspect

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"kubepki.dev/kubepki/internal/pki"
)

// MaxInputSize bounds the input Describe accepts: 10 MiB is far more than
// any certificate bundle, key or kubeconfig.
const MaxInputSize = 10 << 20

// Kind is what an Object is.
type Kind string

// The kinds of object Describe reports.
const (
	KindCertificate        Kind = "Certificate"
	KindCertificateRequest Kind = "CertificateRequest"
	KindPrivateKey         Kind = "PrivateKey"
	KindPublicKey          Kind = "PublicKey"
	// KindOther is a PEM block of a type inspect does not describe, such as
	// "X509 CRL" or "OPENSSH PRIVATE KEY".
	KindOther Kind = "Other"
)

// Object is one thing found in an input. Exactly one of Certificate,
// CertificateRequest, PrivateKey and PublicKey is set, matching Kind, unless
// the object could not be parsed (Error is set) or its Kind is KindOther.
type Object struct {
	// File is the input's name as given to Describe.
	File string `json:"file"`
	// Location says where in the file the object is: "PEM block 2", "DER",
	// or for kubeconfigs `user "admin": client-certificate-data`.
	Location string `json:"location"`
	Kind     Kind   `json:"kind"`
	// PEMType is the PEM block's type line, empty for DER.
	PEMType string `json:"pemType,omitempty"`

	Certificate        *Certificate        `json:"certificate,omitempty"`
	CertificateRequest *CertificateRequest `json:"certificateRequest,omitempty"`
	PrivateKey         *PrivateKey         `json:"privateKey,omitempty"`
	PublicKey          *PublicKey          `json:"publicKey,omitempty"`

	// Matches names the other objects (of any Describe call passed to Link)
	// that hold the same key pair, e.g. `private key in admin.key`.
	Matches []string `json:"matches,omitempty"`
	// Warnings are problems with the object itself: expiry, weak
	// algorithms, an issuer whose signature does not verify.
	Warnings []string `json:"warnings,omitempty"`
	// Error says why the object could not be parsed.
	Error string `json:"error,omitempty"`

	// For Link: the parsed certificate, and the public key in canonical
	// PKIX DER form, compared byte for byte.
	cert *x509.Certificate
	spki string
	// cn is the subject's common name, for references to the object.
	cn string
}

// Certificate describes an X.509 certificate.
type Certificate struct {
	// Subject and Issuer are distinguished names written the way openssl
	// prints them: "CN = admin, O = system:masters".
	Subject string `json:"subject"`
	Issuer  string `json:"issuer"`
	// SelfSigned: the issuer is the subject and the certificate's own key
	// verifies its signature.
	SelfSigned bool `json:"selfSigned"`
	// SignedBy names the certificates among those given to Link whose key
	// verifies this one's signature.
	SignedBy []string `json:"signedBy,omitempty"`
	// Serial is the serial number in colon-separated upper-case hex.
	Serial    string    `json:"serial"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
	// Expiry is the time left or since expiry relative to the time passed
	// to Describe: "364d 23h left", "expired 3d ago", "not yet valid: starts in 2h".
	Expiry      string   `json:"expiry"`
	Expired     bool     `json:"expired,omitempty"`
	NotYetValid bool     `json:"notYetValid,omitempty"`
	SANs        []string `json:"sans,omitempty"`
	// KeyUsage names the key usage bits (RFC 5280 names, "digitalSignature").
	KeyUsage []string `json:"keyUsage,omitempty"`
	// ExtKeyUsage names the extended key usages as the Kubernetes
	// certificates API does ("client auth"), or by OID when unknown.
	ExtKeyUsage []string `json:"extKeyUsage,omitempty"`
	IsCA        bool     `json:"isCA"`
	// MaxPathLen is the CA's path length constraint; absent when unlimited.
	MaxPathLen *int `json:"maxPathLen,omitempty"`
	// BasicConstraints is false for certificates without the extension
	// (X.509 v1 certificates among them).
	BasicConstraints bool `json:"basicConstraints"`
	// KeyAlgorithm is the public key's type and size, "ECDSA-P256".
	KeyAlgorithm       string `json:"keyAlgorithm"`
	SignatureAlgorithm string `json:"signatureAlgorithm"`
	SubjectKeyID       string `json:"subjectKeyId,omitempty"`
	AuthorityKeyID     string `json:"authorityKeyId,omitempty"`
	// SHA256Fingerprint is the SHA-256 of the DER certificate, as
	// openssl x509 -fingerprint -sha256 prints it.
	SHA256Fingerprint string `json:"sha256Fingerprint"`
	// PublicKeySHA256 is the SHA-256 of the SubjectPublicKeyInfo, the same
	// for the certificate, its key and its requests.
	PublicKeySHA256 string `json:"publicKeySHA256"`
	// KubeadmCACertHash is, for CAs, the value kubeadm join takes as
	// --discovery-token-ca-cert-hash.
	KubeadmCACertHash string `json:"kubeadmCACertHash,omitempty"`
	Role              Role   `json:"role"`
	// Identity is who the API server takes the holder to be when the
	// certificate is used as a client certificate; nil for CAs and for
	// certificates without client auth usage.
	Identity *Identity `json:"identity,omitempty"`
}

// CertificateRequest describes a PKCS#10 certificate signing request.
type CertificateRequest struct {
	Subject string   `json:"subject"`
	SANs    []string `json:"sans,omitempty"`
	// KeyUsage, ExtKeyUsage and IsCA are what the request's extension
	// request asks for; a signer is free to ignore them.
	KeyUsage           []string `json:"keyUsage,omitempty"`
	ExtKeyUsage        []string `json:"extKeyUsage,omitempty"`
	IsCA               bool     `json:"isCA,omitempty"`
	OtherExtensions    []string `json:"otherExtensions,omitempty"`
	KeyAlgorithm       string   `json:"keyAlgorithm"`
	PublicKeySHA256    string   `json:"publicKeySHA256"`
	SignatureAlgorithm string   `json:"signatureAlgorithm"`
	// SignatureValid: the request is signed by the key it carries, proof
	// that its sender holds the private key.
	SignatureValid bool      `json:"signatureValid"`
	Role           Role      `json:"role"`
	Identity       *Identity `json:"identity,omitempty"`
}

// PrivateKey describes a private key. Nothing secret is reported.
type PrivateKey struct {
	// Format is "PKCS#8", "PKCS#1" or "SEC 1".
	Format string `json:"format"`
	// Encrypted keys cannot be read without their passphrase, so nothing
	// else is known of them.
	Encrypted       bool   `json:"encrypted,omitempty"`
	KeyAlgorithm    string `json:"keyAlgorithm,omitempty"`
	PublicKeySHA256 string `json:"publicKeySHA256,omitempty"`
}

// PublicKey describes a bare public key, such as a service-account
// token verification key (sa.pub).
type PublicKey struct {
	// Format is "PKIX" or "PKCS#1".
	Format          string `json:"format"`
	KeyAlgorithm    string `json:"keyAlgorithm"`
	PublicKeySHA256 string `json:"publicKeySHA256"`
}

// Describe finds and describes every certificate, certificate request,
// private and public key in data, which may be PEM (any number of blocks),
// a single DER certificate, request or key, or a kubeconfig with embedded
// certificates and keys. name is how objects and errors refer to the input;
// now is the time expiry is measured against.
//
// Objects come in input order. A block that cannot be parsed is an Object
// with Error set, not an error; Describe fails only when the input is too
// large, holds nothing it recognises, or is a kubeconfig that does not
// parse or embeds no certificate or key.
func Describe(name string, data []byte, now time.Time) ([]Object, error) {
	if len(data) > MaxInputSize {
		return nil, fmt.Errorf("inspect %s: input is %d bytes, more than the %d MiB limit", name, len(data), MaxInputSize>>20)
	}
	objs, sawPEM := describePEM(name, data, now)
	if !sawPEM {
		if o, ok := describeDER(name, data, now); ok {
			objs = append(objs, o)
		} else {
			kobjs, isKubeconfig, err := describeKubeconfig(name, data, now)
			if err != nil {
				return nil, fmt.Errorf("inspect %s: %w", name, err)
			}
			if isKubeconfig {
				return kobjs, nil
			}
		}
	}
	if !slices.ContainsFunc(objs, func(o Object) bool { return o.Kind != KindOther }) {
		msg := fmt.Sprintf("inspect %s: no certificate, CSR, key or kubeconfig found", name)
		if len(objs) > 0 {
			var types []string
			for _, o := range objs {
				if t := fmt.Sprintf("%q", o.PEMType); !slices.Contains(types, t) {
					types = append(types, t)
				}
			}
			msg += " (only PEM blocks of type " + strings.Join(types, ", ") + ")"
		}
		return nil, errors.New(msg)
	}
	return objs, nil
}

// describePEM describes every PEM block in data, numbering them from 1.
// sawPEM reports whether there was any PEM block at all.
func describePEM(name string, data []byte, now time.Time) (objs []Object, sawPEM bool) {
	rest := data
	for n := 1; ; n++ {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return objs, sawPEM
		}
		sawPEM = true
		if b.Type == "EC PARAMETERS" {
			// openssl ecparam -genkey writes the curve before the key;
			// the key names the curve too.
			continue
		}
		o := describeBlock(b, now)
		o.File, o.Location = name, fmt.Sprintf("PEM block %d", n)
		objs = append(objs, o)
	}
}

// describeBlock describes one PEM block.
func describeBlock(b *pem.Block, now time.Time) Object {
	o := Object{PEMType: b.Type}
	encrypted := strings.Contains(b.Headers["Proc-Type"], "ENCRYPTED")
	switch b.Type {
	case pki.BlockCertificate, "X509 CERTIFICATE":
		o.Kind = KindCertificate
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			o.Error = fmt.Sprintf("parse certificate: %v", err)
			return o
		}
		setCertificate(&o, c, now)
	case pki.BlockCSR, "NEW CERTIFICATE REQUEST":
		o.Kind = KindCertificateRequest
		csr, err := x509.ParseCertificateRequest(b.Bytes)
		if err != nil {
			o.Error = fmt.Sprintf("parse certificate request: %v", err)
			return o
		}
		setCertificateRequest(&o, csr)
	case pki.BlockPrivateKey, "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY":
		o.Kind = KindPrivateKey
		format := map[string]string{pki.BlockPrivateKey: "PKCS#8", "RSA PRIVATE KEY": "PKCS#1", "EC PRIVATE KEY": "SEC 1", "ENCRYPTED PRIVATE KEY": "PKCS#8"}[b.Type]
		if encrypted || b.Type == "ENCRYPTED PRIVATE KEY" {
			o.PrivateKey = &PrivateKey{Format: format, Encrypted: true}
			return o
		}
		var (
			k   any
			err error
		)
		switch b.Type {
		case pki.BlockPrivateKey:
			k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		default:
			k, err = x509.ParseECPrivateKey(b.Bytes)
		}
		if err != nil {
			o.Error = fmt.Sprintf("parse %s private key: %v", format, err)
			return o
		}
		setPrivateKey(&o, format, k)
	case pki.BlockPublicKey, "RSA PUBLIC KEY":
		o.Kind = KindPublicKey
		format := "PKIX"
		var (
			pub any
			err error
		)
		if b.Type == pki.BlockPublicKey {
			pub, err = x509.ParsePKIXPublicKey(b.Bytes)
		} else {
			format = "PKCS#1"
			pub, err = x509.ParsePKCS1PublicKey(b.Bytes)
		}
		if err != nil {
			o.Error = fmt.Sprintf("parse %s public key: %v", format, err)
			return o
		}
		setPublicKey(&o, format, pub)
	default:
		o.Kind = KindOther
	}
	return o
}

// describeDER tries data as a single DER certificate, request, PKCS#8
// private key or PKIX public key.
func describeDER(name string, data []byte, now time.Time) (Object, bool) {
	o := Object{File: name, Location: "DER"}
	if c, err := x509.ParseCertificate(data); err == nil {
		o.Kind = KindCertificate
		setCertificate(&o, c, now)
		return o, true
	}
	if csr, err := x509.ParseCertificateRequest(data); err == nil {
		o.Kind = KindCertificateRequest
		setCertificateRequest(&o, csr)
		return o, true
	}
	if k, err := x509.ParsePKCS8PrivateKey(data); err == nil {
		o.Kind = KindPrivateKey
		setPrivateKey(&o, "PKCS#8", k)
		return o, true
	}
	if pub, err := x509.ParsePKIXPublicKey(data); err == nil {
		o.Kind = KindPublicKey
		setPublicKey(&o, "PKIX", pub)
		return o, true
	}
	return Object{}, false
}

// setPrivateKey fills in a parsed private key.
func setPrivateKey(o *Object, format string, k any) {
	o.PrivateKey = &PrivateKey{Format: format}
	priv, ok := k.(interface{ Public() crypto.PublicKey })
	if !ok {
		o.Error = fmt.Sprintf("unsupported private key type %T", k)
		return
	}
	pub := priv.Public()
	o.PrivateKey.KeyAlgorithm = keyAlgorithm(pub)
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		o.Error = fmt.Sprintf("encode public key: %v", err)
		return
	}
	o.PrivateKey.PublicKeySHA256 = sha256Colon(der)
	o.spki = string(der)
	o.Warnings = append(o.Warnings, keyWarnings(pub)...)
}

// setPublicKey fills in a parsed public key.
func setPublicKey(o *Object, format string, pub any) {
	o.PublicKey = &PublicKey{Format: format, KeyAlgorithm: keyAlgorithm(pub)}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		o.Error = fmt.Sprintf("encode public key: %v", err)
		return
	}
	o.PublicKey.PublicKeySHA256 = sha256Colon(der)
	o.spki = string(der)
	o.Warnings = append(o.Warnings, keyWarnings(pub)...)
}

// canonicalSPKI returns the public key in Go's PKIX DER encoding, which is
// the same for equal keys however the input encoded them; "" when the key
// cannot be encoded.
func canonicalSPKI(pub any) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return ""
	}
	return string(der)
}

// keyAlgorithm names a public key's type and size, "RSA-2048",
// "ECDSA-P256", "Ed25519", "X25519".
func keyAlgorithm(pub any) string {
	if k, ok := pub.(*ecdh.PublicKey); ok {
		name := fmt.Sprint(k.Curve())
		if name == "X25519" {
			return name
		}
		return "ECDH-" + strings.ReplaceAll(name, "-", "")
	}
	return string(pki.AlgorithmOf(pub))
}

// sha256Colon is the SHA-256 of data in colon-separated upper-case hex.
func sha256Colon(data []byte) string {
	sum := sha256.Sum256(data)
	return colonHex(sum[:])
}

// colonHex writes b as upper-case hex bytes separated by colons, the way
// openssl prints fingerprints and key identifiers.
func colonHex(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	h := strings.ToUpper(hex.EncodeToString(b))
	var s bytes.Buffer
	s.Grow(len(h) + len(b))
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			s.WriteByte(':')
		}
		s.WriteString(h[i : i+2])
	}
	return s.String()
}
