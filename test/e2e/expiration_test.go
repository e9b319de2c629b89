package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"kubepki.dev/kubepki/internal/testenv"
)

// expirationCell is one row of a check-expiration table, cut at the
// header's column offsets (cells may be empty or hold spaces).
type expirationCell map[string]string

// parseExpirationTables splits check-expiration's text into its two tables
// (certificates, then CAs), each row keyed by its first cell. kubeadm's
// "!MISSING! name" rows are keyed by name with EXPIRES "!MISSING!".
func parseExpirationTables(t *testing.T, out string) (certs, cas map[string]expirationCell, order [2][]string) {
	t.Helper()
	blocks := strings.SplitN(strings.TrimRight(out, "\n"), "\n\n", 2)
	if len(blocks) != 2 {
		t.Fatalf("want two tables separated by a blank line:\n%s", out)
	}
	parse := func(i int, block string) map[string]expirationCell {
		lines := strings.Split(block, "\n")
		header := lines[0]
		var names []string
		var starts []int
		for _, h := range strings.Split(header, "   ") {
			if h = strings.TrimSpace(h); h != "" {
				names = append(names, h)
				starts = append(starts, strings.Index(header, h))
			}
		}
		rows := map[string]expirationCell{}
		for _, l := range lines[1:] {
			row := expirationCell{}
			for j, name := range names {
				end := len(l)
				if j+1 < len(starts) && starts[j+1] < end {
					end = starts[j+1]
				}
				if starts[j] < end {
					row[name] = strings.TrimSpace(l[starts[j]:end])
				}
			}
			key := row[names[0]]
			if rest, ok := strings.CutPrefix(key, "!MISSING! "); ok {
				key, row[names[0]], row["EXPIRES"] = rest, rest, "!MISSING!"
			}
			rows[key] = row
			order[i] = append(order[i], key)
		}
		return rows
	}
	return parse(0, blocks[0]), parse(1, blocks[1]), order
}

// kubeadmExpiration is a certificate of kubeadm's
// CertificateExpirationInfo (output.kubeadm.k8s.io/v1alpha3).
type kubeadmExpiration struct {
	Name              string `json:"name"`
	ExpirationDate    string `json:"expirationDate"`
	ResidualTime      int64  `json:"residualTime"`
	CAName            string `json:"caName"`
	ExternallyManaged bool   `json:"externallyManaged"`
	Missing           bool   `json:"missing"`
}

// runSplit runs a command and returns stdout, stderr and the exit code.
func runSplit(t *testing.T, name string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return stdout.String(), stderr.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return stdout.String(), stderr.String(), 0
}

// TestCheckExpirationMatchesKubeadm makes a PKI and kubeconfigs with the
// real kubeadm (init phase certs/kubeconfig all), runs the real
// `kubeadm certs check-expiration` and `kubepki certs check-expiration
// --config <the same kubeadm file>` on it, and compares them row by row:
// every kubeadm row is in kubepki's table, byte for byte, and kubepki adds
// kubelet.conf (which kubeadm leaves out). The JSON of both agree too.
//
// kubeadm's check-expiration reads the kubeconfigs from /etc/kubernetes
// whatever its flags say (cmd/kubeadm/app/cmd/certs.go passes
// kubeadmconstants.KubernetesDir), so the PKI is a testenv.KubeadmNode,
// laid out as <root>/etc/kubernetes, and kubeadm is run with --rootfs
// <root> (KubeadmInRoot), which chroots and so needs root.
func TestCheckExpirationMatchesKubeadm(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("kubeadm check-expiration reads kubeconfigs only from /etc/kubernetes; its --rootfs (chroot) needs root")
	}
	bin := testenv.Kubepki(t)
	tests := []struct {
		name string
		// cluster is added to the ClusterConfiguration.
		cluster string
		// remove are files removed (relative to etc/kubernetes) after
		// kubeadm made everything.
		remove []string
		// missing: kubepki exits 3, a file is missing.
		missing bool
	}{
		{name: "defaults"},
		{name: "missing file", remove: []string{"pki/etcd/healthcheck-client.crt"}, missing: true},
		{
			// 1000h shows as "41d", 26280h as "2y364d"; ca.crt without
			// ca.key is kubeadm's external CA mode.
			name:    "short validity and external CA",
			cluster: "certificateValidityPeriod: 1000h\ncaCertificateValidityPeriod: 26280h\n",
			remove:  []string{"pki/ca.key"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Nothing here listens; the address only goes into the
			// apiserver certificate and the kubeconfigs.
			node := testenv.NewKubeadmNode(t, testenv.KubeadmNodeConfig{NodeName: "node-0", AdvertiseAddress: "192.0.2.10", ClusterConfiguration: tc.cluster})
			kdir, pkiDir := node.Dir, node.PKIDir
			for _, f := range tc.remove {
				if err := os.Remove(filepath.Join(kdir, f)); err != nil {
					t.Fatal(err)
				}
			}

			kubeadm := func(extra ...string) string {
				out, _ := node.KubeadmInRoot(t, append([]string{"certs", "check-expiration"}, extra...)...)
				return out
			}
			ours := func(extra ...string) string {
				// The same kubeadm configuration as kubeadm's.
				args := append([]string{"certs", "check-expiration", "--config", node.Config, "--dir", pkiDir, "--kubeconfig-dir", kdir}, extra...)
				out, errs, code := runSplit(t, bin, args...)
				// kubelet.conf is node-0's, a node of the default spec; the
				// other nodes' kubelet kubeconfigs live on those nodes, not
				// here, and are not missing.
				if want := map[bool]int{true: 3, false: 0}[tc.missing]; code != want || tc.missing != strings.Contains(errs, "missing") {
					t.Fatalf("kubepki %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, want, out, errs)
				}
				return out
			}
			theirText, ourText := kubeadm(), ours()
			t.Logf("kubeadm:\n%s\nkubepki:\n%s", theirText, ourText)

			theirCerts, theirCAs, theirOrder := parseExpirationTables(t, theirText)
			ourCerts, ourCAs, ourOrder := parseExpirationTables(t, ourText)
			if len(theirCerts) != 11 || len(theirCAs) != 3 {
				t.Fatalf("kubeadm printed %d certificates and %d CAs, want 11 and 3", len(theirCerts), len(theirCAs))
			}
			compare := func(kind string, theirs, ours map[string]expirationCell, order []string) {
				for _, name := range order {
					our, ok := ours[name]
					if !ok {
						t.Errorf("%s %s: in kubeadm's table, not in kubepki's", kind, name)
						continue
					}
					for col, want := range theirs[name] {
						got := our[col]
						if want == "!MISSING!" && col == "EXPIRES" {
							want = "<missing>"
						}
						if theirs[name]["EXPIRES"] == "!MISSING!" && col != "CERTIFICATE" && col != "EXPIRES" {
							continue // kubeadm leaves a missing row's other cells empty
						}
						if got != want {
							t.Errorf("%s %s, %s: kubepki %q, kubeadm %q", kind, name, col, got, want)
						}
					}
				}
			}
			compare("certificate", theirCerts, ourCerts, theirOrder[0])
			compare("CA", theirCAs, ourCAs, theirOrder[1])

			// Same order: kubepki's rows are kubeadm's with its own
			// additions in place.
			var common []string
			for _, n := range ourOrder[0] {
				if _, ok := theirCerts[n]; ok {
					common = append(common, n)
				}
			}
			if strings.Join(common, ",") != strings.Join(theirOrder[0], ",") {
				t.Errorf("order: kubepki %q, kubeadm %q", common, theirOrder[0])
			}
			// kubepki's own row: kubelet.conf as kubeadm wrote it (node-0's);
			// no row for another node's kubelet kubeconfig.
			adminRow := theirCerts["admin.conf"]
			if k := ourCerts["kubelet.conf"]; k == nil || k["EXPIRES"] != adminRow["EXPIRES"] || k["RESIDUAL TIME"] != adminRow["RESIDUAL TIME"] ||
				k["CERTIFICATE AUTHORITY"] != "ca" || k["EXTERNALLY MANAGED"] != adminRow["EXTERNALLY MANAGED"] {
				t.Errorf("kubelet.conf row %v, want it like admin.conf's %v", ourCerts["kubelet.conf"], adminRow)
			}
			for _, n := range []string{"kubelet-server.conf", "kubelet-node-0.conf", "kubelet-node-1.conf"} {
				if r := ourCerts[n]; r != nil {
					t.Errorf("%s row %v, want none (kubelet.conf is this node's)", n, r)
				}
			}
			if len(ourCerts) != len(theirCerts)+1 || len(ourCAs) != len(theirCAs) {
				t.Errorf("kubepki has %d+%d rows, want kubeadm's %d+%d and kubelet.conf", len(ourCerts), len(ourCAs), len(theirCerts), len(theirCAs))
			}
			// Where both print a row, the lines are byte for byte the same:
			// the column widths agree, as kubepki's extra names are shorter
			// — unless kubeadm has a "!MISSING! name" row, which widens its
			// first column.
			if !strings.Contains(theirText, "!MISSING!") {
				ourLines := map[string]bool{}
				for _, l := range strings.Split(ourText, "\n") {
					ourLines[l] = true
				}
				for _, l := range strings.Split(theirText, "\n") {
					if !ourLines[l] {
						t.Errorf("kubeadm's line %q is not in kubepki's output", l)
					}
				}
			}
			// The CA tables are identical.
			if _, theirCATable, _ := strings.Cut(theirText, "\n\n"); !strings.HasSuffix(ourText, "\n\n"+theirCATable) {
				t.Errorf("CA tables differ")
			}

			// JSON: kubeadm's CertificateExpirationInfo and kubepki's report
			// agree, and kubepki's JSON agrees with its table.
			var theirJSON struct {
				Certificates, CertificateAuthorities []kubeadmExpiration
			}
			if err := json.Unmarshal([]byte(kubeadm("-o", "json")), &theirJSON); err != nil {
				t.Fatal(err)
			}
			type ourEntry struct {
				Name              string `json:"name"`
				NotAfter          string `json:"notAfter"`
				ResidualSeconds   int64  `json:"residualSeconds"`
				Residual          string `json:"residual"`
				CA                string `json:"ca"`
				ExternallyManaged bool   `json:"externallyManaged"`
				Missing           bool   `json:"missing"`
				Expired           bool   `json:"expired"`
				ExpiringSoon      bool   `json:"expiringSoon"`
			}
			var ourJSON struct {
				Certificates, CertificateAuthorities []ourEntry
			}
			if err := json.Unmarshal([]byte(ours("-o", "json")), &ourJSON); err != nil {
				t.Fatal(err)
			}
			index := func(es []ourEntry) map[string]ourEntry {
				m := map[string]ourEntry{}
				for _, e := range es {
					m[e.Name] = e
				}
				return m
			}
			for i, pair := range []struct {
				theirs []kubeadmExpiration
				ours   map[string]ourEntry
				table  map[string]expirationCell
			}{
				{theirJSON.Certificates, index(ourJSON.Certificates), ourCerts},
				{theirJSON.CertificateAuthorities, index(ourJSON.CertificateAuthorities), ourCAs},
			} {
				if i == 0 && len(ourJSON.Certificates) != len(ourCerts) || i == 1 && len(ourJSON.CertificateAuthorities) != len(ourCAs) {
					t.Errorf("JSON and table have different rows")
				}
				for _, th := range pair.theirs {
					o, ok := pair.ours[th.Name]
					if !ok {
						t.Errorf("JSON: %s missing from kubepki's", th.Name)
						continue
					}
					if o.Missing != th.Missing {
						t.Errorf("JSON %s: kubepki %+v, kubeadm %+v", th.Name, o, th)
					}
					if th.Missing {
						continue // kubeadm says nothing more about a missing file
					}
					if o.CA != th.CAName || o.ExternallyManaged != th.ExternallyManaged {
						t.Errorf("JSON %s: kubepki %+v, kubeadm %+v", th.Name, o, th)
					}
					// The two ran a moment apart.
					if o.NotAfter != th.ExpirationDate || o.ResidualSeconds > th.ResidualTime || th.ResidualTime-o.ResidualSeconds > 60 {
						t.Errorf("JSON %s: notAfter %s residual %ds; kubeadm %s %ds", th.Name, o.NotAfter, o.ResidualSeconds, th.ExpirationDate, th.ResidualTime)
					}
				}
				for name, o := range pair.ours {
					row := pair.table[name]
					if o.Missing {
						if row["EXPIRES"] != "<missing>" {
							t.Errorf("%s: JSON missing, table %v", name, row)
						}
						continue
					}
					ext := map[bool]string{true: "yes", false: "no"}[o.ExternallyManaged]
					if row["RESIDUAL TIME"] != o.Residual || row["EXTERNALLY MANAGED"] != ext || o.Expired || o.ExpiringSoon {
						t.Errorf("%s: JSON %+v, table %v", name, o, row)
					}
				}
			}
		})
	}
}
