package adopt

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"kubepki.dev/kubepki/internal/kubeconfig"
	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/store"
)

// reader reads the directory being adopted and collects the notes.
type reader struct {
	st    store.Store
	notes []Note
}

func (r *reader) note(field, format string, args ...any) {
	r.notes = append(r.notes, Note{Field: field, Message: fmt.Sprintf(format, args...)})
}

// cert reads stem.crt: nil if there is none, an error if it is there but
// not a certificate.
func (r *reader) cert(stem string) (*x509.Certificate, error) {
	c, err := r.st.ReadCert(stem)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return c, err
}

// stems lists the certificate stems in a subdirectory of the PKI ("" for
// the directory itself), sorted.
func (r *reader) stems(sub string) ([]string, error) {
	names, err := regularFiles(filepath.Join(r.st.Dir, sub), ".crt")
	for i, name := range names {
		names[i] = filepath.ToSlash(filepath.Join(sub, strings.TrimSuffix(name, ".crt")))
	}
	return names, err
}

// kubeconfigFiles lists the kubeconfig directory's files with the suffix,
// sorted.
func (r *reader) kubeconfigFiles(suffix string) ([]string, error) {
	return regularFiles(r.st.KubeconfigPath("."), suffix)
}

// regularFiles lists the names of dir's regular files that end in suffix,
// sorted; none if dir does not exist.
func regularFiles(dir, suffix string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), suffix) && e.Type().IsRegular() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// kubeconfigInfo is what inference needs of one kubeconfig.
type kubeconfigInfo struct {
	File    string
	Cluster string // the current context's cluster entry
	Server  string // host:port of its server URL
	Cert    *x509.Certificate
}

// kubeconfig reads a kubeconfig of the kubeconfig directory: nil if there
// is none. Its client certificate is embedded or a file it names (as
// kubectl config set-credentials writes it); either may be absent (a
// token user), which leaves Cert nil.
//
// One kubeconfig that cannot be read must not disable inference for the
// whole directory (verify would then check everything against the
// embedded default): a kubeconfig that does not load is skipped, and a
// client certificate that does not read leaves Cert nil, each with a note
// naming the file. Commands report the file itself.
func (r *reader) kubeconfig(file string) (*kubeconfigInfo, error) {
	path := r.st.KubeconfigPath(file)
	cfg, err := kubeconfig.Load(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		r.note(file, "skipped, unreadable (%v): inferred from the other files", err)
		return nil, nil
	}
	cl, user, err := kubeconfig.Current(cfg)
	if err != nil {
		r.note(file, "skipped (%s: %v): inferred from the other files", path, err)
		return nil, nil
	}
	info := &kubeconfigInfo{File: file, Cluster: cfg.Contexts[cfg.CurrentContext].Cluster}
	u, err := url.Parse(cl.Server)
	if err != nil || u.Host == "" {
		r.note(file, "skipped (%s: server %q is not a URL): inferred from the other files", path, cl.Server)
		return nil, nil
	}
	info.Server = u.Host
	if u.Port() == "" {
		info.Server = net.JoinHostPort(u.Hostname(), "443")
	}
	data := user.ClientCertificateData
	if len(data) == 0 && user.ClientCertificate != "" {
		ref := user.ClientCertificate
		if !filepath.IsAbs(ref) {
			ref = filepath.Join(filepath.Dir(path), ref)
		}
		if data, err = store.ReadFile(ref, store.KeyPolicy{Insecure: true}); err != nil {
			r.note(file, "client-certificate unreadable (%v): its user inferred from the other files", err)
			return info, nil
		}
	}
	if len(data) > 0 {
		if info.Cert, err = pki.ParseCert(data); err != nil {
			r.note(file, "client certificate unreadable (%s: %v): its user inferred from the other files", path, err)
		}
	}
	return info, nil
}

// nodeOf returns the node a certificate's CN names (system:node:<name>).
func nodeOf(c *x509.Certificate) (string, bool) {
	if c == nil {
		return "", false
	}
	return strings.CutPrefix(c.Subject.CommonName, "system:node:")
}

// hostOf is the host of host:port.
func hostOf(hostport string) string {
	h, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport
	}
	return h
}

// hasGroup reports whether a client certificate carries group g in O.
func hasGroup(c *x509.Certificate, g string) bool {
	return c != nil && slices.Contains(c.Subject.Organization, g)
}

// ipStrings renders IPs, dropping those drop says to.
func ipStrings(ips []net.IP, drop func(net.IP) bool) []string {
	var out []string
	for _, ip := range ips {
		if drop == nil || !drop(ip) {
			out = appendNew(out, ip.String())
		}
	}
	return out
}

// appendNew appends the strings not yet in list.
func appendNew(list []string, ss ...string) []string {
	for _, s := range ss {
		if !slices.Contains(list, s) {
			list = append(list, s)
		}
	}
	return list
}

// sameHost compares hosts as IPs when both are IPs (::1 and 0:0::1 are
// one), as strings otherwise.
func sameHost(a, b string) bool {
	ia, ib := net.ParseIP(a), net.ParseIP(b)
	if ia != nil && ib != nil {
		return ia.Equal(ib)
	}
	return strings.EqualFold(a, b)
}
