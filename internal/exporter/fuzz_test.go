package exporter

import (
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	api "k8s.io/client-go/tools/clientcmd/api"

	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/pkitest"
)

// FuzzParse: whatever a watched file holds, parsing it neither panics nor
// returns certificates and an error at once, and a kubeconfig's entries
// are the names it holds.
func FuzzParse(f *testing.F) {
	now := time.Now()
	ca := pkitest.CA(f, "fuzz-ca", time.Hour, now)
	key := pkitest.Key(f, pki.ECDSAP256)
	certPEM := pki.EncodeCert(ca.Cert)
	f.Add(certPEM)
	f.Add(append(certPEM, pkitest.EncodeKey(f, key)...))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("-----BEGIN EC PRIVATE KEY-----\n\n-----END EC PRIVATE KEY-----\n"))
	cfg := api.NewConfig()
	cfg.Clusters["c"] = &api.Cluster{Server: "https://127.0.0.1:6443", CertificateAuthorityData: certPEM}
	cfg.AuthInfos["u"] = &api.AuthInfo{ClientCertificateData: certPEM, ClientKeyData: pkitest.EncodeKey(f, key)}
	cfg.AuthInfos["r"] = &api.AuthInfo{ClientCertificate: "u.crt", ClientKey: "../u.key"}
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte("apiVersion: v1\nkind: Config\nusers: [{name: x, user: {client-certificate-data: AAAA}}]\n"))
	f.Add([]byte("{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, kind := range []fileKind{kindAny, kindPEM, kindKubeconfig} {
			c := parse(data, kind, "/dir")
			if c.err != nil && (len(c.certs) > 0 || c.kubeconfig != nil) {
				t.Fatalf("kind %d: an error and content: %v", kind, c.err)
			}
			if c.err == nil && len(c.certs) == 0 && c.pub == nil && c.kubeconfig == nil {
				t.Fatalf("kind %d: no error and nothing read", kind)
			}
			if kc := c.kubeconfig; kc != nil {
				for _, cr := range append(kc.clusters, kc.users...) {
					if cr.file != "" && cr.file[0] != '/' {
						t.Fatalf("referenced file %q not made absolute", cr.file)
					}
				}
			}
		}
	})
}
