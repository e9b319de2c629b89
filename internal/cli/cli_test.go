package cli_test

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"kubepki.dev/kubepki/internal/cli"
)

// TestMain lets the test binary double as the kubepki command: testscript
// copies it into $PATH as "kubepki", and when run under that name it is the
// real CLI, with its real exit codes.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"kubepki": func() { os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs testdata/script/*.txtar, one per command. Each script is
// meant to read as documentation of that command: what it does, what it
// refuses, and with which exit code.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"contains": tsContains,
			"exitcode": tsExitcode,
			"mode":     tsMode,
			"nowhere":  tsNowhere,
		},
	})
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
