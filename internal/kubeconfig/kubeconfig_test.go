package kubeconfig

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	api "k8s.io/client-go/tools/clientcmd/api"
)

func TestCreateLoadAndSetClientPair(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.conf")
	cfg := New(Params{Cluster: "c", User: "u", Context: "u@c", Server: "https://127.0.0.1:6443",
		CA: []byte("ca"), Cert: []byte("cert"), Key: []byte("key")})
	if err := Create(path, cfg); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o, want 0600", fi.Mode().Perm())
	}
	if err := Create(path, cfg); err == nil {
		t.Error("Create overwrote an existing kubeconfig")
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	// Another context the user added must survive a renewal.
	got.Contexts["other"] = &api.Context{Cluster: "c", AuthInfo: "u", Namespace: "dev"}
	if err := SetClientPair(got, []byte("ca2"), []byte("cert2"), []byte("key2")); err != nil {
		t.Fatal(err)
	}
	if err := Replace(path, got); err != nil {
		t.Fatal(err)
	}
	again, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	cl, user, err := Current(again)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cl.CertificateAuthorityData, []byte("ca2")) || !bytes.Equal(user.ClientCertificateData, []byte("cert2")) || !bytes.Equal(user.ClientKeyData, []byte("key2")) {
		t.Errorf("client pair not replaced: %+v %+v", cl, user)
	}
	if c := again.Contexts["other"]; c == nil || c.Namespace != "dev" || cl.Server != "https://127.0.0.1:6443" {
		t.Error("Replace lost the rest of the kubeconfig")
	}
	// Data that is not a certificate is an error, not a panic.
	if _, _, err := ClientPair(again); err == nil {
		t.Error("ClientPair accepted non-PEM data")
	}
}

func TestCurrentErrors(t *testing.T) {
	cfg := api.NewConfig()
	cfg.CurrentContext = "missing"
	if _, _, err := Current(cfg); err == nil {
		t.Error("Current accepted a missing context")
	}
	cfg = New(Params{Cluster: "c", User: "u", Context: "x"})
	cfg.AuthInfos["u"] = &api.AuthInfo{Token: "t"}
	if _, _, err := ClientPair(cfg); !errors.Is(err, ErrNoClientCert) {
		t.Errorf("ClientPair of a token user = %v, want ErrNoClientCert", err)
	}
}
