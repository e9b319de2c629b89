package cli_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"kubepki.dev/kubepki/internal/kubeconfig"
	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/pkitest"
	"kubepki.dev/kubepki/internal/store"
	"kubepki.dev/kubepki/internal/testenv"
	"kubepki.dev/kubepki/internal/treetest"
)

// refDelay is the pause after each file written in TestCrashReferencedFiles:
// long enough that kills spread over a run land between the steps of its
// few-file commit.
const refDelay = 40 * time.Millisecond

// refLayout turns a kubeadm directory made by init (root/k8s) into one
// whose kubeconfigs refer to files outside it, as kubectl config
// set-credentials --client-certificate and the kubelet leave them:
// admin.conf names ../certs/admin.crt and ../certs/admin.key (relative, so
// in another directory than both the PKI and the kubeconfig directory),
// and the node's kubelet.conf names root/kubelet/pki/kubelet-client-current.pem,
// a link to the kubelet-client-<timestamp>.pem holding cert and key.
func refLayout(t *testing.T, root string) {
	t.Helper()
	k8s := filepath.Join(root, "k8s")
	rewrite := func(path string, cert, key string, write func(certPEM, keyPEM []byte)) {
		cfg, err := kubeconfig.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		_, user, err := kubeconfig.Current(cfg)
		if err != nil {
			t.Fatal(err)
		}
		write(user.ClientCertificateData, user.ClientKeyData)
		user.ClientCertificateData, user.ClientKeyData = nil, nil
		user.ClientCertificate, user.ClientKey = cert, key
		if err := kubeconfig.Replace(path, cfg); err != nil {
			t.Fatal(err)
		}
	}
	rewrite(filepath.Join(k8s, "admin.conf"), "../certs/admin.crt", "../certs/admin.key", func(c, k []byte) {
		pkitest.WriteFile(t, filepath.Join(root, "certs", "admin.crt"), c, store.CertMode)
		pkitest.WriteFile(t, filepath.Join(root, "certs", "admin.key"), k, store.KeyMode)
	})
	// A real node's /etc/kubernetes: its own kubelet.conf, no other node's.
	for _, n := range []string{"node-0", "node-1"} {
		if err := os.Remove(filepath.Join(k8s, "kubelet-"+n+".conf")); err != nil {
			t.Fatal(err)
		}
	}
	kubeletConf := filepath.Join(k8s, "kubelet.conf")
	if err := os.Rename(filepath.Join(k8s, "kubelet-server.conf"), kubeletConf); err != nil {
		t.Fatal(err)
	}
	pemDir := filepath.Join(root, "kubelet", "pki")
	current := filepath.Join(pemDir, "kubelet-client-current.pem")
	rewrite(kubeletConf, current, current, func(c, k []byte) {
		old := filepath.Join(pemDir, "kubelet-client-2025-01-01-00-00-00.pem")
		pkitest.WriteFile(t, old, append(c, k...), store.KeyMode)
		if err := os.Symlink(old, current); err != nil {
			t.Fatal(err)
		}
	})
}

// refPair reads a certificate and its key (from one file when keyFile is
// certFile) and fails the test unless the key is the certificate's.
func refPair(t *testing.T, certFile, keyFile string) {
	t.Helper()
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.ParseCert(certPEM)
	if err != nil {
		t.Fatalf("%s: %v", certFile, err)
	}
	key, err := pki.ParseKey(keyPEM)
	if err != nil {
		t.Fatalf("%s: %v", keyFile, err)
	}
	if !pki.KeyMatches(cert.PublicKey, key) {
		t.Errorf("%s does not match %s: a certificate beside another key", keyFile, certFile)
	}
}

// refJournalStates lists the states of the store's journals.
func refJournalStates(t *testing.T, st store.Store) []string {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(st.Dir, ".backup", "*", store.JournalFile))
	var out []string
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var j struct {
			State string `json:"state"`
		}
		if err := json.Unmarshal(data, &j); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out = append(out, j.State)
	}
	return out
}

// TestCrashReferencedFiles SIGKILLs the real kubepki at points spread over
// `certs renew admin.conf`, whose admin.conf refers to a pair in another
// directory, and `certs renew kubelet.conf`, whose kubelet.conf refers to
// the link kubelet-client-current.pem: files outside the PKI and
// kubeconfig directories, which a commit journal names. After each kill:
//   - verify, which only reads, exits 0 or 3 and changes nothing on
//     disk (it neither finishes nor rolls back a journal);
//   - recovery, what every write command does first, finishes or undoes
//     the write: every journal is finished, admin.crt matches admin.key,
//     and the link points at a kubelet-client-<timestamp>.pem whose
//     certificate matches its key;
//   - rerunning the renewal completes, leaves no temporary file anywhere,
//     and verify exits 0.
//
// Each command gets ten kills spread over its run, then more until
// several landed while a journal was open (state prepare or begin), one
// of them after renaming began; at most maxTrials each.
func TestCrashReferencedFiles(t *testing.T) {
	wantOpen, maxTrials := 4, 40
	if testing.Short() {
		wantOpen, maxTrials = 1, 20
	}
	bin := testenv.Kubepki(t)
	work := crashWorkDir(t)
	spec := pkitest.SpecFile(t, nil)
	template := filepath.Join(work, "template")
	if code, out := crashRun(t, bin, "init", "--dir", filepath.Join(template, "k8s", "pki"), "--profile", "kubeadm", "--config", spec); code != 0 {
		t.Fatalf("init: exit %d\n%s", code, out)
	}
	kubeletPEM := regexp.MustCompile(`/kubelet-client-[0-9]{4}(-[0-9]{2}){5}\.pem$`)

	for _, file := range []string{"admin.conf", "kubelet.conf"} {
		t.Run(file, func(t *testing.T) {
			args := func(root string) []string {
				return []string{"certs", "renew", file, "--dir", filepath.Join(root, "k8s", "pki"), "--config", spec}
			}
			setup := func(root string) store.Store {
				crashCopy(t, template, root)
				refLayout(t, root)
				return store.Store{Dir: filepath.Join(root, "k8s", "pki"), KubeconfigDir: filepath.Join(root, "k8s")}
			}
			calibrate := filepath.Join(work, "calibrate-"+file)
			setup(calibrate)
			start := time.Now()
			if crashKill(t, bin, refDelay, time.Hour, args(calibrate)...) {
				t.Fatal("calibration run killed")
			}
			span := time.Since(start)

			open, begun := 0, 0
			for i := 0; (i < 10 || open < wantOpen || begun == 0) && i < maxTrials; i++ {
				root := filepath.Join(work, fmt.Sprintf("trial-%s-%02d", file, i))
				st := setup(root)
				// Ten points spread over the run, then again: most of
				// it is the slowed write phase.
				wait := span * time.Duration(2*(i%10)+1) / 20
				killed := crashKill(t, bin, refDelay, wait, args(root)...)
				states := refJournalStates(t, st)
				for _, s := range states {
					if killed && (s == "prepare" || s == "begin") {
						open++
						if s == "begin" {
							begun++
						}
						t.Logf("trial %d: killed after %v of %v with a journal in state %s", i, wait, span, s)
					}
				}

				verify := []string{"verify", "--dir", st.Dir, "--config", spec}
				before := treetest.Snapshot(t, root)
				if code, out := crashRun(t, bin, verify...); code != 0 && code != 3 {
					t.Fatalf("trial %d (killed after %v): verify: exit %d\n%s", i, wait, code, out)
				}
				crashUnchanged(t, "verify", before, treetest.Snapshot(t, root))
				crashRecover(t, st)
				crashJournals(t, st)
				refPair(t, filepath.Join(root, "certs", "admin.crt"), filepath.Join(root, "certs", "admin.key"))
				link := filepath.Join(root, "kubelet", "pki", "kubelet-client-current.pem")
				target, err := os.Readlink(link)
				if err != nil || !kubeletPEM.MatchString(target) {
					t.Errorf("trial %d: %s links to %q (%v), want a kubelet-client-<timestamp>.pem", i, link, target, err)
				} else {
					refPair(t, target, target)
				}

				if code, out := crashRun(t, bin, args(root)...); code != 0 {
					t.Fatalf("trial %d (killed after %v): rerun: exit %d\n%s", i, wait, code, out)
				}
				if temps := crashTemps(t, root); len(temps) > 0 {
					t.Errorf("trial %d (killed after %v): temporary files after the rerun: %q", i, wait, temps)
				}
				if code, out := crashRun(t, bin, verify...); code != 0 {
					t.Errorf("trial %d (killed after %v): verify after the rerun: exit %d\n%s", i, wait, code, out)
				}
				crashJournals(t, st)
				if t.Failed() {
					t.Fatalf("trial %d (killed after %v of %v) failed", i, wait, span)
				}
				if err := os.RemoveAll(root); err != nil {
					t.Fatal(err)
				}
			}
			if open < wantOpen || begun == 0 {
				t.Errorf("only %d kills landed while a journal was open (%d after renaming began), want %d and one", open, begun, wantOpen)
			}
		})
	}
}
