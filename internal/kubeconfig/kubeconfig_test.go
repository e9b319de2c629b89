package kubeconfig

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/client-go/tools/clientcmd"
	api "k8s.io/client-go/tools/clientcmd/api"

	"kubepki.dev/kubepki/internal/store"
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

// TestLoadMatchesLoadFromFile: Load reads through store.ReadFile, then
// gives what clientcmd.LoadFromFile gives: LocationOfOrigin on every
// cluster, user and context (what ResolveLocalPaths resolves a relative
// client-certificate against), empty maps rather than nil, and a missing
// file still satisfying fs.ErrNotExist.
func TestLoadMatchesLoadFromFile(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string]string{
		"files.conf": `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:6443", certificate-authority: pki/ca.crt}
users:
- name: u
  user: {client-certificate: pki/u.crt, client-key: pki/u.key}
contexts:
- name: u@c
  context: {cluster: c, user: u}
current-context: u@c
`,
		"empty.conf": "apiVersion: v1\nkind: Config\n",
	} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		want, err := clientcmd.LoadFromFile(path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if !apiequality.Semantic.DeepEqual(got, want) {
			t.Errorf("%s: Load = %+v, LoadFromFile = %+v", name, got, want)
		}
		if name == "files.conf" {
			if err := clientcmd.ResolveLocalPaths(got); err != nil {
				t.Fatal(err)
			}
			if cert := got.AuthInfos["u"].ClientCertificate; cert != filepath.Join(dir, "pki/u.crt") {
				t.Errorf("client-certificate resolved to %s, want it beside the kubeconfig", cert)
			}
		}
	}
	if _, err := Load(filepath.Join(dir, "absent.conf")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of a missing file: %v, want fs.ErrNotExist", err)
	}
}

// TestLoadFIFO: a FIFO in place of a kubeconfig is refused at once, under
// either policy, instead of blocking until a writer comes.
func TestLoadFIFO(t *testing.T) {
	for _, p := range []store.KeyPolicy{{}, {Insecure: true}} {
		path := filepath.Join(t.TempDir(), "admin.kubeconfig")
		if err := syscall.Mkfifo(path, 0o600); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { _, err := Read(path, p); done <- err }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), path+": not a regular file") {
				t.Fatalf("Read(%+v): %v, want not a regular file", p, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("Read(%+v) of a FIFO still blocked after 10s", p)
		}
	}
}
