package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/lifecycle"
	"kubepki.dev/kubepki/internal/store"
	"kubepki.dev/kubepki/internal/testenv"
)

// TestRenewOnRealControlPlane brings up etcd, kube-apiserver,
// kube-controller-manager and kube-scheduler from `kubepki wiring`, renews
// every certificate with `kubepki certs renew all`, refreshes the node tree
// with `kubepki bundle`, restarts every component with the same flags, and
// checks that the cluster comes back on the new certificates: the servers
// present them, every kubeconfig authenticates as its identity, the
// controllers lead again, and service-account tokens still work.
//
// It uses the components' fixed ports (2379, 2380, 10257, 10259), like
// TestControlPlaneFromWiring: never run it in parallel with that test.
func TestRenewOnRealControlPlane(t *testing.T) {
	bins := testenv.Build(t)
	bin := testenv.Kubepki(t)
	tests := []struct {
		profile    string
		admin      string // a kubeconfig with cluster-admin rights
		apiCert    string // the API server's serving certificate
		etcdCert   string // etcd's serving certificate
		etcdCA     string
		etcdClient string // a client of etcd
	}{
		{
			profile: "kubeadm", admin: "super-admin.conf",
			apiCert: "apiserver", etcdCert: "etcd/server", etcdCA: "etcd/ca", etcdClient: "etcd/healthcheck-client",
		},
		{
			profile: "hardway", admin: "admin.kubeconfig",
			apiCert: "kube-api-server", etcdCert: "kube-api-server", etcdCA: "ca", etcdClient: "kube-api-server",
		},
	}
	for _, tc := range tests {
		t.Run(tc.profile, func(t *testing.T) {
			port := testenv.FreePort(t)
			w := newWiredCluster(t, bin, tc.profile, port)
			spec, pkiDir, kcDir, bundles, root, common := w.spec, w.pkiDir, w.kcDir, w.bundles, w.root, w.common
			admin := filepath.Join(kcDir, tc.admin)
			pkiFile := func(stem string) string { return filepath.Join(pkiDir, stem) }

			c, err := cluster.Load(spec)
			if err != nil {
				t.Fatal(err)
			}
			plan, err := catalog.New(c, catalog.Profile(tc.profile))
			if err != nil {
				t.Fatal(err)
			}
			st := store.Store{Dir: pkiDir, KubeconfigDir: kcDir}

			components := []struct{ name, bin string }{
				{"etcd", bins.Etcd},
				{"kube-apiserver", bins.KubeAPIServer},
				{"kube-controller-manager", bins.KubeControllerManager},
				{"kube-scheduler", bins.KubeScheduler},
			}
			wired := func(component string) []string { return w.flags(t, component) }
			flags := map[string][]string{}
			for _, comp := range components {
				flags[comp.name] = wired(comp.name)
			}
			procs := map[string]*testenv.Process{}
			start := func() {
				t.Helper()
				for _, comp := range components {
					procs[comp.name] = testenv.Start(t, comp.name, comp.bin, flags[comp.name]...)
					if comp.name == "kube-apiserver" {
						waitFor(t, 90*time.Second, "kube-apiserver /readyz", func() error {
							_, err := testenv.Kubectl(t, bins, admin, "get", "--raw", "/readyz")
							return err
						})
					}
				}
				for name, p := range map[string]int{"kube-controller-manager": 10257, "kube-scheduler": 10259} {
					waitFor(t, 90*time.Second, name+" /healthz", func() error { return healthz(p) })
				}
			}
			holder := func(name string) (string, error) {
				out, err := testenv.Kubectl(t, bins, admin, "get", "lease", "-n", "kube-system", name, "-o", "jsonpath={.spec.holderIdentity}")
				return strings.TrimSpace(out), err
			}
			leaders := []string{"kube-controller-manager", "kube-scheduler"}

			start()
			held := map[string]string{}
			for _, name := range leaders {
				waitFor(t, 90*time.Second, name+" lease", func() error {
					h, err := holder(name)
					if err == nil && h == "" {
						return errString("lease has no holder yet")
					}
					held[name] = h
					return err
				})
			}
			// A service-account token from before the renewal: workloads
			// hold such tokens and must keep working.
			if out, err := testenv.Kubectl(t, bins, admin, "create", "namespace", "renewal"); err != nil {
				t.Fatalf("create namespace: %v\n%s", err, out)
			}
			if out, err := testenv.Kubectl(t, bins, admin, "create", "serviceaccount", "-n", "renewal", "app"); err != nil {
				t.Fatalf("create serviceaccount: %v\n%s", err, out)
			}
			oldToken, err := testenv.Kubectl(t, bins, admin, "create", "token", "-n", "renewal", "app", "--duration", "2h")
			if err != nil {
				t.Fatalf("create token: %v", err)
			}
			tokenConfig := tokenKubeconfig(t, "https://127.0.0.1:"+strconv.Itoa(port), pkiFile("ca.crt"), strings.TrimSpace(oldToken))
			assertIdentity(t, bins, tokenConfig, "system:serviceaccount:renewal:app", "system:serviceaccounts:renewal")

			before := leafSerials(t, plan, st)
			if got := servedSerial(t, "127.0.0.1:"+strconv.Itoa(port), pkiFile("ca.crt"), "", ""); got != before[tc.apiCert] {
				t.Fatalf("kube-apiserver serves serial %s, want %s's %s", got, tc.apiCert, before[tc.apiCert])
			}

			out := run(t, bin, append([]string{"certs", "renew", "all"}, common...)...)
			restart := ""
			for _, l := range strings.Split(out, "\n") {
				if rest, ok := strings.CutPrefix(l, "restart to load the new certificates: "); ok {
					restart = rest
				}
			}
			named := strings.Split(restart, ", ")
			for _, comp := range components {
				if !slices.Contains(named, comp.name+" on server") {
					t.Errorf("renew all does not name %s on server among the components to restart: %q\n%s", comp.name, restart, out)
				}
			}
			for _, k := range identities(tc.profile) {
				if !strings.Contains(out, filepath.Join(kcDir, k.file)) {
					t.Errorf("renew all does not report rewriting %s:\n%s", k.file, out)
				}
			}
			run(t, bin, append([]string{"verify"}, common...)...)
			after := leafSerials(t, plan, st)
			for name, serial := range before {
				if after[name] == serial {
					t.Errorf("%s: serial %s unchanged by renew all", name, serial)
				}
			}

			// The node tree is refreshed: the control plane reads the new files.
			run(t, bin, append([]string{"bundle", "--out", bundles}, common...)...)
			scheduler := map[string]string{"kubeadm": "scheduler.conf", "hardway": "kube-scheduler"}[tc.profile]
			schedulerKubeconfig, _ := plan.Kubeconfig(scheduler)
			for _, f := range []struct{ installed, source string }{
				{bundlePath(plan, "server", catalog.SourceCert, tc.apiCert), st.CertPath(specPath(plan, tc.apiCert))},
				{bundlePath(plan, "server", catalog.SourceKey, tc.apiCert), st.KeyPath(specPath(plan, tc.apiCert))},
				{bundlePath(plan, "server", catalog.SourceCert, specName(plan, tc.etcdCert)), pkiFile(tc.etcdCert + ".crt")},
				{bundlePath(plan, "server", catalog.SourceKubeconfig, scheduler), st.KubeconfigPath(schedulerKubeconfig.File)},
			} {
				if f.installed == "" {
					t.Fatalf("the server's bundle does not install %s", f.source)
				}
				got, err := os.ReadFile(filepath.Join(root, f.installed))
				if err != nil {
					t.Fatal(err)
				}
				if want, _ := os.ReadFile(f.source); string(got) != string(want) {
					t.Errorf("bundle did not refresh %s from %s", f.installed, f.source)
				}
			}

			// Stop everything, then start it again with the very same flags.
			for i := len(components) - 1; i >= 0; i-- {
				procs[components[i].name].Stop()
			}
			for _, comp := range components {
				if again := wired(comp.name); !slices.Equal(again, flags[comp.name]) {
					t.Errorf("wiring of %s changed with the renewal:\n%q\nwas\n%q", comp.name, again, flags[comp.name])
				}
			}
			start()

			// The servers present the renewed certificates.
			if got := servedSerial(t, "127.0.0.1:"+strconv.Itoa(port), pkiFile("ca.crt"), "", ""); got != after[tc.apiCert] {
				t.Errorf("kube-apiserver serves serial %s after the restart, want the renewed %s's %s", got, tc.apiCert, after[tc.apiCert])
			}
			etcdServing := specName(plan, tc.etcdCert)
			if got := servedSerial(t, "127.0.0.1:2379", pkiFile(tc.etcdCA+".crt"), pkiFile(tc.etcdClient+".crt"), pkiFile(tc.etcdClient+".key")); got != after[etcdServing] {
				t.Errorf("etcd serves serial %s after the restart, want the renewed %s's %s", got, etcdServing, after[etcdServing])
			}

			// Every kubeconfig authenticates as its identity with its new
			// certificate.
			for _, id := range identities(tc.profile) {
				assertIdentity(t, bins, filepath.Join(kcDir, id.file), id.user, append(id.groups, "system:authenticated")...)
			}

			// The restarted controllers lead again: the lease is held by the
			// new process (a new holder identity), which its renewed
			// kubeconfig authorizes.
			for _, name := range leaders {
				waitFor(t, 120*time.Second, name+" lease re-acquired", func() error {
					h, err := holder(name)
					switch {
					case err != nil:
						return err
					case h == "":
						return errString("lease has no holder")
					case h == held[name]:
						return errString("lease still held by the stopped process " + h)
					}
					return nil
				})
			}
			// The controller manager works: the namespace's default service
			// account appears, and a new token authenticates.
			waitFor(t, 60*time.Second, "default service account", func() error {
				_, err := testenv.Kubectl(t, bins, admin, "get", "serviceaccount", "-n", "renewal", "default")
				return err
			})
			newToken, err := testenv.Kubectl(t, bins, admin, "create", "token", "-n", "renewal", "app")
			if err != nil {
				t.Fatalf("create token after the renewal: %v", err)
			}
			assertIdentity(t, bins, tokenKubeconfig(t, "https://127.0.0.1:"+strconv.Itoa(port), pkiFile("ca.crt"), strings.TrimSpace(newToken)),
				"system:serviceaccount:renewal:app", "system:serviceaccounts:renewal")
			// And the token issued before the renewal still works: renewing
			// certificates must not rotate the service-account signing key.
			assertIdentity(t, bins, tokenConfig, "system:serviceaccount:renewal:app", "system:serviceaccounts:renewal")
		})
	}
}

// leafSerials reads every leaf of the plan, name → serial.
func leafSerials(t *testing.T, plan *catalog.Plan, st store.Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, c := range plan.Leaves() {
		cert, _, err := lifecycle.ReadPair(plan, st, c)
		if err != nil {
			t.Fatalf("read %s: %v", c.Name, err)
		}
		out[c.Name] = cert.SerialNumber.String()
	}
	return out
}

// specName is the plan certificate whose files are stem.
func specName(plan *catalog.Plan, stem string) string {
	for _, c := range plan.Certs {
		if c.Path == stem && !c.Embedded {
			return c.Name
		}
	}
	return stem
}

func specPath(plan *catalog.Plan, name string) string {
	c, _ := plan.Cert(name)
	return c.Path
}

// bundlePath is where a node's bundle installs a source.
func bundlePath(plan *catalog.Plan, node string, kind catalog.SourceKind, name string) string {
	b, _ := plan.Bundle(node)
	return b.Path(kind, name)
}

// servedSerial connects to a TLS server, verifying it against caFile, and
// returns the serial of the certificate it presents.
func servedSerial(t *testing.T, addr, caFile, certFile, keyFile string) string {
	t.Helper()
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(ca)
	conf := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		conf.Certificates = []tls.Certificate{pair}
	}
	conn, err := tls.Dial("tcp", addr, conf)
	if err != nil {
		t.Fatalf("TLS to %s: %v", addr, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// tokenKubeconfig writes a kubeconfig that authenticates with a bearer token.
func tokenKubeconfig(t *testing.T, server, caFile, token string) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["test"] = &clientcmdapi.Cluster{Server: server, CertificateAuthority: caFile}
	cfg.AuthInfos["test"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "test"}
	cfg.CurrentContext = "test"
	path := filepath.Join(t.TempDir(), "token.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}
