package cluster

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"kubepki.dev/kubepki/internal/opensslconf"
	"kubepki.dev/kubepki/internal/pki"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/caconf")

// imported is what a golden file holds: the spec and the findings.
type imported struct {
	Spec     *Cluster  `json:"spec"`
	Findings []Finding `json:"findings"`
}

func importFile(t *testing.T, path string) (*Cluster, []Finding) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, fs, err := ImportOpenSSL(data, "ca.conf")
	if err != nil {
		t.Fatalf("ImportOpenSSL(%s): %v", path, err)
	}
	return c, fs
}

func TestImportOpenSSLGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/caconf/*.conf")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/caconf/*.conf: %v", err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			c, fs := importFile(t, path)
			if vfs := Validate(c); HasErrors(vfs) {
				t.Errorf("imported spec does not validate: %v", vfs)
			}
			got, err := yaml.Marshal(imported{Spec: c, Findings: fs})
			if err != nil {
				t.Fatal(err)
			}
			golden := strings.TrimSuffix(path, ".conf") + ".golden.yaml"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("import of %s differs from %s (rerun with -update and check the diff by eye); got:\n%s", path, golden, got)
			}
		})
	}
}

// The corrected ca.conf describes the same cluster without the mistakes.
func TestImportOpenSSLFixedKTHW(t *testing.T) {
	kthw, _ := importFile(t, "testdata/caconf/kthw.conf")
	fixed, fs := importFile(t, "testdata/caconf/kthw-fixed.conf")
	if !reflect.DeepEqual(fixed, kthw) {
		t.Errorf("the corrected ca.conf imports to a different spec:\n%+v\nwant\n%+v", fixed, kthw)
	}
	var fields []string
	for _, f := range fs {
		fields = append(fields, f.Field)
		for _, bad := range []string{"system:system:", "kubernetes.svc.", "Netscape"} {
			if strings.Contains(f.Message, bad) {
				t.Errorf("corrected ca.conf still gets %v", f)
			}
		}
	}
	want := []string{"ca.conf [admin_distinguished_name] O", "ca.conf [kube-api-server_alt_names] IP.1"}
	if !reflect.DeepEqual(fields, want) {
		t.Errorf("findings at %q, want only %q", fields, want)
	}
}

// node is a kubelet section with the given DN lines and extension lines.
func node(name, dn, ext string) string {
	return fmt.Sprintf("[%[1]s]\ndistinguished_name = %[1]s_dn\nreq_extensions = %[1]s_ext\n[%[1]s_dn]\n%[2]s\n[%[1]s_ext]\n%[3]s\n", name, dn, ext)
}

// api is a kube-api-server section with the given subjectAltName.
func api(sans string) string {
	return node("kube-api-server", "CN = kubernetes", "extendedKeyUsage = clientAuth, serverAuth\nsubjectAltName = "+sans)
}

func TestImportOpenSSLFindings(t *testing.T) {
	tests := []struct {
		name   string
		conf   string
		sev    Severity
		field  string
		phrase string
	}{
		{"doubled system: on kube-scheduler",
			node("kube-scheduler", "CN = system:kube-scheduler\nO = system:system:kube-scheduler", "extendedKeyUsage = clientAuth"),
			Warning, "ca.conf [kube-scheduler_dn] O", "the default ClusterRoleBinding system:kube-scheduler binds the user system:kube-scheduler (the CN), not a group"},
		{"doubled system: on kube-proxy",
			node("kube-proxy", "CN = system:kube-proxy\nO = system:system:node-proxier", "extendedKeyUsage = clientAuth"),
			Warning, "ca.conf [kube-proxy_dn] O", "ClusterRoleBinding system:node-proxier binds the user system:kube-proxy"},
		{"doubled system: on a user",
			node("jane", "CN = jane\nO = system:system:auditors", "extendedKeyUsage = clientAuth"),
			Warning, "ca.conf [jane_dn] O", `exists nowhere in Kubernetes, so nothing is granted through it; did you mean "system:auditors"?`},
		{"kubernetes.svc.<domain> SAN",
			api("DNS:kubernetes.svc.cluster.local, DNS:server.example, IP:10.32.0.1"),
			Warning, "ca.conf [kube-api-server_ext] subjectAltName", "kubernetes.svc.cluster.local is not a name of the kubernetes Service"},
		{"nsCertType and nsComment",
			node("admin", "CN = admin", "extendedKeyUsage = clientAuth\nnsCertType = client\nnsComment = \"Admin\""),
			Warning, "ca.conf [admin_ext] nsCertType", "nsCertType and nsComment are legacy Netscape extensions"},
		{"nsComment alone",
			node("admin", "CN = admin", "extendedKeyUsage = clientAuth\nnsComment = \"Admin\""),
			Warning, "ca.conf [admin_ext] nsComment", "nsComment is a legacy Netscape extension"},
		{"nsCertType = client on a server",
			api("DNS:server.example, IP:10.32.0.1") + "nsCertType = client\n",
			Warning, "ca.conf [kube-api-server_ext] nsCertType", `OpenSSL-based TLS clients (curl, Python) reject this certificate when it serves TLS ("unsuitable certificate purpose")`},
		{"node CN without system:node:",
			node("node-2", "CN = node-2\nO = system:nodes", "extendedKeyUsage = clientAuth, serverAuth"),
			Error, "ca.conf [node-2_dn] CN", "only recognise a kubelet as the user system:node:<nodeName>"},
		{"node O not system:nodes",
			node("node-2", "CN = system:node:node-2\nO = system:node", "extendedKeyUsage = clientAuth, serverAuth"),
			Error, "ca.conf [node-2_dn] O", `O is "system:node", not system:nodes`},
		{"node without O",
			node("node-2", "CN = system:node:node-2", "extendedKeyUsage = clientAuth, serverAuth"),
			Error, "ca.conf [node-2_dn] O", "only authorizes kubelets in the group system:nodes"},
		{"node without serverAuth",
			node("node-2", "CN = system:node:node-2\nO = system:nodes", "extendedKeyUsage = clientAuth"),
			Error, "ca.conf [node-2_ext] extendedKeyUsage", "lacks serverAuth"},
		{"node without clientAuth",
			node("node-2", "CN = system:node:node-2\nO = system:nodes", "extendedKeyUsage = serverAuth"),
			Error, "ca.conf [node-2_ext] extendedKeyUsage", "lacks clientAuth"},
		{"admin in system:masters",
			node("admin", "CN = admin\nO = system:masters", "extendedKeyUsage = clientAuth"),
			Warning, "ca.conf [admin_dn] O", "bypasses RBAC and authorization webhooks, and this certificate cannot be revoked short of rotating the CA"},
		{"API server without the service IP",
			api("DNS:kubernetes.default.svc.cluster.local, DNS:server.example"),
			Warning, "ca.conf [kube-api-server_ext] subjectAltName", "names no service IP"},
		{"API server without kubernetes.default.svc.<domain>",
			api("DNS:server.example, IP:10.32.0.1"),
			Warning, "ca.conf [kube-api-server_ext] subjectAltName", "lacks kubernetes.default.svc.cluster.local"},
		{"service CIDR prefix assumed",
			api("DNS:server.example, IP:10.32.0.1"),
			Warning, "ca.conf [kube-api-server_ext] subjectAltName", "the imported spec assumes 10.32.0.0/24"},
		{"service IP not first in its /24",
			api("DNS:server.example, IP:10.32.0.10"),
			Warning, "ca.conf [kube-api-server_ext] subjectAltName", "so the imported spec's kubernetes Service IP is 10.32.0.1"},
		{"no control plane inferable",
			api("IP:10.32.0.1"),
			Warning, "ca.conf [kube-api-server_ext] subjectAltName", `adds node "server" with the control-plane role and endpoint server:6443`},
		{"no API server",
			node("admin", "CN = admin", "extendedKeyUsage = clientAuth"),
			Warning, "ca.conf", "no kube-api-server section"},
		{"no [req]",
			node("admin", "CN = admin", "extendedKeyUsage = clientAuth"),
			Warning, "ca.conf", "no usable [req] section"},
		{"malformed line",
			"[req]\nCN = CA\nthis is not a setting\n",
			Warning, "ca.conf:3", "malformed line"},
		{"key with spaces",
			"[req]\nCN = CA\ncommon name = x\n",
			Warning, "ca.conf:3", "malformed line"},
		{"malformed section header",
			"[req]\nCN = CA\n[admin\n",
			Warning, "ca.conf:3", "malformed section header"},
		{".include",
			".include /etc/ssl/more.cnf\n[req]\nCN = CA\n",
			Warning, "ca.conf:1", ".include is not followed"},
		{"unterminated quote",
			"[req]\nCN = \"CA\n",
			Warning, "ca.conf:2", "unterminated quote"},
		{"alt names cycle",
			api("@alt") + "[alt]\nDNS.0 = server.example\nDNS.1 = @alt\n",
			Warning, "ca.conf [alt] DNS.1", "reference cycle"},
		{"bad IP SAN",
			api("IP:10.32.0.1, IP:10.32.0.999, DNS:server.example"),
			Warning, "ca.conf [kube-api-server_ext] subjectAltName", `"10.32.0.999" is not an IP address`},
		{"SAN item without a type",
			api("IP:10.32.0.1, server.example"),
			Warning, "ca.conf [kube-api-server_ext] subjectAltName", `"server.example" is not TYPE:value`},
		{"$ENV:: variable",
			node("admin", "CN = $ENV::USER", "extendedKeyUsage = clientAuth"),
			Warning, "ca.conf [admin_dn] CN", "$ENV:: references name the environment of whoever runs openssl and are not expanded"},
		{"component without clientAuth",
			node("kube-proxy", "CN = system:kube-proxy\nO = system:node-proxier", "extendedKeyUsage = serverAuth"),
			Error, "ca.conf [kube-proxy_ext] extendedKeyUsage", "lacks clientAuth: system:kube-proxy authenticates to the API server"},
		{"unknown certificate",
			node("etcd", "CN = etcd", "extendedKeyUsage = serverAuth"),
			Warning, "ca.conf [etcd]", `CN "etcd" is neither a node, a Kubernetes component nor a user`},
		{"certificate without CN",
			node("thing", "O = things", "extendedKeyUsage = clientAuth"),
			Warning, "ca.conf [thing_dn] CN", "no CN"},
		{"certificate without DN",
			kthwish + "[thing]\nreq_extensions = ext\n[ext]\nextendedKeyUsage = clientAuth\n",
			Warning, "ca.conf [thing]", "no distinguished name"},
		{"duplicate user",
			node("jane", "CN = jane", "extendedKeyUsage = clientAuth") + node("jane2", "CN = jane", "extendedKeyUsage = clientAuth"),
			Warning, "ca.conf [jane2_dn] CN", `user "jane" was already imported`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, fs, err := ImportOpenSSL([]byte(tt.conf), "ca.conf")
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range fs {
				if f.Severity == tt.sev && f.Field == tt.field && strings.Contains(f.Message, tt.phrase) {
					return
				}
			}
			t.Errorf("no %s at %q saying %q; got:\n%s", tt.sev, tt.field, tt.phrase, findingLines(fs))
		})
	}
}

func findingLines(fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintln(&b, f)
	}
	return b.String()
}

// Keys openssl or kubepki do not know are ignored without a word.
func TestImportOpenSSLIgnoresUnknownKeys(t *testing.T) {
	conf := "RANDFILE = $ENV::HOME/.rnd\n[req]\ndistinguished_name = req_dn\ndefault_bits = 4096\n[req_dn]\nCN = CA\nC = US\nemailAddress = ca@example.com\n" +
		api("DNS:kubernetes.default.svc.cluster.local, DNS:server.example, IP:10.32.0.1") + "authorityInfoAccess = caIssuers;URI:http://example.com/ca\n"
	_, fs, err := ImportOpenSSL([]byte(conf), "ca.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		for _, key := range []string{"RANDFILE", "default_bits", "emailAddress", "authorityInfoAccess"} {
			if strings.Contains(f.Field+f.Message, key) {
				t.Errorf("unknown key %s reported: %v", key, f)
			}
		}
	}
}

// kthwish is a small but complete ca.conf; tests vary parts of it.
const kthwish = `[req]
distinguished_name = req_dn
x509_extensions = ca_ext
[req_dn]
C = DE
ST = Berlin
L = Berlin
O = Example
CN = CA
[ca_ext]
basicConstraints = CA:TRUE
`

func TestImportOpenSSLSpec(t *testing.T) {
	worker := func(name string, ips []string, hostnames ...string) Node {
		return Node{Name: name, Roles: []Role{RoleWorker}, IPs: ips, Hostnames: hostnames}
	}
	cp := Node{Name: "cp", Roles: []Role{RoleControlPlane}, Hostnames: []string{"cp.example"}}
	stdAPI := api("IP:127.0.0.1, IP:10.96.0.1, DNS:kubernetes, DNS:kubernetes.default.svc.cluster.local, DNS:cp.example")
	tests := []struct {
		name  string
		conf  string
		check func(c *Cluster) any // returns the part under test
		want  any
	}{
		{"subject from [req]", kthwish + stdAPI,
			func(c *Cluster) any { return c.Subject }, Subject{Country: "DE", Province: "Berlin", Locality: "Berlin", Organization: "Example"}},
		{"inline SANs", stdAPI + node("n1", "CN = system:node:n1\nO = system:nodes", "extendedKeyUsage = clientAuth, serverAuth\nsubjectAltName = DNS:n1, DNS:n1.example, IP:127.0.0.1, IP:192.168.1.10"),
			func(c *Cluster) any { return c.Nodes }, []Node{cp, worker("n1", []string{"192.168.1.10"}, "n1.example")}},
		{"@alt_names SANs", stdAPI + node("n1", "CN = system:node:n1\nO = system:nodes", "extendedKeyUsage = clientAuth, serverAuth\nsubjectAltName = critical, @n1_alt") +
			"[n1_alt]\nDNS.0 = n1\nDNS.1 = N1.Example\nIP.0 = 127.0.0.1\nIP.1 = 192.168.1.10\nemail.0 = ops@example.com\n",
			func(c *Cluster) any { return c.Nodes }, []Node{cp, worker("n1", []string{"192.168.1.10"}, "n1.example")}},
		{"node by section name", stdAPI + node("worker-3", "CN = system:node:worker-3\nO = system:nodes", "extendedKeyUsage = serverAuth, clientAuth") +
			node("node-4", "CN = node-4\nO = system:nodes", "extendedKeyUsage = TLS Web Server Authentication, 1.3.6.1.5.5.7.3.2"),
			func(c *Cluster) any { return c.Nodes }, []Node{cp, worker("worker-3", nil), worker("node-4", nil)}},
		{"control plane that is also a worker", stdAPI + node("cp", "CN = system:node:cp\nO = system:nodes", "extendedKeyUsage = clientAuth, serverAuth\nsubjectAltName = IP:10.0.0.5"),
			func(c *Cluster) any { return c.Nodes }, []Node{{Name: "cp", Roles: []Role{RoleControlPlane, RoleWorker}, IPs: []string{"10.0.0.5"}, Hostnames: []string{"cp.example"}}}},
		{"API server", kthwish + api("IP:127.0.0.1, IP:192.168.0.9, IP:10.96.0.1, DNS:kubernetes, DNS:kubernetes.default.svc.corp.example, DNS:kubernetes.example.com, DNS:*.example.com, DNS:lb.example.com, DNS:cp.example.com"),
			func(c *Cluster) any { return []any{c.DNSDomain, c.ServiceCIDR, c.APIServer} },
			[]any{"corp.example", "10.96.0.0/24", APIServer{Endpoint: "lb.example.com:6443", ExtraSANs: []string{"kubernetes.example.com", "*.example.com", "cp.example.com", "192.168.0.9"}}}},
		{"IPv6 service IP", kthwish + api("IP:::1, IP:fd00:10:96::1, DNS:kubernetes.default.svc.cluster.local, DNS:cp.example"),
			func(c *Cluster) any { return c.ServiceCIDR }, "fd00:10:96::/112"},
		{"endpoint by IP", kthwish + api("IP:10.96.0.1, IP:192.168.0.9, DNS:kubernetes.default.svc.cluster.local"),
			func(c *Cluster) any { return []any{c.APIServer.Endpoint, c.Nodes[0].Name} }, []any{"192.168.0.9:6443", "server"}},
		{"users", kthwish + stdAPI + node("jane", "0.O = devs\n1.organizationName = ops\ncommonName = jane", "extendedKeyUsage = clientAuth") +
			node("bot", "CN = bot", "extendedKeyUsage = clientAuth, serverAuth") + node("admin", "CN = admin\nO = system:masters", "extendedKeyUsage = clientAuth"),
			func(c *Cluster) any { return c.Users }, []User{{Name: "jane", Groups: []string{"devs", "ops"}}}},
		{"prompt-style DN", kthwish + stdAPI + node("jane", "commonName = Your name\ncommonName_default = jane\ncommonName_max = 64\norganizationName = Group\norganizationName_default = devs", "extendedKeyUsage = clientAuth"),
			func(c *Cluster) any { return c.Users }, []User{{Name: "jane", Groups: []string{"devs"}}}},
		{"DN in the certificate section", stdAPI + "[jane]\nprompt = no\nCN = jane\nO = devs\nreq_extensions = jane_ext\n[jane_ext]\nextendedKeyUsage = clientAuth\n",
			func(c *Cluster) any { return c.Users }, []User{{Name: "jane", Groups: []string{"devs"}}}},
		{"DN found by its name", stdAPI + "[jane]\nreq_extensions = jane_ext\n[jane_distinguished_name]\nCN = jane\n[jane_ext]\nextendedKeyUsage = clientAuth\n",
			func(c *Cluster) any { return c.Users }, []User{{Name: "jane"}}},
		{"extensions from the default section", "req_extensions = client\n" + stdAPI + "[jane]\ndistinguished_name = jane_dn\n[jane_dn]\nCN = jane\n[client]\nextendedKeyUsage = clientAuth\n",
			func(c *Cluster) any { return c.Users }, []User{{Name: "jane"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, fs, err := ImportOpenSSL([]byte(tt.conf), "ca.conf")
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.check(c); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v\nwant %#v\nfindings:\n%s", got, tt.want, findingLines(fs))
			}
		})
	}
}

func TestImportOpenSSLErrors(t *testing.T) {
	tests := []struct {
		name, conf, want string
	}{
		{"empty", "", "ca.conf: no certificate sections"},
		{"comments only", "# nothing\n\n; here\n", "ca.conf: no certificate sections"},
		{"no DN anywhere", "[a]\nk = v\n[b]\nextendedKeyUsage = clientAuth\n", "ca.conf: no certificate sections"},
		{"printable garbage", "}{ ][ =\"\x7f\n=====\n[[]]\n\u00e9\u0301 = \\\n", "ca.conf: no certificate sections"},
		{"NUL byte", "[req]\nCN = \x00\n", "ca.conf:2: binary data"},
		{"invalid UTF-8", "[req]\n\nCN = \xff\xfe\n", "ca.conf:3: binary data"},
		{"over 1 MiB", strings.Repeat("# padding\n", opensslconf.MaxSize/10+1), "over the 1048576-byte limit"},
		// openssl refuses a file that names a section it does not have, or a
		// $variable with no value: the error names the file, the line, the
		// section and the key.
		{"missing distinguished_name section", "[admin]\ndistinguished_name = nowhere\n[admin_dn]\nCN = admin\n",
			"ca.conf:2: [admin] distinguished_name names section [nowhere], which does not exist (openssl refuses such a file)"},
		{"missing extensions section", "[admin]\nCN = admin\nreq_extensions = nowhere\n",
			"ca.conf:3: [admin] req_extensions names section [nowhere], which does not exist"},
		{"missing alt names section", api("@nowhere"),
			"ca.conf:8: [kube-api-server_ext] subjectAltName names section [nowhere], which does not exist"},
		{"missing section inside alt names", api("@alt") + "[alt]\nDNS.0 = server.example\nDNS.1 = @gone\n",
			"ca.conf:11: [alt] DNS.1 names section [gone], which does not exist"},
		{"section named in another case", api("@Alt") + "[alt]\nDNS.0 = server.example\n",
			"ca.conf:8: [kube-api-server_ext] subjectAltName names section [Alt], which does not exist (openssl refuses such a file); openssl's section names are case-sensitive: did you mean [alt]?"},
		{"variable with no value", "[admin]\nCN = $user\n", "ca.conf:2: $user has no value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, fs, err := ImportOpenSSL([]byte(tt.conf), "ca.conf")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one saying %q", err, tt.want)
			}
			if c != nil || fs != nil {
				t.Errorf("got a spec or findings with the error")
			}
		})
	}
}

// Hostile inputs end quickly: the work stays linear however sections are
// shared, chained or oversized.
func TestImportOpenSSLBounds(t *testing.T) {
	repeat := func(n int, f func(i int) string) string {
		var b strings.Builder
		for i := range n {
			b.WriteString(f(i))
		}
		return b.String()
	}
	kubelet := func(i int) string {
		return node(fmt.Sprintf("node-%d", i), fmt.Sprintf("CN = system:node:node-%d\nO = system:nodes", i), "extendedKeyUsage = clientAuth, serverAuth\nsubjectAltName = @big")
	}
	tests := []struct {
		name, conf, phrase string
	}{
		{"many certificates share a large @section",
			"[big]\n" + repeat(5000, func(i int) string { return fmt.Sprintf("DNS.%d = n%d.example\n", i, i) }) + repeat(3000, kubelet),
			"subjectAltName entries in the file; the rest are ignored"},
		{"a deep chain of @sections",
			node("node-0", "CN = system:node:node-0\nO = system:nodes", "extendedKeyUsage = clientAuth, serverAuth\nsubjectAltName = @c0") +
				repeat(30000, func(i int) string { return fmt.Sprintf("[c%d]\nx = @c%d\n", i, i+1) }),
			"subjectAltName entries in the file; the rest are ignored"},
		{"many @references inline",
			api("IP:10.32.0.1, DNS:server.example, " + strings.Repeat("@kube-api-server_ext,", 300)),
			"reference cycle"},
		{"many certificates share a large DN and extension section",
			"[dn]\nCN = jane\n" + repeat(20000, func(i int) string { return fmt.Sprintf("%d.O = g%d\n", i, i) }) +
				"[ext]\nextendedKeyUsage = " + strings.Repeat("clientAuth,", 700) + "\n" +
				repeat(8000, func(i int) string { return fmt.Sprintf("[u%d]\ndistinguished_name = dn\nreq_extensions = ext\n", i) }),
			"more than 64 subject attributes"},
		{"many certificates share a long default reference",
			"distinguished_name = " + strings.Repeat("x", opensslconf.MaxLine-30) + "\n" + repeat(20000, func(i int) string { return fmt.Sprintf("[u%d]\nCN = u%d\nreq_extensions = e\n", i, i) }),
			"which does not exist (openssl refuses such a file)"},
		{"an overlong line",
			"[req]\nCN = CA\nk = " + strings.Repeat("v", 2*opensslconf.MaxLine) + "\n",
			"line longer than"},
		{"a file of continuations",
			"[req]\nCN = CA\n" + strings.Repeat("x\\\n", opensslconf.MaxSize/4),
			"line longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.conf) > opensslconf.MaxSize {
				t.Fatalf("test input is %d bytes, over the limit", len(tt.conf))
			}
			start := time.Now()
			c, fs, err := ImportOpenSSL([]byte(tt.conf), "ca.conf")
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %v", d)
			}
			if err != nil {
				// A refusal must be the one the case is about.
				if !strings.Contains(err.Error(), tt.phrase) {
					t.Fatal(err)
				}
				return
			}
			if _, err := Marshal(c); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(findingLines(fs), tt.phrase) {
				t.Errorf("no finding saying %q", tt.phrase)
			}
		})
	}
}

// What the tutorial's ca.conf declares beyond kubepki's catalog is kept in
// the spec's components: kube-proxy, kube-scheduler and
// kube-controller-manager have serverAuth and SANs; admin and
// service-accounts have nothing more.
func TestImportOpenSSLComponents(t *testing.T) {
	extra := func(name string) Component {
		return Component{ExtraUsages: []pki.Usage{pki.UsageServerAuth}, ExtraSANs: []string{name, "127.0.0.1"}}
	}
	tests := []struct {
		name string
		conf string
		want map[string]Component
	}{
		{"the tutorial's ca.conf", "", map[string]Component{
			"kube-proxy": extra("kube-proxy"), "kube-scheduler": extra("kube-scheduler"), "kube-controller-manager": extra("kube-controller-manager"),
		}},
		{"SANs from an @section", kthwish + node("admin", "CN = admin", "extendedKeyUsage = clientAuth\nsubjectAltName = @admin_alt") + "[admin_alt]\nDNS.0 = admin.example\nIP.0 = 10.0.0.9\nemail.0 = ops@example.com\n",
			map[string]Component{"admin": {ExtraSANs: []string{"admin.example", "10.0.0.9"}}}},
		{"nothing beyond the catalog", kthwish + node("kube-scheduler", "CN = system:kube-scheduler", "extendedKeyUsage = clientAuth"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c *Cluster
			if tt.conf == "" {
				c, _ = importFile(t, "testdata/caconf/kthw.conf")
			} else {
				var err error
				if c, _, err = ImportOpenSSL([]byte(tt.conf), "ca.conf"); err != nil {
					t.Fatal(err)
				}
			}
			if !reflect.DeepEqual(c.Components, tt.want) {
				t.Errorf("components %#v\nwant %#v", c.Components, tt.want)
			}
			if fs := Validate(c); HasErrors(fs) {
				t.Errorf("imported spec does not validate: %v", fs)
			}
		})
	}
}
