package bench

import (
	"os"
	"syscall"
)

// maxRSS is an exited process's peak resident set size in bytes, from the
// resource usage wait4 reported (0 if unknown).
func maxRSS(ps *os.ProcessState) int64 {
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok && ru != nil {
		return ru.Maxrss * 1024 // kilobytes on Linux
	}
	return 0
}
