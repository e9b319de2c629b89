package kubeconfig

import (
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"kubepki.dev/kubepki/internal/store"
)

// TestReferencedFiles: the files a kubeconfig directory's kubeconfigs
// refer to, relative ones resolved against the kubeconfig's directory as
// clientcmd resolves them; a referenced link adds its directory and its
// target's; files that are not kubeconfigs (or cannot be read, such as a
// FIFO, which must not block) refer to nothing.
func TestReferencedFiles(t *testing.T) {
	root := t.TempDir()
	kc := filepath.Join(root, "k8s")
	rotated := filepath.Join(root, "kubelet", "rotated")
	pkiDir := filepath.Join(root, "kubelet", "pki")
	for _, d := range []string{kc, rotated, pkiDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	pem := filepath.Join(rotated, "kubelet-client-2026-03-14-15-09-26.pem")
	if err := os.WriteFile(pem, []byte("pair"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(pkiDir, "kubelet-client-current.pem")
	if err := os.Symlink(pem, link); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		// Relative, in a subdirectory of the kubeconfig's, CA referenced.
		"admin.conf": `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: https://127.0.0.1:6443, certificate-authority: pki/ca.crt}
users:
- name: admin
  user: {client-certificate: certs/admin.crt, client-key: certs/admin.key}
- name: other
  user: {client-certificate: /srv/other.crt, client-key-data: a2V5}
contexts:
- name: c
  context: {cluster: c, user: admin}
current-context: c
`,
		"kubelet.conf": `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: https://127.0.0.1:6443, certificate-authority-data: Y2E=}
users:
- name: node
  user: {client-certificate: ` + link + `, client-key: ` + link + `}
contexts:
- name: c
  context: {cluster: c, user: node}
current-context: c
`,
		"notes.txt":      "client-certificate: /etc/passwd\n",
		"broken.conf":    "users: [\n",
		"ca.conf":        "[ req ]\ndistinguished_name = dn\n",
		"hw.kubeconfig":  "apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user: {client-key: ../hw.key}\n",
		"embedded.conf":  "apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user: {client-certificate-data: Y2VydA==}\n",
		".hidden.tmp-12": "apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user: {client-key: /etc/shadow}\n",
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(kc, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(kc, "fifo.conf"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := ReferencedFiles(kc)
	if err != nil {
		t.Fatal(err)
	}
	want := store.Referenced{
		Files: []string{
			filepath.Join(kc, "certs", "admin.crt"),
			filepath.Join(kc, "certs", "admin.key"),
			filepath.Join(kc, "pki", "ca.crt"),
			filepath.Join(root, "hw.key"),
			link,
			"/srv/other.crt",
		},
		KubeletDirs: []string{pkiDir, rotated},
	}
	slices.Sort(want.Files)
	slices.Sort(want.KubeletDirs)
	if !slices.Equal(got.Files, want.Files) {
		t.Errorf("Files = %q, want %q", got.Files, want.Files)
	}
	if !slices.Equal(got.KubeletDirs, want.KubeletDirs) {
		t.Errorf("KubeletDirs = %q, want %q", got.KubeletDirs, want.KubeletDirs)
	}

	if r, err := ReferencedFiles(filepath.Join(root, "missing")); err != nil || len(r.Files)+len(r.KubeletDirs) != 0 {
		t.Errorf("ReferencedFiles of a missing directory = %+v, %v; want nothing", r, err)
	}
}
