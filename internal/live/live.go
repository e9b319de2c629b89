// Package live checks a running cluster against its PKI: what each
// component really serves, and who each kubeconfig really is.
package live

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
)

// ServedChain dials addr (host:port), starts a TLS handshake and returns the
// chain the server presented, leaf first. The server is not verified: the
// point is to see what it serves, trusted or not. A server that requires a
// client certificate (etcd, the kubelet) still shows its chain before it
// refuses the handshake; that refusal is not an error here. serverName is
// sent as SNI (empty: none). ctx bounds the dial and the handshake.
func ServedChain(ctx context.Context, addr, serverName string) ([]*x509.Certificate, error) {
	var chain []*x509.Certificate
	cfg := &tls.Config{
		ServerName:         serverName,
		InsecureSkipVerify: true, // we report on the chain, we do not trust it
		MinVersion:         tls.VersionTLS12,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			for _, der := range raw {
				c, err := x509.ParseCertificate(der)
				if err != nil {
					return fmt.Errorf("parse served certificate: %w", err)
				}
				chain = append(chain, c)
			}
			return nil
		},
	}
	conn, err := (&tls.Dialer{Config: cfg}).DialContext(ctx, "tcp", addr)
	if conn != nil {
		conn.Close()
	}
	if len(chain) > 0 {
		return chain, nil
	}
	if err == nil {
		err = errors.New("no certificate presented")
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return nil, fmt.Errorf("dial %s: %w", addr, op.Err)
	}
	return nil, fmt.Errorf("tls handshake with %s: %w", addr, err)
}
