package inspect

import (
	"bytes"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"unicode"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"kubepki.dev/kubepki/internal/pki"
)

// FuzzDescribe feeds arbitrary input through Describe, Link, WriteText and
// JSON encoding: none may panic, Describe returns objects or an error, and
// the text output holds no control character but newlines.
func FuzzDescribe(f *testing.F) {
	ca := newCA(f, "kubernetes-ca")
	key := testKey(f, pki.ECDSAP256)
	admin := issue(f, ca, key, pki.Profile{Subject: pki.Subject{CommonName: "system:node:n", Organization: []string{"system:nodes", "system:system:x"}}, Usages: clientServer, DNSNames: []string{"n"}, IPs: []net.IP{net.ParseIP("10.0.0.1")}})
	csr, err := pki.CreateCSR(key, pki.Profile{Subject: pki.Subject{CommonName: "admin", Organization: []string{"system:masters"}}, Usages: client})
	if err != nil {
		f.Fatal(err)
	}
	pub, err := pki.EncodePublicKey(key.Public())
	if err != nil {
		f.Fatal(err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["c"] = &clientcmdapi.Cluster{Server: "https://127.0.0.1:6443", CertificateAuthorityData: pki.EncodeCert(ca.Cert)}
	cfg.AuthInfos["u"] = &clientcmdapi.AuthInfo{ClientCertificateData: pki.EncodeCert(admin), ClientKeyData: encodeKey(f, key)}
	kubeconfig, err := clientcmd.Write(*cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pki.EncodeCert(ca.Cert))
	f.Add(append(pki.EncodeCert(admin), encodeKey(f, key)...))
	f.Add(pki.EncodeCSR(csr))
	f.Add(pub)
	f.Add(admin.Raw)
	f.Add(kubeconfig)
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("apiVersion: v1\nkind: Config\nusers:\n- name: x\n  user:\n    client-certificate-data: AAAA\n"))

	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<20 {
			t.Skip("bounded: inputs over 1 MiB are not interesting here")
		}
		objs, err := Describe("fuzz", data, testNow)
		if err == nil && len(objs) == 0 {
			t.Fatal("no error and no object")
		}
		if err != nil && objs != nil {
			t.Fatalf("objects and an error: %v", err)
		}
		Link(objs)
		var b bytes.Buffer
		if err := WriteText(&b, objs); err != nil {
			t.Fatal(err)
		}
		if i := strings.IndexFunc(b.String(), func(r rune) bool { return r != '\n' && !unicode.IsPrint(r) }); i >= 0 {
			t.Fatalf("text output has a non-printable character at %d: %q", i, b.String())
		}
		if _, err := json.Marshal(objs); err != nil {
			t.Fatal(err)
		}
	})
}
