package testenv

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strconv"
	"testing"
)

// EtcdConfig configures StartEtcd. All files are PEM. The server and peer
// certificates must be valid for IP 127.0.0.1.
type EtcdConfig struct {
	// CertFile and KeyFile are the client-facing serving certificate.
	CertFile, KeyFile string
	// TrustedCAFile verifies client certificates (--client-cert-auth) and
	// the serving certificate in the readiness probe.
	TrustedCAFile string
	// PeerCertFile, PeerKeyFile and PeerTrustedCAFile secure the peer port
	// (--peer-client-cert-auth). Empty values fall back to CertFile,
	// KeyFile and TrustedCAFile: a single member never dials its peers.
	PeerCertFile, PeerKeyFile, PeerTrustedCAFile string
	// ClientCertFile and ClientKeyFile are the client certificate (signed
	// by the etcd CA, with client auth usage) the readiness probe presents.
	// Empty values fall back to CertFile and KeyFile, which then need the
	// client auth extended key usage too.
	ClientCertFile, ClientKeyFile string
	// DataDir defaults to a fresh directory under t.TempDir(); reuse one to
	// restart etcd with its data.
	DataDir string
	// ClientPort and PeerPort default to FreePort.
	ClientPort, PeerPort int
	// ExtraArgs are appended to the generated flags.
	ExtraArgs []string
}

// StartEtcd starts a single-member etcd on 127.0.0.1 with --client-cert-auth
// and --peer-client-cert-auth and waits until it answers /health over TLS. It
// returns the client endpoint (https://127.0.0.1:PORT).
func StartEtcd(t testing.TB, bins Binaries, cfg EtcdConfig) (endpoint string, p *Process) {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.ClientPort == 0 {
		cfg.ClientPort = FreePort(t)
	}
	if cfg.PeerPort == 0 {
		cfg.PeerPort = FreePort(t)
	}
	cfg.PeerCertFile = or(cfg.PeerCertFile, cfg.CertFile)
	cfg.PeerKeyFile = or(cfg.PeerKeyFile, cfg.KeyFile)
	cfg.PeerTrustedCAFile = or(cfg.PeerTrustedCAFile, cfg.TrustedCAFile)
	cfg.ClientCertFile = or(cfg.ClientCertFile, cfg.CertFile)
	cfg.ClientKeyFile = or(cfg.ClientKeyFile, cfg.KeyFile)

	probeTLS, err := etcdProbeTLS(cfg)
	if err != nil {
		t.Fatalf("testenv: start etcd: %v", err)
	}

	endpoint = "https://127.0.0.1:" + strconv.Itoa(cfg.ClientPort)
	peer := "https://127.0.0.1:" + strconv.Itoa(cfg.PeerPort)
	const name = "testenv"
	args := []string{
		"--name=" + name,
		"--data-dir=" + cfg.DataDir,
		"--listen-client-urls=" + endpoint,
		"--advertise-client-urls=" + endpoint,
		"--listen-peer-urls=" + peer,
		"--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=" + name + "=" + peer,
		"--initial-cluster-state=new",
		"--client-cert-auth",
		"--trusted-ca-file=" + cfg.TrustedCAFile,
		"--cert-file=" + cfg.CertFile,
		"--key-file=" + cfg.KeyFile,
		"--peer-client-cert-auth",
		"--peer-trusted-ca-file=" + cfg.PeerTrustedCAFile,
		"--peer-cert-file=" + cfg.PeerCertFile,
		"--peer-key-file=" + cfg.PeerKeyFile,
	}
	args = append(args, cfg.ExtraArgs...)
	p = Start(t, "etcd", bins.Etcd, args...)
	WaitReady(t, endpoint+"/health", probeTLS, p)
	return endpoint, p
}

// etcdProbeTLS builds the client TLS config for etcd's /health.
func etcdProbeTLS(cfg EtcdConfig) (*tls.Config, error) {
	return clientTLS(cfg.TrustedCAFile, cfg.ClientCertFile, cfg.ClientKeyFile)
}

// ClientTLS returns a TLS client config that trusts the PEM CA bundle in
// caFile and, if certFile is not empty, presents the PEM client certificate
// certFile with the key in keyFile. Use it for WaitReady probes.
func ClientTLS(t testing.TB, caFile, certFile, keyFile string) *tls.Config {
	t.Helper()
	c, err := clientTLS(caFile, certFile, keyFile)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return c
}

func clientTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("read CA bundle %s: no PEM certificates", caFile)
	}
	conf := &tls.Config{RootCAs: pool}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
}

// or returns s, or def if s is empty.
func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
