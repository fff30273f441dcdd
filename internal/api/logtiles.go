package api

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/store"
)

// C2SP tlog-tiles (https://c2sp.org/tlog-tiles) read endpoints per
// organization, so that standard tooling can fetch and verify an
// organization's tree: with the prefix
// /v1/organizations/{id}/log/tiles/ it serves
//
//	checkpoint                    the newest checkpoint note (with any witness cosignatures)
//	tile/<L>/<N>[.p/<W>]          hash tiles of height 8
//	tile/entries/<N>[.p/<W>]      entry bundles: each record as a big-endian uint16 length and its bytes
//
// under the same access control as the rest of the log API. A tile is
// served once the integrated tree covers it.

func errTileNotFound(path, why string) *apiError {
	return &apiError{status: http.StatusNotFound, code: "tile_not_found", message: fmt.Sprintf("No tile %s: %s", path, why)}
}

// parseTilePath parses a C2SP tlog-tiles path after "tile/": "<L>/<N>[.p/<W>]"
// or "entries/<N>[.p/<W>]" (data tiles have L = -1, as in x/mod/sumdb/tlog).
func parseTilePath(p string) (tlog.Tile, bool) {
	if rest, ok := strings.CutPrefix(p, "entries/"); ok {
		t, err := tlog.ParseTilePath("tile/8/data/" + rest)
		return t, err == nil
	}
	t, err := tlog.ParseTilePath("tile/8/" + p)
	return t, err == nil && t.L >= 0
}

func (s *Server) logTile(w http.ResponseWriter, r *http.Request) error {
	org, st, err := s.logOrg(r)
	if err != nil {
		return err
	}
	p := r.PathValue("path")
	t, ok := parseTilePath(p)
	if !ok || t.H != ledger.TileHeight {
		return &apiError{status: http.StatusBadRequest, code: "invalid_tile_path",
			message: fmt.Sprintf("tile path %q is not <L>/<N>[.p/<W>] or entries/<N>[.p/<W>] (C2SP tlog-tiles, tiles of height 8).", p)}
	}
	level := max(t.L, 0)
	// The leaves a tile covers end at (N·256 + W) · 256^L.
	end := (t.N*256 + int64(t.W)) << (8 * level)
	if t.N >= 1<<40 || end > st.IntegratedSize {
		return errTileNotFound(p, fmt.Sprintf("organization %s's signed tree has %d records.", org, st.IntegratedSize))
	}
	var body []byte
	if t.L == -1 {
		first := t.N * 256
		err := s.cfg.Log.Storage.ReadRecords(r.Context(), org, first, first+int64(t.W), func(seq int64, record []byte) error {
			if len(record) > 0xFFFF {
				return fmt.Errorf("record %d is %d bytes: %w", seq, len(record), errEntryTooLarge)
			}
			body = binary.BigEndian.AppendUint16(body, uint16(len(record)))
			body = append(body, record...)
			return nil
		})
		if errors.Is(err, errEntryTooLarge) {
			return &apiError{status: http.StatusUnprocessableEntity, code: "entry_too_large",
				message: fmt.Sprintf("An entry bundle cannot hold a record over 65,535 bytes (%v); use /log/records.", err)}
		}
		if err != nil {
			return err
		}
		if n := countEntries(body); n != t.W {
			return errTileNotFound(p, fmt.Sprintf("%d of its %d records are no longer stored (retention); their hashes are in the level-0 hash tile.", t.W-n, t.W))
		}
	} else {
		data, err := s.cfg.Log.Storage.ReadTiles(r.Context(), org, []tlog.Tile{t})
		if errors.Is(err, store.ErrNotFound) {
			return errTileNotFound(p, "it is not stored.")
		}
		if err != nil {
			return err
		}
		body = data[0][:t.W*tlog.HashSize]
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	if t.W == 256 {
		// A full tile never changes. It is not public: it may name records.
		w.Header().Set("Cache-Control", "private, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-store")
	}
	w.WriteHeader(http.StatusOK)
	w.Write(body)
	return nil
}

var errEntryTooLarge = errors.New("entry too large")

// countEntries counts the entries of an entry bundle.
func countEntries(b []byte) int {
	n := 0
	for len(b) >= 2 {
		l := int(binary.BigEndian.Uint16(b))
		b = b[2+min(l, len(b)-2):]
		n++
	}
	return n
}
