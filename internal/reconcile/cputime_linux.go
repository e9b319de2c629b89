package reconcile

import (
	"time"

	"golang.org/x/sys/unix"
)

// threadCPU returns the processor time the calling thread has used so far,
// or 0 if the kernel cannot tell.
func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
