package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"time"
)

// Usage is an extended key usage, named as in the Kubernetes
// certificates.k8s.io API ("client auth", "server auth").
type Usage string

// The extended key usages Kubernetes certificates carry.
const (
	UsageClientAuth Usage = "client auth"
	UsageServerAuth Usage = "server auth"
)

// Backdate is how far NotBefore is set into the past, so that a certificate
// is valid at once on a host whose clock runs a little behind
// (kube-controller-manager's signer uses the same five minutes).
const Backdate = 5 * time.Minute

// Subject is the distinguished name of a certificate. For Kubernetes client
// certificates CommonName is the user name and Organization the groups.
type Subject struct {
	CommonName   string   `json:"commonName"`
	Organization []string `json:"organization,omitempty"`
	Country      []string `json:"country,omitempty"`
	Province     []string `json:"province,omitempty"`
	Locality     []string `json:"locality,omitempty"`
}

// SameIdentity reports whether two subjects are the same Kubernetes
// identity: the CN is the user, O the set of groups (order and repeats do
// not matter).
func (s Subject) SameIdentity(o Subject) bool {
	if s.CommonName != o.CommonName {
		return false
	}
	a, b := slices.Clone(s.Organization), slices.Clone(o.Organization)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// Name returns the subject as a pkix.Name.
func (s Subject) Name() pkix.Name {
	return pkix.Name{
		CommonName:   s.CommonName,
		Organization: s.Organization,
		Country:      s.Country,
		Province:     s.Province,
		Locality:     s.Locality,
	}
}

// SubjectOf returns the parts of a pkix.Name that kubepki manages.
func SubjectOf(n pkix.Name) Subject {
	return Subject{
		CommonName:   n.CommonName,
		Organization: n.Organization,
		Country:      n.Country,
		Province:     n.Province,
		Locality:     n.Locality,
	}
}

// Profile is what a certificate must say: who it names, what it may be used
// for, where it is valid and for how long. Key usages are not part of it:
// they follow from IsCA and the key type (see KeyUsageFor).
type Profile struct {
	Subject  Subject       `json:"subject"`
	IsCA     bool          `json:"isCA,omitempty"`
	Usages   []Usage       `json:"usages,omitempty"`
	DNSNames []string      `json:"dnsNames,omitempty"`
	IPs      []net.IP      `json:"ips,omitempty"`
	Validity time.Duration `json:"-"`
}

// MarshalJSON writes Validity as a Go duration string ("8760h0m0s").
func (p Profile) MarshalJSON() ([]byte, error) {
	type plain Profile
	return json.Marshal(struct {
		plain
		Validity string `json:"validity"`
	}{plain(p), p.Validity.String()})
}

// KeyUsageFor returns the key usage Kubernetes gives a certificate:
// digitalSignature always; keyEncipherment only for RSA keys, the only ones
// TLS can encrypt a key to; keyCertSign and cRLSign for CAs.
func KeyUsageFor(pub crypto.PublicKey, isCA bool) x509.KeyUsage {
	ku := x509.KeyUsageDigitalSignature
	if isCA {
		return ku | x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	}
	if isRSA(pub) {
		ku |= x509.KeyUsageKeyEncipherment
	}
	return ku
}

// ExtKeyUsages converts usages to their x509 form, in a fixed order.
func ExtKeyUsages(us []Usage) ([]x509.ExtKeyUsage, error) {
	var out []x509.ExtKeyUsage
	for _, u := range us {
		switch u {
		case UsageClientAuth:
			out = append(out, x509.ExtKeyUsageClientAuth)
		case UsageServerAuth:
			out = append(out, x509.ExtKeyUsageServerAuth)
		default:
			return nil, fmt.Errorf("unknown usage %q", u)
		}
	}
	return out, nil
}

// UsagesOf returns a certificate's extended key usages by name; unknown ones
// are named by their x509 number.
func UsagesOf(c *x509.Certificate) []Usage {
	var out []Usage
	for _, u := range c.ExtKeyUsage {
		switch u {
		case x509.ExtKeyUsageClientAuth:
			out = append(out, UsageClientAuth)
		case x509.ExtKeyUsageServerAuth:
			out = append(out, UsageServerAuth)
		default:
			out = append(out, Usage(fmt.Sprintf("ext-key-usage-%d", u)))
		}
	}
	return out
}

// CA is a certificate authority: its certificate and, when present, its key.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// NewCA returns a self-signed CA for key with the profile's subject and validity.
func NewCA(key crypto.Signer, p Profile, now time.Time) (*CA, error) {
	p.IsCA = true
	tmpl, err := template(key.Public(), p, now)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("self-sign CA %q: %w", p.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse new CA %q: %w", p.Subject.CommonName, err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// Issue signs a certificate for pub with the profile. The certificate never
// outlives the CA: NotAfter is capped at the CA's NotAfter.
func (ca *CA) Issue(pub crypto.PublicKey, p Profile, now time.Time) (*x509.Certificate, error) {
	tmpl, err := template(pub, p, now)
	if err != nil {
		return nil, err
	}
	return ca.Sign(pub, tmpl, now)
}

// Sign signs a leaf certificate built from tmpl for pub: the lower step of
// Issue, for callers whose usages come from elsewhere (the Certificates
// API's spec.usages). It sets what every certificate kubepki signs must
// have — a fresh random serial, the subject key ID, basic constraints
// (CA:FALSE unless tmpl.IsCA), NotAfter capped at the CA's — and refuses
// when the CA has no key or has expired.
func (ca *CA) Sign(pub crypto.PublicKey, tmpl *x509.Certificate, now time.Time) (*x509.Certificate, error) {
	cn := tmpl.Subject.CommonName
	if ca.Key == nil {
		return nil, fmt.Errorf("issue %q: CA %q has no private key (external CA)", cn, ca.Cert.Subject.CommonName)
	}
	if !now.Before(ca.Cert.NotAfter) {
		return nil, fmt.Errorf("issue %q: CA %q expired on %s", cn, ca.Cert.Subject.CommonName, ca.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	t := *tmpl
	serial, err := SerialNumber()
	if err != nil {
		return nil, err
	}
	ski, err := SubjectKeyID(pub)
	if err != nil {
		return nil, err
	}
	t.SerialNumber, t.SubjectKeyId = serial, ski
	t.BasicConstraintsValid = true
	if t.NotAfter.After(ca.Cert.NotAfter) {
		t.NotAfter = ca.Cert.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, &t, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("sign %q: %w", cn, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse new certificate %q: %w", cn, err)
	}
	return cert, nil
}

// CreateCSR returns a DER certificate request for key carrying the profile's
// subject, SANs and requested usages (as an extension request, the way
// openssl req -addext does), for signing by an external CA.
func CreateCSR(key crypto.Signer, p Profile) ([]byte, error) {
	tmpl := &x509.CertificateRequest{
		Subject:     p.Subject.Name(),
		DNSNames:    p.DNSNames,
		IPAddresses: p.IPs,
	}
	eku, err := ExtKeyUsages(p.Usages)
	if err != nil {
		return nil, err
	}
	exts, err := usageExtensions(KeyUsageFor(key.Public(), p.IsCA), eku)
	if err != nil {
		return nil, err
	}
	tmpl.ExtraExtensions = exts
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, fmt.Errorf("create CSR %q: %w", p.Subject.CommonName, err)
	}
	return der, nil
}

// template builds the certificate template shared by CAs and leaves.
func template(pub crypto.PublicKey, p Profile, now time.Time) (*x509.Certificate, error) {
	if p.Subject.CommonName == "" {
		return nil, errors.New("certificate needs a common name")
	}
	if p.Validity <= 0 {
		return nil, fmt.Errorf("certificate %q: validity must be positive", p.Subject.CommonName)
	}
	eku, err := ExtKeyUsages(p.Usages)
	if err != nil {
		return nil, fmt.Errorf("certificate %q: %w", p.Subject.CommonName, err)
	}
	serial, err := SerialNumber()
	if err != nil {
		return nil, err
	}
	ski, err := SubjectKeyID(pub)
	if err != nil {
		return nil, err
	}
	return &x509.Certificate{
		SerialNumber:          serial,
		Subject:               p.Subject.Name(),
		NotBefore:             now.Add(-Backdate).UTC(),
		NotAfter:              now.Add(p.Validity).UTC(),
		KeyUsage:              KeyUsageFor(pub, p.IsCA),
		ExtKeyUsage:           eku,
		BasicConstraintsValid: true,
		IsCA:                  p.IsCA,
		DNSNames:              slices.Clone(p.DNSNames),
		IPAddresses:           slices.Clone(p.IPs),
		SubjectKeyId:          ski,
	}, nil
}

// SerialNumber returns a random positive 128-bit serial number, well above
// the 64 bits of entropy the CA/Browser Forum asks for.
func SerialNumber() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// SubjectKeyID is the SHA-1 of the public key's bit string, RFC 5280 §4.2.1.2
// method (1), the same value openssl and Go compute for CAs.
func SubjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("subject key id: %w", err)
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, fmt.Errorf("subject key id: %w", err)
	}
	sum := sha1.Sum(spki.PublicKey.Bytes)
	return sum[:], nil
}

var (
	oidKeyUsage    = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtKeyUsage = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidClientAuth  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 2}
	oidServerAuth  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 1}
)

// usageExtensions encodes key usage and extended key usage as extensions for
// a CSR; x509.CertificateRequest has no fields for them.
func usageExtensions(ku x509.KeyUsage, eku []x509.ExtKeyUsage) ([]pkix.Extension, error) {
	// KeyUsage is a BIT STRING whose bit 0 is digitalSignature, most
	// significant bit first.
	var b [2]byte
	bits := 0
	for i := 0; i < 9; i++ {
		if ku&(1<<i) != 0 {
			b[i/8] |= 0x80 >> (i % 8)
			bits = i + 1
		}
	}
	kuDER, err := asn1.Marshal(asn1.BitString{Bytes: b[:(bits+7)/8], BitLength: bits})
	if err != nil {
		return nil, fmt.Errorf("encode key usage: %w", err)
	}
	exts := []pkix.Extension{{Id: oidKeyUsage, Critical: true, Value: kuDER}}
	if len(eku) > 0 {
		var oids []asn1.ObjectIdentifier
		for _, u := range eku {
			switch u {
			case x509.ExtKeyUsageClientAuth:
				oids = append(oids, oidClientAuth)
			case x509.ExtKeyUsageServerAuth:
				oids = append(oids, oidServerAuth)
			}
		}
		ekuDER, err := asn1.Marshal(oids)
		if err != nil {
			return nil, fmt.Errorf("encode extended key usage: %w", err)
		}
		exts = append(exts, pkix.Extension{Id: oidExtKeyUsage, Value: ekuDER})
	}
	return exts, nil
}
