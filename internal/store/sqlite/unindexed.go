package sqlite

import (
	"sort"
	"strings"
	"sync"
)

// unindexedBudget bounds the memory held for the indexer and for reads of
// the events it has not reached yet, counted as heldSize, unless the store
// was opened WithBacklogMemory: a quarter above what admit lets the
// backlog reach (maxBacklogBytes), so that the queue holds every event of
// the backlog this process committed.
const unindexedBudget = maxBacklogBytes + maxBacklogBytes/4

// heldSize is what holding r costs in the Go heap: its record and its
// held fields (held.go), and heldOverhead beside them. BenchmarkHeldEvent
// measures it (about 1.4 KB an event of about 700 bytes of record, where
// the parsed draft made it 3.2 KB; docs/PERFORMANCE.md, "Memory: held
// events without their drafts"), and TestHeldEventCost checks that the
// count covers what the heap holds.
func heldSize(r *pendingRow) int {
	return len(r.record) + len(r.held) + heldOverhead
}

// heldOverhead is what a held event costs beside the bytes of its record
// and held fields: the row in the queue (with the room the queue grows
// into), its id, the room for its tokens, and the allocator's rounding.
const heldOverhead = 384

// unindexedEvents holds the events this process committed and the indexer
// has not covered yet, in pos order, each with its record and its index
// fields made from the draft it was accepted from (held.go), so the indexer
// neither reads them back from the events table nor parses their records
// again (together about a seventh of its cost), and reads cover them at the
// cost of filtering those fields in memory (tail.go). It
// is only a shortcut: the indexer takes from it only a run of positions that
// directly follows the search high-water mark, and reads the table whenever
// it does not hold one (after a restart, when another process appended in
// between, when the budget dropped the oldest). Retention removes only
// events the indexer covered, so nothing held here can have been deleted.
type unindexedEvents struct {
	// orgs interns organization ids, so that reads comparing them touch
	// one copy rather than one per event, and no held event keeps the
	// request body an id it came with is a part of alive.
	orgs map[string]string

	mu     sync.RWMutex // reads of the tail scan items[head:] under RLock
	items  []pendingRow // items[head:] are live, pos ascending
	head   int
	bytes  int // heldSize of items[head:]
	budget int // bytes held at most; 0 means unindexedBudget
}

// add appends events just committed, in pos order. Each gets its held
// fields (from its draft, or parsed from its record if it came without
// one) and lets go of its draft, so that reads of the tail filter without
// parsing, and a held event costs less than half of what it did with its
// draft (heldSize).
func (u *unindexedEvents) add(rows []pendingRow) {
	var buf []byte
	for i := range rows {
		buf = rows[i].prepare(buf)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.orgs == nil || len(u.orgs) > 1<<16 {
		u.orgs = map[string]string{}
	}
	for _, r := range rows {
		if o, ok := u.orgs[r.org]; ok {
			r.org = o
		} else {
			r.org = strings.Clone(r.org)
			u.orgs[r.org] = r.org
		}
		if n := len(u.items); n > u.head && u.items[n-1].pos >= r.pos {
			// Two Appends can get here out of commit order (the second
			// commits, on the connection the first just released, and
			// adds first): start over, the table is the truth.
			u.clearLocked()
		}
		u.items = append(u.items, r)
		u.bytes += heldSize(&r)
	}
	budget := u.budget
	if budget == 0 {
		budget = unindexedBudget
	}
	for u.bytes > budget && u.head < len(u.items) {
		u.dropLocked()
	}
	u.compactLocked()
}

// run returns up to limit events with positions from+1, from+2, … as held,
// or nothing if the next position is not held. Events at or below from are
// covered and forgotten.
func (u *unindexedEvents) run(from int64, limit int) []pendingRow {
	u.mu.Lock()
	defer u.mu.Unlock()
	for u.head < len(u.items) && u.items[u.head].pos <= from {
		u.dropLocked()
	}
	u.compactLocked()
	var out []pendingRow
	next := from + 1
	for i := u.head; i < len(u.items) && len(out) < limit && u.items[i].pos == next; i++ {
		out = append(out, u.items[i])
		next++
	}
	return out
}

// scan calls fn, under the read lock, with the held events after position
// from, of every organization, in pos order, if the queue holds every
// position from from+1 to last; it reports whether it did. fn must not
// keep the slice or change its events.
func (u *unindexedEvents) scan(from, last int64, fn func(rows []pendingRow)) bool {
	u.mu.RLock()
	defer u.mu.RUnlock()
	items := u.items[u.head:]
	i := sort.Search(len(items), func(i int) bool { return items[i].pos > from })
	if i == len(items) || items[i].pos != from+1 {
		return false
	}
	// Positions are held in increasing order: the run is contiguous up to
	// last if the event last-from positions on is at last.
	j := i + int(last-from) - 1
	if j >= len(items) || items[j].pos != last {
		return false
	}
	fn(items[i:])
	return true
}

// heldAfter is how many bytes (heldSize) the queue holds of events after
// position from.
func (u *unindexedEvents) heldAfter(from int64) int {
	u.mu.RLock()
	defer u.mu.RUnlock()
	items := u.items[u.head:]
	i := sort.Search(len(items), func(i int) bool { return items[i].pos > from })
	n := u.bytes
	for k := range items[:i] {
		n -= heldSize(&items[k])
	}
	return n
}

// holdsFrom reports whether the queue holds the event at position pos.
func (u *unindexedEvents) holdsFrom(pos int64) bool {
	u.mu.RLock()
	defer u.mu.RUnlock()
	items := u.items[u.head:]
	i := sort.Search(len(items), func(i int) bool { return items[i].pos >= pos })
	return i < len(items) && items[i].pos == pos
}

// heldBytes is how many bytes the queue holds.
func (u *unindexedEvents) heldBytes() int {
	u.mu.RLock()
	defer u.mu.RUnlock()
	return u.bytes
}

func (u *unindexedEvents) dropLocked() {
	u.bytes -= heldSize(&u.items[u.head])
	u.items[u.head] = pendingRow{}
	u.head++
}

// keptCapacity is the most items an empty queue keeps room for: after a
// burst the memory goes back.
const keptCapacity = 1 << 14

func (u *unindexedEvents) clearLocked() {
	clear(u.items)
	u.items, u.head, u.bytes = u.items[:0], 0, 0
	if cap(u.items) > keptCapacity {
		u.items = nil
	}
}

func (u *unindexedEvents) compactLocked() {
	if u.head == len(u.items) {
		u.clearLocked()
		return
	}
	if u.head > len(u.items)/2 {
		n := copy(u.items, u.items[u.head:])
		clear(u.items[n:])
		u.items, u.head = u.items[:n], 0
	}
}
