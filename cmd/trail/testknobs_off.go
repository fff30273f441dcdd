//go:build !trailtest

package main

import "flag"

// The shipped binary has no test-only settings (testknobs.go).

const testKnobs = false

func registerRetentionTestNow(*flag.FlagSet, *string) {}

func searchIndexDelay() string { return "" }

func deletionCrashAfter() string { return "" }
