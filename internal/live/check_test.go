package live

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io/fs"
	"net"
	"strings"
	"testing"
	"time"

	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/pkitest"
)

// dir is a PKI directory's certificates by plan name.
type dir struct {
	leaves map[string]*x509.Certificate
	cas    map[string][]*x509.Certificate
}

func (d dir) Leaf(name string) (*x509.Certificate, string, error) {
	c, ok := d.leaves[name]
	if !ok {
		return nil, name + ".crt", fmt.Errorf("read %s.crt: %w", name, fs.ErrNotExist)
	}
	return c, name + ".crt", nil
}

func (d dir) CA(name string) ([]*x509.Certificate, string, error) {
	c, ok := d.cas[name]
	if !ok {
		return nil, name + ".crt", fmt.Errorf("read %s.crt: %w", name, fs.ErrNotExist)
	}
	return c, name + ".crt", nil
}

// serve starts a real TLS server on 127.0.0.1 presenting cert, stopped
// with the test.
func serve(t *testing.T, cert *x509.Certificate, key crypto.Signer) string {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key}},
		ClientAuth:   tls.RequireAnyClientCert, // as etcd and the kubelet do
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = c.(*tls.Conn).Handshake()
				c.Close()
			}()
		}
	}()
	return l.Addr().String()
}

// closedAddr is an address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestCheck(t *testing.T) {
	now := time.Now()
	ca := pkitest.CA(t, "kubernetes", 24*time.Hour, now)
	next := pkitest.CA(t, "kubernetes-next", 24*time.Hour, now) // a rotation's new CA
	other := pkitest.CA(t, "someone-else", 24*time.Hour, now)
	key := pkitest.Key(t, pki.ECDSAP256)
	leaf := func(ca *pki.CA, validity time.Duration, sans ...string) *x509.Certificate {
		p := pki.Profile{Subject: pki.Subject{CommonName: "system:kube-scheduler"}, Usages: []pki.Usage{pki.UsageServerAuth}, Validity: validity}
		for _, s := range sans {
			if ip := net.ParseIP(s); ip != nil {
				p.IPs = append(p.IPs, ip)
			} else {
				p.DNSNames = append(p.DNSNames, s)
			}
		}
		return pkitest.Issue(t, ca, key.Public(), p, now)
	}
	served := leaf(ca, time.Hour, "127.0.0.1", "localhost")
	renewed := leaf(ca, 2*time.Hour, "127.0.0.1", "localhost")
	byNext := leaf(next, time.Hour, "127.0.0.1")
	byOther := leaf(other, time.Hour, "127.0.0.1")
	bySameName := leaf(pkitest.CA(t, "kubernetes", 24*time.Hour, now), time.Hour, "127.0.0.1")
	noSAN := leaf(ca, time.Hour, "elsewhere.example")
	selfSigned := pkitest.CA(t, "kube-scheduler@1700000000", time.Hour, now)

	tests := []struct {
		name     string
		serve    *x509.Certificate // nil: nothing listens
		serveKey crypto.Signer
		ep       Endpoint
		files    dir
		now      time.Time
		want     State
		finding  []string // substrings of the one finding; nil: none
		warning  string
		info     string
		restart  string
		signedBy string
	}{
		{name: "served is the file", serve: served, ep: Endpoint{Cert: "kube-scheduler", CA: "ca"},
			files: dir{map[string]*x509.Certificate{"kube-scheduler": served}, map[string][]*x509.Certificate{"ca": {ca.Cert}}}, want: Matches},
		{name: "file renewed, old one served", serve: served, ep: Endpoint{Cert: "kube-scheduler", CA: "ca"},
			files: dir{map[string]*x509.Certificate{"kube-scheduler": renewed}, map[string][]*x509.Certificate{"ca": {ca.Cert}}}, want: Differs,
			finding: []string{"kube-scheduler@server", "serial " + served.SerialNumber.Text(16), "the file has serial " + renewed.SerialNumber.Text(16), "kubepki bundle --node server", "restart kube-scheduler on server"},
			restart: "server: kube-scheduler"},
		{name: "served and file expired", serve: served, ep: Endpoint{Cert: "kube-scheduler", CA: "ca"}, now: now.Add(3 * time.Hour),
			files: dir{map[string]*x509.Certificate{"kube-scheduler": served}, map[string][]*x509.Certificate{"ca": {ca.Cert}}}, want: Expired,
			finding: []string{"expired", "kubepki certs renew kube-scheduler"}, restart: "server: kube-scheduler"},
		{name: "not signed by the bundle's CA", serve: byOther, ep: Endpoint{Cert: "kube-scheduler", CA: "ca"},
			files: dir{map[string]*x509.Certificate{"kube-scheduler": byOther}, map[string][]*x509.Certificate{"ca": {ca.Cert}}}, want: Untrusted,
			finding: []string{"issued by CN=someone-else", "no CA of ca.crt", "check that 127.0.0.1:", "--endpoint kube-scheduler@server=HOST:PORT"}},
		{name: "signed by a CA of the same name with another key", serve: bySameName, ep: Endpoint{Cert: "kube-scheduler", CA: "ca"},
			files: dir{map[string]*x509.Certificate{"kube-scheduler": bySameName}, map[string][]*x509.Certificate{"ca": {ca.Cert}}}, want: Untrusted,
			finding: []string{"issued by CN=kubernetes", "kubepki certs renew kube-scheduler"}, restart: "server: kube-scheduler"},
		{name: "trust bundle of two CAs, signed by the second", serve: byNext, ep: Endpoint{Cert: "kube-scheduler", CA: "ca"},
			files: dir{map[string]*x509.Certificate{"kube-scheduler": byNext}, map[string][]*x509.Certificate{"ca": {ca.Cert, next.Cert}}}, want: Matches,
			signedBy: "CA #2 of ca.crt: CN=kubernetes-next"},
		{name: "trust bundle of two CAs, signed by neither", serve: byOther, ep: Endpoint{CA: "ca"},
			files: dir{nil, map[string][]*x509.Certificate{"ca": {ca.Cert, next.Cert}}}, want: Untrusted,
			finding: []string{"no CA of ca.crt (2 certificate(s))", "check that"}},
		{name: "self-signed in memory, no file wired", serve: selfSigned.Cert, serveKey: selfSigned.Key, ep: Endpoint{}, want: SelfSigned,
			info: "made itself in memory"},
		{name: "signed by the CA, no file here", serve: served, ep: Endpoint{CA: "ca"},
			files: dir{nil, map[string][]*x509.Certificate{"ca": {ca.Cert}}}, want: Signed},
		{name: "served does not name the address", serve: noSAN, ep: Endpoint{Cert: "kube-scheduler", CA: "ca"},
			files: dir{map[string]*x509.Certificate{"kube-scheduler": noSAN}, map[string][]*x509.Certificate{"ca": {ca.Cert}}}, want: Matches,
			warning: "does not name 127.0.0.1"},
		{name: "unreachable", ep: Endpoint{Cert: "kube-scheduler", CA: "ca"},
			files: dir{map[string]*x509.Certificate{"kube-scheduler": served}, map[string][]*x509.Certificate{"ca": {ca.Cert}}}, want: Unreachable,
			warning: "not checked"},
		{name: "file missing here", serve: served, ep: Endpoint{Cert: "kube-scheduler", CA: "ca"},
			files: dir{nil, map[string][]*x509.Certificate{"ca": {ca.Cert}}}, want: NoFile, warning: "not compared"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ep := tc.ep
			ep.Component, ep.Node = Scheduler, "server"
			ep.Addr = closedAddr(t)
			if tc.serve != nil {
				k := tc.serveKey
				if k == nil {
					k = key
				}
				ep.Addr = serve(t, tc.serve, k)
			}
			clock := tc.now
			if clock.IsZero() {
				clock = now
			}
			r := Check(context.Background(), []Endpoint{ep}, tc.files, Options{Timeout: 5 * time.Second, Now: clock})
			if len(r.Probes) != 1 || r.Probes[0].State != tc.want {
				t.Fatalf("state %v (%s), want %s", r.Probes[0].State, r.Probes[0].Detail, tc.want)
			}
			p := r.Probes[0]
			if tc.serve != nil && (p.Served == nil || p.Served.Serial != tc.serve.SerialNumber.Text(16)) {
				t.Errorf("served = %+v, want serial %s", p.Served, tc.serve.SerialNumber.Text(16))
			}
			switch {
			case tc.finding == nil && len(r.Findings) > 0:
				t.Errorf("findings %v, want none", r.Findings)
			case tc.finding != nil && len(r.Findings) != 1:
				t.Errorf("findings %v, want one", r.Findings)
			case tc.finding != nil:
				for _, s := range tc.finding {
					if got := r.Findings[0].String(); !strings.Contains(got, s) {
						t.Errorf("finding %q lacks %q", got, s)
					}
				}
			}
			if r.Clean() != (tc.finding == nil) {
				t.Errorf("Clean() = %v with findings %v", r.Clean(), r.Findings)
			}
			assertOne(t, "warning", r.Warnings, tc.warning)
			assertOne(t, "info", r.Info, tc.info)
			var restart []string
			for _, rs := range r.Restart {
				restart = append(restart, rs.Node+": "+strings.Join(rs.Components, ", "))
			}
			if got := strings.Join(restart, "; "); got != tc.restart {
				t.Errorf("restart %q, want %q", got, tc.restart)
			}
			if tc.signedBy != "" && !strings.HasPrefix(p.SignedBy, tc.signedBy) {
				t.Errorf("signed by %q, want %q", p.SignedBy, tc.signedBy)
			}
		})
	}
}

func assertOne(t *testing.T, kind string, got []Finding, want string) {
	t.Helper()
	switch {
	case want == "" && len(got) > 0:
		t.Errorf("%s %v, want none", kind, got)
	case want != "" && (len(got) != 1 || !strings.Contains(got[0].Message, want)):
		t.Errorf("%s %v, want one saying %q", kind, got, want)
	}
}

// TestCheckConcurrent: probes run at once, so endpoints that never answer
// cost one timeout, not one each, and do not hide the one that answers.
// The silent listener lets go of its connections only once all eight are
// open together, which sequential probes never reach.
func TestCheckConcurrent(t *testing.T) {
	now := time.Now()
	ca := pkitest.CA(t, "kubernetes", time.Hour, now)
	key := pkitest.Key(t, pki.ECDSAP256)
	cert := pkitest.Issue(t, ca, key.Public(), pki.Profile{Subject: pki.Subject{CommonName: "kube-apiserver"}, Usages: []pki.Usage{pki.UsageServerAuth}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Validity: time.Hour}, now)
	const silentN = 8
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	together := make(chan bool, 1)
	go func() {
		var open []net.Conn
		for len(open) < silentN {
			c, err := silent.Accept()
			if err != nil {
				together <- false
				return
			}
			open = append(open, c)
		}
		together <- true
		for _, c := range open {
			c.Close()
		}
	}()
	eps := []Endpoint{{Component: APIServer, Node: "cp", Addr: serve(t, cert, key), Cert: "apiserver", CA: "ca"}}
	for i := range silentN {
		eps = append(eps, Endpoint{Component: Kubelet, Node: fmt.Sprintf("n%d", i), Addr: silent.Addr().String(), CA: "ca"})
	}
	files := dir{map[string]*x509.Certificate{"apiserver": cert}, map[string][]*x509.Certificate{"ca": {ca.Cert}}}
	r := Check(context.Background(), eps, files, Options{Timeout: 5 * time.Second})
	silent.Close()
	if !<-together {
		t.Error("the silent endpoints were never probed all at once")
	}
	if r.Probes[0].State != Matches || len(r.Warnings) != silentN || !r.Clean() {
		t.Errorf("state %s, %d warnings, findings %v; want match, %d warnings, clean", r.Probes[0].State, len(r.Warnings), r.Findings, silentN)
	}
}
