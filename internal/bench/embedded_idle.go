package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// ResetPeakRSS starts the peak RSS over from the current RSS (Linux:
// /proc/PID/clear_refs), so that PeakRSS measures what happens from now
// on. It reports whether it could.
func (e *Embedded) ResetPeakRSS() bool {
	if err := os.WriteFile("/proc/"+strconv.Itoa(e.cmd.Process.Pid)+"/clear_refs", []byte("5"), 0); err != nil {
		return false
	}
	e.peak, e.peakReset = 0, true
	return true
}

// WaitIdle waits until the server has used less than a tenth of a core
// over a whole window (its start-up work done: WAL recovery, search
// indexing, integration; what remains is its periodic polling), or timeout
// has passed.
func (e *Embedded) WaitIdle(ctx context.Context, window, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	last := cpuTicks(e.cmd.Process.Pid)
	if last < 0 {
		return nil // not on Linux: nothing to wait on
	}
	const ticksPerSecond = 100 // USER_HZ on Linux
	quiet := int64(window.Seconds() * ticksPerSecond / 10)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(window):
		}
		cpu := cpuTicks(e.cmd.Process.Pid)
		if cpu-last <= quiet {
			return nil
		}
		last = cpu
	}
	return fmt.Errorf("the embedded server was still busy after %v", timeout)
}

// cpuTicks is a process's user+system CPU time in clock ticks, -1 if
// unknown.
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	// The command name may hold spaces: fields start after the last ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return -1
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return u + k
}
