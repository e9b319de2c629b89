package store

import (
	"os"
	"time"
)

// TestWriteDelayEnv names an environment variable for tests only: a Go
// duration kubepki sleeps after each file it writes, stages or renames, so
// that a crash test's SIGKILL lands in the write phase rather than in
// start-up. Unset (always, outside tests) it costs one Getenv per file.
const TestWriteDelayEnv = "KUBEPKI_TEST_WRITE_DELAY"

// testPause sleeps for TestWriteDelayEnv, if set.
func testPause() {
	if d, err := time.ParseDuration(os.Getenv(TestWriteDelayEnv)); err == nil && d > 0 {
		time.Sleep(d)
	}
}
