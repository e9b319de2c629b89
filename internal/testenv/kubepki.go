package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Kubepki builds the command under test into a new temporary directory
// and returns its path: tests that run kubepki as a real process (the CLI,
// crash and e2e tests) use this one build recipe. With a warm Go build
// cache it only links.
func Kubepki(t testing.TB) string {
	t.Helper()
	return KubepkiIn(t, t.TempDir())
}

// KubepkiIn builds the command under test as dir/kubepki, for a test that
// needs the binary somewhere others can reach (another user, say).
func KubepkiIn(t testing.TB, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "kubepki")
	cmd := exec.Command("go", "build", "-o", bin, rootModule+"/cmd/kubepki")
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build kubepki: %v\n%s", err, out)
	}
	return bin
}
