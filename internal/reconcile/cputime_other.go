//go:build !linux

package reconcile

import "time"

// threadCPU returns 0: only Linux tells a thread's processor time here.
func threadCPU() time.Duration { return 0 }
