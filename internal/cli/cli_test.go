package cli_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"kubepki.dev/kubepki/internal/cli"
	"kubepki.dev/kubepki/internal/pki"
)

// TestMain lets the test binary double as the kubepki command: testscript
// copies it into $PATH as "kubepki", and when run under that name it is the
// real CLI, with its real exit codes.
//
// Every run's output is audited: a private key must never reach stdout or
// stderr (a command that is meant to print one must not exist), so the
// "kubepki" of the scripts records any output that holds one, as PEM or
// base64-encoded in JSON or YAML, and the script fails at its end.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"kubepki": func() { os.Exit(auditedMain(os.Args[1:])) },
	})
}

// auditEnv names the file auditedMain appends a line to for every run
// whose output holds a private key.
const auditEnv = "KUBEPKI_OUTPUT_AUDIT"

// auditedMain runs kubepki as Main does, keeping a copy of what it writes.
func auditedMain(args []string) int {
	var out, errOut bytes.Buffer
	code := cli.Main(args, os.Stdin, io.MultiWriter(os.Stdout, &out), io.MultiWriter(os.Stderr, &errOut))
	for stream, data := range map[string][]byte{"stdout": out.Bytes(), "stderr": errOut.Bytes()} {
		if what := privateKeyIn(data); what != "" {
			line := fmt.Sprintf("kubepki %s: %s holds %s\n", strings.Join(args, " "), stream, what)
			if path := os.Getenv(auditEnv); path != "" {
				f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
				if err == nil {
					_, err = f.WriteString(line)
					err = errors.Join(err, f.Close())
				}
				if err == nil {
					continue
				}
			}
			fmt.Fprint(os.Stderr, "AUDIT: "+line)
			return 99
		}
	}
	return code
}

// privateKeyIn says how data holds a private key — the text PRIVATE KEY
// of a PEM header, or its base64 encoding at any of the three alignments
// (client-key-data in a kubeconfig printed as JSON or YAML) — or "".
func privateKeyIn(data []byte) string {
	const marker = "PRIVATE KEY"
	if bytes.Contains(data, []byte(marker)) {
		return `"` + marker + `"`
	}
	for skip := range 3 {
		s := marker[skip:]
		s = s[:len(s)/3*3]
		if enc := base64.StdEncoding.EncodeToString([]byte(s)); bytes.Contains(data, []byte(enc)) {
			return fmt.Sprintf("%q base64-encoded (%s)", marker, enc)
		}
	}
	return ""
}

// TestScripts runs testdata/script/*.txtar, one per command. Each script is
// meant to read as documentation of that command: what it does, what it
// refuses, and with which exit code.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:   "testdata/script",
		Setup: auditSetup,
		// [root]: the test runs as root (chown to another user needs it).
		Condition: func(cond string) (bool, error) {
			if cond == "root" {
				return os.Geteuid() == 0, nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"chown":    tsChown,
			"contains": tsContains,
			"expand":   tsExpand,
			"exitcode": tsExitcode,
			"mode":     tsMode,
			"nowhere":  tsNowhere,
		},
	})
}

// auditSetup fails the script if any kubepki run printed a private key.
func auditSetup(env *testscript.Env) error {
	dir, err := os.MkdirTemp("", "kubepki-audit-")
	if err != nil {
		return err
	}
	audit := filepath.Join(dir, "audit")
	env.Setenv(auditEnv, audit)
	env.Defer(func() {
		data, err := os.ReadFile(audit)
		os.RemoveAll(dir)
		if err == nil && len(data) > 0 {
			env.T().Fatal("private key material in kubepki's output:\n" + string(data))
		}
	})
	return nil
}

// exitcode N PROG ARGS... runs PROG and fails unless it exits with status N.
// Its stdout and stderr are then checked with the stdout and stderr commands,
// as after exec. testscript's own "! exec" only tells zero from non-zero;
// kubepki's exit codes (1 error, 2 usage, 3 findings) are part of its
// interface.
func tsExitcode(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! exitcode (name the expected code instead)")
	}
	if len(args) < 2 {
		ts.Fatalf("usage: exitcode N PROG [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exitcode: %v", err)
	}
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("exitcode: %v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d", args[1], got, want)
	}
}

// contains FILE PART fails unless FILE holds the text of file PART, less
// leading and trailing white space; with !, unless it does not. FILE may be
// stdout or stderr, as in cmp: this compares kubepki's output with what
// another tool (openssl) printed.
func tsContains(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: contains FILE PART")
	}
	text, part := ts.ReadFile(args[0]), strings.TrimSpace(ts.ReadFile(args[1]))
	if part == "" {
		ts.Fatalf("contains: %s is empty", args[1])
	}
	if strings.Contains(text, part) == neg {
		if neg {
			ts.Fatalf("%s contains %q", args[0], part)
		}
		ts.Fatalf("%s does not contain %q", args[0], part)
	}
}

// mode PERM FILE... fails unless every FILE has exactly the permission bits
// PERM (octal, such as 0600); with !, unless none has them. It does not
// follow symbolic links.
func tsMode(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: mode PERM FILE...")
	}
	perm, err := strconv.ParseUint(args[0], 8, 32)
	if err != nil || perm > 0o777 {
		ts.Fatalf("mode: %q is not an octal permission", args[0])
	}
	for _, f := range args[1:] {
		fi, err := os.Lstat(ts.MkAbs(f))
		ts.Check(err)
		got := fi.Mode().Perm()
		if (got == fs.FileMode(perm)) == neg {
			if neg {
				ts.Fatalf("%s has mode %04o", f, got)
			}
			ts.Fatalf("%s has mode %04o, want %04o", f, got, perm)
		}
	}
}

// nowhere NAME DIR... fails if a file or directory called NAME exists
// anywhere below (or at) any DIR, which must exist.
func tsNowhere(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! nowhere")
	}
	if len(args) < 2 {
		ts.Fatalf("usage: nowhere NAME DIR...")
	}
	name := args[0]
	for _, dir := range args[1:] {
		root := ts.MkAbs(dir)
		if _, err := os.Stat(root); err != nil {
			ts.Fatalf("nowhere: %v", err)
		}
		ts.Check(filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Name() == name {
				rel, _ := filepath.Rel(ts.MkAbs("."), path)
				ts.Fatalf("found %s", rel)
			}
			return nil
		}))
	}
}

// TestPrivateKeyIn: the audit of the scripts' output finds a key however
// it is printed, and only a key.
func TestPrivateKeyIn(t *testing.T) {
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := pki.EncodeKey(key)
	if err != nil {
		t.Fatal(err)
	}
	rsaPEM := []byte("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n")
	ecPEM := []byte("-----BEGIN EC PRIVATE KEY-----\nMHcC\n-----END EC PRIVATE KEY-----\n")
	cert := []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
	tests := []struct {
		name   string
		output string
		found  bool
	}{
		{"PKCS#8 PEM", "wrote it:\n" + string(keyPEM), true},
		{"PKCS#1 PEM", string(rsaPEM), true},
		{"SEC 1 PEM", string(ecPEM), true},
		{"kubeconfig as JSON", `{"client-key-data": "` + base64.StdEncoding.EncodeToString(keyPEM) + `"}`, true},
		{"RSA key as YAML", "client-key-data: " + base64.StdEncoding.EncodeToString(rsaPEM), true},
		{"EC key as YAML", "client-key-data: " + base64.StdEncoding.EncodeToString(ecPEM), true},
		{"a certificate", string(cert) + base64.StdEncoding.EncodeToString(cert), false},
		{"a report about keys", "server.key: ECDSA-P256 private key, mode 0600\n", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := privateKeyIn([]byte(tc.output)); (got != "") != tc.found {
				t.Errorf("privateKeyIn = %q, want found=%v", got, tc.found)
			}
		})
	}
}

// chown UID PATH... gives every PATH (not what a link points to) to the
// user and group UID.
func tsChown(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: chown UID PATH...")
	}
	uid, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("chown: %v", err)
	}
	for _, p := range args[1:] {
		ts.Check(os.Lchown(ts.MkAbs(p), uid, uid))
	}
}

// expand FILE... replaces $VAR and ${VAR} in each FILE by the script's
// environment ($WORK: the absolute paths a journal holds).
func tsExpand(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 {
		ts.Fatalf("usage: expand FILE...")
	}
	for _, f := range args {
		p := ts.MkAbs(f)
		data, err := os.ReadFile(p)
		ts.Check(err)
		ts.Check(os.WriteFile(p, []byte(os.Expand(string(data), ts.Getenv)), 0o600))
	}
}
