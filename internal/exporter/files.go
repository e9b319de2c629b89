package exporter

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/store"
)

// stamp is what stat says of a file: when it changes, the file is read
// again. An atomic rename gives a new inode even when size and mtime are
// equal, and a swung symbolic link (kubelet-client-current.pem) names
// another file.
type stamp struct {
	size  int64
	mtime time.Time
	dev   uint64
	ino   uint64
}

func stampOf(fi fs.FileInfo) stamp {
	s := stamp{size: fi.Size(), mtime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.dev, s.ino = uint64(st.Dev), st.Ino
	}
	return s
}

// content is what one file holds, parsed once per change of its stamp.
type content struct {
	// certs are the file's PEM certificates, in order, duplicates removed.
	certs []*x509.Certificate
	// pub is the public half of the file's private key, nil if none. The
	// private key itself is not kept.
	pub crypto.PublicKey
	// kubeconfig is set when the file is a kubeconfig.
	kubeconfig *kubeconfigContent
	// err says why the file could not be read or holds nothing usable.
	err error
}

// kubeconfigContent is a kubeconfig's clusters and users, sorted by name.
type kubeconfigContent struct {
	clusters []credential
	users    []credential
}

// credential is one cluster's CA or one user's client certificate and key:
// embedded (its data, parsed here) or referenced (absolute file paths,
// read through the cache at each scrape).
type credential struct {
	name string
	// embedded is the parsed certificate-authority-data, or
	// client-certificate-data with the public half of client-key-data.
	embedded content
	// hasData: the entry embeds its certificate.
	hasData bool
	// file and keyFile are certificate-authority or client-certificate,
	// and client-key.
	file, keyFile string
}

// maxPEMBlocks bounds how many PEM blocks of one file are looked at: a CA
// bundle holds a few hundred at most.
const maxPEMBlocks = 10000

// parsePEM reads the certificates and the first private key of PEM data.
// A file with neither is an error; a certificate that does not parse is an
// error naming its position.
func parsePEM(data []byte) content {
	var (
		c    content
		seen = map[string]bool{}
		n    int
	)
	for rest := data; ; n++ {
		if n >= maxPEMBlocks {
			c.err = fmt.Errorf("more than %d PEM blocks", maxPEMBlocks)
			return c
		}
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		switch b.Type {
		case pki.BlockCertificate:
			cert, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				c.err = fmt.Errorf("certificate %d: %w", len(c.certs)+1, err)
				return c
			}
			// The same certificate twice in a bundle is one series.
			if !seen[string(cert.Raw)] {
				seen[string(cert.Raw)] = true
				c.certs = append(c.certs, cert)
			}
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
			if c.pub != nil {
				continue
			}
			key, err := pki.ParseKey(pem.EncodeToMemory(b))
			if err != nil {
				c.err = fmt.Errorf("private key: %w", err)
				return c
			}
			c.pub = key.Public()
		}
	}
	if len(c.certs) == 0 && c.pub == nil {
		c.err = errors.New("no PEM certificate or private key")
	}
	return c
}

// parseKubeconfig reads a kubeconfig's clusters and users. Referenced file
// paths are made absolute against dir, as clientcmd resolves them.
func parseKubeconfig(data []byte, dir string) content {
	cfg, err := clientcmd.Load(data)
	if err != nil {
		return content{err: fmt.Errorf("not a kubeconfig: %w", err)}
	}
	if len(cfg.Clusters) == 0 && len(cfg.AuthInfos) == 0 {
		return content{err: errors.New("not a kubeconfig: no clusters and no users")}
	}
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	kc := &kubeconfigContent{}
	for name, cl := range cfg.Clusters {
		cr := credential{name: name, file: abs(cl.CertificateAuthority), hasData: len(cl.CertificateAuthorityData) > 0}
		if cr.hasData {
			cr.embedded = parsePEM(cl.CertificateAuthorityData)
		}
		kc.clusters = append(kc.clusters, cr)
	}
	for name, u := range cfg.AuthInfos {
		cr := credential{name: name, file: abs(u.ClientCertificate), keyFile: abs(u.ClientKey), hasData: len(u.ClientCertificateData) > 0}
		if cr.hasData {
			cr.embedded = parsePEM(u.ClientCertificateData)
			if len(u.ClientKeyData) > 0 && cr.embedded.err == nil {
				k := parsePEM(u.ClientKeyData)
				switch {
				case k.err != nil:
					cr.embedded.err = fmt.Errorf("client-key-data: %w", k.err)
				case k.pub == nil:
					cr.embedded.err = errors.New("client-key-data: no private key")
				default:
					cr.embedded.pub = k.pub
				}
			}
		}
		kc.users = append(kc.users, cr)
	}
	byName := func(a, b credential) int { return cmpString(a.name, b.name) }
	slices.SortFunc(kc.clusters, byName)
	slices.SortFunc(kc.users, byName)
	return content{kubeconfig: kc}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// fileKind says how to parse a file.
type fileKind int

const (
	// kindAny: a PEM file, else a kubeconfig (the --watch-file globs).
	kindAny fileKind = iota
	// kindPEM: certificates and keys.
	kindPEM
	// kindKubeconfig: a kubeconfig.
	kindKubeconfig
)

// parse parses a file's data as kind says.
func parse(data []byte, kind fileKind, dir string) content {
	switch kind {
	case kindPEM:
		return parsePEM(data)
	case kindKubeconfig:
		return parseKubeconfig(data, dir)
	}
	if bytes.Contains(data, []byte("-----BEGIN ")) {
		return parsePEM(data)
	}
	return parseKubeconfig(data, dir)
}

// cached is one file's content with the stamp it was read at.
type cached struct {
	stamp   stamp
	kind    fileKind
	content content
	// gen is the last scrape that used the entry; others are dropped.
	gen uint64
}

// fileCache holds each file's parsed content until its stamp changes.
// Entries a scrape does not use are dropped at its end, so a removed file
// costs nothing and the cache never holds more than one scrape's files.
type fileCache struct {
	entries map[string]*cached
	gen     uint64
	// reads counts the files read and parsed (a change of stamp, or
	// first sight).
	reads uint64
}

func newFileCache() *fileCache { return &fileCache{entries: map[string]*cached{}} }

// begin starts a scrape.
func (fc *fileCache) begin() { fc.gen++ }

// end drops the entries the scrape did not use.
func (fc *fileCache) end() {
	for p, e := range fc.entries {
		if e.gen != fc.gen {
			delete(fc.entries, p)
		}
	}
}

// get returns path's content, reading it only when its stamp changed.
// Missing reports a file that does not exist (the caller decides whether
// that is an error).
func (fc *fileCache) get(path string, kind fileKind) (c content, missing bool) {
	fi, err := os.Stat(path)
	if err != nil {
		delete(fc.entries, path)
		if errors.Is(err, fs.ErrNotExist) {
			return content{err: fmt.Errorf("%s: %w", path, fs.ErrNotExist)}, true
		}
		return content{err: err}, false
	}
	st := stampOf(fi)
	if e, ok := fc.entries[path]; ok && e.stamp == st && e.kind == kind {
		e.gen = fc.gen
		return e.content, false
	}
	fc.reads++
	e := &cached{stamp: st, kind: kind, gen: fc.gen}
	// Everything is read through the store's reader: regular files only
	// (a FIFO is refused, not waited on), at most 1 MiB. Links are
	// followed, as the kubelet's kubelet-client-current.pem must be: the
	// exporter derives only public facts from a key (its public half), so
	// the key policy that guards keys kubepki signs or writes with does
	// not apply.
	data, err := store.ReadFile(path, store.KeyPolicy{Insecure: true})
	if err != nil {
		e.content = content{err: err}
	} else {
		e.content = parse(data, kind, filepath.Dir(path))
		if e.content.err != nil {
			e.content.err = fmt.Errorf("%s: %w", path, e.content.err)
		}
	}
	fc.entries[path] = e
	return e.content, false
}
