package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
)

// CheckpointDebt reports by how many bytes the log file and the search
// index file must still grow when their WAL checkpoints copy committed
// pages back: the size the newest commit gives each database (page_count ×
// page_size, read on a reader connection, whose new transaction sees the
// newest commit) beyond the file's size on disk. Under a stream of commits
// the WAL runs ahead of the file by up to a checkpoint interval of ingest,
// more while readers hold checkpoints back; on a nearly full disk that
// growth is space already spent (package diskguard, docs/FAULTS.md).
func (s *Store) CheckpointDebt(ctx context.Context) (int64, error) {
	var total int64
	for _, f := range []struct {
		path string
		db   *sql.DB
	}{{s.path, s.read}, {s.searchPath, s.searchRead}} {
		if f.db == nil {
			continue
		}
		var size int64
		if err := f.db.QueryRowContext(ctx, `SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()`).Scan(&size); err != nil {
			return 0, fmt.Errorf("couldn't read the size of %s: %w", f.path, classify(err))
		}
		fi, err := os.Stat(f.path)
		if err != nil {
			return 0, fmt.Errorf("couldn't read the size of %s: %w", f.path, err)
		}
		total += max(0, size-fi.Size())
	}
	return total, nil
}
