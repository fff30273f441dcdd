package ledger

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/trailaudit/trail/internal/storeerr"
)

// errBadTile means a stored tile is shorter or longer than tile data can be:
// the tiles were altered outside Trail.
var errBadTile = errors.New("stored tile data is malformed")

type tileKey struct {
	L int
	N int64
}

// pendingHashes are stored hashes computed in this pass and not yet stored:
// hashes[i] has stored hash index base+i (tlog.StoredHashIndex order).
type pendingHashes struct {
	base   int64
	hashes []tlog.Hash
}

// edgeCache holds, per tile level, the right-most tile of one log as of
// integrated size `size`. Extending the tree reads only hashes on its right
// edge, so with this cache a pass reads no tiles from storage.
type edgeCache struct {
	size  int64
	tiles map[int]edgeTile // by tile level
}

type edgeTile struct {
	n    int64
	data []byte
}

// put keeps tile (level, n) if it is at least as far right and as wide as
// the one held for its level.
func (e *edgeCache) put(level int, n int64, data []byte) {
	if cur, ok := e.tiles[level]; ok && (cur.n > n || cur.n == n && len(cur.data) > len(data)) {
		return
	}
	e.tiles[level] = edgeTile{n: n, data: data}
}

// hashReader is a tlog.HashReader over one log's stored hashes: those
// computed in this pass (pending), then the right-edge cache, then tiles read
// from storage (kept for the reader's lifetime).
type hashReader struct {
	ctx     context.Context
	storage Storage
	org     string
	pending *pendingHashes // may be nil
	edge    *edgeCache     // may be nil
	tiles   map[tileKey][]byte
}

func newHashReader(ctx context.Context, s Storage, org string) *hashReader {
	return &hashReader{ctx: ctx, storage: s, org: org, tiles: map[tileKey][]byte{}}
}

func (r *hashReader) lookup(t tlog.Tile) ([]byte, bool) {
	if r.edge != nil {
		if e, ok := r.edge.tiles[t.L]; ok && e.n == t.N && len(e.data) >= t.W*tlog.HashSize {
			return e.data, true
		}
	}
	data, ok := r.tiles[tileKey{t.L, t.N}]
	return data, ok && len(data) >= t.W*tlog.HashSize
}

// ReadHashes implements tlog.HashReader.
func (r *hashReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var need []tlog.Tile
	stored := false
	for i, x := range indexes {
		if p := r.pending; p != nil && x >= p.base {
			j := x - p.base
			if j >= int64(len(p.hashes)) {
				return nil, fmt.Errorf("hash %d of %s is not computed yet", x, r.org)
			}
			out[i] = p.hashes[j]
			continue
		}
		stored = true
		t := tlog.TileForIndex(TileHeight, x)
		if _, ok := r.lookup(t); !ok {
			need = addTile(need, t)
		}
	}
	if !stored {
		return out, nil
	}
	if len(need) > 0 {
		if err := r.fetch(need); err != nil {
			return nil, err
		}
	}
	for i, x := range indexes {
		if p := r.pending; p != nil && x >= p.base {
			continue
		}
		t := tlog.TileForIndex(TileHeight, x)
		data, ok := r.lookup(t)
		if !ok {
			return nil, fmt.Errorf("tile %s of %s: %w", t.Path(), r.org, errBadTile)
		}
		t.W = len(data) / tlog.HashSize
		h, err := tlog.HashFromTile(t, data, x)
		if err != nil {
			return nil, fmt.Errorf("couldn't read hash %d of %s from tile %s: %w", x, r.org, t.Path(), err)
		}
		out[i] = h
	}
	return out, nil
}

// addTile adds t to the list of tiles to fetch, once per (L, N), widest W.
func addTile(need []tlog.Tile, t tlog.Tile) []tlog.Tile {
	for i := range need {
		if need[i].L == t.L && need[i].N == t.N {
			need[i].W = max(need[i].W, t.W)
			return need
		}
	}
	return append(need, t)
}

func (r *hashReader) fetch(need []tlog.Tile) error {
	data, err := r.storage.ReadTiles(r.ctx, r.org, need)
	if err != nil {
		return fmt.Errorf("couldn't read tiles of %s: %w", r.org, err)
	}
	if len(data) != len(need) {
		return fmt.Errorf("reading %d tiles of %s returned %d", len(need), r.org, len(data))
	}
	for i, t := range need {
		d := data[i]
		if len(d)%tlog.HashSize != 0 || len(d) > tlog.HashSize<<TileHeight {
			return fmt.Errorf("tile %s of %s is %d bytes: %w", t.Path(), r.org, len(d), errBadTile)
		}
		if len(d) < t.W*tlog.HashSize {
			return fmt.Errorf("tile %s of %s holds %d hashes, want at least %d: %w", t.Path(), r.org, len(d)/tlog.HashSize, t.W, storeerr.ErrNotFound)
		}
		r.tiles[tileKey{t.L, t.N}] = d
	}
	return nil
}

// captureReader records the hashes another reader returns, in order (for
// the left hashes of a bundle).
type captureReader struct {
	r      tlog.HashReader
	hashes []tlog.Hash
}

func (c *captureReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	h, err := c.r.ReadHashes(indexes)
	if err == nil {
		c.hashes = append(c.hashes, h...)
	}
	return h, err
}
