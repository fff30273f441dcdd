package witness

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/store"
)

// memStorage is an in-memory ledger.Storage that also accepts records.
type memStorage struct {
	mu   sync.Mutex
	logs map[string]*memLog
}

type memLog struct {
	records     [][]byte // nil = deleted
	integrated  int64
	tiles       map[[2]int64][]byte
	checkpoints map[int64][]byte
}

func newMemStorage() *memStorage { return &memStorage{logs: map[string]*memLog{}} }

func (m *memStorage) log(org string) *memLog {
	l, ok := m.logs[org]
	if !ok {
		l = &memLog{tiles: map[[2]int64][]byte{}, checkpoints: map[int64][]byte{}}
		m.logs[org] = l
	}
	return l
}

// add appends n records to org's log; tag makes their contents differ
// from another history's.
func (m *memStorage) add(org, tag string, n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.log(org)
	for range n {
		seq := len(l.records)
		l.records = append(l.records, fmt.Appendf(nil, `{"organization_id":%q,"seq":%d,"tag":%q}`, org, seq, tag))
	}
}

func (m *memStorage) states(pred func(*memLog) bool) []ledger.LogState {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []ledger.LogState
	for org, l := range m.logs {
		if pred(l) {
			out = append(out, ledger.LogState{OrganizationID: org, IntegratedSize: l.integrated, NextSeq: int64(len(l.records))})
		}
	}
	return out
}

func (m *memStorage) PendingLogs(ctx context.Context) ([]ledger.LogState, error) {
	return m.states(func(l *memLog) bool { return int64(len(l.records)) > l.integrated }), nil
}

func (m *memStorage) IntegratedLogs(ctx context.Context) ([]ledger.LogState, error) {
	return m.states(func(l *memLog) bool { return l.integrated > 0 }), nil
}

func (m *memStorage) LogState(ctx context.Context, org string) (ledger.LogState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.logs[org]
	if !ok {
		return ledger.LogState{}, fmt.Errorf("organization %s: %w", org, store.ErrNotFound)
	}
	return ledger.LogState{OrganizationID: org, IntegratedSize: l.integrated, NextSeq: int64(len(l.records))}, nil
}

func (m *memStorage) ReadRecords(ctx context.Context, org string, from, to int64, fn func(int64, []byte) error) error {
	m.mu.Lock()
	var recs [][]byte
	if l, ok := m.logs[org]; ok {
		recs = l.records[:min(int64(len(l.records)), to)]
	}
	m.mu.Unlock()
	for seq := from; seq < int64(len(recs)); seq++ {
		if recs[seq] == nil {
			continue
		}
		if err := fn(seq, recs[seq]); err != nil {
			return err
		}
	}
	return nil
}

func (m *memStorage) ReadTiles(ctx context.Context, org string, tiles []tlog.Tile) ([][]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.log(org)
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		d, ok := l.tiles[[2]int64{int64(t.L), t.N}]
		if !ok || len(d) < t.W*tlog.HashSize {
			return nil, fmt.Errorf("tile %s: %w", t.Path(), store.ErrNotFound)
		}
		out[i] = d
	}
	return out, nil
}

func (m *memStorage) Integrate(ctx context.Context, org string, oldSize, newSize int64, tiles []ledger.TileData, checkpoint []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.log(org)
	if l.integrated != oldSize || int64(len(l.records)) < newSize {
		return fmt.Errorf("at %d: %w", l.integrated, ledger.ErrSizeChanged)
	}
	for _, t := range tiles {
		l.tiles[[2]int64{int64(t.Tile.L), t.Tile.N}] = slices.Clone(t.Data)
	}
	l.checkpoints[newSize] = slices.Clone(checkpoint)
	l.integrated = newSize
	return nil
}

func (m *memStorage) IntegrateBatch(ctx context.Context, batch []ledger.Integration) ([]error, error) {
	errs := make([]error, len(batch))
	for i, in := range batch {
		errs[i] = m.Integrate(ctx, in.OrganizationID, in.OldSize, in.NewSize, in.Tiles, in.Checkpoint)
	}
	return errs, nil
}

func (m *memStorage) LatestCheckpoint(ctx context.Context, org string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.log(org)
	if len(l.checkpoints) == 0 {
		return nil, fmt.Errorf("checkpoint: %w", store.ErrNotFound)
	}
	return l.checkpoints[slices.Max(slices.Collect(maps.Keys(l.checkpoints)))], nil
}

func (m *memStorage) Checkpoint(ctx context.Context, org string, size int64) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.log(org).checkpoints[size]
	if !ok {
		return nil, fmt.Errorf("checkpoint %d: %w", size, store.ErrNotFound)
	}
	return c, nil
}

// clone deep-copies the storage (a "backup").
func (m *memStorage) clone() *memStorage {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := newMemStorage()
	for org, l := range m.logs {
		c.logs[org] = &memLog{
			records: slices.Clone(l.records), integrated: l.integrated,
			tiles: maps.Clone(l.tiles), checkpoints: maps.Clone(l.checkpoints),
		}
	}
	return c
}
