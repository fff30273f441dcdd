//go:build trailtest

package main

import (
	"flag"
	"os"
	"strconv"
	"time"
)

// Settings only tests use, which move the server's clocks or hold its
// workers back. They exist only in a binary built with -tags trailtest
// (internal/trailtest builds it so); the shipped binary has none of them
// (testknobs_off.go).

// testKnobs reports whether this binary has them.
const testKnobs = true

// registerRetentionTestNow declares --retention-test-now: the retention
// sweeper acts as if the time were this RFC 3339 instant.
func registerRetentionTestNow(fs *flag.FlagSet, p *string) {
	setting{fs}.StringVar(p, "retention-test-now", "TRAIL_RETENTION_TEST_NOW", "",
		"for tests only, never in production: the retention sweeper acts as if the time were this RFC 3339 instant")
}

// searchIndexDelay is TRAIL_SEARCH_INDEX_DELAY: the search indexer waits
// that long (a Go duration) before each batch, with which tests show that
// no read depends on the indexer having caught up.
func searchIndexDelay() string { return os.Getenv("TRAIL_SEARCH_INDEX_DELAY") }

// deletionCrashAfter is TRAIL_TEST_DELETION_CRASH_AFTER: the organization
// deletion worker ends the process (SIGKILL) right after recording this
// step, so that tests show a deletion resumes after a crash.
func deletionCrashAfter() string { return os.Getenv("TRAIL_TEST_DELETION_CRASH_AFTER") }

// replicateCheckpointPages is TRAIL_TEST_REPLICATE_CHECKPOINT_PAGES: the
// WAL size in pages from which replication checkpoints (0 or unset:
// replicate.DefaultCheckpointPages), with which the replication benchmark compares
// settings in one run (test/backup/bench_test.go).
func replicateCheckpointPages() int {
	n, _ := strconv.Atoi(os.Getenv("TRAIL_TEST_REPLICATE_CHECKPOINT_PAGES"))
	return n
}

// replicateLockWait is TRAIL_TEST_REPLICATE_LOCK_WAIT: how long a
// replication checkpoint waits for the write lock (a Go duration; unset:
// Litestream's default), for the same comparisons.
func replicateLockWait() time.Duration {
	return envDuration("TRAIL_TEST_REPLICATE_LOCK_WAIT")
}

// commitInterval is TRAIL_TEST_COMMIT_INTERVAL: the committer's
// ingest.Options.MinInterval (a Go duration; unset: its default), and
// indexGap is TRAIL_TEST_INDEX_GAP: the search indexer's
// ingest.IndexerOptions.Gap, with which benchmarks compare spacings in one
// run (docs/PERFORMANCE.md, "Spacing commits and indexer passes").
func commitInterval() time.Duration {
	return envDuration("TRAIL_TEST_COMMIT_INTERVAL")
}

func indexGap() time.Duration {
	return envDuration("TRAIL_TEST_INDEX_GAP")
}

// replicateRoundGap is TRAIL_TEST_REPLICATE_ROUND_GAP: the least time
// between the starts of two replication rounds (a Go duration; unset:
// replicate.Options's default), for the same comparisons.
func replicateRoundGap() time.Duration {
	return envDuration("TRAIL_TEST_REPLICATE_ROUND_GAP")
}

// replicateCheckpointInRound is TRAIL_TEST_REPLICATE_CHECKPOINT_IN_ROUND=1:
// Litestream checkpoints inside the replication rounds, as before the
// checkpoints were taken between rounds, for the same comparisons.
func replicateCheckpointInRound() bool {
	return os.Getenv("TRAIL_TEST_REPLICATE_CHECKPOINT_IN_ROUND") == "1"
}

// envDuration is the Go duration in the environment variable name (0 when
// unset or malformed: the setting's default).
func envDuration(name string) time.Duration {
	d, _ := time.ParseDuration(os.Getenv(name))
	return d
}
