package main

import (
	"strings"
	"testing"
)

// TestMemoryBudget checks how --memory-mib is divided: SQLite's caches
// and the indexer's backlog a quarter each, the Go soft limit what is left
// after the reserve, and budgets that leave Go too little refused, naming
// the flag to change.
func TestMemoryBudget(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name            string
		total, cache    int64 // MiB
		want            memoryBudget
		wantErrContains string
	}{
		{name: "default", total: defaultMemoryMiB, want: memoryBudget{sqliteCache: 112 * mib, backlog: 112 * mib, goLimit: 288 * mib}},
		{name: "small", total: 128, want: memoryBudget{sqliteCache: 32 * mib, backlog: 32 * mib, goLimit: 48 * mib}},
		{name: "caches set apart", total: 1024, cache: 64, want: memoryBudget{sqliteCache: 64 * mib, backlog: 256 * mib, goLimit: 912 * mib}},
		{name: "too small", total: 100, wantErrContains: "--memory-mib 100"},
		{name: "caches leave Go too little", total: 256, cache: 200, wantErrContains: "--sqlite-cache-mib 200"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := newMemoryBudget(tc.total, tc.cache)
			if tc.wantErrContains != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErrContains) {
					t.Fatalf("newMemoryBudget(%d, %d) = %v, want an error naming %q", tc.total, tc.cache, err, tc.wantErrContains)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("newMemoryBudget(%d, %d) = %+v, %v; want %+v", tc.total, tc.cache, got, err, tc.want)
			}
			if got.goLimit+got.sqliteCache+memoryReserve != tc.total*mib {
				t.Errorf("the parts add up to %d bytes, want the budget's %d", got.goLimit+got.sqliteCache+memoryReserve, tc.total*mib)
			}
		})
	}
}
