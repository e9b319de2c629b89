package lifecycle

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/util/duration"

	"kubepki.dev/kubepki/internal/catalog"
	kpduration "kubepki.dev/kubepki/internal/duration"
	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/resolve"
	"kubepki.dev/kubepki/internal/store"
)

// DefaultWarnWithin is the warning window Expiration and Scan start with:
// a certificate that expires within 30 days is ExpiringSoon.
const DefaultWarnWithin = 30 * 24 * time.Hour

// KubeletConf is the kubelet's kubeconfig on a kubeadm node
// (/etc/kubernetes/kubelet.conf), reported as its node's (resolve).
const KubeletConf = resolve.KubeletConf

// Placeholders in the EXPIRES and RESIDUAL TIME columns.
const (
	// MissingText marks a certificate or kubeconfig that does not exist.
	MissingText = "<missing>"
	// UnreadableText marks a file that exists but holds no readable
	// certificate (Expiry.Error says why).
	UnreadableText = "<unreadable>"
)

// expiresLayout is kubeadm's date format in check-expiration
// (cmd/kubeadm/app/cmd/certs.go): "Dec 30, 2020 23:36 UTC".
const expiresLayout = "Jan 02, 2006 15:04 MST"

// FormatExpires formats a NotAfter as kubeadm's check-expiration does, in
// UTC: "Dec 30, 2020 23:36 UTC".
func FormatExpires(t time.Time) string { return t.UTC().Format(expiresLayout) }

// ResidualSeconds is the whole number of seconds from now to notAfter,
// truncated toward zero and negative once expired, as kubeadm computes its
// residual time (int64(time.Until(notAfter) / time.Second)).
func ResidualSeconds(notAfter, now time.Time) int64 {
	return int64(notAfter.Sub(now) / time.Second)
}

// FormatResidual formats a residual time in seconds with kubeadm's rules,
// apimachinery's duration.HumanDuration: "<invalid>" once more than a
// second past expiry, then "45s", "4m30s", "59m", "7h59m", "23h", "6d23h",
// "364d", "2y", "7y364d", "9y".
func FormatResidual(seconds int64) string {
	return duration.HumanDuration(time.Duration(seconds) * time.Second)
}

// Severity is how bad a report is, worst row first.
type Severity int

// Severities, from best to worst.
const (
	// SeverityOK: everything is present, readable and valid for longer
	// than the warning window.
	SeverityOK Severity = iota
	// SeverityWarning: something expires within the warning window, is
	// missing, or could not be read.
	SeverityWarning
	// SeverityExpired: something has expired.
	SeverityExpired
)

// String names the severity.
func (s Severity) String() string {
	switch s {
	case SeverityOK:
		return "ok"
	case SeverityWarning:
		return "warning"
	case SeverityExpired:
		return "expired"
	}
	return "Severity(" + strconv.Itoa(int(s)) + ")"
}

// Summary counts the rows of a report by what needs attention.
type Summary struct {
	Total        int `json:"total"`
	Expired      int `json:"expired"`
	ExpiringSoon int `json:"expiringSoon"`
	Missing      int `json:"missing"`
	// Unreadable counts files that exist but could not be read or parsed
	// (for Scan: problems).
	Unreadable int `json:"unreadable"`
}

// Severity is the worst of the counted rows.
func (s Summary) Severity() Severity {
	switch {
	case s.Expired > 0:
		return SeverityExpired
	case s.ExpiringSoon > 0 || s.Missing > 0 || s.Unreadable > 0:
		return SeverityWarning
	}
	return SeverityOK
}

// String is a one-line account of what needs attention ("1 expired,
// 2 expiring soon"), or "all N valid".
func (s Summary) String() string {
	var parts []string
	add := func(n int, what string) {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, what))
		}
	}
	add(s.Expired, "expired")
	add(s.ExpiringSoon, "expiring soon")
	add(s.Missing, "missing")
	add(s.Unreadable, "unreadable")
	if len(parts) == 0 {
		return fmt.Sprintf("all %d valid", s.Total)
	}
	return strings.Join(parts, ", ")
}

// Expiry is one row of an expiration report: a certificate file of the
// plan, the client certificate embedded in a kubeconfig, or a CA.
type Expiry struct {
	// Name is the plan's certificate name ("apiserver", "etcd-ca") or, for
	// a kubeconfig, its file name ("admin.conf"), as kubeadm names them.
	Name string `json:"name"`
	// Path is the certificate or kubeconfig file.
	Path string `json:"path"`
	// Kubeconfig is set when the certificate is the client certificate
	// embedded in (or referenced by) the kubeconfig at Path.
	Kubeconfig bool `json:"kubeconfig,omitempty"`
	// NotAfter is the end of the validity period (zero when missing or
	// unreadable).
	NotAfter time.Time `json:"notAfter,omitzero"`
	// ResidualSeconds is the time left, negative once expired.
	ResidualSeconds int64 `json:"residualSeconds"`
	// Residual is ResidualSeconds as kubeadm prints it ("364d",
	// "<invalid>"); empty when missing or unreadable.
	Residual string `json:"residual"`
	// CA is the name of the signing CA; empty for CAs.
	CA string `json:"ca,omitempty"`
	// ExternallyManaged: the signing CA's certificate is present without
	// its key (external-CA mode), so kubepki cannot renew this certificate;
	// for a CA (each CA of a trust bundle), its own key is not here.
	ExternallyManaged bool `json:"externallyManaged"`
	Missing           bool `json:"missing"`
	// Expired: now is past NotAfter.
	Expired bool `json:"expired"`
	// ExpiringSoon: not expired, but NotAfter is within the warning window.
	ExpiringSoon bool `json:"expiringSoon"`
	// Error says why an existing file could not be read.
	Error string `json:"error,omitempty"`
	// Subject is the CN of a CA of a trust bundle (a CA file with several).
	Subject string `json:"subject,omitempty"`
}

// expiresText is the EXPIRES cell.
func (e Expiry) expiresText() string {
	switch {
	case e.Missing:
		return MissingText
	case e.Error != "":
		return UnreadableText
	}
	return FormatExpires(e.NotAfter)
}

// residualText is the RESIDUAL TIME cell.
func (e Expiry) residualText() string {
	switch {
	case e.Missing:
		return MissingText
	case e.Error != "":
		return UnreadableText
	}
	return e.Residual
}

// Report is the expiration report of a PKI directory: kubeadm's
// `certs check-expiration`, both tables.
type Report struct {
	// Now is the clock the report was made with.
	Now time.Time `json:"now"`
	// WarnWithinSeconds is the warning window ExpiringSoon was computed for.
	WarnWithinSeconds int64 `json:"warnWithinSeconds"`
	// Certificates are the leaf certificates, including the client
	// certificates of the kubeconfigs, sorted by name.
	Certificates []Expiry `json:"certificates"`
	// CertificateAuthorities are the CAs, sorted by name.
	CertificateAuthorities []Expiry `json:"certificateAuthorities"`
	// Summary counts both lists.
	Summary Summary `json:"summary"`
}

// Expiration reads the certificates of the plan from the store and reports
// when each expires, with kubeadm's names, order and rules: every leaf
// certificate with a file, every kubeconfig's client certificate (named by
// its file, admin.conf, and including the kubelet's, which kubeadm leaves
// out), a plain kubelet.conf if one exists in the kubeconfig directory, and
// every CA. Missing and unreadable files are rows too. ExpiringSoon is
// computed for DefaultWarnWithin; see Report.Within.
//
// Expiration only reads; it never fails as a whole: a problem with a file
// is reported on that file's row.
func Expiration(plan *catalog.Plan, st store.Store, now time.Time) Report {
	r := Report{Now: now.UTC()}
	// Expiration only reads, whatever a key's mode (verify reports that).
	st.Keys = store.KeyPolicy{Insecure: true}
	m := resolve.Resolve(plan, st)
	for _, c := range plan.CAs() {
		r.CertificateAuthorities = append(r.CertificateAuthorities, caExpiries(m.CAs[c.Name])...)
	}
	for _, c := range m.Leaves() {
		if c.Kubeconfig != nil {
			continue // reported with its kubeconfig
		}
		e := certExpiry(c.Spec.Name, c.Location.Path())
		e.CA, e.ExternallyManaged = c.Spec.CA, c.CA.External()
		r.Certificates = append(r.Certificates, e)
	}
	kubeletCA := "ca"
	for _, k := range m.Kubeconfigs {
		c, _ := m.Cert(k.Spec.Cert)
		if k.Spec.Node != "" && c.Spec.CA != "" {
			kubeletCA = c.Spec.CA
		}
		if k.Elsewhere {
			continue // another node's, on that node
		}
		e := kubeconfigExpiry(k)
		e.CA, e.ExternallyManaged = c.Spec.CA, c.CA.External()
		r.Certificates = append(r.Certificates, e)
	}
	if k := m.KubeletConf; k != nil {
		e := kubeconfigExpiry(k)
		e.CA, e.ExternallyManaged = kubeletCA, m.CAs[kubeletCA] != nil && m.CAs[kubeletCA].External()
		r.Certificates = append(r.Certificates, e)
	}
	byName := func(a, b Expiry) int { return strings.Compare(a.Name, b.Name) }
	slices.SortStableFunc(r.Certificates, byName)
	slices.SortStableFunc(r.CertificateAuthorities, byName)
	return r.Within(DefaultWarnWithin)
}

// caExpiries are the rows of a CA: one per certificate of its file, which
// is a trust bundle during a rotation ("ca", then "ca#2", … each with its
// subject).
func caExpiries(ca *resolve.CA) []Expiry {
	if len(ca.Certs) == 0 {
		e := certExpiry(ca.Spec.Name, ca.Path)
		return []Expiry{e}
	}
	var out []Expiry
	for i, c := range ca.Certs {
		// A CA of a bundle whose key is not here is managed elsewhere,
		// whether or not another CA of the bundle has its key.
		e := Expiry{Name: ca.Spec.Name, Path: ca.Path, NotAfter: c.NotAfter.UTC(), ExternallyManaged: ca.External() || !ca.KeyHere(c)}
		if len(ca.Certs) > 1 {
			e.Subject = c.Subject.CommonName
			if i > 0 {
				e.Name = fmt.Sprintf("%s#%d", ca.Spec.Name, i+1)
			}
		}
		out = append(out, e)
	}
	return out
}

// Within returns a copy of the report with Expired, ExpiringSoon, the
// residual times and the summary computed for the warning window d (0 turns
// the warning off).
func (r Report) Within(d time.Duration) Report {
	out := r
	out.WarnWithinSeconds = int64(d / time.Second)
	out.Certificates = slices.Clone(r.Certificates)
	out.CertificateAuthorities = slices.Clone(r.CertificateAuthorities)
	out.Summary = Summary{}
	for _, list := range [][]Expiry{out.Certificates, out.CertificateAuthorities} {
		for i := range list {
			e := &list[i]
			e.Expired, e.ExpiringSoon = false, false
			e.ResidualSeconds, e.Residual = 0, ""
			out.Summary.Total++
			switch {
			case e.Missing:
				out.Summary.Missing++
				continue
			case e.Error != "":
				out.Summary.Unreadable++
				continue
			}
			e.ResidualSeconds, e.Residual, e.Expired, e.ExpiringSoon = out.Summary.count(e.NotAfter, out.Now, d)
		}
	}
	return out
}

// count classifies a certificate valid until notAfter for the window d,
// adds it to the summary, and returns its residual time in seconds and as
// text with its classification.
func (s *Summary) count(notAfter, now time.Time, d time.Duration) (secs int64, text string, expired, soon bool) {
	secs = ResidualSeconds(notAfter, now)
	expired, soon = classify(notAfter, now, d)
	if expired {
		s.Expired++
	}
	if soon {
		s.ExpiringSoon++
	}
	return secs, FormatResidual(secs), expired, soon
}

// classify says whether a certificate valid until notAfter has expired at
// now, or expires within d.
func classify(notAfter, now time.Time, d time.Duration) (expired, soon bool) {
	if now.After(notAfter) {
		return true, false
	}
	return false, d > 0 && notAfter.Sub(now) <= d
}

// Severity is the worst row of the report.
func (r Report) Severity() Severity { return r.Summary.Severity() }

// readReported reads a file check-expiration reports on, which it
// changes nothing of: through symbolic links (kubelet-client-current.pem
// is one), but only a regular file, never blocking on a FIFO.
func readReported(path string) ([]byte, error) {
	return store.ReadFile(path, store.KeyPolicy{Insecure: true})
}

// certExpiry reads the first certificate of a PEM file.
func certExpiry(name, path string) Expiry {
	e := Expiry{Name: name, Path: path}
	data, err := readReported(path)
	if errors.Is(err, fs.ErrNotExist) {
		e.Missing = true
		return e
	}
	if err != nil {
		e.Error = err.Error()
		return e
	}
	cert, err := pki.ParseCert(data)
	if err != nil {
		e.Error = fmt.Sprintf("read %s: %v", path, err)
		return e
	}
	e.NotAfter = cert.NotAfter.UTC()
	return e
}

// kubeconfigExpiry reads the client certificate of a kubeconfig where it
// lives: client-certificate-data, or the client-certificate file it names
// (a kubeadm node's kubelet.conf points at kubelet-client-current.pem once
// the kubelet rotates its certificate). The row is named by the file.
func kubeconfigExpiry(k *resolve.Kubeconfig) Expiry {
	e := Expiry{Name: k.Spec.File, Path: k.Path, Kubeconfig: true}
	if k.Installed {
		e.Name = filepath.Base(k.Path)
	}
	if k.Missing() {
		e.Missing = true
		return e
	}
	if k.Err != nil {
		e.Error = k.Err.Error()
		return e
	}
	cert, _, err := k.Location.Read()
	if err != nil {
		e.Error = err.Error()
		return e
	}
	e.NotAfter = cert.NotAfter.UTC()
	return e
}

// newTable returns the tabwriter kubeadm's check-expiration printer uses:
// minimum cell width 10, tab width 4, padding 3, spaces.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 10, 4, 3, ' ', 0)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// WriteTable prints the report as kubeadm's `certs check-expiration` does:
// the certificates table, a blank line, the CA table, through one
// tabwriter with kubeadm's settings and cell formats (including the
// left-justified, 8-wide EXTERNALLY MANAGED cell), so that rows of the same
// certificate are byte for byte kubeadm's. Missing files say MissingText in
// EXPIRES and RESIDUAL TIME (kubeadm prints "!MISSING! name" instead).
func WriteTable(w io.Writer, r Report) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "CERTIFICATE\tEXPIRES\tRESIDUAL TIME\tCERTIFICATE AUTHORITY\tEXTERNALLY MANAGED")
	for _, e := range r.Certificates {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%-8v\n", e.Name, e.expiresText(), e.residualText(), e.CA, yesNo(e.ExternallyManaged))
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "CERTIFICATE AUTHORITY\tEXPIRES\tRESIDUAL TIME\tEXTERNALLY MANAGED")
	for _, e := range r.CertificateAuthorities {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%-8v\n", e.Name, e.expiresText(), e.residualText(), yesNo(e.ExternallyManaged))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write expiration table: %w", err)
	}
	return nil
}

// ParseWarnWithin parses a warning window with the parser every kubepki
// duration goes through (internal/duration): a Go duration ("720h",
// "90m"), a number of days ("30d"), or days followed by a Go duration
// ("1d12h"); spaces around it are ignored. "0" turns the warning off;
// negative windows are an error.
func ParseWarnWithin(s string) (time.Duration, error) {
	d, err := kpduration.Parse(strings.TrimSpace(s))
	if err != nil {
		return 0, err
	}
	if d < 0 {
		return 0, fmt.Errorf("invalid duration %q: must not be negative", s)
	}
	return d, nil
}
