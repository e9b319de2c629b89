package testenv

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// stopGrace is how long Stop waits after SIGTERM before SIGKILL.
	stopGrace = 5 * time.Second
	// logTailLines is how much of a process log is shown on failure.
	logTailLines = 100
	// DefaultReadyTimeout is how long WaitReady polls before failing.
	DefaultReadyTimeout = 60 * time.Second
	// kubectlTimeout bounds a single kubectl invocation.
	kubectlTimeout = 2 * time.Minute
)

// Process is a started server process. Its combined stdout and stderr go to
// a log file under t.TempDir(). It is stopped by t.Cleanup (its whole process
// group gets SIGTERM, then SIGKILL after 5s), and the last ~100 lines of its
// log are written with t.Log if the test failed.
type Process struct {
	name    string
	bin     string
	args    []string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{} // closed once the process has been reaped
	waitErr error         // valid after done is closed

	stopOnce sync.Once
	mu       sync.Mutex
	dumped   bool // log tail already shown
}

// Start starts bin with args as a server process named name (used in logs).
// The process runs in its own process group, and the kernel kills it if the
// test binary dies (e.g. on a -timeout panic), so it cannot outlive the test.
func Start(t testing.TB, name, bin string, args ...string) *Process {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("testenv: start %s: create log: %v", name, err)
	}
	defer logFile.Close() // the child keeps its own descriptor

	fmt.Fprintf(logFile, "$ %s %s\n", bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: start %s: %v", name, err)
	}
	p := &Process{name: name, bin: bin, args: args, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	t.Logf("testenv: started %s (pid %d), log %s", name, cmd.Process.Pid, logPath)
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			p.dumpLog(t)
		}
	})
	return p
}

// Stop stops the process group: SIGTERM, then SIGKILL if the process has not
// exited after 5s. It waits for the process to be reaped. Stop is idempotent
// and may be called mid-test, e.g. to restart a component.
func (p *Process) Stop() {
	p.stopOnce.Do(func() {
		pgid := p.cmd.Process.Pid
		select {
		case <-p.done:
			return
		default:
		}
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-p.done:
			return
		case <-time.After(stopGrace):
		}
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	})
}

// Signal sends sig to the process group (e.g. SIGSTOP to freeze it, SIGCONT
// to let it go on). It does nothing once the process has been reaped.
func (p *Process) Signal(sig syscall.Signal) error {
	if exited, _ := p.exited(); exited {
		return nil
	}
	if err := syscall.Kill(-p.cmd.Process.Pid, sig); err != nil {
		return fmt.Errorf("signal %s (pid %d): %w", p.name, p.cmd.Process.Pid, err)
	}
	return nil
}

// Kill crashes the process: SIGKILL to its process group, no chance to clean
// up or say goodbye (a leader keeps its lease, a write in flight is cut). It
// waits for the process to be reaped. Stop after Kill does nothing.
func (p *Process) Kill() {
	p.stopOnce.Do(func() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	})
	<-p.done
}

// Done is closed once the process has exited and been reaped, whoever
// stopped it.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the process's exit error (nil for exit status 0); it waits for the
// process to exit.
func (p *Process) Err() error {
	<-p.done
	return p.waitErr
}

// Pid is the process id (and process group id).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Restart stops the process if it is still running (as Stop does) and
// starts the same command again, with the same name and arguments and a new
// log; it does not wait for readiness. Servers keep their state where their
// flags put it: a kube-apiserver comes back on the same port over the same
// etcd, an etcd with its --data-dir.
func (p *Process) Restart(t testing.TB) *Process {
	t.Helper()
	p.Stop()
	return Start(t, p.name, p.bin, p.args...)
}

// LogPath returns the path of the process's combined output.
func (p *Process) LogPath() string { return p.logPath }

// exited returns the process's exit error if it has already exited.
func (p *Process) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// dumpLog writes the tail of the log with t.Log, once.
func (p *Process) dumpLog(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dumped {
		return
	}
	p.dumped = true
	t.Logf("testenv: last %d lines of %s log (%s):\n%s", logTailLines, p.name, p.logPath, tail(p.logPath, logTailLines))
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(read log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// FreePort returns a TCP port that is currently free on 127.0.0.1.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// WaitReady polls url (e.g. https://127.0.0.1:PORT/readyz) using tlsConf
// until it answers 200 OK, for up to DefaultReadyTimeout. On timeout, or if
// p (which may be nil) exits first, it fails the test with the last error or
// response body and the tail of p's log.
func WaitReady(t testing.TB, url string, tlsConf *tls.Config, p *Process) {
	t.Helper()
	WaitReadyWithin(t, DefaultReadyTimeout, url, tlsConf, p)
}

// WaitReadyWithin is WaitReady with an explicit timeout.
func WaitReadyWithin(t testing.TB, timeout time.Duration, url string, tlsConf *tls.Config, p *Process) {
	t.Helper()
	if err := waitReady(timeout, url, tlsConf, p); err != nil {
		if p != nil {
			p.dumpLog(t)
		}
		t.Fatalf("testenv: %v", err)
	}
}

func waitReady(timeout time.Duration, url string, tlsConf *tls.Config, p *Process) error {
	transport := &http.Transport{TLSClientConfig: tlsConf, DisableKeepAlives: true}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 5 * time.Second}

	what := url
	if p != nil {
		what = fmt.Sprintf("%s (%s)", p.name, url)
	}
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if p != nil {
			if exited, err := p.exited(); exited {
				return fmt.Errorf("wait for %s: process exited before it was ready: %v (last probe: %v)", what, err, last)
			}
		}
		last = probe(client, url)
		if last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("wait for %s: not ready after %v: %w", what, timeout, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// probe does one GET and returns nil on 200 OK.
func probe(client *http.Client, url string) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(body))
	}
	return nil
}

// Kubectl runs kubectl --kubeconfig=kubeconfig with args and returns its
// stdout. A non-zero exit yields an error that includes stderr. Each call
// uses a fresh discovery cache dir under t.TempDir(), so $HOME is untouched.
func Kubectl(t testing.TB, bins Binaries, kubeconfig string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), kubectlTimeout)
	defer cancel()
	full := append([]string{"--kubeconfig=" + kubeconfig, "--cache-dir=" + t.TempDir()}, args...)
	cmd := exec.CommandContext(ctx, bins.Kubectl, full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		err = errors.Join(err, ctx.Err())
	}
	if err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w\nstderr:\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// Whoami runs `kubectl auth whoami` with kubeconfig (and args, e.g.
// --server) and returns the user and groups the API server sees.
func Whoami(t testing.TB, bins Binaries, kubeconfig string, args ...string) (user string, groups []string, err error) {
	t.Helper()
	out, err := Kubectl(t, bins, kubeconfig, append(args, "auth", "whoami", "-o", "json")...)
	if err != nil {
		return "", nil, err
	}
	var review struct {
		Status struct {
			UserInfo struct {
				Username string   `json:"username"`
				Groups   []string `json:"groups"`
			} `json:"userInfo"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(out), &review); err != nil {
		return "", nil, fmt.Errorf("parse kubectl auth whoami output: %w\n%s", err, out)
	}
	return review.Status.UserInfo.Username, review.Status.UserInfo.Groups, nil
}
