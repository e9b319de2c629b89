// Package openssltest runs the real openssl command in tests: the consumer
// that checks what kubepki writes, and the tool the hard way makes its PKI
// with. It imports nothing of kubepki, so every package's tests can use it.
package openssltest

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// Bin returns the openssl binary. Without one it skips the test, or fails
// it when CI is set: CI installs openssl (hack/setup), so a missing one
// there is a broken setup, not a reason to pass.
func Bin(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("openssl"); err == nil {
		return p
	}
	if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
		t.Fatalf("openssl is missing and CI=%s: CI must install it (hack/setup)", ci)
	}
	t.Skip("openssl not installed (hack/setup installs it); set CI=true to make this a failure")
	return ""
}

// Run runs openssl in dir ("" for the current directory) and returns its
// stdout; a non-zero exit fails the test with both outputs.
func Run(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, errOut, err := Try(t, dir, args...)
	if err != nil {
		t.Fatalf("openssl %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// Try runs openssl in dir and returns its outputs and error, for tests
// that expect openssl to refuse something.
func Try(t testing.TB, dir string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(Bin(t), args...)
	cmd.Dir = dir
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// HardWay runs the openssl commands of "Kubernetes the Hard Way"
// (docs/04-certificate-authority.md) in dir with conf as -config: a CA
// (ca.key, ca.crt) and, for each of certs (a section of conf), name.key,
// name.csr and name.crt signed by that CA, leaving ca.srl. Keys are RSA of
// bits bits: the tutorial's 4096, or 2048 to be quick.
func HardWay(t testing.TB, dir, conf string, bits int, certs ...string) {
	t.Helper()
	size := strconv.Itoa(bits)
	Run(t, dir, "genrsa", "-out", "ca.key", size)
	Run(t, dir, "req", "-x509", "-new", "-sha512", "-noenc", "-key", "ca.key", "-days", "3653", "-config", conf, "-out", "ca.crt")
	for _, c := range certs {
		Run(t, dir, "genrsa", "-out", c+".key", size)
		Run(t, dir, "req", "-new", "-key", c+".key", "-sha256", "-config", conf, "-section", c, "-out", c+".csr")
		Run(t, dir, "x509", "-req", "-days", "3653", "-in", c+".csr", "-copy_extensions", "copyall", "-sha256",
			"-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", c+".crt")
	}
}
