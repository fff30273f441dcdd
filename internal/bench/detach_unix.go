//go:build unix

package bench

import (
	"os/exec"
	"syscall"
)

// detach puts the server in a process group of its own, so that an
// interrupt typed at the terminal reaches the benchmark, which then stops
// the server itself after reporting.
func detach(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}
