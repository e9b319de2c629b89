package lifecycle_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/kubeconfig"
	"kubepki.dev/kubepki/internal/lifecycle"
	"kubepki.dev/kubepki/internal/openssltest"
	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/pkitest"
	"kubepki.dev/kubepki/internal/reconcile"
	"kubepki.dev/kubepki/internal/store"
)

// rnSignedPath is where the signed certificate for a CSR goes: the same
// relative path under signedDir, .crt for .csr (what Install reads).
func rnSignedPath(t *testing.T, csrDir, signedDir, csrPath string) string {
	t.Helper()
	rel, err := filepath.Rel(csrDir, csrPath)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(signedDir, strings.TrimSuffix(rel, ".csr")+".crt")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// rnCAFiles are the certificate and key files of the CA that signs a leaf.
func rnCAFiles(plan *catalog.Plan, st store.Store, leaf string) (crt, key string) {
	c, _ := plan.Cert(leaf)
	ca, _ := plan.Cert(c.CA)
	return st.CertPath(ca.Path), st.KeyPath(ca.Path)
}

// rnSignAll has openssl, as the external CA, sign every CSR with the CA the
// plan says, copying the CSR's extensions (SANs, usages).
func rnSignAll(t *testing.T, plan *catalog.Plan, st store.Store, files []lifecycle.CSRFile, csrDir, signedDir string) {
	t.Helper()
	for _, f := range files {
		crt, key := rnCAFiles(plan, st, f.Name)
		openssltest.Run(t, "", "x509", "-req", "-in", f.CSR, "-CA", crt, "-CAkey", key, "-days", "30",
			"-copy_extensions", "copyall", "-out", rnSignedPath(t, csrDir, signedDir, f.CSR))
	}
}

func rnCopyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return dst
}

// rnForeignOpenSSLCA makes a CA with openssl that the cluster does not trust.
func rnForeignOpenSSLCA(t *testing.T) (crt, key string) {
	t.Helper()
	dir := t.TempDir()
	crt, key = filepath.Join(dir, "other-ca.crt"), filepath.Join(dir, "other-ca.key")
	openssltest.Run(t, "", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", key, "-out", crt, "-days", "30", "-subj", "/CN=kubernetes",
		"-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
	return crt, key
}

// TestCSRRoundTripOpenSSL is kubeadm's "renew with an external CA" with the
// real openssl as that CA: generate CSRs for every leaf, sign them, install
// them; the PKI is valid and openssl verifies it. On the way, the CSRs say
// what the plan asks, nothing is overwritten, and every bad certificate
// refuses the whole install.
func TestCSRRoundTripOpenSSL(t *testing.T) {
	for _, profile := range rnProfiles {
		t.Run(string(profile), func(t *testing.T) {
			now := time.Now().UTC().Truncate(time.Second)
			plan := pkitest.Plan(t, profile, nil)
			st, root := pkitest.Store(t, profile)
			rnApply(t, plan, st, now)

			csrDir := filepath.Join(t.TempDir(), "csr")
			files, err := lifecycle.GenerateCSRs(plan, st, nil, csrDir)
			if err != nil {
				t.Fatalf("GenerateCSRs: %v", err)
			}
			var got []string
			for _, f := range files {
				got = append(got, f.Name)
			}
			if want := rnLeafNames(plan); !slices.Equal(got, want) {
				t.Fatalf("GenerateCSRs made %q, want every leaf %q", got, want)
			}
			for _, f := range files {
				checkCSR(t, plan, f)
			}

			// Never overwrites: all again, one again, and one whose key
			// alone is there.
			csrBefore := rnTree(t, csrDir)
			if _, err := lifecycle.GenerateCSRs(plan, st, nil, csrDir); err == nil || !strings.Contains(err.Error(), "already exists") {
				t.Errorf("GenerateCSRs into a full directory: %v, want a refusal", err)
			}
			if _, err := lifecycle.GenerateCSRs(plan, st, []string{files[len(files)-1].Name}, csrDir); err == nil || !strings.Contains(err.Error(), "not overwriting") {
				t.Errorf("GenerateCSRs of an existing CSR: %v, want a refusal", err)
			}
			rnSameTree(t, "GenerateCSRs over existing files", rnTree(t, csrDir), csrBefore)
			keyOnly := t.TempDir()
			rnMust(t, os.WriteFile(filepath.Join(keyOnly, filepath.Base(files[0].Key)), []byte("precious"), 0o600))
			if _, err := lifecycle.GenerateCSRs(plan, st, []string{files[0].Name}, keyOnly); err == nil {
				t.Errorf("GenerateCSRs over an existing key succeeded")
			}
			if data, _ := os.ReadFile(filepath.Join(keyOnly, filepath.Base(files[0].Key))); string(data) != "precious" {
				t.Errorf("GenerateCSRs overwrote an existing key")
			}
			if _, err := lifecycle.GenerateCSRs(plan, st, []string{"ca"}, t.TempDir()); err == nil || !strings.Contains(err.Error(), "is a CA") {
				t.Errorf("GenerateCSRs for the CA: %v, want a refusal", err)
			}

			signed := filepath.Join(t.TempDir(), "signed")
			rnSignAll(t, plan, st, files, csrDir, signed)
			before := rnTree(t, root)

			// Each of these breaks one certificate; Install must refuse and
			// write nothing at all, not even the good ones.
			api := "kube-api-server"
			if profile == catalog.Kubeadm {
				api = "apiserver"
			}
			apiFile := files[slices.IndexFunc(files, func(f lifecycle.CSRFile) bool { return f.Name == api })]
			last := files[len(files)-1]
			bad := []struct {
				name  string
				build func(dir string)
				want  string
			}{
				{"certificate for another key", func(dir string) {
					// The last leaf's file holds the API server's certificate.
					data, err := os.ReadFile(rnSignedPath(t, csrDir, dir, apiFile.CSR))
					rnMust(t, err)
					rnMust(t, os.WriteFile(rnSignedPath(t, csrDir, dir, last.CSR), data, 0o644))
				}, "not for the key generated with its CSR"},
				{"signed by a different CA", func(dir string) {
					crt, key := rnForeignOpenSSLCA(t)
					openssltest.Run(t, "", "x509", "-req", "-in", last.CSR, "-CA", crt, "-CAkey", key, "-days", "30",
						"-copy_extensions", "copyall", "-out", rnSignedPath(t, csrDir, dir, last.CSR))
				}, "not signed by the cluster's CA"},
				{"SANs not copied", func(dir string) {
					crt, key := rnCAFiles(plan, st, api)
					openssltest.Run(t, "", "x509", "-req", "-in", apiFile.CSR, "-CA", crt, "-CAkey", key, "-days", "30",
						"-out", rnSignedPath(t, csrDir, dir, apiFile.CSR))
				}, "not what the plan asks"},
				{"usages right, SANs missing", func(dir string) {
					crt, key := rnCAFiles(plan, st, api)
					ext := filepath.Join(t.TempDir(), "ext.cnf")
					rnMust(t, os.WriteFile(ext, []byte("[v3]\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n"), 0o644))
					if profile == catalog.Kubeadm {
						rnMust(t, os.WriteFile(ext, []byte("[v3]\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"), 0o644))
					}
					openssltest.Run(t, "", "x509", "-req", "-in", apiFile.CSR, "-CA", crt, "-CAkey", key, "-days", "30",
						"-extfile", ext, "-extensions", "v3", "-out", rnSignedPath(t, csrDir, dir, apiFile.CSR))
				}, "required by spec, absent"},
				{"signed certificate missing", func(dir string) {
					rnMust(t, os.Remove(rnSignedPath(t, csrDir, dir, last.CSR)))
				}, "signed certificate"},
				{"expired", func(dir string) {
					crt, key := rnCAFiles(plan, st, last.Name)
					// -days 0 gives NotAfter == NotBefore == now: expired a
					// second later, when Install looks.
					openssltest.Run(t, "", "x509", "-req", "-in", last.CSR, "-CA", crt, "-CAkey", key, "-days", "0",
						"-copy_extensions", "copyall", "-out", rnSignedPath(t, csrDir, dir, last.CSR))
					time.Sleep(1100 * time.Millisecond)
				}, "not valid now"},
			}
			if profile == catalog.Kubeadm {
				bad = append(bad, struct {
					name  string
					build func(dir string)
					want  string
				}{"etcd certificate signed by the cluster CA", func(dir string) {
					f := files[slices.IndexFunc(files, func(f lifecycle.CSRFile) bool { return f.Name == "etcd-server" })]
					openssltest.Run(t, "", "x509", "-req", "-in", f.CSR, "-CA", st.CertPath("ca"), "-CAkey", st.KeyPath("ca"), "-days", "30",
						"-copy_extensions", "copyall", "-out", rnSignedPath(t, csrDir, dir, f.CSR))
				}, "not signed by the cluster's CA"})
			}
			for _, b := range bad {
				t.Run(b.name, func(t *testing.T) {
					dir := rnCopyDir(t, signed)
					b.build(dir)
					rep, err := lifecycle.Install(plan, st, csrDir, dir, time.Now())
					if err == nil || !strings.Contains(err.Error(), b.want) {
						t.Fatalf("Install = %+v, %v; want a refusal saying %q", rep, err, b.want)
					}
					rnSameTree(t, "refused install", rnTree(t, root), before)
					rnNoBackup(t, st)
				})
			}

			installNow := time.Now()
			rep, err := lifecycle.Install(plan, st, csrDir, signed, installNow)
			if err != nil {
				t.Fatalf("Install: %v", err)
			}
			var installed []string
			for _, i := range rep.Installed {
				installed = append(installed, i.Name)
			}
			if want := rnLeafNames(plan); !slices.Equal(installed, want) {
				t.Errorf("installed %q, want %q", installed, want)
			}
			if rep.Backup == "" || !store.Exists(rep.Backup) {
				t.Errorf("no backup of the replaced files: %q", rep.Backup)
			}
			rnAllValid(t, plan, st, installNow)
			rnNoTempFiles(t, root)

			// What is installed is what openssl signed, with the CSR's key,
			// and openssl verifies it against the right CA.
			for _, f := range files {
				signedCert, err := os.ReadFile(rnSignedPath(t, csrDir, signed, f.CSR))
				rnMust(t, err)
				want, err := pki.ParseCert(signedCert)
				rnMust(t, err)
				c, _ := plan.Cert(f.Name)
				cert, key, err := lifecycle.ReadPair(plan, st, c)
				if err != nil {
					t.Fatalf("%s: %v", f.Name, err)
				}
				if !cert.Equal(want) {
					t.Errorf("%s: installed certificate is not the one openssl signed", f.Name)
				}
				csrKey, err := os.ReadFile(f.Key)
				rnMust(t, err)
				k, err := pki.ParseKey(csrKey)
				rnMust(t, err)
				if key == nil || !pki.KeyMatches(k.Public(), key) {
					t.Errorf("%s: installed key is not the CSR's", f.Name)
				}
				leafFile := st.CertPath(c.Path)
				if c.Embedded {
					leafFile = filepath.Join(t.TempDir(), "leaf.crt")
					rnMust(t, os.WriteFile(leafFile, pki.EncodeCert(cert), 0o644))
				} else if fi, err := os.Stat(st.KeyPath(c.Path)); err != nil || fi.Mode().Perm() != 0o600 {
					t.Errorf("%s: installed key mode %v, want 0600", f.Name, fi.Mode())
				}
				caCrt, _ := rnCAFiles(plan, st, f.Name)
				if out := openssltest.Run(t, "", "verify", "-CAfile", caCrt, leafFile); !strings.Contains(out, ": OK") {
					t.Errorf("openssl verify %s: %s", f.Name, out)
				}
			}
			for _, k := range plan.Kubeconfigs {
				fi, err := os.Stat(st.KubeconfigPath(k.File))
				if err != nil || fi.Mode().Perm() != 0o600 {
					t.Errorf("%s: mode %v after install, want 0600", k.File, fi.Mode())
				}
			}
		})
	}
}

// checkCSR checks one generated CSR against its plan entry, in Go and with
// openssl req -text.
func checkCSR(t *testing.T, plan *catalog.Plan, f lifecycle.CSRFile) {
	t.Helper()
	c, _ := plan.Cert(f.Name)
	keyInfo, err := os.Stat(f.Key)
	if err != nil || keyInfo.Mode().Perm() != 0o600 {
		t.Errorf("%s: key %s mode %v, want 0600", f.Name, f.Key, keyInfo.Mode())
	}
	keyPEM, err := os.ReadFile(f.Key)
	rnMust(t, err)
	key, err := pki.ParseKey(keyPEM)
	rnMust(t, err)
	csrPEM, err := os.ReadFile(f.CSR)
	rnMust(t, err)
	csr, err := pki.ParseCSR(csrPEM)
	if err != nil {
		t.Fatalf("%s: %v", f.Name, err)
	}
	if !pki.KeyMatches(csr.PublicKey, key) {
		t.Errorf("%s: CSR is not for its key", f.Name)
	}
	if pki.AlgorithmOf(csr.PublicKey) != c.KeyAlgorithm {
		t.Errorf("%s: CSR key is %s, want %s", f.Name, pki.AlgorithmOf(csr.PublicKey), c.KeyAlgorithm)
	}
	if got, want := csr.Subject.String(), c.Profile.Subject.Name().String(); got != want {
		t.Errorf("%s: CSR subject %q, want %q", f.Name, got, want)
	}
	if got, want := pki.SANs(csr.DNSNames, csr.IPAddresses), pki.SANs(c.Profile.DNSNames, c.Profile.IPs); !slices.Equal(got, want) {
		t.Errorf("%s: CSR SANs %q, want %q", f.Name, got, want)
	}
	req, err := pki.RequestedOf(csr)
	rnMust(t, err)
	if req.IsCA || req.Unknown != 0 || !slices.Equal(req.Usages, c.Profile.Usages) {
		t.Errorf("%s: CSR requests %+v, want usages %q", f.Name, req, c.Profile.Usages)
	}

	text := openssltest.Run(t, "", "req", "-in", f.CSR, "-noout", "-text", "-verify")
	for u, name := range map[pki.Usage]string{pki.UsageClientAuth: "TLS Web Client Authentication", pki.UsageServerAuth: "TLS Web Server Authentication"} {
		if want := slices.Contains(c.Profile.Usages, u); strings.Contains(text, name) != want {
			t.Errorf("%s: openssl req -text shows %q: %v, want %v\n%s", f.Name, name, !want, want, text)
		}
	}
	if hasSANs := len(c.Profile.DNSNames)+len(c.Profile.IPs) > 0; strings.Contains(text, "X509v3 Subject Alternative Name") != hasSANs {
		t.Errorf("%s: openssl req -text shows SANs: %v, want %v", f.Name, !hasSANs, hasSANs)
	}
	for _, d := range c.Profile.DNSNames {
		if !strings.Contains(text, "DNS:"+d+",") && !strings.Contains(text, "DNS:"+d+"\n") {
			t.Errorf("%s: openssl req -text lacks DNS:%s", f.Name, d)
		}
	}
	for _, ip := range c.Profile.IPs {
		if ip.To4() != nil && !strings.Contains(text, "IP Address:"+ip.String()) {
			t.Errorf("%s: openssl req -text lacks IP Address:%s", f.Name, ip)
		}
	}
	if !strings.Contains(text, "CN = "+c.Profile.Subject.CommonName) && !strings.Contains(text, "CN="+c.Profile.Subject.CommonName) {
		t.Errorf("%s: openssl req -text does not show CN %s", f.Name, c.Profile.Subject.CommonName)
	}
}

// TestInstallCreatesMissingKubeconfig: a kubeconfig whose certificate the
// external CA signed is created if it does not exist yet (init could not:
// no CA key), with the plan's server and the CA's data.
func TestInstallCreatesMissingKubeconfig(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	plan := pkitest.Plan(t, catalog.Kubeadm, nil)
	st, _ := pkitest.Store(t, catalog.Kubeadm)
	rnApply(t, plan, st, now)
	caKey := filepath.Join(t.TempDir(), "ca.key")
	rnMust(t, os.Rename(st.KeyPath("ca"), caKey))
	rnMust(t, os.Remove(st.KubeconfigPath("kubelet-node-1.conf")))

	csrDir, signed := filepath.Join(t.TempDir(), "csr"), filepath.Join(t.TempDir(), "signed")
	files, err := lifecycle.GenerateCSRs(plan, st, []string{"kubelet-node-1.conf"}, csrDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || filepath.Base(files[0].CSR) != "kubelet-node-1.conf.csr" || filepath.Base(files[0].Key) != "kubelet-node-1.conf.key" {
		t.Fatalf("GenerateCSRs = %+v, want kubelet-node-1.conf.csr and .key", files)
	}
	openssltest.Run(t, "", "x509", "-req", "-in", files[0].CSR, "-CA", st.CertPath("ca"), "-CAkey", caKey, "-days", "30",
		"-copy_extensions", "copyall", "-out", rnSignedPath(t, csrDir, signed, files[0].CSR))
	rep, err := lifecycle.Install(plan, st, csrDir, signed, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Installed) != 1 || !slices.Equal(rep.Installed[0].Files, []string{st.KubeconfigPath("kubelet-node-1.conf")}) {
		t.Errorf("Install = %+v, want kubelet-node-1.conf created", rep.Installed)
	}
	cfg, err := kubeconfig.Load(st.KubeconfigPath("kubelet-node-1.conf"))
	if err != nil {
		t.Fatal(err)
	}
	k, _ := plan.Kubeconfig("kubelet-node-1.conf")
	cl, _, err := kubeconfig.Current(cfg)
	if err != nil || cl.Server != k.Server || cfg.CurrentContext != k.Context() {
		t.Errorf("created kubeconfig: context %q, cluster %+v, err %v", cfg.CurrentContext, cl, err)
	}
	caPEM, _ := os.ReadFile(st.CertPath("ca"))
	if !bytes.Equal(cl.CertificateAuthorityData, caPEM) {
		t.Errorf("created kubeconfig's CA data is not ca.crt")
	}
	for _, s := range reconcile.Examine(plan, st, time.Now()) {
		if s.State != reconcile.Valid && s.State != reconcile.External {
			t.Errorf("%s %s: %s %v", s.Kind, s.Name, s.State, s.Findings)
		}
	}
}
