// Package report builds what a person looks at to judge a cluster's PKI:
// one model of every certificate, the trust graph from the CAs through
// certificates and kubeconfigs to the components and nodes that use them,
// the expiry timeline and every finding with what to run to fix it; and
// renders it as one self-contained HTML page (no script, nothing fetched
// when it is viewed).
//
// The report holds certificates, names and paths, never a private key:
// keys are read only to be compared with their certificates.
package report

import (
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"time"

	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/reconcile"
	"kubepki.dev/kubepki/internal/resolve"
	"kubepki.dev/kubepki/internal/store"
)

// State is how an item of the report fares, from best to worst.
type State string

// States. A component or node takes the worst state of what it uses.
const (
	OK State = "ok"
	// Expiring: valid, but NotAfter is within the warning window.
	Expiring State = "expiring"
	// Flagged: verify reports a problem other than expiry (missing, key
	// mismatch, drift, unsafe mode, …).
	Flagged State = "finding"
	// Expired: past NotAfter.
	Expired State = "expired"
)

func (s State) rank() int {
	switch s {
	case Expiring:
		return 1
	case Flagged:
		return 2
	case Expired:
		return 3
	}
	return 0
}

func worse(a, b State) State {
	if b.rank() > a.rank() {
		return b
	}
	return a
}

// Report is the model the HTML page shows and -o json|yaml prints.
type Report struct {
	Cluster   string    `json:"cluster"`
	Profile   string    `json:"profile"`
	Dir       string    `json:"dir"`
	Generated time.Time `json:"generated"`
	// WarnWithin is the window in which a certificate counts as expiring.
	WarnWithin   time.Duration `json:"warnWithin"`
	Counts       Counts        `json:"counts"`
	Certificates []Certificate `json:"certificates"`
	Graph        Graph         `json:"graph"`
	// Findings are every finding, then the warnings, each with its fix.
	Findings []Finding `json:"findings"`
}

// Counts summarise the report: certificates by state, and findings.
type Counts struct {
	OK       int `json:"ok"`
	Expiring int `json:"expiring"`
	Expired  int `json:"expired"`
	Findings int `json:"findings"`
	Warnings int `json:"warnings"`
}

// Certificate is one certificate of the plan as it is on disk.
type Certificate struct {
	Name string `json:"name"`
	// CA is set for a CA certificate.
	CA bool `json:"ca,omitempty"`
	// Issuer is the name of the plan's CA that signs it ("" for a CA).
	Issuer string `json:"issuer,omitempty"`
	// IssuerCN is the issuer as the certificate names it.
	IssuerCN string `json:"issuerCN,omitempty"`
	// File is where it lives: its .crt, or the kubeconfig that embeds it.
	File      string    `json:"file"`
	CN        string    `json:"cn,omitempty"`
	O         []string  `json:"o,omitempty"`
	SANs      []string  `json:"sans,omitempty"`
	NotBefore time.Time `json:"notBefore,omitzero"`
	NotAfter  time.Time `json:"notAfter,omitzero"`
	// Node is set for a certificate of one node.
	Node  string `json:"node,omitempty"`
	State State  `json:"state"`
	// Status is verify's state of the item (valid, expired, invalid, …).
	Status reconcile.State `json:"status"`
	// Problems are verify's findings for it, one line each.
	Problems []string `json:"problems,omitempty"`
}

// Finding is one problem, from verify or from any other check (a live
// handshake, say): who reports it, what it concerns, what is wrong, and
// the command or step that fixes it.
type Finding struct {
	Source  string `json:"source"`
	Subject string `json:"subject"`
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
	// Warning: worth knowing, not a finding (an expiring certificate,
	// kubeadm's 0755 key directory); it does not change the exit code.
	Warning bool `json:"warning,omitempty"`
}

// Input is what a report is built from.
type Input struct {
	// Cluster is the spec the plan was made from (the wiring of the
	// components needs it).
	Cluster *cluster.Cluster
	// Model is the plan resolved against the PKI directory.
	Model *resolve.Model
	// Statuses are verify's, reconcile.Examine of the same plan and store.
	Statuses []reconcile.Status
	// Permissions are reconcile.Permissions of the same plan and store.
	Permissions []reconcile.Permission
	// Findings come from elsewhere: an interrupted write's leftovers, a
	// live check.
	Findings []Finding
	Now      time.Time
	// WarnWithin: a valid certificate expiring within it is Expiring.
	WarnWithin time.Duration
}

// Build makes the report of one PKI directory.
func Build(in Input) *Report {
	m := in.Model
	r := &Report{
		Cluster:    in.Cluster.Name,
		Profile:    string(m.Plan.Profile),
		Dir:        m.Store.Dir,
		Generated:  in.Now.UTC(),
		WarnWithin: in.WarnWithin,
	}
	st := newStatusIndex(in.Statuses)
	perm := map[string][]reconcile.Permission{}
	for _, p := range in.Permissions {
		perm[p.Path] = append(perm[p.Path], p)
	}
	for _, c := range m.Certs {
		if c.Elsewhere() {
			continue // another node's kubelet kubeconfig: not here to report
		}
		r.Certificates = append(r.Certificates, certificate(m.Store, c, st, perm, in.Now, in.WarnWithin))
	}
	r.Graph = buildGraph(in, r, st, perm)
	r.Findings = findings(in, r)
	r.Findings = append(r.Findings, in.Findings...)
	// Findings first, warnings after; each group keeps its order.
	slices.SortStableFunc(r.Findings, func(a, b Finding) int {
		switch {
		case a.Warning == b.Warning:
			return 0
		case b.Warning:
			return -1
		}
		return 1
	})
	for _, c := range r.Certificates {
		switch c.State {
		case OK:
			r.Counts.OK++
		case Expiring:
			r.Counts.Expiring++
		case Expired:
			r.Counts.Expired++
		}
	}
	for _, f := range r.Findings {
		if f.Warning {
			r.Counts.Warnings++
		} else {
			r.Counts.Findings++
		}
	}
	return r
}

// statusIndex finds verify's status of a plan item.
type statusIndex map[string]reconcile.Status

func newStatusIndex(statuses []reconcile.Status) statusIndex {
	idx := statusIndex{}
	for _, s := range statuses {
		idx[string(s.Kind)+"/"+s.Name] = s
	}
	return idx
}

// cert is the status of a certificate: its own, or its kubeconfig's for
// one that lives only there.
func (idx statusIndex) cert(c *resolve.Cert) (reconcile.Status, bool) {
	if c.Kubeconfig != nil {
		s, ok := idx[string(reconcile.KindKubeconfig)+"/"+c.Kubeconfig.Spec.Name]
		return s, ok
	}
	kind := reconcile.KindCert
	if c.Spec.Profile.IsCA {
		kind = reconcile.KindCA
	}
	s, ok := idx[string(kind)+"/"+c.Spec.Name]
	return s, ok
}

func (idx statusIndex) kubeconfig(name string) (reconcile.Status, bool) {
	s, ok := idx[string(reconcile.KindKubeconfig)+"/"+name]
	return s, ok
}

func (idx statusIndex) keyPair(name string) (reconcile.Status, bool) {
	s, ok := idx[string(reconcile.KindKeyPair)+"/"+name]
	return s, ok
}

// stateOf turns verify's state into the report's, with the expiry window.
func stateOf(s reconcile.State, notAfter, now time.Time, warn time.Duration) State {
	switch s {
	case reconcile.Valid, reconcile.External, reconcile.Elsewhere, "":
		if !notAfter.IsZero() && notAfter.Sub(now) < warn {
			return Expiring
		}
		return OK
	case reconcile.Expired:
		return Expired
	}
	return Flagged
}

func certificate(st store.Store, c *resolve.Cert, idx statusIndex, perm map[string][]reconcile.Permission, now time.Time, warn time.Duration) Certificate {
	out := Certificate{Name: c.Spec.Name, CA: c.Spec.Profile.IsCA, Issuer: c.Spec.CA, File: c.Location.Path(), Node: c.Spec.Node}
	if x := readCert(st, c); x != nil {
		out.CN, out.O = x.Subject.CommonName, x.Subject.Organization
		out.IssuerCN = x.Issuer.CommonName
		out.NotBefore, out.NotAfter = x.NotBefore.UTC(), x.NotAfter.UTC()
		out.SANs = append(out.SANs, x.DNSNames...)
		for _, ip := range x.IPAddresses {
			out.SANs = append(out.SANs, ip.String())
		}
		for _, u := range x.URIs {
			out.SANs = append(out.SANs, u.String())
		}
		out.SANs = append(out.SANs, x.EmailAddresses...)
	}
	s, _ := idx.cert(c)
	out.Status, out.Problems = s.State, s.Findings
	if s.State == reconcile.External {
		out.Problems = nil // a CA whose key is elsewhere by design
	}
	out.State = stateOf(s.State, out.NotAfter, now, warn)
	for _, p := range append(perm[out.File], perm[keyFile(c)]...) {
		if !p.Warning {
			out.State = worse(out.State, Flagged)
			out.Problems = append(out.Problems, p.Path+": "+p.Problem)
		}
	}
	return out
}

// readCert reads the certificate alone: a CA's signing certificate (the
// first of a bundle otherwise), a certificate file without its key, or
// the client certificate of a kubeconfig. nil when it cannot be read.
func readCert(st store.Store, c *resolve.Cert) *x509.Certificate {
	if c.Spec.Profile.IsCA && c.CA != nil {
		return c.CA.Primary()
	}
	if c.Location.Kind() == resolve.Files {
		if x, err := st.ReadCert(c.Spec.Path); err == nil {
			return x
		}
		return nil
	}
	x, _, err := c.Location.Read()
	if err != nil {
		return nil
	}
	return x
}

// keyFile is the key of a certificate with its own files, "" otherwise.
func keyFile(c *resolve.Cert) string {
	if c.Location.Kind() != resolve.Files {
		return ""
	}
	return strings.TrimSuffix(c.Location.Path(), ".crt") + ".key"
}

// ExpiresIn says how long until t from now, in days (or hours under a
// day): "in 364 days", "expired 3 days ago".
func ExpiresIn(t, now time.Time) string {
	if t.IsZero() {
		return "—"
	}
	d := t.Sub(now)
	past := d < 0
	if past {
		d = -d
	}
	var s string
	switch {
	case d < time.Hour:
		s = fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 48*time.Hour:
		s = fmt.Sprintf("%d h", int(d.Hours()))
	default:
		s = fmt.Sprintf("%d days", int(d.Hours()/24))
	}
	if past {
		return "expired " + s + " ago"
	}
	return "in " + s
}
