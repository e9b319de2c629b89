package lifecycle

import (
	"bytes"
	"cmp"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"sigs.k8s.io/yaml"

	"kubepki.dev/kubepki/internal/store"
)

// MaxScanFileSize is the largest file Scan reads; bigger files are counted
// in ScanReport.SkippedLarge and not read. Certificates, bundles and
// kubeconfigs are a few KiB.
const MaxScanFileSize = 1 << 20

// ScanEntry is one certificate found by Scan.
type ScanEntry struct {
	// Path is the file the certificate is in.
	Path string `json:"path"`
	// Index is the position of the certificate among the certificates of
	// its PEM file, or of its kubeconfig field (a chain), from 0.
	Index int `json:"index"`
	// User is set for a kubeconfig user's client-certificate-data.
	User string `json:"user,omitempty"`
	// Cluster is set for a kubeconfig cluster's certificate-authority-data.
	Cluster string `json:"cluster,omitempty"`
	// Subject and Issuer are the common names (the whole distinguished
	// name when there is no CN).
	Subject string `json:"subject"`
	Issuer  string `json:"issuer"`
	IsCA    bool   `json:"isCA"`
	// NotAfter is the end of the validity period.
	NotAfter time.Time `json:"notAfter"`
	// ResidualSeconds is the time left, negative once expired; Residual
	// is it as kubeadm prints it ("364d", "<invalid>").
	ResidualSeconds int64  `json:"residualSeconds"`
	Residual        string `json:"residual"`
	Expired         bool   `json:"expired"`
	ExpiringSoon    bool   `json:"expiringSoon"`
}

// Entry describes where in its file the certificate is: "#0" for the first
// certificate of a PEM file, "user admin" or "cluster kubernetes" for a
// kubeconfig (with " #1" for the second certificate of a chain).
func (e ScanEntry) Entry() string {
	var s string
	switch {
	case e.User != "":
		s = "user " + e.User
	case e.Cluster != "":
		s = "cluster " + e.Cluster
	default:
		return fmt.Sprintf("#%d", e.Index)
	}
	if e.Index > 0 {
		s += fmt.Sprintf(" #%d", e.Index)
	}
	return s
}

// ScanProblem is a file Scan could not read, or a certificate in it that
// does not parse.
type ScanProblem struct {
	Path  string `json:"path"`
	Error string `json:"error"`
}

// ScanReport is what Scan found.
type ScanReport struct {
	// Now is the clock the report was made with.
	Now time.Time `json:"now"`
	// WarnWithinSeconds is the warning window ExpiringSoon was computed for.
	WarnWithinSeconds int64 `json:"warnWithinSeconds"`
	// Roots are the paths that were scanned.
	Roots []string `json:"roots"`
	// Files is the number of files read.
	Files int `json:"files"`
	// SkippedLarge is the number of files over MaxScanFileSize, not read.
	SkippedLarge int `json:"skippedLarge"`
	// Certificates are sorted by path, then PEM blocks before kubeconfig
	// clusters before users, by name, by index.
	Certificates []ScanEntry `json:"certificates"`
	// Problems are sorted by path.
	Problems []ScanProblem `json:"problems,omitempty"`
	// Summary counts Certificates; Unreadable counts Problems.
	Summary Summary `json:"summary"`
}

// Severity is the worst certificate or problem of the report.
func (r ScanReport) Severity() Severity { return r.Summary.Severity() }

// Within returns a copy of the report with Expired, ExpiringSoon, the
// residual times and the summary computed for the warning window d (0 turns
// the warning off).
func (r ScanReport) Within(d time.Duration) ScanReport {
	out := r
	out.WarnWithinSeconds = int64(d / time.Second)
	out.Certificates = slices.Clone(r.Certificates)
	out.Summary = Summary{Total: len(out.Certificates), Unreadable: len(out.Problems)}
	for i := range out.Certificates {
		e := &out.Certificates[i]
		e.ResidualSeconds, e.Residual, e.Expired, e.ExpiringSoon = out.Summary.count(e.NotAfter, out.Now, d)
	}
	return out
}

// Scan walks paths (directories, recursively, or files) for certificates:
// PEM files of any name, with any number of certificates among other blocks,
// and kubeconfigs (YAML or JSON with kind Config), whose users'
// client-certificate-data and clusters' certificate-authority-data it
// decodes. It is meant for a fleet's collected files: files over
// MaxScanFileSize and binary files are skipped after one read at most,
// symbolic links inside the trees are not followed (the paths given are),
// and files are read and parsed by GOMAXPROCS workers. Unreadable files and
// certificates that do not parse are Problems; a path that cannot be
// opened at all is an error. ExpiringSoon is computed for
// DefaultWarnWithin; see ScanReport.Within.
func Scan(ctx context.Context, paths []string, now time.Time) (ScanReport, error) {
	if len(paths) == 0 {
		return ScanReport{}, errors.New("scan: no paths")
	}
	type result struct {
		entries      []ScanEntry
		problems     []ScanProblem
		files, large int
	}
	workers := runtime.GOMAXPROCS(0)
	results := make([]result, workers)
	jobs := make(chan string, 64*workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			res := &results[w]
			var buf []byte
			for path := range jobs {
				if ctx.Err() != nil {
					continue // drain
				}
				data, large, err := readScanFile(path, buf)
				buf = data[:0]
				switch {
				case err != nil:
					res.problems = append(res.problems, ScanProblem{Path: path, Error: err.Error()})
					continue
				case large:
					res.large++
					continue
				}
				res.files++
				entries, problems := parseScanFile(path, data)
				res.entries = append(res.entries, entries...)
				res.problems = append(res.problems, problems...)
			}
		})
	}
	walkProblems, err := walkScanPaths(ctx, paths, jobs)
	close(jobs)
	wg.Wait()
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return ScanReport{}, fmt.Errorf("scan: %w", err)
	}

	r := ScanReport{Now: now.UTC(), Roots: slices.Clone(paths), Problems: walkProblems, Certificates: []ScanEntry{}}
	for _, res := range results {
		r.Files += res.files
		r.SkippedLarge += res.large
		r.Certificates = append(r.Certificates, res.entries...)
		r.Problems = append(r.Problems, res.problems...)
	}
	slices.SortFunc(r.Certificates, compareScanEntries)
	slices.SortFunc(r.Problems, func(a, b ScanProblem) int {
		return cmp.Or(strings.Compare(a.Path, b.Path), strings.Compare(a.Error, b.Error))
	})
	return r.Within(DefaultWarnWithin), nil
}

// compareScanEntries orders entries by path, then PEM blocks, kubeconfig
// clusters and users, then by name and index.
func compareScanEntries(a, b ScanEntry) int {
	rank := func(e ScanEntry) int {
		switch {
		case e.User != "":
			return 2
		case e.Cluster != "":
			return 1
		}
		return 0
	}
	return cmp.Or(
		strings.Compare(a.Path, b.Path),
		cmp.Compare(rank(a), rank(b)),
		strings.Compare(a.Cluster, b.Cluster),
		strings.Compare(a.User, b.User),
		cmp.Compare(a.Index, b.Index),
	)
}

// walkScanPaths sends every regular file under paths to jobs, once each,
// and returns the directories it could not read. A path that does not
// exist is an error.
func walkScanPaths(ctx context.Context, paths []string, jobs chan<- string) ([]ScanProblem, error) {
	var problems []ScanProblem
	seen := map[string]bool{}
	send := func(path string) error {
		if seen[path] {
			return nil
		}
		seen[path] = true
		select {
		case jobs <- path:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for _, root := range paths {
		fi, err := os.Stat(root)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			if fi.Mode().IsRegular() {
				if err := send(filepath.Clean(root)); err != nil {
					return nil, err
				}
			}
			continue
		}
		start := filepath.Clean(root)
		if lfi, err := os.Lstat(start); err == nil && lfi.Mode()&fs.ModeSymlink != 0 {
			// A trailing separator makes WalkDir follow a symlinked root.
			start += string(filepath.Separator)
		}
		err = filepath.WalkDir(start, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if path == start {
					return err
				}
				problems = append(problems, ScanProblem{Path: path, Error: err.Error()})
				return nil
			}
			if d.Type().IsRegular() {
				return send(path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return problems, nil
}

// readScanFile reads a regular file of at most MaxScanFileSize bytes into
// buf's storage (grown as needed), with one open, one fstat and as few
// reads as the size allows. large reports a bigger file, not read. The
// open is store.OpenRegular's: a file swapped for a FIFO after the walk
// saw it is refused, not waited on.
func readScanFile(path string, buf []byte) (data []byte, large bool, err error) {
	f, fi, err := store.OpenRegular(path, store.KeyPolicy{Insecure: true})
	if err != nil {
		return buf[:0], false, err
	}
	defer f.Close()
	if fi.Size() > MaxScanFileSize {
		return buf[:0], true, nil
	}
	// Ask for one byte more than the size: a short read of exactly the
	// size is the whole file (a file that grows meanwhile is read as it
	// was), and saves the read that would return EOF. Never more than the
	// limit plus one.
	const limit = MaxScanFileSize + 1
	size := int(fi.Size())
	want := min(size+1, limit)
	if cap(buf) < want {
		buf = make([]byte, 0, max(want, 4096))
	}
	data = buf[:0]
	for {
		if len(data) == cap(data) {
			if len(data) >= limit {
				return data[:0], true, nil // grew past the limit while we read
			}
			data = slices.Grow(data, min(cap(data), limit-len(data)))
		}
		n, err := f.Read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		switch {
		case err == io.EOF || err == nil && len(data) == size && size < cap(data):
			if len(data) > MaxScanFileSize {
				return data[:0], true, nil
			}
			return data, false, nil
		case err != nil:
			return data[:0], false, fmt.Errorf("read %s: %w", path, err)
		}
	}
}

// Sniffing markers.
const (
	pemBegin       = "-----BEGIN"
	caDataKey      = "certificate-authority-data"
	clientDataKey  = "client-certificate-data"
	kindConfigYAML = "kind: Config"
	kindConfigJSON = `"Config"`
)

// sniffLen is how much of a file is searched for a NUL byte: text formats
// (PEM, YAML, JSON) have none.
const sniffLen = 512

// parseScanFile finds the certificates in one file's contents: PEM blocks
// when it holds "-----BEGIN", else a kubeconfig's embedded certificates when
// it is one. Anything else — binary files, text without either — gives
// nothing, quickly. It never fails: certificates that do not parse are
// problems, and the rest of the file is still read.
func parseScanFile(path string, data []byte) ([]ScanEntry, []ScanProblem) {
	if bytes.IndexByte(data[:min(len(data), sniffLen)], 0) >= 0 {
		return nil, nil
	}
	if i := bytes.Index(data, []byte(pemBegin)); i >= 0 {
		return parsePEMCerts(ScanEntry{Path: path}, data[i:], "")
	}
	if (bytes.Contains(data, []byte(clientDataKey)) || bytes.Contains(data, []byte(caDataKey))) &&
		(bytes.Contains(data, []byte(kindConfigYAML)) || bytes.Contains(data, []byte(kindConfigJSON))) {
		return parseKubeconfigCerts(path, data)
	}
	return nil, nil
}

// parsePEMCerts returns every CERTIFICATE block of data as an entry like
// proto; other blocks (keys, CSRs) are skipped. what names the field the
// PEM came from in problems ("" for a PEM file).
func parsePEMCerts(proto ScanEntry, data []byte, what string) ([]ScanEntry, []ScanProblem) {
	var (
		entries  []ScanEntry
		problems []ScanProblem
		index    int
	)
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			problems = append(problems, ScanProblem{Path: proto.Path, Error: fmt.Sprintf("%scertificate #%d: %v", what, index, err)})
			index++
			continue
		}
		e := proto
		e.Index = index
		e.Subject, e.Issuer = nameOf(cert.Subject), nameOf(cert.Issuer)
		e.IsCA = cert.IsCA
		e.NotAfter = cert.NotAfter.UTC()
		entries = append(entries, e)
		index++
	}
	return entries, problems
}

// nameOf is the common name, or the whole name when there is no CN.
func nameOf(n pkix.Name) string {
	if n.CommonName != "" {
		return n.CommonName
	}
	return n.String()
}

// scanKubeconfig is the part of a kubeconfig Scan reads. The data fields
// are strings, not []byte, so that bad base64 is a problem of that field
// rather than of the file.
type scanKubeconfig struct {
	Kind     string `json:"kind"`
	Clusters []struct {
		Name    string `json:"name"`
		Cluster struct {
			CAData string `json:"certificate-authority-data"`
		} `json:"cluster"`
	} `json:"clusters"`
	Users []struct {
		Name string `json:"name"`
		User struct {
			CertData string `json:"client-certificate-data"`
		} `json:"user"`
	} `json:"users"`
}

// parseKubeconfigCerts returns the certificates embedded in a kubeconfig:
// each cluster's certificate-authority-data and each user's
// client-certificate-data.
func parseKubeconfigCerts(path string, data []byte) ([]ScanEntry, []ScanProblem) {
	var kc scanKubeconfig
	if err := yaml.Unmarshal(data, &kc); err != nil {
		return nil, []ScanProblem{{Path: path, Error: fmt.Sprintf("looks like a kubeconfig but does not parse: %v", err)}}
	}
	if kc.Kind != "Config" {
		return nil, nil
	}
	var (
		entries  []ScanEntry
		problems []ScanProblem
	)
	add := func(proto ScanEntry, field, b64 string) {
		if b64 == "" {
			return
		}
		what := field + ": "
		pemData, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			problems = append(problems, ScanProblem{Path: path, Error: fmt.Sprintf("%s%v", what, err)})
			return
		}
		es, ps := parsePEMCerts(proto, pemData, what)
		if len(es) == 0 && len(ps) == 0 {
			ps = append(ps, ScanProblem{Path: path, Error: what + "no PEM certificate"})
		}
		entries = append(entries, es...)
		problems = append(problems, ps...)
	}
	for _, c := range kc.Clusters {
		add(ScanEntry{Path: path, Cluster: cmp.Or(c.Name, "(unnamed)")}, "cluster "+c.Name+" certificate-authority-data", c.Cluster.CAData)
	}
	for _, u := range kc.Users {
		add(ScanEntry{Path: path, User: cmp.Or(u.Name, "(unnamed)")}, "user "+u.Name+" client-certificate-data", u.User.CertData)
	}
	return entries, problems
}

// WriteScanTable prints a scan report in the style of kubeadm's
// check-expiration table: PATH, ENTRY (ScanEntry.Entry), SUBJECT, EXPIRES,
// RESIDUAL TIME, ISSUER.
func WriteScanTable(w io.Writer, r ScanReport) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "PATH\tENTRY\tSUBJECT\tEXPIRES\tRESIDUAL TIME\tISSUER")
	for _, e := range r.Certificates {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", cell(e.Path), cell(e.Entry()), cell(e.Subject), FormatExpires(e.NotAfter), e.Residual, cell(e.Issuer))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write scan table: %w", err)
	}
	return nil
}

// cell makes a string safe for a table cell: control characters (a tab or
// newline in a file name or subject would break the columns) become '?'.
func cell(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}
