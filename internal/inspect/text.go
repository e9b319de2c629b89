package inspect

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// WriteText writes objects for people, in the manner of kubectl describe:
// one block of aligned "Key:  value" lines per object, a blank line
// between blocks. Values taken from the input that hold control or other
// non-printable characters are written quoted and escaped, so a hostile
// certificate cannot drive the terminal.
func WriteText(w io.Writer, objs []Object) error {
	counts := fileCounts(objs)
	for i := range objs {
		if i > 0 {
			if _, err := io.WriteString(w, "\n"); err != nil {
				return fmt.Errorf("write: %w", err)
			}
		}
		var b strings.Builder
		writeObject(&b, &objs[i], counts)
		if _, err := io.WriteString(w, b.String()); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
	return nil
}

// keyWidth is the width of the key column: every value starts in the same
// column, in every block, so that output is stable and easy to scan.
const keyWidth = len("SHA-256 Fingerprint:  ")

// lines writes "Key:  value" rows.
type lines struct{ w io.Writer }

// field writes key with the first value, and each further value on a
// continuation row; empty values are skipped, and so is a key with none.
func (l lines) field(key string, values ...string) {
	first := true
	for _, v := range values {
		if v == "" {
			continue
		}
		label := ""
		if first {
			label = key + ":"
			first = false
		}
		fmt.Fprintf(l.w, "%-*s%s\n", max(keyWidth, len(label)+2), label, safe(v))
	}
}

// header writes a key that introduces indented rows.
func (l lines) header(key string) { fmt.Fprintf(l.w, "%s:\n", key) }

func writeObject(w io.Writer, o *Object, counts map[string]int) {
	l := lines{w}
	l.field("Source", source(o, counts))
	l.field("Kind", kindText(o))
	l.field("Error", o.Error)
	switch {
	case o.Certificate != nil:
		writeCertificate(l, o.Certificate)
	case o.CertificateRequest != nil:
		writeRequest(l, o.CertificateRequest)
	case o.PrivateKey != nil:
		k := o.PrivateKey
		l.field("Format", k.Format)
		if k.Encrypted {
			l.field("Encrypted", "yes: encrypted with a passphrase, so nothing more can be told")
		}
		l.field("Algorithm", k.KeyAlgorithm)
		l.field("Public Key SHA-256", k.PublicKeySHA256)
	case o.PublicKey != nil:
		k := o.PublicKey
		l.field("Format", k.Format)
		l.field("Algorithm", k.KeyAlgorithm)
		l.field("Public Key SHA-256", k.PublicKeySHA256)
	}
	l.field("Matches", o.Matches...)
	l.field("Warnings", o.Warnings...)
}

func kindText(o *Object) string {
	switch o.Kind {
	case KindCertificateRequest:
		return "Certificate Request"
	case KindPrivateKey:
		return "Private Key"
	case KindPublicKey:
		return "Public Key"
	case KindOther:
		return fmt.Sprintf("Other (PEM %q, not inspected)", o.PEMType)
	}
	return string(o.Kind)
}

func writeCertificate(l lines, c *Certificate) {
	l.field("Subject", orNone(c.Subject))
	l.field("Issuer", orNone(c.Issuer))
	l.field("Self-Signed", yesNo(c.SelfSigned))
	l.field("Signed By", c.SignedBy...)
	l.field("Serial", c.Serial)
	l.field("Not Before", c.NotBefore.Format(time.RFC3339))
	l.field("Not After", fmt.Sprintf("%s (%s)", c.NotAfter.Format(time.RFC3339), c.Expiry))
	l.field("SANs", c.SANs...)
	l.field("Key Usage", strings.Join(c.KeyUsage, ", "))
	l.field("Ext Key Usage", strings.Join(c.ExtKeyUsage, ", "))
	ca := "no"
	switch {
	case c.IsCA && c.MaxPathLen != nil:
		ca = fmt.Sprintf("yes, path length %d", *c.MaxPathLen)
	case c.IsCA:
		ca = "yes, path length unlimited"
	case !c.BasicConstraints:
		ca = "no (no basic constraints extension)"
	}
	l.field("CA", ca)
	l.field("Public Key", c.KeyAlgorithm)
	l.field("Public Key SHA-256", c.PublicKeySHA256)
	l.field("Signature Algorithm", c.SignatureAlgorithm)
	l.field("Subject Key ID", c.SubjectKeyID)
	l.field("Authority Key ID", c.AuthorityKeyID)
	l.field("SHA-256 Fingerprint", c.SHA256Fingerprint)
	l.field("kubeadm CA Hash", c.KubeadmCACertHash)
	l.field("Role", c.Role.Describe())
	writeIdentity(l, c.Identity)
}

func writeRequest(l lines, r *CertificateRequest) {
	l.field("Subject", orNone(r.Subject))
	l.field("SANs", r.SANs...)
	l.field("Key Usage", strings.Join(r.KeyUsage, ", "))
	l.field("Ext Key Usage", strings.Join(r.ExtKeyUsage, ", "))
	if r.IsCA {
		l.field("CA", "yes (requested)")
	}
	l.field("Other Extensions", strings.Join(r.OtherExtensions, ", "))
	l.field("Public Key", r.KeyAlgorithm)
	l.field("Public Key SHA-256", r.PublicKeySHA256)
	l.field("Signature Algorithm", r.SignatureAlgorithm)
	sig := "valid (the sender holds the private key)"
	if !r.SignatureValid {
		sig = "INVALID"
	}
	l.field("Signature", sig)
	l.field("Role", r.Role.Describe())
	writeIdentity(l, r.Identity)
}

func writeIdentity(l lines, id *Identity) {
	if id == nil {
		return
	}
	l.header("Identity")
	l.field("  User", orNone(id.User))
	groups := make([]string, len(id.Groups))
	for i, g := range id.Groups {
		groups[i] = listItem(g)
	}
	l.field("  Groups", orNone(strings.Join(groups, ", ")))
	l.field("  UID", id.UID)
	l.field("  Credential ID", id.CredentialID)
	var means, warnings []string
	for _, n := range id.Notes {
		if n.Severity == Warning {
			warnings = append(warnings, n.String())
		} else {
			means = append(means, n.String())
		}
	}
	l.field("  Means", means...)
	l.field("  Warnings", warnings...)
}

// listItem quotes s when it would be ambiguous in a comma-separated list.
func listItem(s string) string {
	if s == "" || strings.Contains(s, ",") || strings.TrimSpace(s) != s || strings.HasPrefix(s, `"`) {
		return strconv.Quote(s)
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// safe returns s as is when every character in it prints, else quoted with
// escapes, so that input cannot inject terminal controls or break the
// layout (tabs, newlines).
func safe(s string) string {
	if !utf8.ValidString(s) {
		return strconv.QuoteToGraphic(s)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return strconv.QuoteToGraphic(s)
		}
	}
	return s
}
