//go:build unix

package client

import (
	"os"
	"syscall"
)

// lockFile takes an exclusive lock on f, failing at once if another
// process holds it. The lock ends with the process.
func lockFile(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}
