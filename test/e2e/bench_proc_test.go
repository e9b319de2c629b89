package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// benchUsage is what a process has used so far, from /proc.
type benchUsage struct {
	cpu     time.Duration // user + system
	rss     int64         // VmRSS, bytes
	peakRSS int64         // VmHWM, bytes
}

// benchClockTick is the kernel's USER_HZ, the unit of /proc/PID/stat's
// times: 100 on every Linux architecture Go runs on.
const benchClockTick = 100

// benchReadUsage reads a running process's CPU time and resident memory.
func benchReadUsage(pid int) (benchUsage, error) {
	var u benchUsage
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, err
	}
	// The command name, field 2, is in parentheses and may hold spaces:
	// count fields after its closing one. utime and stime are fields 14
	// and 15, so the 12th and 13th after the name.
	s := string(stat)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return u, fmt.Errorf("/proc/%d/stat: %d fields after the name", pid, len(f))
	}
	for _, i := range []int{11, 12} {
		ticks, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return u, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		u.cpu += time.Duration(ticks) * time.Second / benchClockTick
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			return u, fmt.Errorf("/proc/%d/status %s: %w", pid, key, err)
		}
		if key == "VmRSS" {
			u.rss = kb << 10
		} else {
			u.peakRSS = kb << 10
		}
	}
	return u, nil
}
