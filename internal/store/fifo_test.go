package store

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReadFIFO: a FIFO planted in place of any PKI file (rm pki/ca.key;
// mkfifo -m600 pki/ca.key) is refused at once as "not a regular file",
// by every reader and under every policy; before, opening it blocked
// until a writer came, with the directory's lock held. Each read runs in
// a goroutine so that a regression fails here instead of hanging the
// suite.
func TestReadFIFO(t *testing.T) {
	policies := map[string]KeyPolicy{"strict": {}, "insecure": {Insecure: true}, "secret volume": {SecretVolume: true}}
	for _, tc := range []struct {
		name string
		// file is the FIFO's name in the directory.
		file string
		read func(st Store) error
	}{
		{"Store.ReadCert", "ca.crt", func(st Store) error { _, err := st.ReadCert("ca"); return err }},
		{"Store.ReadCerts", "ca.crt", func(st Store) error { _, err := st.ReadCerts("ca"); return err }},
		{"Store.ReadCA", "ca.crt", func(st Store) error { _, err := st.ReadCA("ca"); return err }},
		{"Store.ReadKey", "ca.key", func(st Store) error { _, err := st.ReadKey("ca"); return err }},
		{"Store.ReadPublicKey", "sa.pub", func(st Store) error { _, err := st.ReadPublicKey("sa"); return err }},
		{"Store.ReadFile kubeconfig", "admin.kubeconfig", func(st Store) error {
			_, err := st.ReadFile(st.KubeconfigPath("admin.kubeconfig"))
			return err
		}},
		{"Store.ReadKeyFile", "node-0.key", func(st Store) error { _, err := st.ReadKeyFile(st.KeyPath("node-0")); return err }},
		{"ReadFile", "ca.crt", func(st Store) error { _, err := ReadFile(st.CertPath("ca"), st.Keys); return err }},
		{"ReadKeyFile", "ca.key", func(st Store) error { _, err := ReadKeyFile(st.KeyPath("ca"), st.Keys); return err }},
		{"OpenRegular", "admin.kubeconfig", func(st Store) error {
			f, _, err := OpenRegular(st.KubeconfigPath("admin.kubeconfig"), st.Keys)
			if err == nil {
				f.Close()
			}
			return err
		}},
		{"readJournal", JournalFile, func(st Store) error { _, err := readJournal(st.KubeconfigPath(JournalFile)); return err }},
	} {
		for pname, p := range policies {
			t.Run(tc.name+"/"+pname, func(t *testing.T) {
				st := Store{Dir: t.TempDir(), Keys: p}
				path := st.KubeconfigPath(tc.file)
				if err := syscall.Mkfifo(path, 0o600); err != nil {
					t.Fatal(err)
				}
				done := make(chan error, 1)
				go func() { done <- tc.read(st) }()
				select {
				case err := <-done:
					if err == nil || !strings.Contains(err.Error(), path+": not a regular file") {
						t.Fatalf("read %s: %v, want %q", tc.file, err, path+": not a regular file")
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("read of a FIFO %s still blocked after 10s", tc.file)
				}
			})
		}
	}
}

// TestDigestFIFO: the digest recover takes of a PKI file is "" for a
// FIFO, not a hang.
func TestDigestFIFO(t *testing.T) {
	path := t.TempDir() + "/ca.crt"
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan string, 1)
	go func() { done <- digest(path) }()
	select {
	case d := <-done:
		if d != "" {
			t.Fatalf("digest of a FIFO: %q", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("digest of a FIFO still blocked after 10s")
	}
}
