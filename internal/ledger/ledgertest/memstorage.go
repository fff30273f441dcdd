// Package ledgertest holds test doubles of the ledger's storage, shared by
// the tests of package ledger and of its users (the witness client).
package ledgertest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/storeerr"
)

// MemStorage is an in-memory ledger.Storage that also accepts records.
// Tests that tamper with a log behind the integrator's back (flip a tile
// byte, delete a body, forge a checkpoint) hold Mu and edit Logs.
type MemStorage struct {
	Mu   sync.Mutex
	Logs map[string]*MemLog
}

// MemLog is one organization's log in a MemStorage.
type MemLog struct {
	Records     [][]byte // nil = deleted
	Integrated  int64
	Tiles       map[[2]int64][]byte
	Checkpoints map[int64][]byte
}

// NewMemStorage returns an empty MemStorage.
func NewMemStorage() *MemStorage { return &MemStorage{Logs: map[string]*MemLog{}} }

// Log returns org's log, created empty if needed; the caller holds Mu.
func (m *MemStorage) Log(org string) *MemLog {
	l, ok := m.Logs[org]
	if !ok {
		l = &MemLog{Tiles: map[[2]int64][]byte{}, Checkpoints: map[int64][]byte{}}
		m.Logs[org] = l
	}
	return l
}

func (m *MemStorage) states(pred func(*MemLog) bool) []ledger.LogState {
	m.Mu.Lock()
	defer m.Mu.Unlock()
	var out []ledger.LogState
	for org, l := range m.Logs {
		if pred(l) {
			out = append(out, ledger.LogState{OrganizationID: org, IntegratedSize: l.Integrated, NextSeq: int64(len(l.Records))})
		}
	}
	return out
}

func (m *MemStorage) PendingLogs(ctx context.Context) ([]ledger.LogState, error) {
	return m.states(func(l *MemLog) bool { return int64(len(l.Records)) > l.Integrated }), nil
}

func (m *MemStorage) IntegratedLogs(ctx context.Context) ([]ledger.LogState, error) {
	return m.states(func(l *MemLog) bool { return l.Integrated > 0 }), nil
}

func (m *MemStorage) LogState(ctx context.Context, org string) (ledger.LogState, error) {
	m.Mu.Lock()
	defer m.Mu.Unlock()
	l, ok := m.Logs[org]
	if !ok {
		return ledger.LogState{}, fmt.Errorf("organization %s: %w", org, storeerr.ErrNotFound)
	}
	return ledger.LogState{OrganizationID: org, IntegratedSize: l.Integrated, NextSeq: int64(len(l.Records))}, nil
}

func (m *MemStorage) ReadRecords(ctx context.Context, org string, from, to int64, fn func(int64, []byte) error) error {
	m.Mu.Lock()
	var recs [][]byte
	if l, ok := m.Logs[org]; ok {
		recs = l.Records[:min(int64(len(l.Records)), to)]
	}
	m.Mu.Unlock()
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

func (m *MemStorage) ReadTiles(ctx context.Context, org string, tiles []tlog.Tile) ([][]byte, error) {
	m.Mu.Lock()
	defer m.Mu.Unlock()
	l := m.Log(org)
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		d, ok := l.Tiles[[2]int64{int64(t.L), t.N}]
		if !ok || len(d) < t.W*tlog.HashSize {
			return nil, fmt.Errorf("tile %s: %w", t.Path(), storeerr.ErrNotFound)
		}
		out[i] = d
	}
	return out, nil
}

func (m *MemStorage) Integrate(ctx context.Context, org string, oldSize, newSize int64, tiles []ledger.TileData, checkpoint []byte) error {
	m.Mu.Lock()
	defer m.Mu.Unlock()
	l := m.Log(org)
	if l.Integrated != oldSize || int64(len(l.Records)) < newSize {
		return fmt.Errorf("at %d: %w", l.Integrated, ledger.ErrSizeChanged)
	}
	for _, t := range tiles {
		l.Tiles[[2]int64{int64(t.Tile.L), t.Tile.N}] = slices.Clone(t.Data)
	}
	l.Checkpoints[newSize] = slices.Clone(checkpoint)
	l.Integrated = newSize
	return nil
}

func (m *MemStorage) IntegrateBatch(ctx context.Context, batch []ledger.Integration) ([]error, error) {
	errs := make([]error, len(batch))
	for i, in := range batch {
		errs[i] = m.Integrate(ctx, in.OrganizationID, in.OldSize, in.NewSize, in.Tiles, in.Checkpoint)
	}
	return errs, nil
}

func (m *MemStorage) LatestCheckpoint(ctx context.Context, org string) ([]byte, error) {
	m.Mu.Lock()
	defer m.Mu.Unlock()
	l := m.Log(org)
	if len(l.Checkpoints) == 0 {
		return nil, fmt.Errorf("checkpoint: %w", storeerr.ErrNotFound)
	}
	return l.Checkpoints[slices.Max(slices.Collect(maps.Keys(l.Checkpoints)))], nil
}

func (m *MemStorage) Checkpoint(ctx context.Context, org string, size int64) ([]byte, error) {
	m.Mu.Lock()
	defer m.Mu.Unlock()
	c, ok := m.Log(org).Checkpoints[size]
	if !ok {
		return nil, fmt.Errorf("checkpoint %d: %w", size, storeerr.ErrNotFound)
	}
	return c, nil
}

// clone deep-copies the storage (a "backup").
// Clone returns a deep copy, as a backup of the database would be.
func (m *MemStorage) Clone() *MemStorage {
	m.Mu.Lock()
	defer m.Mu.Unlock()
	c := NewMemStorage()
	for org, l := range m.Logs {
		c.Logs[org] = &MemLog{
			Records: slices.Clone(l.Records), Integrated: l.Integrated,
			Tiles: maps.Clone(l.Tiles), Checkpoints: maps.Clone(l.Checkpoints),
		}
	}
	return c
}

var _ ledger.Storage = (*MemStorage)(nil)
