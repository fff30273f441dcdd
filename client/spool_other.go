//go:build !unix

package client

import "os"

// lockFile does nothing where flock is missing: keep one publisher per
// spool directory.
func lockFile(*os.File) error { return nil }
