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

// WaitIdle waits until the server has used no CPU for quiet (its
// background work done: checkpoints, search indexing, integration), or
// timeout has passed.
func (e *Embedded) WaitIdle(ctx context.Context, quiet, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	last, since := int64(-1), time.Now()
	for time.Now().Before(deadline) {
		cpu := cpuTicks(e.cmd.Process.Pid)
		if cpu < 0 {
			return nil // not on Linux: nothing to wait on
		}
		if cpu != last {
			last, since = cpu, time.Now()
		} else if time.Since(since) >= quiet {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
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
