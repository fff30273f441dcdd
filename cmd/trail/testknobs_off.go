//go:build !trailtest

package main

import (
	"flag"
	"time"
)

// The shipped binary has no test-only settings (testknobs.go).

const testKnobs = false

func registerRetentionTestNow(*flag.FlagSet, *string) {}

func searchIndexDelay() string { return "" }

func deletionCrashAfter() string { return "" }

func replicateCheckpointPages() int { return 0 }

func replicateLockWait() time.Duration { return 0 }

func commitInterval() time.Duration { return 0 }

func indexGap() time.Duration { return 0 }

func replicateRoundGap() time.Duration { return 0 }

func replicateCheckpointInRound() bool { return false }
