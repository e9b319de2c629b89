package live

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestServedChain(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert} // like etcd and the kubelet
	srv.StartTLS()
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	chain, err := ServedChain(ctx, srv.Listener.Addr().String(), "example.com")
	if err != nil {
		t.Fatalf("ServedChain: %v", err)
	}
	if want := srv.Certificate(); len(chain) != 1 || !chain[0].Equal(want) {
		t.Errorf("got %d certificates, want the server's own %s", len(chain), want.Subject)
	}

	// Nothing listening: the error names the address.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	if _, err := ServedChain(ctx, closed, ""); err == nil || !strings.Contains(err.Error(), closed) {
		t.Errorf("closed port: err = %v, want one naming %s", err, closed)
	}

	// A plain TCP server that is not TLS.
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	go func() {
		for {
			c, err := plain.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
			c.Close()
		}
	}()
	if _, err := ServedChain(ctx, plain.Addr().String(), ""); err == nil || !strings.Contains(err.Error(), "tls handshake") {
		t.Errorf("plain TCP: err = %v, want a tls handshake error", err)
	}
}
