package live

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"kubepki.dev/kubepki/internal/resolve"
)

// Finding is one thing a person must act on (or, as a warning or an
// information, know).
type Finding struct {
	// Subject is what it concerns: "kube-scheduler@server", or a
	// kubeconfig's file name.
	Subject string `json:"subject"`
	Message string `json:"message"`
	// Fix is the command(s) to run, "" when there is nothing to run.
	Fix string `json:"fix,omitempty"`
}

func (f Finding) String() string {
	s := f.Subject + ": " + f.Message
	if f.Fix != "" {
		s += " (fix: " + f.Fix + ")"
	}
	return s
}

// State is what a probe of an endpoint found.
type State string

// Probe states.
const (
	// Matches: the served certificate is the file's.
	Matches State = "match"
	// Signed: no file to compare with; a CA of the bundle signs what is
	// served.
	Signed State = "signed"
	// SelfSigned: no file is wired; the component serves a certificate it
	// made itself (kube-scheduler, kube-controller-manager).
	SelfSigned State = "self-signed"
	// Differs: the served certificate is not the file's.
	Differs State = "differs"
	// Untrusted: no CA of the bundle signs what is served.
	Untrusted State = "untrusted"
	// Expired: what is served is out of its validity.
	Expired State = "expired"
	// Unreachable: no TLS handshake (nothing listens, a firewall, a
	// node that is down).
	Unreachable State = "unreachable"
	// NoFile: the file the component should serve cannot be read here.
	NoFile State = "no-file"
)

// CertInfo is what a person compares of two certificates.
type CertInfo struct {
	Subject  string    `json:"subject"`
	Issuer   string    `json:"issuer"`
	Serial   string    `json:"serial"`
	NotAfter time.Time `json:"notAfter"`
	SANs     []string  `json:"sans,omitempty"`
	SHA256   string    `json:"sha256"`
}

// Info summarises a certificate.
func Info(c *x509.Certificate) *CertInfo {
	sum := sha256.Sum256(c.Raw)
	return &CertInfo{
		Subject: c.Subject.String(), Issuer: c.Issuer.String(), Serial: c.SerialNumber.Text(16),
		NotAfter: c.NotAfter.UTC(), SANs: sans(c), SHA256: hex.EncodeToString(sum[:]),
	}
}

func sans(c *x509.Certificate) []string {
	out := slices.Clone(c.DNSNames)
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	slices.Sort(out)
	return out
}

// Probe is one endpoint's handshake and what it showed.
type Probe struct {
	Endpoint Endpoint  `json:"endpoint"`
	State    State     `json:"state"`
	Served   *CertInfo `json:"served,omitempty"`
	// File is the certificate the component should serve, as this
	// directory holds it.
	File *CertInfo `json:"file,omitempty"`
	// FilePath is where File was read.
	FilePath string `json:"filePath,omitempty"`
	// SignedBy names the CA of the bundle that signed what is served.
	SignedBy string `json:"signedBy,omitempty"`
	// ForeignIssuer: what is served names an issuer no CA of the file is
	// (not a CA of this PKI with another key): likely another server.
	ForeignIssuer bool   `json:"foreignIssuer,omitempty"`
	Detail        string `json:"detail,omitempty"`
}

// Restart is what to restart on one node.
type Restart struct {
	Node       string   `json:"node"`
	Components []string `json:"components"`
}

// Result is the live check of a cluster.
type Result struct {
	Probes []Probe `json:"probes"`
	// Kubeconfigs are who each kubeconfig is to the API server.
	Kubeconfigs []Identity `json:"kubeconfigs,omitempty"`
	// Findings are what is wrong; Warnings what could not be checked;
	// Info what is worth knowing and is as it should be.
	Findings []Finding `json:"findings"`
	Warnings []Finding `json:"warnings,omitempty"`
	Info     []Finding `json:"info,omitempty"`
	// Restart lists, per node, the components serving something other
	// than their files.
	Restart []Restart `json:"restart,omitempty"`
}

// Clean reports whether there is no finding.
func (r *Result) Clean() bool { return len(r.Findings) == 0 }

// Reached counts the endpoints that answered a handshake and the
// kubeconfigs the API server answered: a cluster out of reach is 0 and 0,
// not "all checked".
func (r *Result) Reached() (answered, asked int) {
	for _, p := range r.Probes {
		if p.State != Unreachable {
			answered++
		}
	}
	for _, id := range r.Kubeconfigs {
		if id.Error == "" {
			asked++
		}
	}
	return answered, asked
}

// Files is what the checks read of a PKI directory.
type Files interface {
	// Leaf returns the certificate of a plan item and the file it was read
	// from.
	Leaf(name string) (*x509.Certificate, string, error)
	// CA returns every certificate of a CA's file (a trust bundle holds
	// several) and the file.
	CA(name string) ([]*x509.Certificate, string, error)
}

// ModelFiles reads through a resolved model: the certificate where it
// lives in this layout, the CA's file with every CA of its bundle.
func ModelFiles(m *resolve.Model) Files { return modelFiles{m} }

type modelFiles struct{ m *resolve.Model }

func (f modelFiles) Leaf(name string) (*x509.Certificate, string, error) {
	c, ok := f.m.Cert(name)
	if !ok {
		return nil, "", fmt.Errorf("no certificate %q in the %s plan", name, f.m.Plan.Profile)
	}
	path := c.Location.Path()
	if c.Location.Kind() == resolve.Files {
		// Only the certificate: its key is none of this check's business.
		cert, err := f.m.Store.ReadCert(c.Spec.Path)
		return cert, path, err
	}
	cert, _, err := c.Location.Read()
	return cert, path, err
}

func (f modelFiles) CA(name string) ([]*x509.Certificate, string, error) {
	ca, ok := f.m.CAs[name]
	if !ok {
		return nil, "", fmt.Errorf("no CA %q in the %s plan", name, f.m.Plan.Profile)
	}
	if len(ca.Certs) == 0 {
		return nil, ca.Path, fmt.Errorf("CA %s: %w", ca.Path, ca.Err)
	}
	return ca.Certs, ca.Path, nil
}

// Options tune Check.
type Options struct {
	// Timeout bounds each probe (dial and handshake); default 3s. Probes
	// run concurrently, so unreachable nodes cost one timeout, not one each.
	Timeout time.Duration
	// Now is the clock for validity (default time.Now).
	Now time.Time
	// Fix is the command that puts a node's files in place: default
	// "kubepki bundle --node NODE --out DIR && kubepki distribute --node
	// NODE"; %[1]s is the node.
	Fix string
}

// DefaultTimeout bounds one probe when Options.Timeout is zero.
const DefaultTimeout = 3 * time.Second

// Check dials every endpoint at once and compares what each serves with
// the directory's files: the same certificate (serial, NotAfter, SANs),
// signed by a CA of the CA file (which may be a trust bundle of several),
// within its validity. A component that serves something other than its
// file is a finding with what to redistribute and restart; an endpoint
// that does not answer is a warning; a self-signed in-memory certificate
// where no file is wired is information.
func Check(ctx context.Context, eps []Endpoint, files Files, opts Options) *Result {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if opts.Fix == "" {
		opts.Fix = "kubepki bundle --node %[1]s --out DIR && kubepki distribute --node %[1]s"
	}
	probes := make([]Probe, len(eps))
	var wg sync.WaitGroup
	for i, e := range eps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, opts.Timeout)
			defer cancel()
			chain, err := ServedChain(pctx, e.Addr, e.ServerName)
			probes[i] = compare(e, chain, err, files, opts.Now)
		}()
	}
	wg.Wait()
	r := &Result{Probes: probes, Findings: []Finding{}}
	restart := map[string][]string{}
	for _, p := range probes {
		r.add(p, opts, restart)
	}
	r.Restart = restarts(restart)
	return r
}

// compare judges one endpoint's served chain (or dial error) against the
// files.
func compare(e Endpoint, chain []*x509.Certificate, dialErr error, files Files, now time.Time) Probe {
	p := Probe{Endpoint: e}
	if dialErr != nil {
		p.State, p.Detail = Unreachable, dialErr.Error()
		return p
	}
	leaf := chain[0]
	p.Served = Info(leaf)
	if e.Cert == "" && e.CA == "" {
		p.State = SelfSigned
		if leaf.CheckSignatureFrom(leaf) != nil {
			p.Detail = "issued by " + leaf.Issuer.String()
		}
		return p
	}
	var file *x509.Certificate
	if e.Cert != "" {
		f, path, err := files.Leaf(e.Cert)
		p.FilePath = path
		if err != nil {
			p.State, p.Detail = NoFile, err.Error()
			return p
		}
		file, p.File = f, Info(f)
	}
	cas, caPath, err := files.CA(e.CA)
	if err != nil {
		p.State, p.Detail = NoFile, err.Error()
		return p
	}
	expired := now.After(leaf.NotAfter) || now.Before(leaf.NotBefore)
	signer := signerOf(leaf, chain[1:], cas)
	switch {
	case signer == nil:
		p.State = Untrusted
		p.ForeignIssuer = !slices.ContainsFunc(cas, func(ca *x509.Certificate) bool { return bytes.Equal(ca.RawSubject, leaf.RawIssuer) })
		p.Detail = fmt.Sprintf("%s, issued by %s, which no CA of %s (%d certificate(s)) signs", p.Served.Subject, leaf.Issuer, caPath, len(cas))
		if file != nil && !leaf.Equal(file) {
			p.Detail += "; the file " + p.FilePath + " has serial " + p.File.Serial
		}
	case file != nil && !leaf.Equal(file):
		p.State, p.Detail = Differs, differences(file, leaf)
		if expired {
			p.Detail += "; what it serves has expired"
		}
	case expired:
		p.State, p.Detail = Expired, fmt.Sprintf("valid %s to %s", leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	default:
		p.State = Signed
		if file != nil {
			p.State = Matches
		}
		if host, _, err := net.SplitHostPort(e.Addr); err == nil && leaf.VerifyHostname(host) != nil {
			p.Detail = fmt.Sprintf("does not name %s, the address dialled", host)
		}
	}
	if signer != nil {
		p.SignedBy = resolve.Describe(signer)
		if len(cas) > 1 {
			p.SignedBy = fmt.Sprintf("CA #%d of %s: %s", slices.IndexFunc(cas, signer.Equal)+1, caPath, p.SignedBy)
		}
	}
	return p
}

// signerOf returns the CA of the file that signed leaf, directly or
// through intermediates the server sent.
func signerOf(leaf *x509.Certificate, intermediates, cas []*x509.Certificate) *x509.Certificate {
	for _, ca := range cas {
		if leaf.CheckSignatureFrom(ca) == nil {
			return ca
		}
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, ca := range cas {
		roots.AddCert(ca)
	}
	for _, c := range intermediates {
		inter.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}, CurrentTime: leaf.NotBefore.Add(time.Second)})
	if err != nil || len(chains) == 0 {
		return nil
	}
	top := chains[0][len(chains[0])-1]
	return top
}

// differences says how the served certificate differs from the file.
func differences(file, served *x509.Certificate) string {
	d := []string{fmt.Sprintf("serves serial %s (expires %s), the file has serial %s (expires %s)",
		served.SerialNumber.Text(16), served.NotAfter.UTC().Format(time.RFC3339), file.SerialNumber.Text(16), file.NotAfter.UTC().Format(time.RFC3339))}
	if s, f := sans(served), sans(file); !slices.Equal(s, f) {
		d = append(d, fmt.Sprintf("served SANs %s, the file's %s", strings.Join(s, ","), strings.Join(f, ",")))
	}
	if served.Subject.String() != file.Subject.String() {
		d = append(d, fmt.Sprintf("served subject %s, the file's %s", served.Subject, file.Subject))
	}
	return strings.Join(d, "; ")
}

// add turns a probe into findings, warnings or information.
func (r *Result) add(p Probe, opts Options, restart map[string][]string) {
	e := p.Endpoint
	subj := e.Subject()
	redistribute := func() string {
		if e.Node == "" {
			return "redistribute the control-plane nodes' bundles and restart " + e.Process() + " on each"
		}
		return fmt.Sprintf(opts.Fix, e.Node) + "; then restart " + e.Process() + " on " + e.Node
	}
	// What is served is the file itself when it passed the Differs test:
	// the file must be renewed before it is redistributed.
	renewFirst := func() string {
		if p.File == nil {
			return redistribute()
		}
		return "kubepki certs renew " + e.Cert + "; " + redistribute()
	}
	needsRestart := func() {
		node := e.Node
		if node == "" {
			node = "(endpoint)"
		}
		if !slices.Contains(restart[node], e.Process()) {
			restart[node] = append(restart[node], e.Process())
		}
	}
	switch p.State {
	case Matches, Signed:
		if p.Detail != "" {
			r.Warnings = append(r.Warnings, Finding{Subject: subj, Message: fmt.Sprintf("at %s: the served certificate %s", e.Addr, p.Detail)})
		}
	case SelfSigned:
		r.Info = append(r.Info, Finding{Subject: subj, Message: fmt.Sprintf("at %s serves a certificate it made itself in memory (%s, serial %s): no file is wired (--tls-cert-file), nothing to compare", e.Addr, p.Served.Subject, p.Served.Serial)})
	case Unreachable:
		target := e.Component
		if e.Node != "" {
			target += "@" + e.Node
		}
		r.Warnings = append(r.Warnings, Finding{Subject: subj, Message: fmt.Sprintf("not checked: %s (listening elsewhere? --endpoint %s=HOST:PORT)", p.Detail, target)})
	case NoFile:
		r.Warnings = append(r.Warnings, Finding{Subject: subj, Message: "not compared: " + p.Detail})
	case Differs:
		needsRestart()
		r.Findings = append(r.Findings, Finding{Subject: subj, Message: fmt.Sprintf("at %s serves another certificate than %s, the old one until it is restarted on its new file: %s", e.Addr, p.FilePath, p.Detail), Fix: redistribute()})
	case Expired:
		needsRestart()
		r.Findings = append(r.Findings, Finding{Subject: subj, Message: fmt.Sprintf("at %s serves an expired certificate (serial %s, %s)", e.Addr, p.Served.Serial, p.Detail), Fix: renewFirst()})
	case Untrusted:
		msg := fmt.Sprintf("at %s serves serial %s (%s): is it this cluster's %s?", e.Addr, p.Served.Serial, p.Detail, e.Component)
		if p.ForeignIssuer {
			// No CA of this PKI has that name: most likely the address
			// reaches another server (a proxy, another cluster), which no
			// renewal here would change.
			target := e.Component
			if e.Node != "" {
				target += "@" + e.Node
			}
			r.Findings = append(r.Findings, Finding{Subject: subj, Message: msg, Fix: fmt.Sprintf("check that %s is this cluster's %s (else: --endpoint %s=HOST:PORT); if it is, it runs on a certificate of another CA: %s", e.Addr, e.Component, target, renewFirst())})
			break
		}
		needsRestart()
		r.Findings = append(r.Findings, Finding{Subject: subj, Message: msg, Fix: renewFirst()})
	}
}

func restarts(m map[string][]string) []Restart {
	var out []Restart
	for n, comps := range m {
		slices.Sort(comps)
		out = append(out, Restart{Node: n, Components: comps})
	}
	slices.SortFunc(out, func(a, b Restart) int { return strings.Compare(a.Node, b.Node) })
	return out
}
