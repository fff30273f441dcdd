package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/trailaudit/trail/internal/event"
)

// errGap means a log's records are not contiguous below its NextSeq:
// records were deleted before they were integrated, outside Trail.
var errGap = errors.New("records are missing from the log")

// extension is one log grown from oldSize to newSize: computed, not yet
// signed or stored.
type extension struct {
	org              string
	oldSize, newSize int64
	root             tlog.Hash
	tiles            []TileData
	reader           *hashReader // serves every hash of the new tree
	note             []byte      // the signed checkpoint, once signed
	firstReceived    time.Time   // received_at of record oldSize, when it has one (metrics)
}

// extend reads records [oldSize, newSize) of org and computes, with tlog, the
// stored hashes they add (RFC 6962 leaf and interior hashes), the new root
// and the tiles that change (tlog.NewTiles). Existing hashes come from edge
// (the right edge of the tree, cached) or from stored tiles.
func extend(ctx context.Context, s Storage, org string, oldSize, newSize int64, edge *edgeCache) (*extension, error) {
	r := newHashReader(ctx, s, org)
	r.edge = edge
	p := &pendingHashes{
		base:   tlog.StoredHashIndex(0, oldSize),
		hashes: make([]tlog.Hash, 0, 2*(newSize-oldSize)+64),
	}
	r.pending = p
	next := oldSize
	var firstReceived time.Time
	read := s.ReadRecords
	if rr, ok := s.(RecentRecordReader); ok {
		read = rr.ReadRecentRecords
	}
	err := read(ctx, org, oldSize, newSize, func(seq int64, record []byte) error {
		if seq != next {
			return fmt.Errorf("record %d of %s: %w", next, org, errGap)
		}
		hs, err := tlog.StoredHashes(seq, record, r)
		if err != nil {
			return fmt.Errorf("couldn't hash record %d of %s: %w", seq, org, err)
		}
		p.hashes = append(p.hashes, hs...)
		if seq == oldSize {
			firstReceived = receivedAt(record)
		}
		next++
		return nil
	})
	if err != nil {
		return nil, err
	}
	if next != newSize {
		return nil, fmt.Errorf("record %d of %s: %w", next, org, errGap)
	}
	if got, want := p.base+int64(len(p.hashes)), tlog.StoredHashCount(newSize); got != want {
		return nil, fmt.Errorf("computed %d stored hashes for %s of size %d, want %d", got, org, newSize, want)
	}
	root, err := tlog.TreeHash(newSize, r)
	if err != nil {
		return nil, fmt.Errorf("couldn't compute root of %s at size %d: %w", org, newSize, err)
	}
	coords := tlog.NewTiles(TileHeight, oldSize, newSize)
	tiles := make([]TileData, len(coords))
	for i, t := range coords {
		data, err := tlog.ReadTileData(t, r)
		if err != nil {
			return nil, fmt.Errorf("couldn't build tile %s of %s: %w", t.Path(), org, err)
		}
		tiles[i] = TileData{Tile: t, Data: data}
	}
	return &extension{org: org, oldSize: oldSize, newSize: newSize, root: root, tiles: tiles, reader: r, firstReceived: firstReceived}, nil
}

// receivedAt returns the received_at of a canonical record, or the zero time.
func receivedAt(record []byte) time.Time {
	const key = `"received_at":"`
	i := bytes.Index(record, []byte(key))
	if i < 0 || i+len(key)+len(event.TimeLayout) > len(record) {
		return time.Time{}
	}
	t, err := time.Parse(event.TimeLayout, string(record[i+len(key):i+len(key)+len(event.TimeLayout)]))
	if err != nil {
		return time.Time{}
	}
	return t
}
