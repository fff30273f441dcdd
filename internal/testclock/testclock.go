// Package testclock owns the one fixed clock reading that tests use when
// they pin time, so that a suite passing today passes on any date.
//
// A test that fixes a clock takes every time it sends or expects from that
// same reading (Now, and offsets from it), never from time.Now: a test that
// mixes the two works only until the calendar moves past the fixed date. The
// reading defaults to a constant and can be moved with TRAIL_TEST_NOW (an RFC
// 3339 time), which is how a mix is found: the suite must pass with the
// reading moved a year ahead, a year back, and onto month and year
// boundaries (docs/TESTING.md).
package testclock

import (
	"fmt"
	"os"
	"time"
)

// EnvVar names the environment variable that moves the reading.
const EnvVar = "TRAIL_TEST_NOW"

// defaultNow is the reading when EnvVar is unset: an arbitrary instant with
// a millisecond part, as Trail stores times.
var defaultNow = time.Date(2026, 11, 25, 19, 0, 0, 0, time.UTC)

// TB is the part of testing.TB this package needs.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// Now returns the suite's fixed clock reading, in UTC, at millisecond
// precision: TRAIL_TEST_NOW when set, else a constant. A malformed
// TRAIL_TEST_NOW fails the test rather than being ignored.
func Now(tb TB) time.Time {
	tb.Helper()
	t, err := parse(os.Getenv(EnvVar))
	if err != nil {
		tb.Fatalf("testclock: %v", err)
	}
	return t
}

// Must is Now for places without a testing.TB (benchmarks' package-level
// fixtures, fuzz seeds): it panics on a malformed TRAIL_TEST_NOW.
func Must() time.Time {
	t, err := parse(os.Getenv(EnvVar))
	if err != nil {
		panic("testclock: " + err.Error())
	}
	return t
}

func parse(v string) (time.Time, error) {
	if v == "" {
		return defaultNow, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s=%q is not an RFC 3339 time: %w", EnvVar, v, err)
	}
	return t.UTC().Truncate(time.Millisecond), nil
}

// Format writes t as Trail writes times on the wire (RFC 3339, UTC,
// milliseconds), for building request bodies from the fixed clock.
func Format(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}
