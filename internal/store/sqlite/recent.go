package sqlite

import (
	"context"
	"strings"
	"sync"
)

// recentBudget bounds the bytes of records kept for the integrator: at the
// highest ingest rates that is several seconds of records, while the
// integrator consumes them every fraction of a second.
const recentBudget = 32 << 20

// recentRecords keeps the records this process committed most recently, per
// organization, so the ledger integrator hashes them from memory instead of
// reading every record back from the database right after it was written
// (reading them back was most of integration's cost, on the same cores as
// ingest). It only ever holds bytes exactly as committed; anything it does
// not cover contiguously is read from the database.
type recentRecords struct {
	mu    sync.Mutex
	orgs  map[string]*orgRecent
	fifo  []recentEntry // commit order, for eviction
	head  int           // fifo[head:] is live
	bytes int
}

type orgRecent struct {
	// id is the organization's id, a copy of its own: the fifo's entries
	// use it, where the id an event came with may be a part of its
	// request body (a WorkOS body names its organization), which every
	// entry would keep alive until it is evicted, long after its record
	// is integrated (trim).
	id      string
	first   int64 // seq of records[0]
	records [][]byte
}

type recentEntry struct {
	org  string
	seq  int64
	size int
}

func newRecentRecords() *recentRecords {
	return &recentRecords{orgs: map[string]*orgRecent{}}
}

// add remembers committed records, given in seq order per organization.
func (r *recentRecords) add(fresh []pendingRow) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range fresh {
		o := r.orgs[f.org]
		if o == nil {
			o = &orgRecent{id: strings.Clone(f.org), first: f.seq}
			r.orgs[o.id] = o
		}
		if f.seq != o.first+int64(len(o.records)) {
			// Another process appended in between (the CLI writes
			// self-audit events): start over from here.
			o.first, o.records = f.seq, o.records[:0]
		}
		o.records = append(o.records, f.record)
		r.fifo = append(r.fifo, recentEntry{o.id, f.seq, len(f.record)})
		r.bytes += len(f.record)
	}
	for r.bytes > recentBudget && r.head < len(r.fifo) {
		e := r.fifo[r.head]
		r.head++
		r.bytes -= e.size
		if o := r.orgs[e.org]; o != nil && len(o.records) > 0 && o.first == e.seq {
			o.records[0] = nil
			o.records = o.records[1:]
			o.first++
			if len(o.records) == 0 {
				delete(r.orgs, e.org)
			}
		}
	}
	if r.head > len(r.fifo)/2 {
		r.fifo = append(r.fifo[:0], r.fifo[r.head:]...)
		r.head = 0
	}
}

// trim forgets org's records below seq (they are integrated).
func (r *recentRecords) trim(org string, below int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	o := r.orgs[org]
	if o == nil {
		return
	}
	n := min(max(below-o.first, 0), int64(len(o.records)))
	for i := range n {
		o.records[i] = nil
	}
	o.records = o.records[n:]
	o.first += n
	if len(o.records) == 0 {
		delete(r.orgs, org)
	}
	// The records' memory is released now; their fifo entries still count
	// against the budget until evicted, which only makes eviction earlier.
}

// get returns org's records [from, to) when all of them are held.
func (r *recentRecords) get(org string, from, to int64) ([][]byte, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	o := r.orgs[org]
	if o == nil || from < o.first || to > o.first+int64(len(o.records)) {
		return nil, false
	}
	return append([][]byte(nil), o.records[from-o.first:to-o.first]...), true
}

// ReadRecentRecords is ReadRecords for the ledger integrator
// (ledger.RecentRecordReader): records this process has just committed come
// from memory, anything else from the database.
func (s *Store) ReadRecentRecords(ctx context.Context, org string, from, to int64, fn func(seq int64, record []byte) error) error {
	if recs, ok := s.recent.get(org, from, to); ok {
		for i, rec := range recs {
			if err := fn(from+int64(i), rec); err != nil {
				return err
			}
		}
		return nil
	}
	return s.ReadRecords(ctx, org, from, to, fn)
}
