package inspect

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"kubepki.dev/kubepki/internal/pki"
)

var (
	client       = []pki.Usage{pki.UsageClientAuth}
	server       = []pki.Usage{pki.UsageServerAuth}
	clientServer = []pki.Usage{pki.UsageClientAuth, pki.UsageServerAuth}
)

func TestDescribeCertificateIdentity(t *testing.T) {
	ca := newCA(t, "kubernetes-ca")
	type note struct {
		sev         Severity
		about, text string
	}
	tests := []struct {
		name       string
		profile    pki.Profile
		subject    string
		role       Role
		noIdentity bool
		notes      []note
	}{
		{
			name:    "admin in system:masters",
			profile: pki.Profile{Subject: pki.Subject{CommonName: "admin", Organization: []string{"system:masters"}}, Usages: client},
			subject: "O = system:masters, CN = admin",
			role:    RoleClient,
			notes:   []note{{Warning, `group "system:masters"`, "bypasses RBAC and all authorization webhooks: full, irrevocable cluster admin"}},
		},
		{
			name:    "kubelet",
			profile: pki.Profile{Subject: pki.Subject{CommonName: "system:node:worker-1", Organization: []string{"system:nodes"}}, Usages: clientServer, DNSNames: []string{"worker-1"}, IPs: []net.IP{net.ParseIP("10.0.0.21")}},
			subject: "O = system:nodes, CN = system:node:worker-1",
			role:    RoleClientServer,
			notes:   []note{{Info, `user "system:node:worker-1"`, "a kubelet: authorized by the Node authorizer and limited by NodeRestriction to node worker-1"}},
		},
		{
			name:    "system:nodes without a node CN",
			profile: pki.Profile{Subject: pki.Subject{CommonName: "worker-1", Organization: []string{"system:nodes"}}, Usages: client},
			subject: "O = system:nodes, CN = worker-1",
			role:    RoleClient,
			notes:   []note{{Warning, `group "system:nodes"`, "the Node authorizer will not recognise it"}},
		},
		{
			name:    "node CN without system:nodes",
			profile: pki.Profile{Subject: pki.Subject{CommonName: "system:node:worker-1"}, Usages: client},
			subject: "CN = system:node:worker-1",
			role:    RoleClient,
			notes:   []note{{Warning, `user "system:node:worker-1"`, "the Node authorizer will not recognise it as a node"}},
		},
		{
			name:    "scheduler",
			profile: pki.Profile{Subject: pki.Subject{CommonName: "system:kube-scheduler", Organization: []string{"system:kube-scheduler"}}, Usages: client},
			subject: "O = system:kube-scheduler, CN = system:kube-scheduler",
			role:    RoleClient,
			notes: []note{
				{Info, `user "system:kube-scheduler"`, "default ClusterRoleBindings system:kube-scheduler and system:volume-scheduler"},
				{Info, `group "system:kube-scheduler"`, "no default binding names this group"},
			},
		},
		{
			name:    "scheduler with the typo group",
			profile: pki.Profile{Subject: pki.Subject{CommonName: "system:kube-scheduler", Organization: []string{"system:system:kube-scheduler"}}, Usages: client},
			subject: "O = system:system:kube-scheduler, CN = system:kube-scheduler",
			role:    RoleClient,
			notes:   []note{{Warning, `group "system:system:kube-scheduler"`, `typo for "system:kube-scheduler"`}},
		},
		{
			name:    "controller manager",
			profile: pki.Profile{Subject: pki.Subject{CommonName: "system:kube-controller-manager"}, Usages: client},
			role:    RoleClient,
			notes:   []note{{Info, `user "system:kube-controller-manager"`, "ClusterRoleBinding system:kube-controller-manager"}},
		},
		{
			name:    "kube-proxy",
			profile: pki.Profile{Subject: pki.Subject{CommonName: "system:kube-proxy", Organization: []string{"system:node-proxier"}}, Usages: client},
			role:    RoleClient,
			notes:   []note{{Info, `user "system:kube-proxy"`, "ClusterRoleBinding system:node-proxier"}},
		},
		{
			name:    "service account name and group",
			profile: pki.Profile{Subject: pki.Subject{CommonName: "system:serviceaccount:kube-system:builder", Organization: []string{"system:serviceaccounts:kube-system"}}, Usages: client},
			role:    RoleClient,
			notes: []note{
				{Info, `user "system:serviceaccount:kube-system:builder"`, "service account kube-system/builder"},
				{Info, `group "system:serviceaccounts:kube-system"`, "namespace kube-system"},
			},
		},
		{
			name:    "kubeadm admin",
			profile: pki.Profile{Subject: pki.Subject{CommonName: "kubernetes-admin", Organization: []string{"kubeadm:cluster-admins"}}, Usages: client},
			role:    RoleClient,
			notes:   []note{{Info, `group "kubeadm:cluster-admins"`, "revocable"}},
		},
		{
			name:       "API server serving certificate",
			profile:    pki.Profile{Subject: pki.Subject{CommonName: "kube-apiserver"}, Usages: server, DNSNames: []string{"kubernetes.default"}},
			subject:    "CN = kube-apiserver",
			role:       RoleServer,
			noIdentity: true,
		},
		{
			name:    "no extended key usage",
			profile: pki.Profile{Subject: pki.Subject{CommonName: "anything", Organization: []string{"system:authenticated"}}},
			role:    RoleAny,
			notes:   []note{{Info, `group "system:authenticated"`, "changes nothing"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := issue(t, ca, testKey(t, pki.ECDSAP256), tt.profile)
			o := describeOne(t, "x.crt", pki.EncodeCert(c), testNow)
			if o.Kind != KindCertificate || o.Certificate == nil || o.Error != "" {
				t.Fatalf("got %+v, want a certificate", o)
			}
			d := o.Certificate
			if tt.subject != "" && d.Subject != tt.subject {
				t.Errorf("Subject = %q, want %q", d.Subject, tt.subject)
			}
			if d.Role != tt.role {
				t.Errorf("Role = %q, want %q", d.Role, tt.role)
			}
			if tt.noIdentity {
				if d.Identity != nil {
					t.Errorf("Identity = %+v, want none", d.Identity)
				}
				return
			}
			if d.Identity == nil {
				t.Fatal("no identity")
			}
			if d.Identity.User != tt.profile.Subject.CommonName {
				t.Errorf("User = %q, want %q", d.Identity.User, tt.profile.Subject.CommonName)
			}
			if want := tt.profile.Subject.Organization; !slices.Equal(d.Identity.Groups, want) && len(want)+len(d.Identity.Groups) > 0 {
				t.Errorf("Groups = %q, want %q", d.Identity.Groups, want)
			}
			sum := sha256.Sum256(c.Raw)
			if want := "X509SHA256=" + hex.EncodeToString(sum[:]); d.Identity.CredentialID != want {
				t.Errorf("CredentialID = %q, want %q", d.Identity.CredentialID, want)
			}
			for _, n := range tt.notes {
				if !hasNote(d.Identity.Notes, n.sev, n.about, n.text) {
					t.Errorf("no %s note about %s containing %q in %+v", n.sev, n.about, n.text, d.Identity.Notes)
				}
			}
			if len(tt.notes) == 0 && len(d.Identity.Notes) > 0 {
				t.Errorf("unexpected notes %+v", d.Identity.Notes)
			}
		})
	}
}

func TestDescribeCertificateFields(t *testing.T) {
	ca := newCA(t, "kubernetes-ca")
	key := testKey(t, pki.RSA2048)
	c := issue(t, ca, key, pki.Profile{
		Subject:  pki.Subject{CommonName: "system:node:worker-1", Organization: []string{"system:nodes"}},
		Usages:   clientServer,
		DNSNames: []string{"worker-1", "worker-1.example.com"},
		IPs:      []net.IP{net.ParseIP("10.0.0.21")},
	})
	d := describeOne(t, "node.crt", pki.EncodeCert(c), testNow.Add(time.Hour)).Certificate

	checks := []struct{ field, got, want string }{
		{"Issuer", d.Issuer, "CN = kubernetes-ca"},
		{"NotBefore", d.NotBefore.Format(time.RFC3339), "2026-03-14T15:04:26Z"},
		{"NotAfter", d.NotAfter.Format(time.RFC3339), "2027-03-14T15:09:26Z"},
		{"Expiry", d.Expiry, "364d 23h left"},
		{"SANs", strings.Join(d.SANs, " "), "DNS:worker-1 DNS:worker-1.example.com IP:10.0.0.21"},
		{"KeyUsage", strings.Join(d.KeyUsage, " "), "digitalSignature keyEncipherment"},
		{"ExtKeyUsage", strings.Join(d.ExtKeyUsage, ","), "client auth,server auth"},
		{"KeyAlgorithm", d.KeyAlgorithm, "RSA-2048"},
		{"SignatureAlgorithm", d.SignatureAlgorithm, "ECDSA-SHA256"},
		{"SubjectKeyID", d.SubjectKeyID, colonHex(c.SubjectKeyId)},
		{"AuthorityKeyID", d.AuthorityKeyID, colonHex(ca.Cert.SubjectKeyId)},
		{"Serial", strings.ReplaceAll(d.Serial, ":", ""), strings.ToUpper(hex.EncodeToString(c.SerialNumber.Bytes()))},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.field, c.got, c.want)
		}
	}
	if len(d.Serial)%3 != 2 || strings.Contains(d.Serial, "::") {
		t.Errorf("Serial %q is not colon-separated bytes", d.Serial)
	}
	if d.SelfSigned || d.IsCA || d.MaxPathLen != nil || !d.BasicConstraints || d.KubeadmCACertHash != "" {
		t.Errorf("leaf described as %+v", d)
	}
	fp := sha256.Sum256(c.Raw)
	if want := colonHex(fp[:]); d.SHA256Fingerprint != want || want != strings.ToUpper(want) || len(want) != 32*3-1 {
		t.Errorf("SHA256Fingerprint = %q, want %q", d.SHA256Fingerprint, want)
	}
	spki := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	if d.PublicKeySHA256 != colonHex(spki[:]) {
		t.Errorf("PublicKeySHA256 = %q, want %q", d.PublicKeySHA256, colonHex(spki[:]))
	}
}

func TestDescribeCA(t *testing.T) {
	ca := newCA(t, "kubernetes-ca")
	o := describeOne(t, "ca.crt", pki.EncodeCert(ca.Cert), testNow)
	d := o.Certificate
	if !d.IsCA || !d.SelfSigned || d.Role != RoleCA || d.Identity != nil {
		t.Errorf("CA described as %+v", d)
	}
	if d.Role.Describe() != "CA: signs certificates; not a client identity" {
		t.Errorf("Role.Describe() = %q", d.Role.Describe())
	}
	if !slices.Contains(d.KeyUsage, "keyCertSign") {
		t.Errorf("KeyUsage = %q, want keyCertSign", d.KeyUsage)
	}
	sum := sha256.Sum256(ca.Cert.RawSubjectPublicKeyInfo)
	if want := "sha256:" + hex.EncodeToString(sum[:]); d.KubeadmCACertHash != want {
		t.Errorf("KubeadmCACertHash = %q, want %q", d.KubeadmCACertHash, want)
	}
	if len(o.Warnings) > 0 {
		t.Errorf("warnings on a fresh CA: %q", o.Warnings)
	}
}

func TestExpiry(t *testing.T) {
	ca := newCA(t, "kubernetes-ca")
	c := issue(t, ca, testKey(t, pki.ECDSAP256), pki.Profile{Subject: pki.Subject{CommonName: "admin"}, Usages: client, Validity: 24 * time.Hour})
	tests := []struct {
		name             string
		now              time.Time
		expiry           string
		expired, notYet  bool
		warningSubstring string
	}{
		{"fresh", testNow, "1d left", false, false, ""},
		{"last minutes", testNow.Add(24*time.Hour - 90*time.Second), "1m 30s left", false, false, ""},
		{"expired", testNow.Add(4 * 24 * time.Hour), "expired 3d ago", true, false, "expired on 2026-03-15T15:09:26Z"},
		{"expired long ago", testNow.Add(24*time.Hour + 26*time.Hour + 5*time.Minute), "expired 1d 2h ago", true, false, "expired on"},
		{"not yet valid", testNow.Add(-2 * time.Hour), "not yet valid: starts in 1h 55m", false, true, "not valid before 2026-03-14T15:04:26Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := describeOne(t, "admin.crt", pki.EncodeCert(c), tt.now)
			d := o.Certificate
			if d.Expiry != tt.expiry || d.Expired != tt.expired || d.NotYetValid != tt.notYet {
				t.Errorf("Expiry, Expired, NotYetValid = %q, %v, %v; want %q, %v, %v", d.Expiry, d.Expired, d.NotYetValid, tt.expiry, tt.expired, tt.notYet)
			}
			if tt.warningSubstring == "" && len(o.Warnings) > 0 {
				t.Errorf("unexpected warnings %q", o.Warnings)
			}
			if tt.warningSubstring != "" && !containsSub(o.Warnings, tt.warningSubstring) {
				t.Errorf("warnings %q lack %q", o.Warnings, tt.warningSubstring)
			}
		})
	}
}

func TestDescribeCSR(t *testing.T) {
	key := testKey(t, pki.RSA2048)
	der, err := pki.CreateCSR(key, pki.Profile{
		Subject:  pki.Subject{CommonName: "system:node:worker-2", Organization: []string{"system:nodes"}},
		Usages:   clientServer,
		DNSNames: []string{"worker-2"},
		IPs:      []net.IP{net.ParseIP("10.0.0.22")},
	})
	if err != nil {
		t.Fatal(err)
	}
	o := describeOne(t, "node.csr", pki.EncodeCSR(der), testNow)
	r := o.CertificateRequest
	if o.Kind != KindCertificateRequest || r == nil {
		t.Fatalf("got %+v, want a CSR", o)
	}
	if r.Subject != "O = system:nodes, CN = system:node:worker-2" || !r.SignatureValid || r.KeyAlgorithm != "RSA-2048" {
		t.Errorf("CSR described as %+v", r)
	}
	if got := strings.Join(r.SANs, " "); got != "DNS:worker-2 IP:10.0.0.22" {
		t.Errorf("SANs = %q", got)
	}
	if got := strings.Join(r.KeyUsage, " "); got != "digitalSignature keyEncipherment" {
		t.Errorf("KeyUsage = %q", got)
	}
	if got := strings.Join(r.ExtKeyUsage, ","); got != "client auth,server auth" {
		t.Errorf("ExtKeyUsage = %q", got)
	}
	if r.Role != RoleClientServer || r.Identity == nil || r.Identity.User != "system:node:worker-2" || r.Identity.CredentialID != "" {
		t.Errorf("identity of CSR: role %q, %+v", r.Role, r.Identity)
	}
	if !hasNote(r.Identity.Notes, Info, `user "system:node:worker-2"`, "limited by NodeRestriction to node worker-2") {
		t.Errorf("notes %+v lack the kubelet note", r.Identity.Notes)
	}

	// A request whose signature is broken is still described, flagged.
	bad := bytes.Clone(der)
	bad[len(bad)-1] ^= 0xff
	o = describeOne(t, "bad.csr", pki.EncodeCSR(bad), testNow)
	if o.CertificateRequest == nil || o.CertificateRequest.SignatureValid || !containsSub(o.Warnings, "signature does not verify") {
		t.Errorf("tampered CSR described as %+v", o)
	}
}

func TestDescribeKeys(t *testing.T) {
	ca := newCA(t, "kubernetes-ca")
	for _, a := range []pki.KeyAlgorithm{pki.RSA2048, pki.ECDSAP256, pki.Ed25519} {
		t.Run(string(a), func(t *testing.T) {
			key := testKey(t, a)
			cert := issue(t, ca, key, pki.Profile{Subject: pki.Subject{CommonName: "admin"}, Usages: client})
			pub, err := pki.EncodePublicKey(key.Public())
			if err != nil {
				t.Fatal(err)
			}
			spki := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
			want := colonHex(spki[:])

			inputs := map[string][]byte{"pkcs8.key": encodeKey(t, key)}
			switch k := key.(type) {
			case *rsa.PrivateKey:
				inputs["pkcs1.key"] = pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
			case *ecdsa.PrivateKey:
				der, err := x509.MarshalECPrivateKey(k)
				if err != nil {
					t.Fatal(err)
				}
				params := pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7}})
				inputs["sec1.key"] = append(params, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})...)
			}
			all := []Object{describeOne(t, "admin.crt", pki.EncodeCert(cert), testNow)}
			for name, data := range inputs {
				o := describeOne(t, name, data, testNow)
				k := o.PrivateKey
				if o.Kind != KindPrivateKey || k == nil || o.Error != "" {
					t.Fatalf("%s: got %+v, want a private key", name, o)
				}
				if k.KeyAlgorithm != string(a) || k.PublicKeySHA256 != want || k.Encrypted {
					t.Errorf("%s: %+v, want %s with public key SHA-256 %s", name, k, a, want)
				}
				all = append(all, o)
			}
			o := describeOne(t, "admin.pub", pub, testNow)
			if o.PublicKey == nil || o.PublicKey.KeyAlgorithm != string(a) || o.PublicKey.PublicKeySHA256 != want || o.PublicKey.Format != "PKIX" {
				t.Errorf("public key: %+v", o)
			}
			all = append(all, o)

			Link(all)
			for _, o := range all[1:] {
				if !slices.Contains(o.Matches, "certificate CN=admin in admin.crt") {
					t.Errorf("%s matches %q, want the certificate", o.File, o.Matches)
				}
			}
			if !slices.Contains(all[0].Matches, "private key in pkcs8.key") || !slices.Contains(all[0].Matches, "public key in admin.pub") {
				t.Errorf("certificate matches %q", all[0].Matches)
			}
		})
	}
}

func TestEncryptedAndOtherBlocks(t *testing.T) {
	data := []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n" +
		"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n")
	objs, err := Describe("mixed.pem", data, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 || objs[0].PrivateKey == nil || !objs[0].PrivateKey.Encrypted || objs[1].Kind != KindOther || objs[1].PEMType != "X509 CRL" {
		t.Fatalf("got %+v", objs)
	}
	if objs[1].Location != "PEM block 2" {
		t.Errorf("Location = %q", objs[1].Location)
	}

	_, err = Describe("crl.pem", data[bytes.Index(data, []byte("-----BEGIN X509 CRL")):], testNow)
	if err == nil || err.Error() != `inspect crl.pem: no certificate, CSR, key or kubeconfig found (only PEM blocks of type "X509 CRL")` {
		t.Errorf("CRL only: err = %v", err)
	}
}

func TestLink(t *testing.T) {
	ca := newCA(t, "kubernetes-ca")
	impostor := newCA(t, "kubernetes-ca") // same name, other key
	key := newKey(t, pki.ECDSAP256)
	admin := issue(t, ca, key, pki.Profile{Subject: pki.Subject{CommonName: "admin", Organization: []string{"system:masters"}}, Usages: client})
	other := issue(t, ca, newKey(t, pki.ECDSAP256), pki.Profile{Subject: pki.Subject{CommonName: "other"}, Usages: client})

	var all []Object
	add := func(name string, data []byte) {
		objs, err := Describe(name, data, testNow)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, objs...)
	}
	add("ca.crt", pki.EncodeCert(ca.Cert))
	add("bundle.pem", append(pki.EncodeCert(admin), pki.EncodeCert(other)...))
	add("admin.key", encodeKey(t, key))
	Link(all)

	if got, want := all[1].Certificate.SignedBy, []string{"certificate CN=kubernetes-ca in ca.crt"}; !slices.Equal(got, want) {
		t.Errorf("SignedBy = %q, want %q", got, want)
	}
	if got, want := all[1].Matches, []string{"private key in admin.key"}; !slices.Equal(got, want) {
		t.Errorf("admin Matches = %q, want %q", got, want)
	}
	if got, want := all[3].Matches, []string{"certificate CN=admin in bundle.pem (PEM block 1)"}; !slices.Equal(got, want) {
		t.Errorf("key Matches = %q, want %q", got, want)
	}
	if len(all[2].Matches) != 0 || len(all[0].Matches) != 0 {
		t.Errorf("unrelated matches: %q, %q", all[0].Matches, all[2].Matches)
	}

	// Against a different CA of the same name: no SignedBy, a warning.
	objs, err := Describe("impostor.crt", pki.EncodeCert(impostor.Cert), testNow)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := Describe("admin.crt", pki.EncodeCert(admin), testNow)
	if err != nil {
		t.Fatal(err)
	}
	objs = append(objs, leaf...)
	Link(objs)
	if len(objs[1].Certificate.SignedBy) != 0 || !containsSub(objs[1].Warnings, "issuer name matches certificate CN=kubernetes-ca in impostor.crt, but that CA's key did not sign it") {
		t.Errorf("impostor: SignedBy %q, warnings %q", objs[1].Certificate.SignedBy, objs[1].Warnings)
	}
}

func TestLinkBounded(t *testing.T) {
	ca := newCA(t, "kubernetes-ca")
	key := testKey(t, pki.ECDSAP256)
	c := pki.EncodeCert(issue(t, ca, key, pki.Profile{Subject: pki.Subject{CommonName: "admin"}, Usages: client}))
	caPEM := pki.EncodeCert(ca.Cert)
	objs, err := Describe("many.pem", append(append(bytes.Repeat(caPEM, 50), bytes.Repeat(c, 50)...), encodeKey(t, key)...), testNow)
	if err != nil {
		t.Fatal(err)
	}
	Link(objs)
	k := objs[len(objs)-1]
	if len(k.Matches) != maxMatches+1 || k.Matches[maxMatches] != "and 40 more" {
		t.Errorf("key matches: %d, last %q", len(k.Matches), k.Matches[len(k.Matches)-1])
	}
	if n := len(objs[50].Certificate.SignedBy); n != maxIssuerChecks {
		t.Errorf("SignedBy has %d entries, want %d", n, maxIssuerChecks)
	}
}

func TestDescribeKubeconfig(t *testing.T) {
	ca := newCA(t, "kubernetes-ca")
	key := testKey(t, pki.ECDSAP256)
	admin := issue(t, ca, key, pki.Profile{Subject: pki.Subject{CommonName: "admin", Organization: []string{"system:masters"}}, Usages: client})
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kubernetes"] = &clientcmdapi.Cluster{Server: "https://10.0.0.1:6443", CertificateAuthorityData: pki.EncodeCert(ca.Cert)}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: pki.EncodeCert(admin), ClientKeyData: encodeKey(t, key)}
	cfg.AuthInfos["token-user"] = &clientcmdapi.AuthInfo{Token: "secret"}
	cfg.Contexts["default"] = &clientcmdapi.Context{Cluster: "kubernetes", AuthInfo: "admin"}
	cfg.CurrentContext = "default"
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		t.Fatal(err)
	}

	objs, err := Describe("admin.kubeconfig", data, testNow)
	if err != nil {
		t.Fatal(err)
	}
	Link(objs)
	var locs []string
	for _, o := range objs {
		locs = append(locs, o.Location)
	}
	want := []string{`cluster "kubernetes": certificate-authority-data`, `user "admin": client-certificate-data`, `user "admin": client-key-data`}
	if !slices.Equal(locs, want) {
		t.Fatalf("locations %q, want %q", locs, want)
	}
	if objs[0].Certificate.Role != RoleCA {
		t.Errorf("CA data described as %+v", objs[0].Certificate)
	}
	id := objs[1].Certificate.Identity
	if id == nil || id.User != "admin" || !slices.Equal(id.Groups, []string{"system:masters"}) {
		t.Errorf("identity %+v", id)
	}
	if got := objs[1].Certificate.SignedBy; len(got) != 1 || got[0] != `certificate CN=kubernetes-ca in admin.kubeconfig (cluster "kubernetes": certificate-authority-data)` {
		t.Errorf("SignedBy %q", got)
	}
	if got := objs[2].Matches; len(got) != 1 || got[0] != `certificate CN=admin in admin.kubeconfig (user "admin": client-certificate-data)` {
		t.Errorf("key Matches %q", got)
	}

	// A kubeconfig that only refers to files says so.
	cfg = clientcmdapi.NewConfig()
	cfg.Clusters["kubernetes"] = &clientcmdapi.Cluster{Server: "https://10.0.0.1:6443", CertificateAuthority: "/etc/kubernetes/pki/ca.crt"}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificate: "admin.crt", ClientKey: "admin.key"}
	data, err = clientcmd.Write(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Describe("files.kubeconfig", data, testNow)
	if err == nil || !strings.Contains(err.Error(), "inspect files.kubeconfig: kubeconfig embeds no certificate or key") || !strings.Contains(err.Error(), `user "admin": client-certificate admin.crt`) {
		t.Errorf("file-only kubeconfig: err = %v", err)
	}
}

func TestDescribeDER(t *testing.T) {
	ca := newCA(t, "kubernetes-ca")
	o := describeOne(t, "ca.der", ca.Cert.Raw, testNow)
	if o.Kind != KindCertificate || o.Location != "DER" || o.PEMType != "" || !o.Certificate.IsCA {
		t.Errorf("DER certificate described as %+v", o)
	}
	der, err := x509.MarshalPKCS8PrivateKey(ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	if o := describeOne(t, "ca.key.der", der, testNow); o.PrivateKey == nil || o.PrivateKey.KeyAlgorithm != "ECDSA-P256" {
		t.Errorf("DER key described as %+v", o)
	}
}

func TestDescribeErrors(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "inspect empty: no certificate, CSR, key or kubeconfig found"},
		{"text", []byte("hello, world\n"), "inspect text: no certificate, CSR, key or kubeconfig found"},
		{"yaml", []byte("apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n"), "inspect yaml: no certificate, CSR, key or kubeconfig found"},
		{"binary", []byte{0x30, 0x82, 0x01, 0x00, 0xff, 0x00}, "inspect binary: no certificate, CSR, key or kubeconfig found"},
		{"huge", make([]byte, MaxInputSize+1), "inspect huge: input is 10485761 bytes, more than the 10 MiB limit"},
		{"broken kubeconfig", []byte("apiVersion: v1\nkind: Config\nclusters: 5\n"), "inspect broken kubeconfig: parse kubeconfig: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := Describe(tt.name, tt.data, testNow)
			// A want ending in ": " is a prefix, before a library's message.
			ok := err != nil && (err.Error() == tt.want || strings.HasSuffix(tt.want, ": ") && strings.HasPrefix(err.Error(), tt.want))
			if !ok {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
			if objs != nil {
				t.Errorf("objects %+v with the error", objs)
			}
		})
	}

	// A corrupt block is an object with an error; the good ones survive.
	ca := newCA(t, "kubernetes-ca")
	data := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not DER")}), pki.EncodeCert(ca.Cert)...)
	objs, err := Describe("broken.pem", data, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 || objs[0].Kind != KindCertificate || !strings.HasPrefix(objs[0].Error, "parse certificate: ") || objs[1].Error != "" {
		t.Errorf("got %+v", objs)
	}
}

func TestFormatDN(t *testing.T) {
	ca := newCA(t, "kubernetes-ca")
	c := issue(t, ca, testKey(t, pki.ECDSAP256), pki.Profile{Subject: pki.Subject{
		CommonName:   "evil\x1b[31m, O = system:masters",
		Organization: []string{"a+b", " lead"},
		Country:      []string{"DE"},
	}, Usages: client})
	d := describeOne(t, "evil.crt", pki.EncodeCert(c), testNow).Certificate
	if want := `C = DE, O = a\+b, O = \ lead, CN = evil\1B[31m\, O \= system:masters`; d.Subject != want {
		t.Errorf("Subject = %q, want %q", d.Subject, want)
	}
	if d.Identity.User != "evil\x1b[31m, O = system:masters" {
		t.Errorf("User = %q: the identity must be the exact CN", d.Identity.User)
	}
	var b strings.Builder
	if err := WriteText(&b, []Object{{File: "evil.crt", Location: "PEM block 1", Kind: KindCertificate, Certificate: d}}); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsRune(b.String(), 0x1b) {
		t.Errorf("text output carries a raw escape character:\n%s", b.String())
	}
	if !strings.Contains(b.String(), `  User:               "evil\x1b[31m, O = system:masters"`) || !strings.Contains(b.String(), `  Groups:             a+b, " lead"`) {
		t.Errorf("text output does not quote the hostile user name:\n%s", b.String())
	}
}

func TestHumanDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{59 * time.Second, "59s"},
		{time.Minute, "1m"},
		{61*time.Minute + 500*time.Millisecond, "1h 1m"},
		{364*24*time.Hour + 23*time.Hour + 59*time.Minute, "364d 23h"},
		{3 * 24 * time.Hour, "3d"},
	}
	for _, tt := range tests {
		if got := humanDuration(tt.d); got != tt.want {
			t.Errorf("humanDuration(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestWriteText(t *testing.T) {
	ca := newCA(t, "kubernetes-ca")
	key := testKey(t, pki.ECDSAP256)
	admin := issue(t, ca, key, pki.Profile{Subject: pki.Subject{CommonName: "admin", Organization: []string{"system:masters"}}, Usages: client})
	var objs []Object
	for _, in := range []struct {
		name string
		data []byte
	}{{"ca.crt", pki.EncodeCert(ca.Cert)}, {"admin.crt", pki.EncodeCert(admin)}, {"admin.key", encodeKey(t, key)}} {
		found, err := Describe(in.name, in.data, testNow)
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, found...)
	}
	Link(objs)
	var a, b bytes.Buffer
	if err := WriteText(&a, objs); err != nil {
		t.Fatal(err)
	}
	if err := WriteText(&b, objs); err != nil {
		t.Fatal(err)
	}
	if a.String() != b.String() {
		t.Error("WriteText is not deterministic")
	}
	out := a.String()
	for _, want := range []string{
		"Source:               ca.crt\nKind:                 Certificate\nSubject:              CN = kubernetes-ca\n",
		"Role:                 CA: signs certificates; not a client identity\n",
		"\n\nSource:               admin.crt\n",
		"Signed By:            certificate CN=kubernetes-ca in ca.crt\n",
		"Not After:            2027-03-14T15:09:26Z (365d left)\n",
		"Identity:\n  User:               admin\n  Groups:             system:masters\n  Credential ID:      X509SHA256=",
		"  Warnings:           group \"system:masters\": bypasses RBAC and all authorization webhooks: full, irrevocable cluster admin",
		"Matches:              private key in admin.key\n",
		"Kind:                 Private Key\nFormat:               PKCS#8\nAlgorithm:            ECDSA-P256\n",
		"Matches:              certificate CN=admin in admin.crt\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\n\n\n") || !strings.HasSuffix(out, "\n") || strings.HasSuffix(out, "\n\n") {
		t.Errorf("blocks are not separated by exactly one blank line:\n%s", out)
	}
}

func TestJSONShape(t *testing.T) {
	ca := newCA(t, "kubernetes-ca")
	o := describeOne(t, "ca.crt", pki.EncodeCert(ca.Cert), testNow)
	data, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if m["file"] != "ca.crt" || m["kind"] != "Certificate" || m["location"] != "PEM block 1" || m["pemType"] != "CERTIFICATE" {
		t.Errorf("top level: %s", data)
	}
	c, ok := m["certificate"].(map[string]any)
	if !ok {
		t.Fatalf("no certificate object: %s", data)
	}
	for _, k := range []string{"subject", "issuer", "selfSigned", "serial", "notBefore", "notAfter", "expiry", "keyUsage", "isCA", "keyAlgorithm", "signatureAlgorithm", "subjectKeyId", "sha256Fingerprint", "publicKeySHA256", "kubeadmCACertHash", "role"} {
		if _, ok := c[k]; !ok {
			t.Errorf("certificate lacks %q: %s", k, data)
		}
	}
	if c["notAfter"] != "2036-03-11T15:09:26Z" {
		t.Errorf("notAfter = %v", c["notAfter"])
	}
}
