package main

import (
	"fmt"

	"github.com/trailaudit/trail/internal/store/sqlite"
)

// defaultMemoryMiB is the memory an embedded server plans for unless
// --memory-mib says otherwise: with the reserve below, its peak RSS in a
// burst of batches stays under 512 MiB (docs/PERFORMANCE.md, "Memory").
const defaultMemoryMiB = 448

// memoryReserve is the part of the budget no setting bounds: SQLite's
// memory beyond its page caches (statements, the search indexer's token
// hash), and the binary's mapped pages.
const memoryReserve = 48 << 20

// minMemoryMiB is the least --memory-mib accepted: below it the Go heap
// would be left less than the events held for the indexer.
const minMemoryMiB = 128

// memoryBudget is how --memory-mib is divided (docs/OPERATIONS.md,
// "Memory"): a quarter for SQLite's page caches unless --sqlite-cache-mib
// sets them, a quarter for the accepted events held in the Go heap for the
// search indexer (ingest is refused past it until the indexer catches up),
// and what is left after the reserve as the Go runtime's soft memory limit,
// which holds those events, requests being parsed and everything else Go.
type memoryBudget struct {
	sqliteCache int64 // bytes
	backlog     int64 // bytes
	goLimit     int64 // bytes
}

// gcPercent is the Go collector's target unless GOGC sets one: the heap
// may grow to three times its live size between collections instead of
// twice. The soft memory limit (memoryBudget.goLimit) still bounds it, so
// a burst is collected as before, while under steady load the collector
// marks half as often (docs/PERFORMANCE.md, "The collector's target").
const gcPercent = 200

// newMemoryBudget divides totalMiB; cacheMiB, when not 0, replaces
// SQLite's quarter.
func newMemoryBudget(totalMiB, cacheMiB int64) (memoryBudget, error) {
	if totalMiB < minMemoryMiB {
		return memoryBudget{}, fmt.Errorf("--memory-mib %d: give at least %d MiB", totalMiB, minMemoryMiB)
	}
	total := totalMiB << 20
	b := memoryBudget{sqliteCache: total / 4, backlog: total / 4}
	if cacheMiB > 0 {
		b.sqliteCache = cacheMiB << 20
	}
	b.goLimit = total - b.sqliteCache - memoryReserve
	// The Go heap must hold the events waiting for the indexer and room
	// beside them for the requests being parsed.
	if b.goLimit < b.backlog+b.backlog/2 {
		return memoryBudget{}, fmt.Errorf("--sqlite-cache-mib %d leaves the Go heap too little of --memory-mib %d: give at most %d, or more --memory-mib",
			cacheMiB, totalMiB, (total-memoryReserve-b.backlog-b.backlog/2)>>20)
	}
	return b, nil
}

// sqliteOptions are the store options the budget gives.
func (b memoryBudget) sqliteOptions() []sqlite.Option {
	return []sqlite.Option{sqlite.WithCache(b.sqliteCache), sqlite.WithBacklogMemory(b.backlog)}
}
