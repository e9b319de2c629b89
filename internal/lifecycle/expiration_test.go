package lifecycle

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/kubeconfig"
	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/reconcile"
	"kubepki.dev/kubepki/internal/store"
)

// expT0 is when the test PKIs are made: every leaf expires at
// expT0+8760h (365 days), every CA at expT0+87672h (kubepki's defaults: ten
// years and the leap days, so "10y" where kubeadm's 87600h shows "9y").
var expT0 = time.Date(2026, time.March, 14, 15, 9, 26, 0, time.UTC)

const expDay = 24 * time.Hour

// expPKI initialises a PKI of the default spec at expT0 in the CLI's
// layout: kubeconfigs beside the PKI directory (hard way) or in its parent
// (kubeadm).
func expPKI(t testing.TB, profile catalog.Profile) (*catalog.Plan, store.Store) {
	t.Helper()
	plan, err := catalog.New(cluster.Default(), profile)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	st := store.Store{Dir: filepath.Join(root, "pki")}
	st.KubeconfigDir = profile.KubeconfigDir(st.Dir)
	if _, err := reconcile.Apply(context.Background(), plan, st, expT0, reconcile.Options{}); err != nil {
		t.Fatal(err)
	}
	return plan, st
}

// expRow finds a row by name.
func expRow(t *testing.T, rows []Expiry, name string) Expiry {
	t.Helper()
	for _, r := range rows {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no row %q in %v", name, expNames(rows))
	return Expiry{}
}

func expNames(rows []Expiry) []string {
	var out []string
	for _, r := range rows {
		out = append(out, r.Name)
	}
	return out
}

// TestFormatResidual pins kubeadm's residual-time rules: check-expiration
// prints duration.HumanDuration of the whole seconds left.
func TestFormatResidual(t *testing.T) {
	const (
		s = 1
		m = 60 * s
		h = 60 * m
		d = 24 * h
		y = 365 * d
	)
	tests := []struct {
		seconds int64
		want    string
	}{
		{-400 * d, "<invalid>"},
		{-2, "<invalid>"},
		{-1, "0s"}, // kubeadm tolerates a second of clock skew
		{0, "0s"},
		{59, "59s"},
		{119, "119s"},
		{2 * m, "2m"},
		{4*m + 30, "4m30s"},
		{9*m + 59, "9m59s"},
		{10 * m, "10m"},
		{59*m + 59, "59m"},
		{3*h - 1, "179m"},
		{3 * h, "3h"},
		{7*h + 59*m + 59, "7h59m"},
		{8 * h, "8h"},
		{23*h + 59*m, "23h"},
		{47 * h, "47h"},
		{2 * d, "2d"},
		{6*d + 23*h, "6d23h"},
		{8 * d, "8d"},
		{30 * d, "30d"},
		{364*d + 23*h + 59*m + 59, "364d"},
		{365 * d, "365d"},
		{2*y - 1, "729d"},
		{2 * y, "2y"},
		{2*y + d, "2y1d"},
		{8*y - 1, "7y364d"},
		{8 * y, "8y"},
		{10*y - 3*d, "9y"}, // a ten-year CA, as kubeadm makes them
		{100 * y, "100y"},
	}
	for _, tc := range tests {
		if got := FormatResidual(tc.seconds); got != tc.want {
			t.Errorf("FormatResidual(%d) = %q, want %q", tc.seconds, got, tc.want)
		}
	}
}

func TestResidualSeconds(t *testing.T) {
	na := expT0
	for _, tc := range []struct {
		now  time.Time
		want int64
	}{
		{na.Add(-1900 * time.Millisecond), 1}, // truncated toward zero
		{na, 0},
		{na.Add(1900 * time.Millisecond), -1}, // "0s", not yet "<invalid>"
		{na.Add(2 * time.Second), -2},
		{na.Add(-365 * expDay), 365 * 86400},
	} {
		if got := ResidualSeconds(na, tc.now); got != tc.want {
			t.Errorf("ResidualSeconds at %v: %d, want %d", tc.now.Sub(na), got, tc.want)
		}
	}
}

func TestFormatExpires(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	for _, tc := range []struct {
		t    time.Time
		want string
	}{
		{time.Date(2020, time.December, 30, 23, 36, 59, 0, time.UTC), "Dec 30, 2020 23:36 UTC"},
		{time.Date(2020, time.December, 31, 0, 36, 0, 0, cet), "Dec 30, 2020 23:36 UTC"},
		{time.Date(2029, time.January, 2, 3, 4, 5, 0, time.UTC), "Jan 02, 2029 03:04 UTC"},
	} {
		if got := FormatExpires(tc.t); got != tc.want {
			t.Errorf("FormatExpires(%v) = %q, want %q", tc.t, got, tc.want)
		}
	}
}

// TestWriteTableKubeadmGolden prints the example of kubeadm's
// documentation ("Check certificate expiration") from the same data and
// compares byte for byte. The golden file is that example with the
// trailing padding kubeadm's printer writes (fmt "%-8v" on the last cell),
// which the documentation's copy trims.
func TestWriteTableKubeadmGolden(t *testing.T) {
	leaf := time.Date(2020, time.December, 30, 23, 36, 0, 0, time.UTC)
	ca := time.Date(2029, time.December, 28, 23, 36, 0, 0, time.UTC)
	now := leaf.Add(-364*expDay - 12*time.Hour)
	r := Report{Now: now}
	for _, c := range []struct{ name, ca string }{
		{"admin.conf", ""}, {"apiserver", "ca"}, {"apiserver-etcd-client", "etcd-ca"},
		{"apiserver-kubelet-client", "ca"}, {"controller-manager.conf", ""}, {"etcd-healthcheck-client", "etcd-ca"},
		{"etcd-peer", "etcd-ca"}, {"etcd-server", "etcd-ca"}, {"front-proxy-client", "front-proxy-ca"},
		{"scheduler.conf", ""},
	} {
		r.Certificates = append(r.Certificates, Expiry{Name: c.name, CA: c.ca, NotAfter: leaf})
	}
	for _, n := range []string{"ca", "etcd-ca", "front-proxy-ca"} {
		r.CertificateAuthorities = append(r.CertificateAuthorities, Expiry{Name: n, NotAfter: ca})
	}
	r = r.Within(DefaultWarnWithin)
	var buf bytes.Buffer
	if err := WriteTable(&buf, r); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join("testdata", "kubeadm-docs-table.golden"))
	if err != nil {
		t.Fatal(err)
	}
	if buf.String() != string(want) {
		t.Errorf("table differs from kubeadm's:\n got:\n%s\nwant:\n%s", buf.String(), want)
	}
}

// TestWriteTableMarks: missing and unreadable rows, external CA, and the
// widths follow the longest cell as kubeadm's tabwriter does.
func TestWriteTableMarks(t *testing.T) {
	na := time.Date(2027, time.March, 14, 15, 9, 0, 0, time.UTC)
	r := Report{Now: na.Add(-expDay), Certificates: []Expiry{
		{Name: "a-very-long-certificate-name", CA: "ca", NotAfter: na, ExternallyManaged: true},
		{Name: "gone", CA: "ca", Missing: true},
		{Name: "junk", CA: "ca", Error: "read junk.crt: no PEM certificate found"},
	}, CertificateAuthorities: []Expiry{{Name: "ca", NotAfter: na.Add(-2 * expDay), ExternallyManaged: true}}}
	r = r.Within(DefaultWarnWithin)
	var buf bytes.Buffer
	if err := WriteTable(&buf, r); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"CERTIFICATE                    EXPIRES                  RESIDUAL TIME   CERTIFICATE AUTHORITY   EXTERNALLY MANAGED\n" +
		"a-very-long-certificate-name   Mar 14, 2027 15:09 UTC   24h             ca                      yes     \n" +
		"gone                           <missing>                <missing>       ca                      no      \n" +
		"junk                           <unreadable>             <unreadable>    ca                      no      \n" +
		"\n" +
		"CERTIFICATE AUTHORITY   EXPIRES                  RESIDUAL TIME   EXTERNALLY MANAGED\n" +
		"ca                      Mar 12, 2027 15:09 UTC   <invalid>       yes     \n"
	if buf.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", buf.String(), want)
	}
	wantSum := Summary{Total: 4, Expired: 1, ExpiringSoon: 1, Missing: 1, Unreadable: 1}
	if r.Summary != wantSum {
		t.Errorf("summary %+v, want %+v", r.Summary, wantSum)
	}
	if r.Severity() != SeverityExpired {
		t.Errorf("severity %v, want expired", r.Severity())
	}
}

// TestExpirationKubeadm reads a kubeadm-layout PKI at several clocks.
func TestExpirationKubeadm(t *testing.T) {
	plan, st := expPKI(t, catalog.Kubeadm)
	leafEnd, caEnd := expT0.Add(365*expDay), expT0.Add(87672*time.Hour)

	r := Expiration(plan, st, expT0.Add(time.Hour))
	wantLeaves := []string{
		"admin.conf", "apiserver", "apiserver-etcd-client", "apiserver-kubelet-client",
		"controller-manager.conf", "etcd-healthcheck-client", "etcd-peer", "etcd-server",
		"front-proxy-client", "kubelet-node-0.conf", "kubelet-node-1.conf", "kubelet-server.conf",
		"scheduler.conf", "super-admin.conf",
	}
	if got := expNames(r.Certificates); !slices.Equal(got, wantLeaves) {
		t.Errorf("certificates %q, want %q", got, wantLeaves)
	}
	if got, want := expNames(r.CertificateAuthorities), []string{"ca", "etcd-ca", "front-proxy-ca"}; !slices.Equal(got, want) {
		t.Errorf("CAs %q, want %q", got, want)
	}
	wantCA := map[string]string{"apiserver-etcd-client": "etcd-ca", "etcd-healthcheck-client": "etcd-ca", "etcd-peer": "etcd-ca", "etcd-server": "etcd-ca", "front-proxy-client": "front-proxy-ca"}
	for _, e := range r.Certificates {
		ca := wantCA[e.Name]
		if ca == "" {
			ca = "ca"
		}
		if e.CA != ca || e.ExternallyManaged || e.Missing || e.Error != "" || e.Expired || e.ExpiringSoon {
			t.Errorf("%s: %+v", e.Name, e)
		}
		if !e.NotAfter.Equal(leafEnd) || e.Residual != "364d" {
			t.Errorf("%s: NotAfter %v residual %q, want %v 364d", e.Name, e.NotAfter, e.Residual, leafEnd)
		}
		if isConf := strings.HasSuffix(e.Name, ".conf"); e.Kubeconfig != isConf || isConf != (filepath.Dir(e.Path) == st.KubeconfigDir) {
			t.Errorf("%s: kubeconfig=%v path %s", e.Name, e.Kubeconfig, e.Path)
		}
	}
	if got := expRow(t, r.Certificates, "etcd-peer").Path; got != filepath.Join(st.Dir, "etcd", "peer.crt") {
		t.Errorf("etcd-peer path %s", got)
	}
	for _, e := range r.CertificateAuthorities {
		if !e.NotAfter.Equal(caEnd) || e.Residual != "10y" || e.CA != "" || e.ExternallyManaged {
			t.Errorf("CA %s: %+v", e.Name, e)
		}
	}
	if r.Severity() != SeverityOK || r.Summary != (Summary{Total: 17}) {
		t.Errorf("fresh PKI: severity %v, summary %+v", r.Severity(), r.Summary)
	}

	// The clock moves on: warning window, then expiry.
	for _, tc := range []struct {
		at       time.Time
		within   time.Duration
		residual string
		sev      Severity
	}{
		{leafEnd.Add(-31 * expDay), DefaultWarnWithin, "31d", SeverityOK},
		{leafEnd.Add(-30 * expDay), DefaultWarnWithin, "30d", SeverityWarning}, // the window is inclusive
		{leafEnd.Add(-23 * time.Hour), DefaultWarnWithin, "23h", SeverityWarning},
		{leafEnd.Add(-59 * time.Minute), DefaultWarnWithin, "59m", SeverityWarning},
		{leafEnd.Add(-10 * expDay), 0, "10d", SeverityOK}, // warning off
		{leafEnd.Add(-60 * expDay), 90 * expDay, "60d", SeverityWarning},
		{leafEnd, DefaultWarnWithin, "0s", SeverityWarning}, // valid through NotAfter
		{leafEnd.Add(time.Second), DefaultWarnWithin, "0s", SeverityExpired},
		{leafEnd.Add(expDay), DefaultWarnWithin, "<invalid>", SeverityExpired},
	} {
		r := Expiration(plan, st, tc.at).Within(tc.within)
		admin := expRow(t, r.Certificates, "admin.conf")
		if admin.Residual != tc.residual || r.Severity() != tc.sev {
			t.Errorf("at leaf end %+v within %v: residual %q severity %v, want %q %v", tc.at.Sub(leafEnd), tc.within, admin.Residual, r.Severity(), tc.residual, tc.sev)
		}
		if ca := expRow(t, r.CertificateAuthorities, "ca"); ca.Expired || ca.ExpiringSoon {
			t.Errorf("at %v the CA is %+v", tc.at, ca)
		}
	}

	// Ten years on, the CAs are gone too.
	r = Expiration(plan, st, caEnd.Add(time.Minute))
	if r.Summary.Expired != 17 || expRow(t, r.CertificateAuthorities, "etcd-ca").Residual != "<invalid>" {
		t.Errorf("after the CAs' end: %+v", r.Summary)
	}
}

func TestExpirationMissingAndUnreadable(t *testing.T) {
	plan, st := expPKI(t, catalog.Kubeadm)
	for _, p := range []string{st.CertPath("apiserver"), st.KubeconfigPath("scheduler.conf"), st.CertPath("etcd/ca")} {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{st.CertPath("front-proxy-client"), st.KubeconfigPath("admin.conf")} {
		if err := os.WriteFile(p, []byte("garbage\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r := Expiration(plan, st, expT0.Add(time.Hour))
	for _, name := range []string{"apiserver", "scheduler.conf"} {
		if e := expRow(t, r.Certificates, name); !e.Missing || !e.NotAfter.IsZero() || e.Residual != "" {
			t.Errorf("%s: %+v, want missing", name, e)
		}
	}
	if e := expRow(t, r.CertificateAuthorities, "etcd-ca"); !e.Missing || e.ExternallyManaged {
		t.Errorf("etcd-ca: %+v, want missing, not external", e)
	}
	// Leaves of a missing CA are not externally managed: nothing says so.
	if e := expRow(t, r.Certificates, "etcd-server"); e.ExternallyManaged || e.Missing || e.Residual != "364d" {
		t.Errorf("etcd-server: %+v", e)
	}
	for _, name := range []string{"front-proxy-client", "admin.conf"} {
		e := expRow(t, r.Certificates, name)
		if e.Missing || e.Error == "" || !strings.Contains(e.Error, e.Path) {
			t.Errorf("%s: %+v, want an error naming the file", name, e)
		}
	}
	if want := (Summary{Total: 17, Missing: 3, Unreadable: 2}); r.Summary != want {
		t.Errorf("summary %+v, want %+v", r.Summary, want)
	}
	if r.Severity() != SeverityWarning {
		t.Errorf("severity %v, want warning", r.Severity())
	}
	var buf bytes.Buffer
	if err := WriteTable(&buf, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"apiserver                  <missing>                <missing>       ca                      no      \n",
		"front-proxy-client         <unreadable>             <unreadable>    front-proxy-ca          no      \n",
		"etcd-ca                 <missing>                <missing>       no      \n",
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}
}

// TestExpirationExternalCA: ca.crt without ca.key is kubeadm's external CA
// mode; everything it signs, kubeconfigs included, is externally managed.
func TestExpirationExternalCA(t *testing.T) {
	plan, st := expPKI(t, catalog.Kubeadm)
	if err := os.Remove(st.KeyPath("ca")); err != nil {
		t.Fatal(err)
	}
	r := Expiration(plan, st, expT0.Add(time.Hour))
	for _, e := range r.Certificates {
		if want := e.CA == "ca"; e.ExternallyManaged != want {
			t.Errorf("%s (CA %s): externally managed %v, want %v", e.Name, e.CA, e.ExternallyManaged, want)
		}
	}
	for _, e := range r.CertificateAuthorities {
		if want := e.Name == "ca"; e.ExternallyManaged != want {
			t.Errorf("CA %s: externally managed %v, want %v", e.Name, e.ExternallyManaged, want)
		}
	}
	if r.Severity() != SeverityOK {
		t.Errorf("external CA mode is not a problem: %v", r.Severity())
	}
}

// TestExpirationKubeletConf: a real kubeadm node's kubelet.conf is reported
// beside kubepki's kubelet-<node>.conf, whether it embeds its certificate
// or, after the kubelet's rotation, points at kubelet-client-current.pem.
func TestExpirationKubeletConf(t *testing.T) {
	plan, st := expPKI(t, catalog.Kubeadm)
	src, err := os.ReadFile(st.KubeconfigPath("kubelet-node-0.conf"))
	if err != nil {
		t.Fatal(err)
	}
	conf := st.KubeconfigPath(KubeletConf)
	if err := os.WriteFile(conf, src, 0o600); err != nil {
		t.Fatal(err)
	}
	r := Expiration(plan, st, expT0.Add(time.Hour))
	e := expRow(t, r.Certificates, KubeletConf)
	if !e.Kubeconfig || e.CA != "ca" || e.Residual != "364d" || e.Path != conf {
		t.Errorf("embedded kubelet.conf: %+v", e)
	}
	if got := expNames(r.Certificates); !slices.IsSorted(got) || len(got) != 15 {
		t.Errorf("rows %q: want 15, sorted", got)
	}

	// Rotated: the certificate is in a file the kubeconfig names, here a
	// relative one (clientcmd resolves it against the kubeconfig's directory)
	// holding a younger certificate and its key, as the kubelet writes it.
	cfg, err := kubeconfig.Load(conf)
	if err != nil {
		t.Fatal(err)
	}
	_, user, err := kubeconfig.Current(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := st.ReadCA("ca")
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := ca.Issue(key.Public(), pki.Profile{Subject: pki.Subject{CommonName: "system:node:node-0"}, Usages: []pki.Usage{pki.UsageClientAuth}, Validity: 10 * expDay}, expT0)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := pki.EncodeKey(key)
	pemDir := filepath.Join(st.KubeconfigDir, "kubelet-pki")
	if err := os.MkdirAll(pemDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pemDir, "kubelet-client-current.pem"), append(pki.EncodeCert(rotated), keyPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	user.ClientCertificateData, user.ClientKeyData = nil, nil
	user.ClientCertificate = "kubelet-pki/kubelet-client-current.pem"
	user.ClientKey = "kubelet-pki/kubelet-client-current.pem"
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, data, 0o600); err != nil {
		t.Fatal(err)
	}
	r = Expiration(plan, st, expT0.Add(time.Hour))
	if e := expRow(t, r.Certificates, KubeletConf); e.Residual != "9d" || !e.ExpiringSoon || e.Error != "" {
		t.Errorf("rotated kubelet.conf: %+v", e)
	}

	// A kubeconfig without any client certificate is unreadable for us.
	user.ClientCertificate, user.ClientKey, user.Token = "", "", "secret"
	if data, err = clientcmd.Write(*cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, data, 0o600); err != nil {
		t.Fatal(err)
	}
	r = Expiration(plan, st, expT0.Add(time.Hour))
	if e := expRow(t, r.Certificates, KubeletConf); !strings.Contains(e.Error, "no embedded client certificate") {
		t.Errorf("token kubelet.conf: %+v", e)
	}
}

// TestExpirationHardway: the hard way's kubeconfigs embed copies of
// certificates that also have files; both are reported, the kubeconfigs
// by file name, so a kubeconfig left behind by a renewal shows.
func TestExpirationHardway(t *testing.T) {
	plan, st := expPKI(t, catalog.Hardway)
	r := Expiration(plan, st, expT0.Add(time.Hour))
	for _, name := range []string{"admin", "admin.kubeconfig", "node-0", "node-0.kubeconfig", "kube-proxy.kubeconfig"} {
		if e := expRow(t, r.Certificates, name); e.CA != "ca" || e.Residual != "364d" || e.Kubeconfig != strings.HasSuffix(name, ".kubeconfig") {
			t.Errorf("%s: %+v", name, e)
		}
	}
	if got := expNames(r.CertificateAuthorities); !slices.Equal(got, []string{"ca"}) {
		t.Errorf("CAs %q", got)
	}
	if r.Severity() != SeverityOK {
		t.Errorf("severity %v: %+v", r.Severity(), r.Summary)
	}
}

// TestReportJSON: the JSON form carries what the table shows, with
// notAfter in RFC 3339.
func TestReportJSON(t *testing.T) {
	plan, st := expPKI(t, catalog.Kubeadm)
	if err := os.Remove(st.CertPath("apiserver")); err != nil {
		t.Fatal(err)
	}
	now := expT0.Add(340 * expDay)
	r := Expiration(plan, st, now)
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Now                    string           `json:"now"`
		WarnWithinSeconds      int64            `json:"warnWithinSeconds"`
		Certificates           []map[string]any `json:"certificates"`
		CertificateAuthorities []map[string]any `json:"certificateAuthorities"`
		Summary                map[string]int   `json:"summary"`
	}
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if got.WarnWithinSeconds != 30*86400 || got.Now != "2027-02-17T15:09:26Z" {
		t.Errorf("now %s, window %d", got.Now, got.WarnWithinSeconds)
	}
	var admin, apiserver map[string]any
	for _, c := range got.Certificates {
		switch c["name"] {
		case "admin.conf":
			admin = c
		case "apiserver":
			apiserver = c
		}
	}
	wantAdmin := map[string]any{
		"name": "admin.conf", "path": st.KubeconfigPath("admin.conf"), "kubeconfig": true,
		"notAfter": "2027-03-14T15:09:26Z", "residualSeconds": float64(25 * 86400), "residual": "25d",
		"ca": "ca", "externallyManaged": false, "missing": false, "expired": false, "expiringSoon": true,
	}
	if !jsonEqual(admin, wantAdmin) {
		t.Errorf("admin.conf = %v\nwant %v", admin, wantAdmin)
	}
	wantMissing := map[string]any{
		"name": "apiserver", "path": st.CertPath("apiserver"), "residualSeconds": float64(0), "residual": "",
		"ca": "ca", "externallyManaged": false, "missing": true, "expired": false, "expiringSoon": false,
	}
	if !jsonEqual(apiserver, wantMissing) {
		t.Errorf("apiserver = %v\nwant %v", apiserver, wantMissing)
	}
	if got.Summary["missing"] != 1 || got.Summary["expiringSoon"] != 13 || got.Summary["total"] != 17 {
		t.Errorf("summary %v", got.Summary)
	}
	// YAML has the same fields.
	y, err := yaml.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(y), "notAfter: \"2027-03-14T15:09:26Z\"") || !strings.Contains(string(y), "certificateAuthorities:") {
		t.Errorf("YAML:\n%s", y)
	}
}

func jsonEqual(a, b map[string]any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// TestWithinDoesNotAlias: Within returns a new report.
func TestWithinDoesNotAlias(t *testing.T) {
	r := Report{Now: expT0, Certificates: []Expiry{{Name: "x", NotAfter: expT0.Add(10 * expDay)}}}
	a := r.Within(30 * expDay)
	b := a.Within(0)
	if !a.Certificates[0].ExpiringSoon || b.Certificates[0].ExpiringSoon || r.Certificates[0].ExpiringSoon {
		t.Errorf("Within changed another report: %v %v %v", r.Certificates[0], a.Certificates[0], b.Certificates[0])
	}
}

func TestParseWarnWithin(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"30d", 30 * expDay, ""},
		{"0", 0, ""},
		{"0d", 0, ""},
		{"720h", 720 * time.Hour, ""},
		{"90m", 90 * time.Minute, ""},
		{"1d12h", 36 * time.Hour, ""},
		{" 7d ", 7 * expDay, ""},
		{"36500d", 36500 * expDay, ""},
		{"36501d", 36501 * expDay, ""}, // no cap below time.Duration's range
		{"+2d", 2 * expDay, ""},
		{"99999999999999d", 0, "out of range"},
		{"-1h", 0, "must not be negative"},
		{"-3d", 0, "must not be negative"},
		{"1d-1h", 0, "a sign only goes first"},
		{"1d+1h", 0, "a sign only goes first"},
		{"d", 0, "whole number"},
		{"1.5d", 0, "whole number"},
		{"1dx", 0, `"x" after the days`},
		{"30", 0, "want a Go duration (8760h) or days (365d)"},
		{"", 0, "want a Go duration"},
		{"tomorrow", 0, "want a Go duration"},
	} {
		got, err := ParseWarnWithin(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), tc.in) {
				t.Errorf("ParseWarnWithin(%q) = %v, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseWarnWithin(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestSummaryString(t *testing.T) {
	for _, tc := range []struct {
		s    Summary
		want string
	}{
		{Summary{Total: 17}, "all 17 valid"},
		{Summary{Total: 5, Expired: 2, Missing: 1}, "2 expired, 1 missing"},
		{Summary{Total: 5, ExpiringSoon: 3, Unreadable: 1}, "3 expiring soon, 1 unreadable"},
	} {
		if got := tc.s.String(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.s, got, tc.want)
		}
	}
	for s, want := range map[Severity]string{SeverityOK: "ok", SeverityWarning: "warning", SeverityExpired: "expired", 7: "Severity(7)"} {
		if s.String() != want {
			t.Errorf("%d: %q", int(s), s.String())
		}
	}
}
