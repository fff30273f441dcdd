package sqlite

import (
	"sort"
	"sync"

	"github.com/trailaudit/trail/internal/event"
)

// unindexedBudget bounds the memory held for the indexer and for reads of
// the events it has not reached yet, counted as heldSize, unless the store
// was opened WithBacklogMemory: a quarter above what admit lets the
// backlog reach (maxBacklogBytes), so that the queue holds every event of
// the backlog this process committed.
const unindexedBudget = maxBacklogBytes + maxBacklogBytes/4

// heldSize is what holding r costs in the Go heap: its record, and when it
// has a draft, the draft's tail and the parsed values, which share a copy
// of the request body (the API hands drafts over only when that body is not
// much larger than their tails), and the row, draft and metadata maps
// around them. The factors are measured: at the peak of a burst of batches
// (docs/PERFORMANCE.md, "Memory") the heap held about 4.3 KB for each held
// event of about 700 bytes of record and 550 of tail, where counting only
// the bytes of record and tail came to half of that.
func heldSize(r *pendingRow) int {
	n := 2*len(r.record) + heldOverhead
	if r.draft != nil {
		n += 4 * len(r.draft.Tail)
	}
	return n
}

// heldOverhead is what a held event costs beside its bytes: the row, its
// draft and their maps and slices.
const heldOverhead = 512

// unindexedEvents holds the events this process committed and the indexer
// has not covered yet, in pos order, each with the draft it was accepted
// from, so the indexer neither reads them back from the events table nor
// parses their records again (together about a seventh of its cost), and
// reads cover them at the cost of filtering drafts in memory (tail.go). It
// is only a shortcut: the indexer takes from it only a run of positions that
// directly follows the search high-water mark, and reads the table whenever
// it does not hold one (after a restart, when another process appended in
// between, when the budget dropped the oldest). Retention removes only
// events the indexer covered, so nothing held here can have been deleted.
type unindexedEvents struct {
	// orgs interns organization ids, so that reads comparing them touch
	// one copy rather than one per event.
	orgs map[string]string

	mu     sync.RWMutex // reads of the tail scan items[head:] under RLock
	items  []pendingRow // items[head:] are live, pos ascending
	head   int
	bytes  int // heldSize of items[head:]
	budget int // bytes held at most; 0 means unindexedBudget
}

// add appends events just committed, in pos order. Each gets its draft
// (parsed from its record if it came without one), so that reads of the
// tail filter drafts without parsing.
func (u *unindexedEvents) add(rows []pendingRow) {
	for i := range rows {
		rows[i].prepare()
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

// parsed returns the event a pending row holds: its draft if it came with
// one, else its record parsed.
func (p *pendingRow) parsed() (*event.Record, error) {
	if p.draft != nil {
		return &event.Record{Draft: *p.draft}, nil
	}
	return event.ParseRecord(p.record)
}
