package e2e

import (
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/testenv"
)

// TestInitOnRealControlPlane runs kubepki init for each layout and a fast
// and a slow key algorithm, starts etcd and kube-apiserver on the result, and
// checks that the API server is reachable by every name a client uses and
// that each client certificate authenticates as the identity it was made for.
func TestInitOnRealControlPlane(t *testing.T) {
	bins := testenv.Build(t)
	bin := testenv.Kubepki(t)
	tests := []struct {
		profile, alg string
	}{
		{"kubeadm", "ECDSA-P256"},
		{"kubeadm", "RSA-2048"},
		{"hardway", "ECDSA-P256"},
		{"hardway", "RSA-2048"},
	}
	for _, tc := range tests {
		t.Run(tc.profile+"/"+tc.alg, func(t *testing.T) {
			port := testenv.FreePort(t)
			spec := loopbackSpec(t, port, func(c *cluster.Cluster) {
				// The kubeadm layout has no admin or kubelet certificate in
				// its pki directory; extra users give the test both identities.
				c.Users = []cluster.User{
					{Name: "jane", Groups: []string{"developers"}},
					{Name: "system:node:node-0", Groups: []string{"system:nodes"}},
				}
			})
			dir := filepath.Join(t.TempDir(), "pki")
			run(t, bin, "init", "--config", spec, "--dir", dir, "--profile", tc.profile, "--key-algorithm", tc.alg)
			run(t, bin, "verify", "--config", spec, "--dir", dir, "--profile", tc.profile)

			f := func(stem string) string { return filepath.Join(dir, stem) }
			var cfg testenv.APIServerConfig
			var admin, node [2]string
			switch tc.profile {
			case "kubeadm":
				endpoint, _ := testenv.StartEtcd(t, bins, testenv.EtcdConfig{
					CertFile: f("etcd/server.crt"), KeyFile: f("etcd/server.key"), TrustedCAFile: f("etcd/ca.crt"),
					PeerCertFile: f("etcd/peer.crt"), PeerKeyFile: f("etcd/peer.key"),
					ClientCertFile: f("etcd/healthcheck-client.crt"), ClientKeyFile: f("etcd/healthcheck-client.key"),
				})
				cfg = testenv.APIServerConfig{
					Port: port, EtcdEndpoint: endpoint, ServiceCIDR: "10.32.0.0/24",
					EtcdCAFile: f("etcd/ca.crt"), EtcdCertFile: f("apiserver-etcd-client.crt"), EtcdKeyFile: f("apiserver-etcd-client.key"),
					ClientCAFile: f("ca.crt"), TLSCertFile: f("apiserver.crt"), TLSKeyFile: f("apiserver.key"),
					ServiceAccountKeyFile: f("sa.pub"), ServiceAccountSigningKeyFile: f("sa.key"),
					KubeletClientCert: f("apiserver-kubelet-client.crt"), KubeletClientKey: f("apiserver-kubelet-client.key"),
					RequestHeaderClientCAFile: f("front-proxy-ca.crt"),
					ProxyClientCertFile:       f("front-proxy-client.crt"), ProxyClientKeyFile: f("front-proxy-client.key"),
				}
				admin = [2]string{f("users/jane.crt"), f("users/jane.key")}
				node = [2]string{f("users/system:node:node-0.crt"), f("users/system:node:node-0.key")}
			case "hardway":
				// The hard way runs etcd on loopback with the cluster CA; the
				// API server's own certificate (client and server auth) serves
				// as etcd's, as it is the only etcd client.
				endpoint, _ := testenv.StartEtcd(t, bins, testenv.EtcdConfig{
					CertFile: f("kube-api-server.crt"), KeyFile: f("kube-api-server.key"), TrustedCAFile: f("ca.crt"),
				})
				cfg = testenv.APIServerConfig{
					Port: port, EtcdEndpoint: endpoint, ServiceCIDR: "10.32.0.0/24",
					EtcdCAFile: f("ca.crt"), EtcdCertFile: f("kube-api-server.crt"), EtcdKeyFile: f("kube-api-server.key"),
					ClientCAFile: f("ca.crt"), TLSCertFile: f("kube-api-server.crt"), TLSKeyFile: f("kube-api-server.key"),
					ServiceAccountKeyFile: f("service-accounts.crt"), ServiceAccountSigningKeyFile: f("service-accounts.key"),
					KubeletClientCert: f("kube-api-server.crt"), KubeletClientKey: f("kube-api-server.key"),
				}
				admin = [2]string{f("admin.crt"), f("admin.key")}
				node = [2]string{f("node-0.crt"), f("node-0.key")}
			}
			testenv.StartAPIServer(t, bins, cfg, clientTLS(t, f("ca.crt"), admin[0], admin[1], "127.0.0.1"))

			// /readyz over TLS verified against our CA, by IP and by the
			// in-cluster service name.
			url := "https://127.0.0.1:" + strconv.Itoa(port) + "/readyz"
			for _, name := range []string{"127.0.0.1", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "10.32.0.1"} {
				client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: clientTLS(t, f("ca.crt"), "", "", name)}}
				resp, err := client.Get(url)
				if err != nil {
					t.Errorf("readyz verified as %s: %v", name, err)
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("readyz verified as %s: status %d", name, resp.StatusCode)
				}
			}
			// A name the certificate does not carry must fail verification:
			// proof that the check above is real.
			bad := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: clientTLS(t, f("ca.crt"), "", "", "kubernetes.svc.cluster.local")}}
			if resp, err := bad.Get(url); err == nil {
				resp.Body.Close()
				t.Error("TLS verification accepted kubernetes.svc.cluster.local, which the certificate must not name")
			}

			server := "https://127.0.0.1:" + strconv.Itoa(port)
			if tc.profile == "hardway" {
				assertIdentity(t, bins, writeKubeconfig(t, server, f("ca.crt"), admin[0], admin[1]), "admin", "system:masters", "system:authenticated")
			} else {
				assertIdentity(t, bins, writeKubeconfig(t, server, f("ca.crt"), admin[0], admin[1]), "jane", "developers", "system:authenticated")
			}
			assertIdentity(t, bins, writeKubeconfig(t, server, f("ca.crt"), node[0], node[1]), "system:node:node-0", "system:nodes", "system:authenticated")

			// openssl agrees that every certificate chains to its CA.
			for _, leaf := range leafFiles(tc.profile) {
				ca := f("ca.crt")
				if strings.HasPrefix(leaf, "etcd/") || leaf == "apiserver-etcd-client" {
					ca = f("etcd/ca.crt")
				} else if leaf == "front-proxy-client" {
					ca = f("front-proxy-ca.crt")
				}
				if out, err := exec.Command("openssl", "verify", "-CAfile", ca, f(leaf+".crt")).CombinedOutput(); err != nil {
					t.Errorf("openssl verify %s: %v\n%s", leaf, err, out)
				}
			}
		})
	}
}

func leafFiles(profile string) []string {
	if profile == "kubeadm" {
		return []string{"apiserver", "apiserver-kubelet-client", "front-proxy-client", "etcd/server", "etcd/peer", "etcd/healthcheck-client", "apiserver-etcd-client"}
	}
	return []string{"admin", "node-0", "node-1", "kube-proxy", "kube-scheduler", "kube-controller-manager", "kube-api-server", "service-accounts"}
}
