package e2e

import (
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/openssltest"
	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/testenv"
)

// TestOpenSSLAgreesWithCatalog runs kubepki init for every key algorithm and
// both layouts, and has openssl check every certificate written: it verifies
// against the right CA, and the SAN, key usage, extended key usage and basic
// constraints openssl prints are exactly what the catalog promised.
func TestOpenSSLAgreesWithCatalog(t *testing.T) {
	openssltest.Bin(t) // CI fails without openssl; elsewhere the test skips
	bin := testenv.Kubepki(t)
	for _, profile := range catalog.Profiles() {
		for _, alg := range pki.KeyAlgorithms() {
			t.Run(string(profile)+"/"+string(alg), func(t *testing.T) {
				t.Parallel()
				dir := filepath.Join(t.TempDir(), "pki")
				run(t, bin, "init", "--dir", dir, "--profile", string(profile), "--key-algorithm", string(alg))
				c := cluster.Default()
				if profile == catalog.Kubeadm {
					c = cluster.KubeadmDefault(cluster.LocalHost())
				}
				c.KeyAlgorithm = string(alg)
				plan, err := catalog.New(c, profile)
				if err != nil {
					t.Fatal(err)
				}
				for _, cs := range plan.Certs {
					if cs.Embedded {
						continue
					}
					crt := filepath.Join(dir, cs.Path+".crt")
					ca := crt
					if !cs.Profile.IsCA {
						caSpec, _ := plan.Cert(cs.CA)
						ca = filepath.Join(dir, caSpec.Path+".crt")
					}
					if out, err := exec.Command("openssl", "verify", "-x509_strict", "-CAfile", ca, crt).CombinedOutput(); err != nil {
						t.Errorf("%s: openssl verify: %v\n%s", cs.Name, err, out)
					}
					out, err := exec.Command("openssl", "x509", "-in", crt, "-noout", "-ext", "subjectAltName,keyUsage,extendedKeyUsage,basicConstraints").CombinedOutput()
					if err != nil {
						t.Fatalf("%s: openssl x509: %v\n%s", cs.Name, err, out)
					}
					checkExtensions(t, cs, alg, string(out))
				}
			})
		}
	}
}

// checkExtensions compares openssl's rendering with the catalog's promise.
func checkExtensions(t *testing.T, cs catalog.CertSpec, alg pki.KeyAlgorithm, text string) {
	t.Helper()
	ext := parseOpenSSLExtensions(text)
	var wantKU []string
	switch {
	case cs.Profile.IsCA:
		wantKU = []string{"Digital Signature", "Certificate Sign", "CRL Sign"}
	case strings.HasPrefix(string(cs.KeyAlgorithm), "RSA"):
		wantKU = []string{"Digital Signature", "Key Encipherment"}
	default:
		wantKU = []string{"Digital Signature"}
	}
	if got := ext["X509v3 Key Usage"]; !slices.Equal(got, wantKU) {
		t.Errorf("%s (%s): key usage %v, want %v", cs.Name, alg, got, wantKU)
	}
	var wantEKU []string
	for _, u := range cs.Profile.Usages {
		wantEKU = append(wantEKU, map[pki.Usage]string{pki.UsageClientAuth: "TLS Web Client Authentication", pki.UsageServerAuth: "TLS Web Server Authentication"}[u])
	}
	if got := ext["X509v3 Extended Key Usage"]; !slices.Equal(sorted(got), sorted(wantEKU)) {
		t.Errorf("%s: extended key usage %v, want %v", cs.Name, got, wantEKU)
	}
	var wantSAN []string
	for _, d := range cs.Profile.DNSNames {
		wantSAN = append(wantSAN, "DNS:"+d)
	}
	for _, ip := range cs.Profile.IPs {
		wantSAN = append(wantSAN, "IP Address:"+opensslIP(ip))
	}
	if got := ext["X509v3 Subject Alternative Name"]; !slices.Equal(sorted(upperIPs(got)), sorted(wantSAN)) {
		t.Errorf("%s: SANs %v, want %v", cs.Name, got, wantSAN)
	}
	wantBC := "CA:FALSE"
	if cs.Profile.IsCA {
		wantBC = "CA:TRUE"
	}
	if got := ext["X509v3 Basic Constraints"]; len(got) == 0 || got[0] != wantBC {
		t.Errorf("%s: basic constraints %v, want %s", cs.Name, got, wantBC)
	}
}

// parseOpenSSLExtensions maps "X509v3 Key Usage" to its comma-separated
// values from `openssl x509 -noout -ext ...` output.
func parseOpenSSLExtensions(text string) map[string][]string {
	out := map[string][]string{}
	var name string
	for _, line := range strings.Split(text, "\n") {
		if line == "" {
			continue
		}
		if !strings.HasPrefix(line, " ") {
			name = strings.TrimSuffix(strings.TrimSuffix(strings.TrimSpace(line), " critical"), ":")
			continue
		}
		for _, v := range strings.Split(line, ",") {
			if v = strings.TrimSpace(v); v != "" {
				out[name] = append(out[name], v)
			}
		}
	}
	return out
}

// opensslIP renders an IP as openssl prints it: IPv6 in eight uncompressed
// hexadecimal groups (0:0:0:0:0:0:0:1).
func opensslIP(ip net.IP) string {
	if v4 := ip.To4(); v4 != nil {
		return v4.String()
	}
	groups := make([]string, 8)
	for i := range groups {
		groups[i] = fmt.Sprintf("%X", uint16(ip[2*i])<<8|uint16(ip[2*i+1]))
	}
	return strings.Join(groups, ":")
}

func upperIPs(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		if strings.HasPrefix(v, "IP Address:") {
			v = strings.ToUpper(v)
			v = "IP Address:" + strings.TrimPrefix(v, "IP ADDRESS:")
		}
		out[i] = v
	}
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
