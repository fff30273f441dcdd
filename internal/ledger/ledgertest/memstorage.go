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
	// Cosigs holds the stored cosignatures by organization, size and
	// witness; Sizes the witness sizes by (witness, origin).
	Cosigs map[string]map[int64]map[string]string
	Sizes  map[[2]string]int64
}

// MemLog is one organization's log in a MemStorage.
type MemLog struct {
	Records     [][]byte // nil = deleted
	Integrated  int64
	Tiles       map[[2]int64][]byte
	Checkpoints map[int64][]byte
}

// NewMemStorage returns an empty MemStorage.
func NewMemStorage() *MemStorage {
	return &MemStorage{Logs: map[string]*MemLog{}, Cosigs: map[string]map[int64]map[string]string{}, Sizes: map[[2]string]int64{}}
}

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
	for org, bySize := range m.Cosigs {
		c.Cosigs[org] = map[int64]map[string]string{}
		for size, lines := range bySize {
			c.Cosigs[org][size] = maps.Clone(lines)
		}
	}
	c.Sizes = maps.Clone(m.Sizes)
	return c
}

// StoreCosignatures implements ledger.CosignatureStorage.
func (m *MemStorage) StoreCosignatures(ctx context.Context, cosigs []ledger.Cosignature, sizes []ledger.WitnessSize) error {
	m.Mu.Lock()
	defer m.Mu.Unlock()
	for _, c := range cosigs {
		if m.Cosigs[c.OrganizationID] == nil {
			m.Cosigs[c.OrganizationID] = map[int64]map[string]string{}
		}
		if m.Cosigs[c.OrganizationID][c.Size] == nil {
			m.Cosigs[c.OrganizationID][c.Size] = map[string]string{}
		}
		m.Cosigs[c.OrganizationID][c.Size][c.Witness] = c.Line
	}
	for _, s := range sizes {
		m.Sizes[[2]string{s.Witness, s.Origin}] = s.Size
	}
	return nil
}

// WitnessSize implements ledger.CosignatureStorage.
func (m *MemStorage) WitnessSize(ctx context.Context, witness, origin string) (int64, error) {
	m.Mu.Lock()
	defer m.Mu.Unlock()
	return m.Sizes[[2]string{witness, origin}], nil
}

// Cosignatures implements ledger.CosignatureStorage.
func (m *MemStorage) Cosignatures(ctx context.Context, org string, size int64) ([]ledger.Cosignature, error) {
	m.Mu.Lock()
	defer m.Mu.Unlock()
	var out []ledger.Cosignature
	for _, w := range slices.Sorted(maps.Keys(m.Cosigs[org][size])) {
		out = append(out, ledger.Cosignature{OrganizationID: org, Size: size, Witness: w, Line: m.Cosigs[org][size][w]})
	}
	return out, nil
}

// LatestCosignatures implements ledger.CosignatureStorage.
func (m *MemStorage) LatestCosignatures(ctx context.Context, org string) ([]ledger.Cosignature, error) {
	m.Mu.Lock()
	defer m.Mu.Unlock()
	latest := map[string]ledger.Cosignature{}
	for size, lines := range m.Cosigs[org] {
		for w, line := range lines {
			if c, ok := latest[w]; !ok || c.Size < size {
				latest[w] = ledger.Cosignature{OrganizationID: org, Size: size, Witness: w, Line: line}
			}
		}
	}
	var out []ledger.Cosignature
	for _, w := range slices.Sorted(maps.Keys(latest)) {
		out = append(out, latest[w])
	}
	return out, nil
}

var (
	_ ledger.Storage            = (*MemStorage)(nil)
	_ ledger.CosignatureStorage = (*MemStorage)(nil)
)
