package cluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzImportOpenSSL feeds arbitrary bytes to ImportOpenSSL: it must not
// panic, it returns either an error or a spec that marshals and validates
// without panicking, and every finding is one well-formed line.
func FuzzImportOpenSSL(f *testing.F) {
	files, _ := filepath.Glob("testdata/caconf/*.conf")
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"",
		"[a]\nk = \"unterminated\n",
		"[a]\nsubjectAltName = @a\nDNS.0 = @a\n",
		"[x]\ndistinguished_name = x\nreq_extensions = x\nCN = system:node:\nextendedKeyUsage = clientAuth\nsubjectAltName = IP:::ffff:10.0.0.1, IP:fe80::1%eth0\n",
		"[k]\nCN = kubernetes\nreq_extensions = e\n[e]\nsubjectAltName = IP:0.0.0.0, IP:255.255.255.255, DNS:*.\n",
		"a::b::c = \\\n\\\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, fs, err := ImportOpenSSL(data, "fuzz.conf")
		if err != nil {
			if c != nil || fs != nil {
				t.Fatalf("error %v with a spec or findings", err)
			}
			if !strings.HasPrefix(err.Error(), "fuzz.conf") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		if c == nil {
			t.Fatal("nil spec without an error")
		}
		if _, err := Marshal(c); err != nil {
			t.Fatalf("imported spec does not marshal: %v", err)
		}
		_ = Validate(c)
		for _, f := range fs {
			if f.Severity != Error && f.Severity != Warning || !strings.HasPrefix(f.Field, "fuzz.conf") || f.Message == "" {
				t.Fatalf("malformed finding %#v", f)
			}
			if strings.ContainsAny(f.Field+f.Message, "\n\r") {
				t.Fatalf("finding spans lines: %#v", f)
			}
		}
	})
}
