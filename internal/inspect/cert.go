package inspect

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"kubepki.dev/kubepki/internal/pki"
)

// Role is what a certificate or request is for, as far as Kubernetes cares.
type Role string

// Roles, from the CA flag and the extended key usages.
const (
	// RoleCA signs certificates; it is not a client identity.
	RoleCA Role = "ca"
	// RoleClient has client auth usage only.
	RoleClient Role = "client"
	// RoleServer has server auth usage but not client auth.
	RoleServer Role = "server"
	// RoleClientServer has both client and server auth usage.
	RoleClientServer Role = "client+server"
	// RoleAny has no extended key usage, or "any": every use is allowed.
	RoleAny Role = "any"
	// RoleOther has extended key usages, none of them client or server auth.
	RoleOther Role = "other"
)

// IsClient reports whether the API server accepts a certificate of this
// role for client authentication (it asks for client auth usage).
func (r Role) IsClient() bool {
	return r == RoleClient || r == RoleClientServer || r == RoleAny
}

// Describe says what the role means, in a phrase.
func (r Role) Describe() string {
	switch r {
	case RoleCA:
		return "CA: signs certificates; not a client identity"
	case RoleClient:
		return "client certificate"
	case RoleServer:
		return "server certificate: not a client identity (no client auth usage)"
	case RoleClientServer:
		return "client and server certificate"
	case RoleAny:
		return "unrestricted (no extended key usage): client and server certificate"
	case RoleOther:
		return "neither client nor server auth usage: not a client identity"
	}
	return string(r)
}

// roleOf derives the role from the CA flag and extended key usages.
func roleOf(isCA bool, eku []x509.ExtKeyUsage, unknownEKU int) Role {
	if isCA {
		return RoleCA
	}
	if len(eku) == 0 && unknownEKU == 0 || slices.Contains(eku, x509.ExtKeyUsageAny) {
		return RoleAny
	}
	client := slices.Contains(eku, x509.ExtKeyUsageClientAuth)
	server := slices.Contains(eku, x509.ExtKeyUsageServerAuth)
	switch {
	case client && server:
		return RoleClientServer
	case client:
		return RoleClient
	case server:
		return RoleServer
	}
	return RoleOther
}

// setCertificate fills in a parsed certificate.
func setCertificate(o *Object, c *x509.Certificate, now time.Time) {
	d := &Certificate{
		Subject:            formatDN(c.Subject),
		Issuer:             formatDN(c.Issuer),
		SelfSigned:         bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil,
		Serial:             formatSerial(c.SerialNumber),
		NotBefore:          c.NotBefore.UTC(),
		NotAfter:           c.NotAfter.UTC(),
		SANs:               sans(c.DNSNames, c.IPAddresses, c.EmailAddresses, c.URIs),
		KeyUsage:           pki.KeyUsageNames(c.KeyUsage),
		ExtKeyUsage:        extKeyUsageNames(c.ExtKeyUsage, c.UnknownExtKeyUsage),
		IsCA:               c.IsCA,
		BasicConstraints:   c.BasicConstraintsValid,
		KeyAlgorithm:       keyAlgorithm(c.PublicKey),
		SignatureAlgorithm: c.SignatureAlgorithm.String(),
		SubjectKeyID:       colonHex(c.SubjectKeyId),
		AuthorityKeyID:     colonHex(c.AuthorityKeyId),
		SHA256Fingerprint:  sha256Colon(c.Raw),
		PublicKeySHA256:    sha256Colon(c.RawSubjectPublicKeyInfo),
		Role:               roleOf(c.IsCA, c.ExtKeyUsage, len(c.UnknownExtKeyUsage)),
	}
	if c.IsCA && (c.MaxPathLen > 0 || c.MaxPathLen == 0 && c.MaxPathLenZero) {
		n := c.MaxPathLen
		d.MaxPathLen = &n
	}
	if c.IsCA {
		sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
		d.KubeadmCACertHash = "sha256:" + hex.EncodeToString(sum[:])
	}
	switch {
	case now.Before(c.NotBefore):
		d.NotYetValid = true
		d.Expiry = "not yet valid: starts in " + humanDuration(c.NotBefore.Sub(now))
		o.Warnings = append(o.Warnings, fmt.Sprintf("not valid before %s: peers reject it until then", d.NotBefore.Format(time.RFC3339)))
	case now.After(c.NotAfter):
		d.Expired = true
		d.Expiry = "expired " + humanDuration(now.Sub(c.NotAfter)) + " ago"
		o.Warnings = append(o.Warnings, fmt.Sprintf("expired on %s: peers reject it", d.NotAfter.Format(time.RFC3339)))
	default:
		d.Expiry = humanDuration(c.NotAfter.Sub(now)) + " left"
	}
	if d.Role.IsClient() {
		d.Identity = identityOf(c.Subject)
		sum := sha256.Sum256(c.Raw)
		d.Identity.CredentialID = "X509SHA256=" + hex.EncodeToString(sum[:])
	}
	o.Warnings = append(o.Warnings, signatureWarnings(c.SignatureAlgorithm)...)
	o.Warnings = append(o.Warnings, keyWarnings(c.PublicKey)...)
	if !c.IsCA && c.KeyUsage&x509.KeyUsageCertSign != 0 {
		o.Warnings = append(o.Warnings, "keyCertSign key usage on a certificate that is not a CA")
	}
	if c.IsCA && c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageCertSign == 0 {
		o.Warnings = append(o.Warnings, "CA without keyCertSign key usage: certificates it signs fail verification in strict clients")
	}
	o.Certificate = d
	o.cert, o.cn = c, c.Subject.CommonName
	o.spki = canonicalSPKI(c.PublicKey)
}

// setCertificateRequest fills in a parsed certificate request.
func setCertificateRequest(o *Object, csr *x509.CertificateRequest) {
	d := &CertificateRequest{
		Subject:            formatDN(csr.Subject),
		SANs:               sans(csr.DNSNames, csr.IPAddresses, csr.EmailAddresses, csr.URIs),
		KeyAlgorithm:       keyAlgorithm(csr.PublicKey),
		PublicKeySHA256:    sha256Colon(csr.RawSubjectPublicKeyInfo),
		SignatureAlgorithm: csr.SignatureAlgorithm.String(),
		SignatureValid:     csr.CheckSignature() == nil,
	}
	var (
		eku     []x509.ExtKeyUsage
		unknown []asn1.ObjectIdentifier
	)
	for _, ext := range csr.Extensions {
		switch ext.Id.String() {
		case "2.5.29.15": // key usage
			var bits asn1.BitString
			if rest, err := asn1.Unmarshal(ext.Value, &bits); err != nil || len(rest) > 0 {
				o.Warnings = append(o.Warnings, "requested key usage extension is malformed")
				continue
			}
			var ku x509.KeyUsage
			for i := 0; i < 9; i++ {
				if bits.At(i) != 0 {
					ku |= 1 << i
				}
			}
			d.KeyUsage = pki.KeyUsageNames(ku)
		case "2.5.29.37": // extended key usage
			var oids []asn1.ObjectIdentifier
			if rest, err := asn1.Unmarshal(ext.Value, &oids); err != nil || len(rest) > 0 {
				o.Warnings = append(o.Warnings, "requested extended key usage extension is malformed")
				continue
			}
			for _, oid := range oids {
				if u, ok := extKeyUsageFromOID(oid); ok {
					eku = append(eku, u)
				} else {
					unknown = append(unknown, oid)
				}
			}
		case "2.5.29.19": // basic constraints
			var bc struct {
				IsCA       bool `asn1:"optional"`
				MaxPathLen int  `asn1:"optional,default:-1"`
			}
			if rest, err := asn1.Unmarshal(ext.Value, &bc); err != nil || len(rest) > 0 {
				o.Warnings = append(o.Warnings, "requested basic constraints extension is malformed")
				continue
			}
			d.IsCA = bc.IsCA
		case "2.5.29.17": // subject alternative names, parsed by crypto/x509
		default:
			d.OtherExtensions = append(d.OtherExtensions, extensionName(ext.Id))
		}
	}
	d.ExtKeyUsage = extKeyUsageNames(eku, unknown)
	d.Role = roleOf(d.IsCA, eku, len(unknown))
	if d.Role.IsClient() {
		d.Identity = identityOf(csr.Subject)
	}
	if !d.SignatureValid {
		o.Warnings = append(o.Warnings, "signature does not verify with the request's own key: the request is corrupt or forged")
	}
	o.Warnings = append(o.Warnings, signatureWarnings(csr.SignatureAlgorithm)...)
	o.Warnings = append(o.Warnings, keyWarnings(csr.PublicKey)...)
	o.CertificateRequest, o.cn = d, csr.Subject.CommonName
	o.spki = canonicalSPKI(csr.PublicKey)
}

// signatureWarnings flags signature algorithms Go, and so Kubernetes,
// no longer accepts.
func signatureWarnings(a x509.SignatureAlgorithm) []string {
	switch a {
	case x509.MD2WithRSA, x509.MD5WithRSA, x509.SHA1WithRSA, x509.DSAWithSHA1, x509.DSAWithSHA256, x509.ECDSAWithSHA1:
		return []string{fmt.Sprintf("signed with %s, which Kubernetes components (Go) reject", a)}
	case x509.UnknownSignatureAlgorithm:
		return []string{"unknown signature algorithm"}
	}
	return nil
}

// keyWarnings flags weak keys.
func keyWarnings(pub any) []string {
	if k, ok := pub.(*rsa.PublicKey); ok && k.N.BitLen() < 2048 {
		return []string{fmt.Sprintf("RSA key of %d bits: too short, use at least 2048", k.N.BitLen())}
	}
	return nil
}

// formatSerial writes a serial number as colon-separated upper-case hex
// bytes of its magnitude, as openssl does.
func formatSerial(n *big.Int) string {
	if n == nil {
		return ""
	}
	b := n.Bytes()
	if len(b) == 0 {
		b = []byte{0}
	}
	s := colonHex(b)
	if n.Sign() < 0 {
		s = "-" + s
	}
	return s
}

// formatDN writes a distinguished name the way openssl prints it by
// default: attributes in certificate order, "CN = admin, O = system:masters".
// Special and non-printable characters in values are backslash-escaped
// (RFC 4514), so the result is one unambiguous, terminal-safe line.
func formatDN(n pkix.Name) string {
	parts := make([]string, 0, len(n.Names))
	for _, atv := range n.Names {
		v, ok := atv.Value.(string)
		if !ok {
			v = fmt.Sprint(atv.Value)
		}
		parts = append(parts, attributeName(atv.Type)+" = "+escapeDNValue(v))
	}
	return strings.Join(parts, ", ")
}

// attributeName is openssl's short name for a DN attribute type.
func attributeName(oid asn1.ObjectIdentifier) string {
	switch oid.String() {
	case "2.5.4.3":
		return "CN"
	case "2.5.4.4":
		return "SN"
	case "2.5.4.5":
		return "serialNumber"
	case "2.5.4.6":
		return "C"
	case "2.5.4.7":
		return "L"
	case "2.5.4.8":
		return "ST"
	case "2.5.4.9":
		return "street"
	case "2.5.4.10":
		return "O"
	case "2.5.4.11":
		return "OU"
	case "2.5.4.12":
		return "title"
	case "2.5.4.17":
		return "postalCode"
	case "2.5.4.42":
		return "GN"
	case "1.2.840.113549.1.9.1":
		return "emailAddress"
	case "0.9.2342.19200300.100.1.1":
		return "UID"
	case "0.9.2342.19200300.100.1.25":
		return "DC"
	}
	return oid.String()
}

// escapeDNValue backslash-escapes the characters RFC 4514 reserves, and
// writes control and other non-printable characters as \XX UTF-8 bytes.
func escapeDNValue(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); {
		r, size := utf8.DecodeRuneInString(v[i:])
		switch {
		case r == utf8.RuneError || !unicode.IsPrint(r):
			for _, c := range []byte(v[i : i+size]) {
				fmt.Fprintf(&b, "\\%02X", c)
			}
		case strings.ContainsRune(`,+"\<>;=`, r),
			(r == '#' || r == ' ') && i == 0,
			r == ' ' && i+size == len(v):
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
		i += size
	}
	return b.String()
}

// sans renders subject alternative names as openssl does:
// DNS:x, IP:y, email:z, URI:w, in that order.
func sans(dns []string, ips []net.IP, emails []string, uris []*url.URL) []string {
	out := pki.SANs(dns, ips)
	for _, e := range emails {
		out = append(out, "email:"+e)
	}
	for _, u := range uris {
		out = append(out, "URI:"+u.String())
	}
	return out
}

// extKeyUsageNames names extended key usages as the Kubernetes
// certificates API does, unknown ones by OID.
func extKeyUsageNames(eku []x509.ExtKeyUsage, unknown []asn1.ObjectIdentifier) []string {
	var out []string
	for _, u := range eku {
		out = append(out, extKeyUsageName(u))
	}
	for _, oid := range unknown {
		out = append(out, oid.String())
	}
	return out
}

// extKeyUsageName names one extended key usage; the names are those of
// the Kubernetes certificates.k8s.io API.
func extKeyUsageName(u x509.ExtKeyUsage) string {
	switch u {
	case x509.ExtKeyUsageAny:
		return "any"
	case x509.ExtKeyUsageServerAuth:
		return string(pki.UsageServerAuth)
	case x509.ExtKeyUsageClientAuth:
		return string(pki.UsageClientAuth)
	case x509.ExtKeyUsageCodeSigning:
		return "code signing"
	case x509.ExtKeyUsageEmailProtection:
		return "email protection"
	case x509.ExtKeyUsageIPSECEndSystem:
		return "ipsec end system"
	case x509.ExtKeyUsageIPSECTunnel:
		return "ipsec tunnel"
	case x509.ExtKeyUsageIPSECUser:
		return "ipsec user"
	case x509.ExtKeyUsageTimeStamping:
		return "timestamping"
	case x509.ExtKeyUsageOCSPSigning:
		return "ocsp signing"
	case x509.ExtKeyUsageMicrosoftServerGatedCrypto:
		return "microsoft sgc"
	case x509.ExtKeyUsageNetscapeServerGatedCrypto:
		return "netscape sgc"
	case x509.ExtKeyUsageMicrosoftCommercialCodeSigning:
		return "microsoft commercial code signing"
	case x509.ExtKeyUsageMicrosoftKernelCodeSigning:
		return "microsoft kernel code signing"
	}
	return fmt.Sprintf("ext-key-usage-%d", u)
}

// extKeyUsageFromOID maps an extended key usage OID to crypto/x509's
// constant, for the usages a certificate request asks for.
func extKeyUsageFromOID(oid asn1.ObjectIdentifier) (x509.ExtKeyUsage, bool) {
	switch oid.String() {
	case "2.5.29.37.0":
		return x509.ExtKeyUsageAny, true
	case "1.3.6.1.5.5.7.3.1":
		return x509.ExtKeyUsageServerAuth, true
	case "1.3.6.1.5.5.7.3.2":
		return x509.ExtKeyUsageClientAuth, true
	case "1.3.6.1.5.5.7.3.3":
		return x509.ExtKeyUsageCodeSigning, true
	case "1.3.6.1.5.5.7.3.4":
		return x509.ExtKeyUsageEmailProtection, true
	case "1.3.6.1.5.5.7.3.5":
		return x509.ExtKeyUsageIPSECEndSystem, true
	case "1.3.6.1.5.5.7.3.6":
		return x509.ExtKeyUsageIPSECTunnel, true
	case "1.3.6.1.5.5.7.3.7":
		return x509.ExtKeyUsageIPSECUser, true
	case "1.3.6.1.5.5.7.3.8":
		return x509.ExtKeyUsageTimeStamping, true
	case "1.3.6.1.5.5.7.3.9":
		return x509.ExtKeyUsageOCSPSigning, true
	case "1.3.6.1.4.1.311.10.3.3":
		return x509.ExtKeyUsageMicrosoftServerGatedCrypto, true
	case "2.16.840.1.113730.4.1":
		return x509.ExtKeyUsageNetscapeServerGatedCrypto, true
	}
	return 0, false
}

// extensionName names the extensions a request may carry besides usages,
// basic constraints and SANs.
func extensionName(oid asn1.ObjectIdentifier) string {
	switch oid.String() {
	case "2.5.29.14":
		return "subjectKeyIdentifier"
	case "2.5.29.35":
		return "authorityKeyIdentifier"
	case "2.5.29.30":
		return "nameConstraints"
	case "2.5.29.31":
		return "crlDistributionPoints"
	case "2.5.29.32":
		return "certificatePolicies"
	case "1.3.6.1.5.5.7.1.1":
		return "authorityInfoAccess"
	case "1.3.6.1.5.5.7.1.24":
		return "tlsFeature"
	}
	return oid.String()
}

// humanDuration writes d in its two largest units, "364d 23h", "5h 2m",
// "40s"; d is positive.
func humanDuration(d time.Duration) string {
	const day = 24 * time.Hour
	d = d.Truncate(time.Second)
	days, d := d/day, d%day
	hours, d := d/time.Hour, d%time.Hour
	mins, d := d/time.Minute, d%time.Minute
	secs := d / time.Second
	two := func(a int64, au string, b int64, bu string) string {
		if b == 0 {
			return fmt.Sprintf("%d%s", a, au)
		}
		return fmt.Sprintf("%d%s %d%s", a, au, b, bu)
	}
	switch {
	case days > 0:
		return two(int64(days), "d", int64(hours), "h")
	case hours > 0:
		return two(int64(hours), "h", int64(mins), "m")
	case mins > 0:
		return two(int64(mins), "m", int64(secs), "s")
	}
	return fmt.Sprintf("%ds", secs)
}
