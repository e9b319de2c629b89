// Package sshdtest runs a real OpenSSH sshd on 127.0.0.1 for tests: a
// fresh host key, an authorized client key, a free port, its own config,
// and stopped (and reaped) by t.Cleanup.
//
// Tests that use it are skipped when /usr/sbin/sshd is missing, unless the
// CI environment variable is set (to anything but "false" or "0"): then
// they fail, since CI must install openssh-server.
package sshdtest

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Binary is the sshd the tests run.
const Binary = "/usr/sbin/sshd"

const (
	readyTimeout = 10 * time.Second
	stopGrace    = 5 * time.Second
	startTries   = 3
)

// Server is a running sshd.
type Server struct {
	// Addr is 127.0.0.1:Port.
	Addr string
	Port int
	// User is the login the client key is authorized for: the user running
	// the test (sshd can log in no one else unless it runs as root).
	User string
	// HostKey is the server's host key.
	HostKey ssh.PublicKey
	// ClientSigner is an authorized client key; IdentityFile holds it,
	// unencrypted, in OpenSSH format.
	ClientSigner ssh.Signer
	IdentityFile string
	// Dir holds the server's config, keys and log.
	Dir string

	authorizedKeys string
	logPath        string
	cmd            *exec.Cmd
	done           chan struct{}
	stopOnce       sync.Once
}

// Require skips the test when sshd is not installed, or fails it in CI.
func Require(t testing.TB) {
	t.Helper()
	require(t, Binary)
}

func require(t testing.TB, bin string) {
	t.Helper()
	if _, err := os.Stat(bin); err == nil {
		return
	}
	if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
		t.Fatalf("%s is missing and CI=%s: CI must install openssh-server (apt-get install -y openssh-server openssh-client)", bin, ci)
		return
	}
	t.Skipf("%s not installed (apt-get install openssh-server); skipping the SSH tests (set CI=true to make this a failure)", bin)
}

// Start starts sshd on a free 127.0.0.1 port and waits until it answers.
func Start(t testing.TB) *Server {
	t.Helper()
	Require(t)
	u, err := user.Current()
	if err != nil {
		t.Fatalf("sshdtest: current user: %v", err)
	}
	// Short: a unix socket path (for an agent beside it) must fit 108 bytes.
	dir, err := os.MkdirTemp("", "sshd")
	if err != nil {
		t.Fatalf("sshdtest: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &Server{User: u.Username, Dir: dir, authorizedKeys: filepath.Join(dir, "authorized_keys")}

	hostSigner, hostPEM := newKey(t)
	s.HostKey = hostSigner.PublicKey()
	writeFile(t, filepath.Join(dir, "host_ed25519_key"), hostPEM, 0o600)
	var clientPEM []byte
	s.ClientSigner, clientPEM = newKey(t)
	s.IdentityFile = filepath.Join(dir, "id_ed25519")
	writeFile(t, s.IdentityFile, clientPEM, 0o600)
	writeFile(t, s.authorizedKeys, nil, 0o600)
	s.Authorize(t, s.ClientSigner.PublicKey())

	for try := 1; ; try++ {
		s.Port = freePort(t)
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port))
		cfg := s.writeConfig(t)
		ensurePrivsepDir(t, cfg)
		err := s.start(t, cfg)
		if err == nil {
			break
		}
		if try == startTries {
			t.Fatalf("sshdtest: %v\n%s", err, s.log())
		}
		t.Logf("sshdtest: try %d: %v; retrying on another port", try, err)
	}
	return s
}

// Authorize adds a client key to the server's authorized_keys.
func (s *Server) Authorize(t testing.TB, key ssh.PublicKey) {
	t.Helper()
	f, err := os.OpenFile(s.authorizedKeys, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("sshdtest: %v", err)
	}
	defer f.Close()
	if _, err := f.Write(ssh.MarshalAuthorizedKey(key)); err != nil {
		t.Fatalf("sshdtest: %v", err)
	}
}

// KnownHostsLine is the server's known_hosts line: "[127.0.0.1]:PORT
// ssh-ed25519 AAAA…".
func (s *Server) KnownHostsLine() string {
	return knownhosts.Line([]string{s.Addr}, s.HostKey)
}

// WriteKnownHosts writes a known_hosts file of lines in t.TempDir() and
// returns its path.
func WriteKnownHosts(t testing.TB, lines ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "known_hosts")
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	writeFile(t, p, []byte(b.String()), 0o600)
	return p
}

// NewKey returns a fresh Ed25519 key as a signer and as an unencrypted
// OpenSSH private key file.
func NewKey(t testing.TB) (ssh.Signer, []byte) {
	t.Helper()
	return newKey(t)
}

func newKey(t testing.TB) (ssh.Signer, []byte) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("sshdtest: %v", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatalf("sshdtest: %v", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "sshdtest")
	if err != nil {
		t.Fatalf("sshdtest: %v", err)
	}
	return signer, pem.EncodeToMemory(block)
}

func (s *Server) writeConfig(t testing.TB) string {
	t.Helper()
	permitRoot := "no"
	if s.User == "root" {
		permitRoot = "prohibit-password"
	}
	cfg := fmt.Sprintf(`# sshdtest: a throwaway sshd for one test
ListenAddress 127.0.0.1
Port %d
HostKey %s
PidFile %s
AuthorizedKeysFile %s
StrictModes no
UsePAM no
PermitRootLogin %s
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AllowUsers %s
UseDNS no
PrintMotd no
PrintLastLog no
PermitTTY no
X11Forwarding no
AllowTcpForwarding no
AllowAgentForwarding no
PermitUserEnvironment no
MaxStartups 100
MaxSessions 20
LoginGraceTime 30
LogLevel VERBOSE
`, s.Port, filepath.Join(s.Dir, "host_ed25519_key"), filepath.Join(s.Dir, "sshd.pid"),
		s.authorizedKeys, permitRoot, s.User)
	p := filepath.Join(s.Dir, "sshd_config")
	writeFile(t, p, []byte(cfg), 0o600)
	return p
}

// privsepMissing is how sshd (running as root) says the directory it
// chroots its unprivileged child into is missing; Debian's packages leave
// /run/sshd to systemd, which a container does not run.
const privsepMissing = "Missing privilege separation directory: "

// ensurePrivsepDir checks the config with sshd -t and, as root, makes the
// privilege separation directory if that is what is missing. It is left in
// place: another test's sshd may be using it.
func ensurePrivsepDir(t testing.TB, cfg string) {
	t.Helper()
	out, err := exec.Command(Binary, "-t", "-f", cfg).CombinedOutput()
	if err == nil {
		return
	}
	_, rest, found := strings.Cut(string(out), privsepMissing)
	dir, _, _ := strings.Cut(rest, "\n")
	dir = strings.TrimSpace(dir)
	if !found || !filepath.IsAbs(dir) || os.Geteuid() != 0 {
		t.Fatalf("sshdtest: %s -t -f %s: %v\n%s", Binary, cfg, err, out)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("sshdtest: make sshd's privilege separation directory: %v", err)
	}
	t.Logf("sshdtest: made sshd's privilege separation directory %s", dir)
	if out, err := exec.Command(Binary, "-t", "-f", cfg).CombinedOutput(); err != nil {
		t.Fatalf("sshdtest: %s -t -f %s: %v\n%s", Binary, cfg, err, out)
	}
}

// start runs sshd -D -e -f cfg and waits until it greets a client.
func (s *Server) start(t testing.TB, cfg string) error {
	t.Helper()
	s.logPath = filepath.Join(s.Dir, fmt.Sprintf("sshd-%d.log", s.Port))
	logFile, err := os.Create(s.logPath)
	if err != nil {
		return err
	}
	defer logFile.Close() // sshd has its own descriptor
	cmd := exec.Command(Binary, "-D", "-e", "-f", cfg)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group (so that Stop reaches the per-connection
	// children too), killed if the test binary dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", Binary, err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(s.done)
	}()
	s.stopOnce = sync.Once{}
	if err := s.waitReady(); err != nil {
		s.Stop(t)
		return err
	}
	t.Logf("sshdtest: sshd (pid %d) on %s as %s, log %s", cmd.Process.Pid, s.Addr, s.User, s.logPath)
	t.Cleanup(func() {
		s.Stop(t)
		if !s.Exited() {
			t.Errorf("sshdtest: sshd (pid %d) still running after Stop", cmd.Process.Pid)
		}
		if t.Failed() {
			t.Logf("sshdtest: sshd log:\n%s", s.log())
		}
	})
	return nil
}

// waitReady polls until sshd sends its banner, or it exits.
func (s *Server) waitReady() error {
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("sshd exited at startup (%v)", s.cmd.ProcessState)
		default:
		}
		if conn, err := net.DialTimeout("tcp", s.Addr, time.Second); err == nil {
			_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
			banner, _ := bufio.NewReader(conn).ReadString('\n')
			conn.Close()
			// Still running: the banner is from our sshd, not from whatever
			// else might have taken the port.
			select {
			case <-s.done:
				return fmt.Errorf("sshd exited at startup (%v)", s.cmd.ProcessState)
			default:
			}
			if strings.HasPrefix(banner, "SSH-2.0-") {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("sshd did not answer on %s within %v", s.Addr, readyTimeout)
}

// Stop stops sshd and its children (SIGTERM to the process group, SIGKILL
// after 5s) and fails the test if it does not exit.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.stopOnce.Do(func() {
		pgid := s.cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(stopGrace):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			select {
			case <-s.done:
			case <-time.After(stopGrace):
				t.Errorf("sshdtest: sshd (pid %d) did not exit after SIGKILL", pgid)
				return
			}
		}
	})
}

// Exited reports whether the sshd process has exited and been reaped.
func (s *Server) Exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func (s *Server) log() string {
	data, err := os.ReadFile(s.logPath)
	if err != nil {
		return err.Error()
	}
	if lines := bytes.Split(data, []byte("\n")); len(lines) > 200 {
		data = bytes.Join(lines[len(lines)-200:], []byte("\n"))
	}
	return string(data)
}

// ServeAgent serves an in-process ssh-agent holding the private key keyPEM
// on a unix socket until the test ends, and returns the socket's path (for
// SSH_AUTH_SOCK).
func ServeAgent(t testing.TB, keyPEM []byte) string {
	t.Helper()
	priv, err := ssh.ParseRawPrivateKey(keyPEM)
	if err != nil {
		t.Fatalf("sshdtest: agent key: %v", err)
	}
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: priv}); err != nil {
		t.Fatalf("sshdtest: agent key: %v", err)
	}
	// Short: a unix socket path must fit 108 bytes.
	dir, err := os.MkdirTemp("", "agent")
	if err != nil {
		t.Fatalf("sshdtest: %v", err)
	}
	sock := filepath.Join(dir, "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatalf("sshdtest: agent: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = agent.ServeAgent(keyring, c)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		os.RemoveAll(dir)
	})
	return sock
}

// freePort returns a 127.0.0.1 port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("sshdtest: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// ClosedPort returns a 127.0.0.1 address nothing listens on (a port that
// was just free), for unreachable-host tests.
func ClosedPort(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
}

func writeFile(t testing.TB, p string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatalf("sshdtest: %v", err)
	}
}
