package sshdtest

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// recorder is a testing.TB that records Skipf and Fatalf instead of
// ending the test.
type recorder struct {
	testing.TB
	skipped, fatal string
}

func (r *recorder) Helper()                           {}
func (r *recorder) Skipf(format string, args ...any)  { r.skipped = fmt.Sprintf(format, args...) }
func (r *recorder) Fatalf(format string, args ...any) { r.fatal = fmt.Sprintf(format, args...) }

func TestRequire(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "sshd")
	tests := []struct {
		ci, bin    string
		skip, fail bool
	}{
		{ci: "", bin: missing, skip: true},
		{ci: "false", bin: missing, skip: true},
		{ci: "true", bin: missing, fail: true},
		{ci: "1", bin: missing, fail: true},
		{ci: "true", bin: "/bin/sh"},
	}
	for _, tt := range tests {
		t.Run(tt.ci+" "+tt.bin, func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			r := &recorder{TB: t}
			require(r, tt.bin)
			if (r.skipped != "") != tt.skip || (r.fatal != "") != tt.fail {
				t.Errorf("skipped %q, fatal %q; want skip=%v fail=%v", r.skipped, r.fatal, tt.skip, tt.fail)
			}
			if tt.fail && !strings.Contains(r.fatal, "openssh-server") {
				t.Errorf("the failure does not say what to install: %s", r.fatal)
			}
		})
	}
}

// TestStartStop starts sshd, checks it greets on 127.0.0.1, stops it and
// checks it has exited and the port is closed.
func TestStartStop(t *testing.T) {
	s := Start(t)
	if !strings.HasPrefix(s.Addr, "127.0.0.1:") {
		t.Fatalf("listening on %s", s.Addr)
	}
	conn, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(buf); err != nil || string(buf) != "SSH-2.0-" {
		t.Errorf("banner %q, %v", buf, err)
	}
	conn.Close()
	s.Stop(t)
	if !s.Exited() {
		t.Fatal("sshd still running after Stop")
	}
	if c, err := net.DialTimeout("tcp", s.Addr, time.Second); err == nil {
		c.Close()
		t.Error("port still open after Stop")
	}
}
