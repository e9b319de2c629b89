package distribute

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"kubepki.dev/kubepki/internal/distribute/sshdtest"
)

// TestPushLifecycle pushes the control plane's bundle to a real sshd: a
// first push creates everything, a second changes nothing, a file changed
// on the node is put back, and a dry run reports without writing.
func TestPushLifecycle(t *testing.T) {
	f := newFixture(t)
	root := t.TempDir()
	b := f.bundle(t, "server")

	// First push: every file created, as the manifest says.
	r := f.push(t, "server", root, false)
	assertAll(t, r, b, Created)
	assertInstalled(t, root, b)
	assertNoTempFiles(t, root)
	if r.Error != "" || r.Node != "server" || r.Address != f.srv.Addr || r.RemoteRoot != root {
		t.Errorf("report header %+v", r)
	}
	for _, file := range r.Files {
		if len(file.SHA256) != 64 || file.Mode == "" {
			t.Errorf("%s: sha256 %q, mode %q", file.Path, file.SHA256, file.Mode)
		}
	}

	// Second push: nothing to do, and nothing touched (same inodes).
	before := map[string]uint64{}
	for _, p := range tree(t, root) {
		before[p] = inode(t, filepath.Join(root, p))
	}
	r = f.push(t, "server", root, false)
	assertAll(t, r, b, Unchanged)
	for p, ino := range before {
		if got := inode(t, filepath.Join(root, p)); got != ino {
			t.Errorf("%s was rewritten by a push with nothing to do", p)
		}
	}

	// Changed on the node: content of one file, mode of another, one
	// replaced by a symlink.
	key := filepath.Join(root, "/var/lib/kubernetes/ca.key")
	crt := filepath.Join(root, "/var/lib/kubernetes/ca.crt")
	kc := filepath.Join(root, "/root/admin.kubeconfig")
	if err := os.WriteFile(key, []byte("tampered\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(crt, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(kc); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(crt, kc); err != nil {
		t.Fatal(err)
	}

	// A dry run sees it all and writes nothing.
	dry := f.push(t, "server", root, true)
	if !dry.DryRun {
		t.Error("dry-run report not marked DryRun")
	}
	want := map[string]string{
		"/var/lib/kubernetes/ca.key": "content",
		"/var/lib/kubernetes/ca.crt": "mode 0666 (want 0644)",
		"/root/admin.kubeconfig":     "was a symbolic link",
	}
	for _, file := range dry.Files {
		detail, changed := want[file.Path]
		switch {
		case changed && (file.Action != Updated || file.Detail != detail):
			t.Errorf("dry run: %s: %s (%s), want updated (%s)", file.Path, file.Action, file.Detail, detail)
		case !changed && file.Action != Unchanged:
			t.Errorf("dry run: %s: %s, want unchanged", file.Path, file.Action)
		}
	}
	if got := readFile(t, key); string(got) != "tampered\n" {
		t.Error("dry run rewrote ca.key")
	}
	if fi, err := os.Lstat(kc); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("dry run replaced the symlink: %v", err)
	}

	// The real push puts them back, and leaves the rest alone.
	r = f.push(t, "server", root, false)
	got := actions(r)
	for _, file := range b.Files {
		wantAction := Unchanged
		if _, changed := want[file.Path]; changed {
			wantAction = Updated
		}
		if got[file.Path] != wantAction {
			t.Errorf("%s: %s, want %s", file.Path, got[file.Path], wantAction)
		}
	}
	assertInstalled(t, root, b)
	assertNoTempFiles(t, root)
	if fi, err := os.Lstat(kc); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("admin.kubeconfig is still not a regular file: %v", err)
	}
	r = f.push(t, "server", root, false)
	assertAll(t, r, b, Unchanged)
}

// TestDryRunOnEmptyNode writes nothing, not even directories.
func TestDryRunOnEmptyNode(t *testing.T) {
	f := newFixture(t)
	root := t.TempDir()
	b := f.bundle(t, "node-0")
	r := f.push(t, "node-0", root, true)
	assertAll(t, r, b, Created)
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("dry run wrote %v", entries)
	}
}

// TestWorkerGetsNoCAKey: a worker's bundle, installed, holds the CA
// certificate but no CA private key.
func TestWorkerGetsNoCAKey(t *testing.T) {
	f := newFixture(t)
	root := t.TempDir()
	b := f.bundle(t, "node-0")
	caKey := readFile(t, f.st.KeyPath("ca"))
	caCert := readFile(t, f.st.CertPath("ca"))
	for _, file := range b.Files {
		if bytes.Equal(file.Data, caKey) {
			t.Fatalf("bundle: %s is the CA key", file.Path)
		}
	}
	r := f.push(t, "node-0", root, false)
	assertAll(t, r, b, Created)
	assertInstalled(t, root, b)
	sawCACert := false
	for _, p := range tree(t, root) {
		data := readFile(t, filepath.Join(root, p))
		if bytes.Equal(data, caKey) || strings.HasSuffix(p, "/ca.key") {
			t.Errorf("the worker has the CA key at %s", p)
		}
		sawCACert = sawCACert || bytes.Equal(data, caCert)
	}
	if !sawCACert {
		t.Error("the worker did not get the CA certificate")
	}
}

// TestHostKeyRefused: an unknown host and a changed host key are refused
// before anything is written, with a message that says what to do.
func TestHostKeyRefused(t *testing.T) {
	f := newFixture(t)
	other, _ := sshdtest.NewKey(t)
	host, port, _ := net.SplitHostPort(f.srv.Addr)
	missing := filepath.Join(t.TempDir(), "no-such-known_hosts")
	tests := []struct {
		name    string
		known   string
		changed bool
		want    []string
	}{
		{
			name:    "changed key",
			known:   sshdtest.WriteKnownHosts(t, "[127.0.0.1]:"+port+" "+string(bytes.TrimSpace(ssh.MarshalAuthorizedKey(other.PublicKey())))),
			changed: true,
			want:    []string{"CHANGED", "man-in-the-middle", ssh.FingerprintSHA256(other.PublicKey()), ssh.FingerprintSHA256(f.srv.HostKey), "ssh-keygen -R"},
		},
		{
			// Only a key of another type on file: the handshake cannot even
			// agree on a host key algorithm, which is a change all the same.
			name:    "changed key type",
			known:   sshdtest.WriteKnownHosts(t, "[127.0.0.1]:"+port+" "+string(bytes.TrimSpace(ssh.MarshalAuthorizedKey(ecdsaKey(t))))),
			changed: true,
			want:    []string{"CHANGED", "man-in-the-middle", "ecdsa-sha2-nistp256", "ssh-ed25519", "ssh-keygen -R"},
		},
		{
			name:  "unknown host",
			known: sshdtest.WriteKnownHosts(t, "[127.0.0.1]:1 "+string(bytes.TrimSpace(ssh.MarshalAuthorizedKey(other.PublicKey())))),
			want:  []string{"unknown", "never trusts a key on first use", ssh.FingerprintSHA256(f.srv.HostKey), "ssh-keyscan -p " + port + " " + host + " >> "},
		},
		{
			name:  "missing known_hosts",
			known: missing,
			want:  []string{"unknown", "does not exist", "ssh-keyscan -p " + port + " " + host + " >> " + missing},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			r, err := Push(t.Context(), f.target(t, "server"), f.bundle(t, "server"), f.options(t, tt.known, root))
			var hk *HostKeyError
			if !errors.As(err, &hk) {
				t.Fatalf("err = %v, want a HostKeyError", err)
			}
			if hk.Changed != tt.changed || hk.Unknown == tt.changed {
				t.Errorf("changed=%v unknown=%v, want changed=%v", hk.Changed, hk.Unknown, tt.changed)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if !strings.HasPrefix(err.Error(), "server ("+f.srv.Addr+"): host key for ") {
				t.Errorf("error does not name the node first: %v", err)
			}
			if len(r.Files) != 0 {
				t.Errorf("files reported: %v", r.Files)
			}
			if got := tree(t, root); len(got) != 0 {
				t.Errorf("written despite the refused host key: %v", got)
			}
		})
	}
}

func ecdsaKey(t *testing.T) ssh.PublicKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ssh.NewPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// TestKnownHostsAlgorithms: the host key algorithms asked for are those of
// the keys on file for the host (RSA in all its signature forms).
func TestKnownHostsAlgorithms(t *testing.T) {
	ed, _ := sshdtest.NewKey(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaPub, err := ssh.NewPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	line := func(host string, k ssh.PublicKey) string {
		return host + " " + string(bytes.TrimSpace(ssh.MarshalAuthorizedKey(k)))
	}
	kh, err := LoadKnownHosts(sshdtest.WriteKnownHosts(t,
		line("[127.0.0.1]:2222", rsaPub), line("[127.0.0.1]:2222", ed.PublicKey()), line("127.0.0.1", ecdsaKey(t))))
	if err != nil {
		t.Fatal(err)
	}
	remote := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2222}
	tests := []struct {
		addr string
		want []string
	}{
		{"127.0.0.1:2222", []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA, ssh.KeyAlgoED25519}},
		{"127.0.0.1:22", []string{ssh.KeyAlgoECDSA256}},
		{"127.0.0.1:2200", nil},
	}
	for _, tt := range tests {
		if got := kh.Algorithms(tt.addr, remote); !slices.Equal(got, tt.want) {
			t.Errorf("Algorithms(%s) = %v, want %v", tt.addr, got, tt.want)
		}
	}
	if err := kh.HostKeyCallback("127.0.0.1:2222", remote, ed.PublicKey()); err != nil {
		t.Errorf("the key on file is refused: %v", err)
	}
}

// TestUnreachableNodeFailsAlone: one node on a closed port fails with a
// one-line error; the other, on the real sshd, is installed.
func TestUnreachableNodeFailsAlone(t *testing.T) {
	f := newFixture(t)
	root := t.TempDir()
	closed := sshdtest.ClosedPort(t)
	dead := f.target(t, "node-1")
	dead.Address = closed
	jobs := []Job{
		{Target: dead, Bundle: f.bundle(t, "node-1")},
		{Target: f.target(t, "node-0"), Bundle: f.bundle(t, "node-0")},
	}
	opts := f.options(t, "", filepath.Join(root, "{node}"))
	reports := PushAll(t.Context(), jobs, opts)
	if len(reports) != 2 {
		t.Fatalf("%d reports", len(reports))
	}
	if reports[0].Node != "node-1" || reports[0].Error != "dial: connection refused" || len(reports[0].Files) != 0 {
		t.Errorf("unreachable node: %+v", reports[0])
	}
	if reports[1].Error != "" {
		t.Errorf("reachable node failed: %s", reports[1].Error)
	}
	assertAll(t, reports[1], jobs[1].Bundle, Created)
	assertInstalled(t, filepath.Join(root, "node-0"), jobs[1].Bundle)
	if _, err := os.Stat(filepath.Join(root, "node-1")); !os.IsNotExist(err) {
		t.Errorf("something was written for the unreachable node: %v", err)
	}

	// Push itself names the node and address in a one-line error.
	_, err := Push(t.Context(), dead, jobs[0].Bundle, opts)
	if want := "node-1 (" + closed + "): dial: connection refused"; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
	var ne *NodeError
	if !errors.As(err, &ne) || ne.Node != "node-1" || ne.Address != closed {
		t.Errorf("err is not a NodeError for node-1: %#v", err)
	}
}

// TestAuth authenticates with an identity file and with an ssh-agent, and
// refuses an encrypted identity and an unauthorized key clearly.
func TestAuth(t *testing.T) {
	f := newFixture(t)

	// The agent's key is authorized, and held by nothing else.
	agentKey, agentPEM := sshdtest.NewKey(t)
	f.srv.Authorize(t, agentKey.PublicKey())
	sock := sshdtest.ServeAgent(t, agentPEM)

	_, strangerPEM := sshdtest.NewKey(t)
	stranger := filepath.Join(t.TempDir(), "stranger")
	if err := os.WriteFile(stranger, strangerPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	encrypted := filepath.Join(t.TempDir(), "encrypted")
	encryptedKey(t, encrypted)
	pub := filepath.Join(t.TempDir(), "id.pub")
	if err := os.WriteFile(pub, ssh.MarshalAuthorizedKey(agentKey.PublicKey()), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		identity  string
		agent     bool
		loadErr   string // from LoadCredentials
		pushErr   string // from Push
		wantFiles bool
	}{
		{name: "identity file", identity: f.srv.IdentityFile, wantFiles: true},
		{name: "ssh-agent", agent: true, wantFiles: true},
		{name: "unauthorized identity, authorized agent key", identity: stranger, agent: true, wantFiles: true},
		{name: "unauthorized identity", identity: stranger, pushErr: "authenticate as " + f.srv.User + ": no key was accepted"},
		{name: "encrypted identity", identity: encrypted, loadErr: "is encrypted with a passphrase"},
		{name: "public key as identity", identity: pub, loadErr: "is a public key"},
		{name: "nothing", loadErr: "no SSH credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("SSH_AUTH_SOCK", "")
			if tt.agent {
				t.Setenv("SSH_AUTH_SOCK", sock)
			}
			creds, err := LoadCredentials(tt.identity, os.Getenv("SSH_AUTH_SOCK"))
			if tt.loadErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.loadErr) {
					t.Fatalf("LoadCredentials: err = %v, want %q", err, tt.loadErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer creds.Close()
			root := t.TempDir()
			opts := f.options(t, "", root)
			opts.Auth = creds.AuthMethods()
			r, err := Push(t.Context(), f.target(t, "node-1"), f.bundle(t, "node-1"), opts)
			if tt.pushErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.pushErr) {
					t.Fatalf("Push: err = %v, want %q", err, tt.pushErr)
				}
				if got := tree(t, root); len(got) != 0 {
					t.Errorf("written without authenticating: %v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantFiles && r.Count(Created) != len(r.Files) {
				t.Errorf("%d of %d files created", r.Count(Created), len(r.Files))
			}
		})
	}
}

// encryptedKey writes a passphrase-protected OpenSSH private key to p.
func encryptedKey(t *testing.T, p string) {
	t.Helper()
	_, keyPEM := sshdtest.NewKey(t)
	priv, err := ssh.ParseRawPrivateKey(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "test", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestTimeoutAndCancel: a host that accepts but never speaks SSH fails
// after Timeout; cancelling the context ends a push at once.
func TestTimeoutAndCancel(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			held = append(held, c) // silent: never sends a banner
		}
	}()
	signer, _ := sshdtest.NewKey(t)
	target := Target{Node: "mute", Address: l.Addr().String(), User: "root"}
	b := testBundle()
	opts := Options{
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), // never reached: no handshake happens
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
	}

	t.Run("timeout", func(t *testing.T) {
		opts := opts
		opts.Timeout = 300 * time.Millisecond
		start := time.Now()
		_, err := Push(t.Context(), target, b, opts)
		if err == nil || !strings.Contains(err.Error(), "ssh handshake: no answer within 300ms") {
			t.Errorf("err = %v", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %v", d)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		opts := opts
		opts.Timeout = time.Minute
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(200*time.Millisecond, cancel)
		start := time.Now()
		_, err := Push(ctx, target, b, opts)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %v after cancel", d)
		}
	})
	t.Run("cancelled before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		reports := PushAll(ctx, []Job{{Target: target, Bundle: b}}, opts)
		if len(reports) != 1 || !strings.Contains(reports[0].Error, "context canceled") {
			t.Errorf("reports = %+v", reports)
		}
	})
}

// TestPushAllBounded runs more jobs than Parallel against one sshd, each
// into its own root, and checks every one succeeded.
func TestPushAllBounded(t *testing.T) {
	f := newFixture(t)
	root := t.TempDir()
	var jobs []Job
	for i := range 6 {
		tg := f.target(t, "node-0")
		tg.Node = "n" + strconv.Itoa(i)
		jobs = append(jobs, Job{Target: tg, Bundle: f.bundle(t, "node-0")})
	}
	opts := f.options(t, "", filepath.Join(root, "{node}"))
	opts.Parallel = 2
	reports := PushAll(t.Context(), jobs, opts)
	var nodes []string
	for i, r := range reports {
		if r.Error != "" {
			t.Errorf("%s: %s", r.Node, r.Error)
		}
		nodes = append(nodes, r.Node)
		assertInstalled(t, filepath.Join(root, jobs[i].Target.Node), jobs[i].Bundle)
	}
	if !slices.Equal(nodes, []string{"n0", "n1", "n2", "n3", "n4", "n5"}) {
		t.Errorf("reports out of order: %v", nodes)
	}
}

// TestInstallFailureWritesNothing: when one file cannot be installed, no
// file is renamed into place and no temporary file is left behind; a
// directory where a file belongs is refused before anything is sent.
func TestInstallFailureWritesNothing(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name    string
		blocker string // made below the root first
		dir     bool   // a directory rather than a file
		want    string
	}{
		// The manifest's directory is a file: the last file's mkdir fails,
		// after every other file has been sent.
		{"manifest directory is a file", "/etc/kubepki", false, ManifestPath + ": cannot make directory"},
		{"directory in a file's place", "/var/lib/kubelet/ca.crt", true, "/var/lib/kubelet/ca.crt: exists and is not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			blocker := filepath.Join(root, tt.blocker)
			if err := os.MkdirAll(filepath.Dir(blocker), 0o755); err != nil {
				t.Fatal(err)
			}
			if tt.dir {
				if err := os.Mkdir(blocker, 0o755); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile(blocker, []byte("in the way\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			before := tree(t, root)
			r, err := Push(t.Context(), f.target(t, "node-0"), f.bundle(t, "node-0"), f.options(t, "", root))
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "node-0 (") {
				t.Fatalf("err = %v, want %q naming node-0", err, tt.want)
			}
			t.Logf("error: %v", err)
			if len(r.Files) != 0 {
				t.Errorf("files reported on failure: %v", r.Files)
			}
			if after := tree(t, root); !slices.Equal(after, before) {
				t.Errorf("files changed by a failed push: %v, before %v", after, before)
			}
		})
	}
}
