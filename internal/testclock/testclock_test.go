package testclock

import (
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{"", defaultNow, false},
		{"2027-12-31T23:59:30Z", time.Date(2027, 12, 31, 23, 59, 30, 0, time.UTC), false},
		{"2025-11-30T23:59:30.1239+01:00", time.Date(2025, 11, 30, 22, 59, 30, 123e6, time.UTC), false},
		{"yesterday", time.Time{}, true},
		{"2026-11-25", time.Time{}, true},
	} {
		got, err := parse(tc.in)
		if (err != nil) != tc.wantErr || !got.Equal(tc.want) {
			t.Errorf("parse(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestFormat(t *testing.T) {
	if got := Format(time.Date(2026, 1, 2, 4, 5, 6, 7e6, time.FixedZone("x", 3600))); got != "2026-01-02T03:05:06.007Z" {
		t.Fatalf("Format = %q", got)
	}
}
