package distribute

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"kubepki.dev/kubepki/internal/bundle"
	"kubepki.dev/kubepki/internal/cluster"
)

// testBundle is a small bundle with a key and a certificate.
func testBundle() *bundle.Bundle {
	return &bundle.Bundle{Node: "n", Files: []bundle.File{
		{Path: "/var/lib/kubelet/ca.crt", Mode: 0o644, Owner: "root:root", Data: []byte("cert\n")},
		{Path: "/var/lib/kubelet/kubelet.key", Mode: 0o600, Owner: "root:root", Data: []byte("key\n")},
		{Path: "/etc/kubernetes/ca.crt", Mode: 0o644, Owner: "root:root", Data: []byte("cert\n")},
	}}
}

// TestShellQuote round-trips awkward strings through a real /bin/sh.
func TestShellQuote(t *testing.T) {
	for _, s := range []string{
		"", "plain", "with space", "it's", "''", `\`, `$HOME`, "`id`", "$(id)", "a\nb", "*", "-n", "!", `"`, "a'b'c",
	} {
		out, err := exec.Command("/bin/sh", "-c", "printf %s "+shellQuote(s)).Output()
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if string(out) != s {
			t.Errorf("shellQuote(%q) came back as %q", s, out)
		}
	}
}

func TestQuoteIfNeeded(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1":              "127.0.0.1",
		"/root/.ssh/known_hosts": "/root/.ssh/known_hosts",
		"[127.0.0.1]:2222":       "'[127.0.0.1]:2222'",
		"my file":                "'my file'",
		"~/x":                    "'~/x'",
		"":                       "''",
	} {
		if got := quoteIfNeeded(in); got != want {
			t.Errorf("quoteIfNeeded(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestCheckPath(t *testing.T) {
	tests := []struct {
		path string
		ok   bool
	}{
		{"/var/lib/kubelet/kubelet.key", true},
		{"/etc/kubernetes/pki/etcd/ca.crt", true},
		{"/tmp/TestX123/001/node-0", true},
		{"relative/path", false},
		{"/", false},
		{"/a/../etc/shadow", false},
		{"/a//b", false},
		{"/a/b/", false},
		{"/a/./b", false},
		{"/a/b c", false},
		{"/a/$(reboot)", false},
		{"/a/`id`", false},
		{"/a/b'c", false},
		{"/a/b\nc", false},
		{"/a/b;c", false},
		{"/a/\x00", false},
	}
	for _, tt := range tests {
		if err := checkPath(tt.path); (err == nil) != tt.ok {
			t.Errorf("checkPath(%q) = %v, want ok=%v", tt.path, err, tt.ok)
		}
	}
}

func TestParseOwner(t *testing.T) {
	tests := []struct {
		in          string
		user, group string
		ok          bool
	}{
		{"root:root", "root", "root", true},
		{"kube", "kube", "", true},
		{"0:0", "0", "0", true},
		{"", "", "", true},
		{"root:", "", "", false},
		{":root", "", "", false},
		{"root:root:root", "", "", false},
		{"-r:root", "", "", false},
		{"ro ot:root", "", "", false},
		{"root;reboot", "", "", false},
	}
	for _, tt := range tests {
		u, g, err := parseOwner(tt.in)
		if (err == nil) != tt.ok || u != tt.user || g != tt.group {
			t.Errorf("parseOwner(%q) = %q, %q, %v", tt.in, u, g, err)
		}
	}
}

func TestTargetFor(t *testing.T) {
	tests := []struct {
		name string
		node cluster.Node
		want Target
		err  string
	}{
		{"defaults", cluster.Node{Name: "a", IPs: []string{"10.0.0.1", "10.0.0.2"}}, Target{"a", "10.0.0.1:22", "root"}, ""},
		{"address without port", cluster.Node{Name: "a", SSH: cluster.SSH{Address: "a.example"}}, Target{"a", "a.example:22", "root"}, ""},
		{"address with port", cluster.Node{Name: "a", SSH: cluster.SSH{Address: "127.0.0.1:2222", User: "ops"}}, Target{"a", "127.0.0.1:2222", "ops"}, ""},
		{"ipv6", cluster.Node{Name: "a", IPs: []string{"fd00::1"}}, Target{"a", "[fd00::1]:22", "root"}, ""},
		{"bracketed ipv6 with port", cluster.Node{Name: "a", SSH: cluster.SSH{Address: "[fd00::1]:2200"}}, Target{"a", "[fd00::1]:2200", "root"}, ""},
		{"nothing to reach", cluster.Node{Name: "a"}, Target{}, "no ssh.address and no IPs"},
		{"bad port", cluster.Node{Name: "a", SSH: cluster.SSH{Address: "h:99999"}}, Target{}, "bad port"},
		{"empty host", cluster.Node{Name: "a", SSH: cluster.SSH{Address: ":22"}}, Target{}, "empty host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := TargetFor(tt.node)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), "node a") {
					t.Errorf("err = %v, want %q naming node a", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("TargetFor = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestParseLs(t *testing.T) {
	tests := []struct {
		line        string
		perm        uint32
		user, group string
		ok          bool
	}{
		{"-rw------- 1 root root 227 Jan  1 00:00 /a b", 0o600, "root", "root", true},
		{"-rw-r--r--. 1 kube wheel 5 Jan  1 00:00 /a", 0o644, "kube", "wheel", true},
		{"-rwsr-x--T+ 1 0 0 5 Jan  1 00:00 /a", 0o5750, "0", "0", true},
		{"-rwSr-sr-t 1 0 0 5 Jan  1 00:00 /a", 0o7655, "0", "0", true},
		{"-rw-------", 0, "", "", false},
		{"-rwq------ 1 a b", 0, "", "", false},
	}
	for _, tt := range tests {
		perm, u, g, err := parseLs(tt.line)
		if (err == nil) != tt.ok || perm != tt.perm || u != tt.user || g != tt.group {
			t.Errorf("parseLs(%q) = %04o %q %q %v", tt.line, perm, u, g, err)
		}
	}
}

func TestParseInspect(t *testing.T) {
	good := "motd noise from a login script\n" + inspectMarker + "\nU 0\n" +
		"F 0\nT missing\n" +
		"F 1\nT file\nM -rw------- 1 root root 4 Jan  1 00:00 /x\nD\n 6b 65 79\n 0a\nE\n" +
		"F 2\nT file\nM -rw-r--r-- 1 root root 0 Jan  1 00:00 /y\nD\nE\n" +
		"F 3\nT file\nM -rw-r--r-- 1 root root 9999999 Jan  1 00:00 /z\nB\n" +
		"F 4\nT link\nF 5\nT other\n"
	st, err := parseInspect([]byte(good), 6)
	if err != nil {
		t.Fatal(err)
	}
	if !st.root || st.uid != "0" || len(st.files) != 6 {
		t.Fatalf("state %+v", st)
	}
	want := []remoteFile{
		{kind: kindMissing},
		{kind: kindFile, perm: 0o600, user: "root", group: "root", data: []byte("key\n")},
		{kind: kindFile, perm: 0o644, user: "root", group: "root"},
		{kind: kindFile, perm: 0o644, user: "root", group: "root", tooBig: true},
		{kind: kindLink},
		{kind: kindOther},
	}
	for i, w := range want {
		if g := st.files[i]; fmt.Sprint(g) != fmt.Sprint(w) {
			t.Errorf("file %d: %+v, want %+v", i, g, w)
		}
	}

	for name, bad := range map[string]string{
		"no marker":        "U 0\nF 0\nT missing\n",
		"truncated":        inspectMarker + "\nU 0\nF 0\nT file\nM -rw------- 1 root root 4 x\nD\n 6b\n",
		"bad hex":          inspectMarker + "\nU 0\nF 0\nT file\nM -rw------- 1 root root 4 x\nD\n zz\nE\n",
		"wrong index":      inspectMarker + "\nU 0\nF 1\nT missing\n",
		"unknown type":     inspectMarker + "\nU 0\nF 0\nT fifo\n",
		"too few files":    inspectMarker + "\nU 0\n",
		"missing uid":      inspectMarker + "\nF 0\nT missing\n",
		"garbled ls line":  inspectMarker + "\nU 0\nF 0\nT file\nM total 0\nD\nE\n",
		"uid not a number": inspectMarker + "\nU 0; echo\nF 0\nT missing\n",
		"overlong owner":   inspectMarker + "\nU 0\nF 0\nT file\nM -rw------- 1 " + strings.Repeat("u", 81) + " root 4 x\nB\n",
		// A node that sends more content than any file may have.
		"content over maxRemoteFile": inspectMarker + "\nU 0\nF 0\nT file\nM -rw------- 1 root root 4 x\nD\n" +
			strings.Repeat(strings.Repeat(" 00", 16)+"\n", maxRemoteFile/16+1) + "E\n",
	} {
		if _, err := parseInspect([]byte(bad), 1); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

func TestCompare(t *testing.T) {
	it := item{path: "/k", mode: 0o600, user: "root", group: "root", data: []byte("key"), sum: sha256Hex([]byte("key"))}
	same := remoteFile{kind: kindFile, perm: 0o600, user: "root", group: "root", data: []byte("key")}
	with := func(f func(*remoteFile)) remoteFile { r := same; f(&r); return r }
	tests := []struct {
		name   string
		rf     remoteFile
		root   bool
		action Action
		detail string
		err    bool
	}{
		{"same", same, true, Unchanged, "", false},
		{"missing", remoteFile{kind: kindMissing}, true, Created, "", false},
		{"content", with(func(r *remoteFile) { r.data = []byte("other") }), true, Updated, "content", false},
		{"too big", with(func(r *remoteFile) { r.data, r.tooBig = nil, true }), true, Updated, "content", false},
		{"mode", with(func(r *remoteFile) { r.perm = 0o644 }), true, Updated, "mode 0644 (want 0600)", false},
		{"setuid", with(func(r *remoteFile) { r.perm = 0o4600 }), true, Updated, "mode 4600 (want 0600)", false},
		{"owner as root", with(func(r *remoteFile) { r.user = "kube" }), true, Updated, "owner kube:root (want root:root)", false},
		{"owner not root", with(func(r *remoteFile) { r.user = "kube" }), false, Unchanged, "", false},
		{"several", with(func(r *remoteFile) { r.data, r.perm = nil, 0o666 }), true, Updated, "content, mode 0666 (want 0600)", false},
		{"symlink", remoteFile{kind: kindLink}, true, Updated, "was a symbolic link", false},
		{"directory", remoteFile{kind: kindOther}, true, "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, d, err := compare(it, tt.rf, tt.root)
			if (err != nil) != tt.err || a != tt.action || d != tt.detail {
				t.Errorf("compare = %q, %q, %v; want %q, %q, err=%v", a, d, err, tt.action, tt.detail, tt.err)
			}
		})
	}
}

func TestPlanItems(t *testing.T) {
	items, err := planItems(testBundle(), "/tmp/root")
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 4 {
		t.Fatalf("%d items", len(items))
	}
	m := items[3]
	if m.path != ManifestPath || m.remote != "/tmp/root"+ManifestPath || m.mode != 0o644 || !strings.Contains(string(m.data), `"sha256"`) {
		t.Errorf("manifest item %+v", m)
	}
	for _, it := range items {
		wantDir := os.FileMode(0o755)
		if strings.HasPrefix(it.path, "/var/lib/kubelet/") {
			wantDir = 0o700 // holds kubelet.key
		}
		if it.dirMode != wantDir || it.remote != "/tmp/root"+it.path || it.sum != sha256Hex(it.data) {
			t.Errorf("%s: dir mode %v, remote %s", it.path, it.dirMode, it.remote)
		}
	}

	for name, mutate := range map[string]func(*bundle.Bundle){
		"relative path": func(b *bundle.Bundle) { b.Files[0].Path = "var/x" },
		"dotdot":        func(b *bundle.Bundle) { b.Files[0].Path = "/var/../etc/x" },
		"quote":         func(b *bundle.Bundle) { b.Files[0].Path = "/var/x'y" },
		"duplicate":     func(b *bundle.Bundle) { b.Files[1].Path = b.Files[0].Path },
		"owner":         func(b *bundle.Bundle) { b.Files[0].Owner = "root root" },
		"setuid":        func(b *bundle.Bundle) { b.Files[0].Mode |= os.ModeSetuid },
		"manifest path": func(b *bundle.Bundle) { b.Files[0].Path = ManifestPath },
	} {
		b := testBundle()
		mutate(b)
		if _, err := planItems(b, ""); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := planItems(testBundle(), "relative"); err == nil || !strings.Contains(err.Error(), "remote root") {
		t.Errorf("relative remote root: %v", err)
	}
}

func TestDialError(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
	if got := dialError(refused, time.Second).Error(); got != "dial: connection refused" {
		t.Errorf("refused: %q", got)
	}
	if !errors.Is(dialError(refused, time.Second), syscall.ECONNREFUSED) {
		t.Error("dialError does not wrap the cause")
	}
	timeout := &net.OpError{Op: "dial", Net: "tcp", Err: timeoutErr{}}
	if got := dialError(timeout, 3*time.Second).Error(); got != "dial: no answer within 3s (i/o timeout)" {
		t.Errorf("timeout: %q", got)
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestReportCount(t *testing.T) {
	r := Report{Files: []FileResult{{Action: Created}, {Action: Created}, {Action: Unchanged}}}
	if r.Count(Created) != 2 || r.Count(Unchanged) != 1 || r.Count(Updated) != 0 {
		t.Errorf("counts %d %d %d", r.Count(Created), r.Count(Unchanged), r.Count(Updated))
	}
}
