package lifecycle

import (
	"bytes"
	"encoding/base64"
	"reflect"
	"testing"
	"time"

	"kubepki.dev/kubepki/internal/pki"
)

// FuzzParseScanFile feeds arbitrary file contents to the sniffing parser
// --scan runs on every file: it must never panic, must be deterministic,
// and everything it returns must name the file and be well formed.
func FuzzParseScanFile(f *testing.F) {
	ca := newScanCA(f, "fuzz-ca")
	leaf := ca.leaf(f, "fuzz-leaf", 30*expDay)
	certPEM, caPEM := pki.EncodeCert(leaf), pki.EncodeCert(ca.ca.Cert)
	keyPEM, err := pki.EncodeKey(ca.key)
	if err != nil {
		f.Fatal(err)
	}
	kc := scanKubeconfigYAML(f, ca.ca.Cert, leaf, "admin")
	js, err := clientcmdJSONBytes(kc)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range [][]byte{
		nil,
		[]byte("-----BEGIN"),
		[]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"),
		certPEM,
		append(append(keyPEM, certPEM...), caPEM...),
		certPEM[:len(certPEM)/2],
		append([]byte("subject=CN = x\n"), certPEM...),
		kc,
		js,
		bytes.ReplaceAll(kc, []byte("client-certificate-data: "), []byte("client-certificate-data: x")),
		[]byte("kind: Config\nusers:\n- name: u\n  user:\n    client-certificate-data: " + base64.StdEncoding.EncodeToString(certPEM) + "\n"),
		[]byte("kind: Config\nclusters: {}\nusers: 7\ncertificate-authority-data: ''\n"),
		[]byte("\x00\x01-----BEGIN CERTIFICATE-----"),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const path = "fuzz/file"
		entries, problems := parseScanFile(path, data)
		again, againProblems := parseScanFile(path, data)
		if !reflect.DeepEqual(entries, again) || !reflect.DeepEqual(problems, againProblems) {
			t.Fatal("parseScanFile is not deterministic")
		}
		for _, e := range entries {
			if e.Path != path || e.Index < 0 || e.User != "" && e.Cluster != "" {
				t.Fatalf("malformed entry %+v", e)
			}
			if e.NotAfter.Location() != time.UTC {
				t.Fatalf("NotAfter not in UTC: %+v", e)
			}
			_ = e.Entry()
		}
		for _, p := range problems {
			if p.Path != path || p.Error == "" {
				t.Fatalf("malformed problem %+v", p)
			}
		}
		if bytes.IndexByte(data[:min(len(data), sniffLen)], 0) >= 0 && len(entries)+len(problems) > 0 {
			t.Fatal("a binary file was parsed")
		}
		if !bytes.Contains(data, []byte(pemBegin)) && !bytes.Contains(data, []byte("-data")) && len(entries)+len(problems) > 0 {
			t.Fatal("a file with neither PEM nor kubeconfig markers was parsed")
		}
		// What Scan does next with the entries must not fail either.
		r := ScanReport{Now: expT0, Certificates: entries, Problems: problems}.Within(DefaultWarnWithin)
		var buf bytes.Buffer
		if err := WriteScanTable(&buf, r); err != nil {
			t.Fatal(err)
		}
	})
}
