// Package exporter is a Prometheus collector for a cluster's certificates:
// those of a PKI directory (read through the plan, as every kubepki
// command reads it), of extra files and kubeconfigs, and those the
// cluster's components actually serve.
//
// It exports the metrics users of enix/x509-certificate-exporter already
// alert on, with the same names and labels, and what no file-reading
// exporter can tell:
//
//	x509_cert_not_after             NotAfter, Unix seconds
//	x509_cert_not_before            NotBefore, Unix seconds
//	x509_cert_expired               1 once NotAfter is past
//	x509_cert_expires_in_seconds    NotAfter minus the scrape's clock
//	x509_cert_error                 1 for a file (or kubeconfig entry) that cannot be read, 0 otherwise
//	x509_read_errors                how many of those this scrape
//	kubepki_cert_key_mismatch       1 when the private key beside a certificate is not its key
//	kubepki_cert_chain_broken       1 when no CA the exporter knows signed the certificate
//	kubepki_served_cert_mismatch    1 when a component serves another certificate than its file
//	kubepki_served_cert_not_after   NotAfter of the certificate a component serves
//	kubepki_served_check_error      1 when the last handshake with a component failed
//	kubepki_served_check_timestamp_seconds  when it was last done
//	kubepki_exporter_file_reads_total  files read and parsed since start (a change, or first sight)
//
// Per-certificate series carry filename, filepath, embedded_kind ("user"
// or "cluster" for a kubeconfig's certificates), embedded_key (the
// kubeconfig's user or cluster name), serial_number (decimal),
// subject_CN, subject_O, subject_OU, issuer_CN and issuer_O; a bundle has
// one series per certificate.
//
// Scrapes are cheap: each file is stat'ed and read again only when its
// size, mtime or inode changed; what a scrape does not see any more (a
// removed file) is forgotten at its end. Served certificates are checked
// by Run every Config.ServedInterval, never by a scrape.
package exporter

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"kubepki.dev/kubepki/internal/live"
)

// Target is a component endpoint whose served certificate is compared with
// a file.
type Target struct {
	// Component names it in the metrics (kube-apiserver, etcd, …).
	Component string
	// Address is HOST:PORT.
	Address string
	// ServerName is sent as SNI ("" for none).
	ServerName string
	// CertFile is the certificate the component should serve; "" exports
	// the served certificate without a comparison.
	CertFile string
}

// Config is what an Exporter watches.
type Config struct {
	// Directory is a PKI directory with its plan; nil for none.
	Directory *Directory
	// WatchFiles are globs (filepath.Match syntax) of PEM files or
	// kubeconfigs, expanded at every scrape.
	WatchFiles []string
	// WatchKubeconfigs are kubeconfig files; one that is missing is a
	// read error.
	WatchKubeconfigs []string
	// Served are the endpoints Run checks.
	Served []Target
	// ServedTimeout bounds one handshake (default 10s).
	ServedTimeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Log receives a line per file that becomes unreadable and per failed
	// handshake (default: discarded).
	Log *slog.Logger
}

// Exporter is a prometheus.Collector over Config's files and endpoints.
type Exporter struct {
	cfg Config

	mu        sync.Mutex // one scrape at a time: the cache is shared
	cache     *fileCache
	layout    []source
	dirStamps []stamp
	// sigs caches signature checks, keyed by certificate and CA (both
	// stable while their files do not change); pruned every scrape.
	sigs map[[2]*x509.Certificate]sigResult

	// logged is the error last logged per file or entry: a problem is
	// logged once, not at every scrape.
	logged map[string]string

	servedMu sync.Mutex
	served   []servedResult

	d descs
}

type sigResult struct {
	ok  bool
	gen uint64
}

type servedResult struct {
	leaf *x509.Certificate
	err  error
	at   time.Time
}

// certLabelNames are the labels of every per-certificate series, in order.
func certLabelNames() []string {
	return []string{"filename", "filepath", "embedded_kind", "embedded_key", "serial_number",
		"subject_CN", "subject_O", "subject_OU", "issuer_CN", "issuer_O"}
}

type descs struct {
	notAfter, notBefore, expired, expiresIn, certError, readErrors *prometheus.Desc
	keyMismatch, chainBroken                                       *prometheus.Desc
	servedMismatch, servedNotAfter, servedError, servedAt          *prometheus.Desc
	fileReads                                                      *prometheus.Desc
}

func newDescs() descs {
	certLabelNames := certLabelNames()
	errLabels := []string{"filename", "filepath", "embedded_kind", "embedded_key"}
	target := []string{"component", "address"}
	return descs{
		notAfter:       prometheus.NewDesc("x509_cert_not_after", "The certificate's NotAfter, in Unix seconds.", certLabelNames, nil),
		notBefore:      prometheus.NewDesc("x509_cert_not_before", "The certificate's NotBefore, in Unix seconds.", certLabelNames, nil),
		expired:        prometheus.NewDesc("x509_cert_expired", "1 if the certificate has expired.", certLabelNames, nil),
		expiresIn:      prometheus.NewDesc("x509_cert_expires_in_seconds", "Seconds from the scrape to the certificate's NotAfter, negative once expired.", certLabelNames, nil),
		certError:      prometheus.NewDesc("x509_cert_error", "1 if the file (or kubeconfig entry) cannot be read or parsed, 0 otherwise.", errLabels, nil),
		readErrors:     prometheus.NewDesc("x509_read_errors", "Number of files or kubeconfig entries that could not be read or parsed in this scrape.", nil, nil),
		keyMismatch:    prometheus.NewDesc("kubepki_cert_key_mismatch", "1 if the private key beside the certificate (its .key, a kubeconfig's client key) is not the certificate's key.", certLabelNames, nil),
		chainBroken:    prometheus.NewDesc("kubepki_cert_chain_broken", "1 if the certificate is not signed by its CA: the plan's CA for a certificate of the directory, else any CA the exporter reads (the directory's, the file's bundle, a kubeconfig's cluster).", certLabelNames, nil),
		servedMismatch: prometheus.NewDesc("kubepki_served_cert_mismatch", "1 if the component serves another certificate than the file on disk: it was not restarted, or its node's files were not redistributed, since a renewal.", append(target, "filepath"), nil),
		servedNotAfter: prometheus.NewDesc("kubepki_served_cert_not_after", "NotAfter of the certificate the component serves, in Unix seconds.", append(target, "serial_number", "subject_CN", "issuer_CN"), nil),
		servedError:    prometheus.NewDesc("kubepki_served_check_error", "1 if the last TLS handshake with the component failed.", target, nil),
		servedAt:       prometheus.NewDesc("kubepki_served_check_timestamp_seconds", "When the component's served certificate was last checked, in Unix seconds.", target, nil),
		fileReads:      prometheus.NewDesc("kubepki_exporter_file_reads_total", "Files read and parsed since start: a file is read again only when its size, mtime or inode changes.", nil, nil),
	}
}

// New returns an Exporter for cfg.
func New(cfg Config) *Exporter {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.ServedTimeout == 0 {
		cfg.ServedTimeout = 10 * time.Second
	}
	// One target per component and address: both are the served series'
	// labels, and a repeated one (--served naming --kubeconfig's API
	// server again) would fail every scrape.
	seen := map[[2]string]bool{}
	cfg.Served = slices.DeleteFunc(slices.Clone(cfg.Served), func(t Target) bool {
		k := [2]string{t.Component, t.Address}
		dup := seen[k]
		seen[k] = true
		return dup
	})
	return &Exporter{
		cfg:    cfg,
		cache:  newFileCache(),
		sigs:   map[[2]*x509.Certificate]sigResult{},
		logged: map[string]string{},
		served: make([]servedResult, len(cfg.Served)),
		d:      newDescs(),
	}
}

// Describe sends every metric's description.
func (e *Exporter) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{e.d.notAfter, e.d.notBefore, e.d.expired, e.d.expiresIn,
		e.d.certError, e.d.readErrors, e.d.keyMismatch, e.d.chainBroken, e.d.servedMismatch,
		e.d.servedNotAfter, e.d.servedError, e.d.servedAt, e.d.fileReads} {
		ch <- d
	}
}

// entry is one certificate found in a scrape.
type entry struct {
	cert *x509.Certificate
	// where: file path, kubeconfig entry kind and name.
	path, kind, key string
	// pub is the public half of the certificate's private key, for the
	// first certificate of a file or entry that has one.
	pub crypto.PublicKey
	// caPath restricts the chain check to the plan's CA file.
	caPath string
	// peers are the certificates that came with it: its file's bundle,
	// or a kubeconfig's clusters' CAs and the user's chain.
	peers []*x509.Certificate
	// dirCA: a CA of the directory, which may sign any certificate.
	dirCA bool
}

// problem is a file or kubeconfig entry that could not be read.
type problem struct {
	path, kind, key string
	err             error
}

// Collect reads what changed and sends every series.
func (e *Exporter) Collect(ch chan<- prometheus.Metric) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.cfg.Now()
	e.cache.begin()
	entries, problems, okFiles := e.gather()
	entries, problems, okFiles = uniqueSeries(entries, problems, okFiles)

	cas := e.knownCAs(entries)
	for _, en := range entries {
		labels := certLabels(en)
		c := en.cert
		ch <- prometheus.MustNewConstMetric(e.d.notAfter, prometheus.GaugeValue, float64(c.NotAfter.Unix()), labels...)
		ch <- prometheus.MustNewConstMetric(e.d.notBefore, prometheus.GaugeValue, float64(c.NotBefore.Unix()), labels...)
		ch <- prometheus.MustNewConstMetric(e.d.expired, prometheus.GaugeValue, bool01(!now.Before(c.NotAfter)), labels...)
		ch <- prometheus.MustNewConstMetric(e.d.expiresIn, prometheus.GaugeValue, c.NotAfter.Sub(now).Seconds(), labels...)
		ch <- prometheus.MustNewConstMetric(e.d.chainBroken, prometheus.GaugeValue, bool01(!e.signed(en, cas)), labels...)
		if en.pub != nil {
			ch <- prometheus.MustNewConstMetric(e.d.keyMismatch, prometheus.GaugeValue, bool01(!publicKeysEqual(c.PublicKey, en.pub)), labels...)
		}
	}
	for _, p := range okFiles {
		ch <- prometheus.MustNewConstMetric(e.d.certError, prometheus.GaugeValue, 0, filepath.Base(p.path), p.path, p.kind, p.key)
	}
	for _, p := range problems {
		ch <- prometheus.MustNewConstMetric(e.d.certError, prometheus.GaugeValue, 1, filepath.Base(p.path), p.path, p.kind, p.key)
	}
	ch <- prometheus.MustNewConstMetric(e.d.readErrors, prometheus.GaugeValue, float64(len(problems)))
	e.logProblems(problems)
	e.collectServed(ch)
	for k, v := range e.sigs {
		if v.gen != e.cache.gen {
			delete(e.sigs, k)
		}
	}
	e.cache.end()
	ch <- prometheus.MustNewConstMetric(e.d.fileReads, prometheus.CounterValue, float64(e.cache.reads))
}

// uniqueSeries keeps one entry per set of label values: two certificates
// of one file that differ but share serial, subject and issuer (a CA
// re-made with the same name and serial, a planted file) would otherwise
// be two series with the same labels, which fails the whole scrape. The
// one that expires first is kept, so an alert on it still fires. A file or
// entry is one x509_cert_error series: a problem wins over a clean read
// of the same labels (a key that is also a --watch-file match).
func uniqueSeries(entries []entry, problems, okFiles []problem) ([]entry, []problem, []problem) {
	at := make(map[string]int, len(entries))
	out := entries[:0]
	for _, en := range entries {
		k := strings.Join(certLabels(en), "\x00")
		i, dup := at[k]
		switch {
		case !dup:
			at[k] = len(out)
			out = append(out, en)
		case en.cert.NotAfter.Before(out[i].cert.NotAfter):
			out[i] = en
		}
	}
	key := func(p problem) string { return p.path + "\x00" + p.kind + "\x00" + p.key }
	seen := make(map[string]bool, len(problems)+len(okFiles))
	problems = slices.DeleteFunc(problems, func(p problem) bool {
		dup := seen[key(p)]
		seen[key(p)] = true
		return dup
	})
	okFiles = slices.DeleteFunc(okFiles, func(p problem) bool {
		dup := seen[key(p)]
		seen[key(p)] = true
		return dup
	})
	return out, problems, okFiles
}

// logProblems logs each problem once, and forgets those that went away.
func (e *Exporter) logProblems(problems []problem) {
	seen := make(map[string]bool, len(problems))
	for _, p := range problems {
		k := p.path + "\x00" + p.kind + "\x00" + p.key
		seen[k] = true
		if msg := p.err.Error(); e.logged[k] != msg {
			e.logged[k] = msg
			e.cfg.Log.Warn("cannot read certificate", "filepath", p.path, "embedded_kind", p.kind, "embedded_key", p.key, "error", msg)
		}
	}
	for k := range e.logged {
		if !seen[k] {
			delete(e.logged, k)
		}
	}
}

// sources is the layout of the directory (resolved again when a directory
// of it changed), the globs' files and the kubeconfigs, each path once.
func (e *Exporter) sources() []source {
	var out []source
	if d := e.cfg.Directory; d != nil {
		st := dirStamps(d.dirs())
		if e.layout == nil || !slices.Equal(st, e.dirStamps) {
			e.layout, e.dirStamps = d.sources(), st
		}
		out = append(out, e.layout...)
	}
	for _, g := range e.cfg.WatchFiles {
		matches, _ := filepath.Glob(g) // the only error is a bad pattern, refused by the CLI
		for _, m := range matches {
			out = append(out, source{path: m, kind: kindAny})
		}
	}
	for _, k := range e.cfg.WatchKubeconfigs {
		out = append(out, source{path: k, kind: kindKubeconfig, required: true})
	}
	seen := make(map[string]bool, len(out))
	return slices.DeleteFunc(out, func(s source) bool {
		dup := seen[s.path]
		seen[s.path] = true
		return dup
	})
}

// gather reads every source (through the cache) into its certificates and
// its problems; okFiles are the files and entries read without error.
func (e *Exporter) gather() (entries []entry, problems, okFiles []problem) {
	for _, s := range e.sources() {
		c, missing := e.cache.get(s.path, s.kind)
		if missing && !s.required {
			continue // went away since the layout was made: no series
		}
		if c.err != nil {
			problems = append(problems, problem{path: s.path, err: c.err})
			continue
		}
		if kc := c.kubeconfig; kc != nil {
			ents, probs, oks := e.kubeconfigEntries(s.path, kc)
			entries, problems, okFiles = append(entries, ents...), append(problems, probs...), append(okFiles, oks...)
			continue
		}
		if s.wantCert && len(c.certs) == 0 {
			// A key (or nothing but a key) where the plan's certificate
			// belongs: an error, or the certificate would silently leave
			// the metrics and no expiry alert could fire.
			problems = append(problems, problem{path: s.path, err: fmt.Errorf("%s: no PEM certificate", s.path)})
			continue
		}
		okFiles = append(okFiles, problem{path: s.path})
		// The key is the .key beside the certificate, or the file's own
		// (a PEM file holding both, as the kubelet writes them).
		pub := c.pub
		if s.keyPath != "" && s.keyPath != s.path {
			k, _ := e.cache.get(s.keyPath, kindPEM)
			switch {
			case k.err != nil:
				problems = append(problems, problem{path: s.keyPath, err: k.err})
			case k.pub == nil:
				problems = append(problems, problem{path: s.keyPath, err: fmt.Errorf("%s: no PEM private key", s.keyPath)})
			default:
				pub = k.pub
			}
		}
		for i, cert := range c.certs {
			en := entry{cert: cert, path: s.path, caPath: s.caPath, peers: c.certs, dirCA: s.caPath == s.path}
			if i == 0 {
				en.pub = pub
			}
			entries = append(entries, en)
		}
	}
	return entries, problems, okFiles
}

// kubeconfigEntries are a kubeconfig's clusters' CAs and users' client
// certificates, embedded or referenced (as kubectl config set-cluster and
// set-credentials write them without --embed-certs, and as kubelet.conf
// names kubelet-client-current.pem).
func (e *Exporter) kubeconfigEntries(path string, kc *kubeconfigContent) (entries []entry, problems, okFiles []problem) {
	var clusterCAs []*x509.Certificate
	add := func(kind string, cr credential) {
		c := cr.embedded
		switch {
		case cr.hasData:
		case cr.file != "":
			c, _ = e.cache.get(cr.file, kindPEM)
			if c.err == nil && kind == "user" && cr.keyFile != "" && cr.keyFile != cr.file {
				k, _ := e.cache.get(cr.keyFile, kindPEM)
				switch {
				case k.err != nil:
					c.err = fmt.Errorf("client-key: %w", k.err)
				case k.pub == nil:
					c.err = fmt.Errorf("client-key %s: no private key", cr.keyFile)
				default:
					c.pub = k.pub
				}
			}
		default:
			return // a token, an exec plugin, or the system's CAs
		}
		if c.err == nil && len(c.certs) == 0 {
			c.err = fmt.Errorf("%s has no certificate", cr.file)
		}
		if c.err != nil {
			problems = append(problems, problem{path: path, kind: kind, key: cr.name, err: c.err})
			return
		}
		okFiles = append(okFiles, problem{path: path, kind: kind, key: cr.name})
		if kind == "cluster" {
			clusterCAs = append(clusterCAs, c.certs...)
		}
		for i, cert := range c.certs {
			en := entry{cert: cert, path: path, kind: kind, key: cr.name, peers: c.certs}
			if i == 0 && kind == "user" {
				en.pub = c.pub
				en.peers = append(slices.Clone(c.certs), clusterCAs...)
			}
			entries = append(entries, en)
		}
	}
	for _, cr := range kc.clusters {
		add("cluster", cr)
	}
	for _, cr := range kc.users {
		add("user", cr)
	}
	return entries, problems, okFiles
}

// knownCAs indexes the directory's CA certificates by subject.
func (e *Exporter) knownCAs(entries []entry) map[string][]*x509.Certificate {
	cas := map[string][]*x509.Certificate{}
	for _, en := range entries {
		if en.dirCA && en.cert.IsCA && !slices.Contains(cas[string(en.cert.RawSubject)], en.cert) {
			cas[string(en.cert.RawSubject)] = append(cas[string(en.cert.RawSubject)], en.cert)
		}
	}
	return cas
}

// signed reports whether a CA signed the entry's certificate: one of the
// plan's CA file when the entry has one, else a CA of the directory or one
// that came with it (its bundle, its kubeconfig's clusters) whose subject
// is the certificate's issuer; a self-signed certificate signs itself.
func (e *Exporter) signed(en entry, cas map[string][]*x509.Certificate) bool {
	if en.caPath != "" {
		c, _ := e.cache.get(en.caPath, kindPEM)
		return slices.ContainsFunc(c.certs, func(ca *x509.Certificate) bool { return e.checkSignature(en.cert, ca) })
	}
	if bytes.Equal(en.cert.RawIssuer, en.cert.RawSubject) && e.checkSignature(en.cert, en.cert) {
		return true // self-signed: a CA, or a leaf such as the kubelet's own serving certificate
	}
	for _, ca := range cas[string(en.cert.RawIssuer)] {
		if e.checkSignature(en.cert, ca) {
			return true
		}
	}
	for _, p := range en.peers {
		if p.IsCA && p != en.cert && e.checkSignature(en.cert, p) {
			return true
		}
	}
	return false
}

// checkSignature is cert.CheckSignatureFrom(ca), remembered while both
// stay in the cache.
func (e *Exporter) checkSignature(cert, ca *x509.Certificate) bool {
	k := [2]*x509.Certificate{cert, ca}
	r, ok := e.sigs[k]
	if !ok {
		switch {
		case cert == ca:
			// CheckSignatureFrom refuses a parent that is no CA; a
			// self-signed leaf is checked against its own key.
			r.ok = ca.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature) == nil
		default:
			r.ok = bytes.Equal(cert.RawIssuer, ca.RawSubject) && cert.CheckSignatureFrom(ca) == nil
		}
	}
	r.gen = e.cache.gen
	e.sigs[k] = r
	return r.ok
}

func certLabels(en entry) []string {
	c := en.cert
	return []string{filepath.Base(en.path), en.path, en.kind, en.key, c.SerialNumber.String(),
		c.Subject.CommonName, first(c.Subject.Organization), first(c.Subject.OrganizationalUnit),
		c.Issuer.CommonName, first(c.Issuer.Organization)}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

// CheckServed does one TLS handshake with each target (live.ServedChain)
// and keeps what each served for the next scrapes.
func (e *Exporter) CheckServed(ctx context.Context) {
	for i, t := range e.cfg.Served {
		hctx, cancel := context.WithTimeout(ctx, e.cfg.ServedTimeout)
		chain, err := live.ServedChain(hctx, t.Address, t.ServerName)
		cancel()
		r := servedResult{err: err, at: e.cfg.Now()}
		if err == nil {
			r.leaf = chain[0]
		} else {
			e.cfg.Log.Warn("served certificate check failed", "component", t.Component, "address", t.Address, "error", err.Error())
		}
		e.servedMu.Lock()
		e.served[i] = r
		e.servedMu.Unlock()
	}
}

// Run checks the served certificates now and then every interval, until
// ctx ends.
func (e *Exporter) Run(ctx context.Context, interval time.Duration) {
	if len(e.cfg.Served) == 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		e.CheckServed(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// collectServed sends the served series; the comparison is with the file
// as it is now, so a renewal on disk shows at once as a mismatch until the
// component serves the new certificate.
func (e *Exporter) collectServed(ch chan<- prometheus.Metric) {
	e.servedMu.Lock()
	results := slices.Clone(e.served)
	e.servedMu.Unlock()
	for i, t := range e.cfg.Served {
		r := results[i]
		if r.at.IsZero() {
			continue // not checked yet
		}
		ch <- prometheus.MustNewConstMetric(e.d.servedAt, prometheus.GaugeValue, float64(r.at.Unix()), t.Component, t.Address)
		ch <- prometheus.MustNewConstMetric(e.d.servedError, prometheus.GaugeValue, bool01(r.err != nil), t.Component, t.Address)
		if r.leaf == nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(e.d.servedNotAfter, prometheus.GaugeValue, float64(r.leaf.NotAfter.Unix()),
			t.Component, t.Address, r.leaf.SerialNumber.String(), r.leaf.Subject.CommonName, r.leaf.Issuer.CommonName)
		if t.CertFile == "" {
			continue
		}
		c, _ := e.cache.get(t.CertFile, kindPEM)
		if c.err != nil || len(c.certs) == 0 {
			continue // the file's own read error is x509_cert_error's
		}
		ch <- prometheus.MustNewConstMetric(e.d.servedMismatch, prometheus.GaugeValue, bool01(!bytes.Equal(c.certs[0].Raw, r.leaf.Raw)),
			t.Component, t.Address, t.CertFile)
	}
}
