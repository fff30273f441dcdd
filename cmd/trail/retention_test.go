package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeRetentionFlags checks that bad retention flags stop `trail serve`
// at once with a message that says what to give instead (exit status 2).
func TestServeRetentionFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--retention-default-days", "0"}, nil, "--retention-default-days 0: give a whole number of days from 1 to 36500"},
		{[]string{"--retention-default-days", "36501"}, nil, "--retention-default-days 36501: give a whole number of days from 1 to 36500"},
		{nil, map[string]string{"TRAIL_RETENTION_DEFAULT_DAYS": "-5"}, "--retention-default-days -5: give a whole number of days"},
		{[]string{"--retention-sweep-interval", "-1h"}, nil, "--retention-sweep-interval -1h0m0s: give a positive duration such as 1h, or 0 to turn deletion off"},
		{[]string{"--retention-batch-size", "0"}, nil, "--retention-batch-size 0: give a whole number from 1 to 100000"},
		{nil, map[string]string{"TRAIL_RETENTION_BATCH_SIZE": "100001"}, "--retention-batch-size 100001: give a whole number from 1 to 100000"},
		{[]string{"--retention-batch-pause", "-1s"}, nil, "--retention-batch-pause -1s: give a duration such as 50ms, or 0 for no pause"},
		{[]string{"--retention-test-now", "yesterday"}, nil, retentionTestNowRefusal()},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			args := append([]string{"serve", "--data", filepath.Join(t.TempDir(), "data"), "--listen", "127.0.0.1:0"}, tc.args...)
			if code := run(t.Context(), args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("trail serve %s: exit %d, stderr %q; want exit 2 saying %q", strings.Join(tc.args, " "), code, stderr.String(), tc.want)
			}
		})
	}
}

// retentionTestNowRefusal is how serve refuses --retention-test-now
// yesterday: a bad time in a test build, an unknown flag in the shipped one.
func retentionTestNowRefusal() string {
	if testKnobs {
		return `--retention-test-now "yesterday": give an RFC 3339 time`
	}
	return "flag provided but not defined: -retention-test-now"
}
