package replicate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/benbjohnson/litestream"
	"github.com/superfly/ltx"
)

// ErrNoReplica is returned (wrapped) by Restore when the target holds no
// replica of a required database.
var ErrNoReplica = errors.New("the target holds no replica of this database")

// RestoreOptions tune Restore.
type RestoreOptions struct {
	// Timestamp restores the databases as they were then (zero: the newest
	// state the replica holds). Litestream keeps the history of the last
	// day by default (its snapshot retention).
	Timestamp time.Time
	// Progress, when set, is called as replica bytes are read, with the
	// bytes read so far and the total to read; possibly from several
	// goroutines at once.
	Progress func(done, total int64)
}

// DatabaseRestore says what Restore did with one database.
type DatabaseRestore struct {
	File  string
	Found bool  // false: the target holds no replica of it (optional ones)
	Bytes int64 // replica bytes read
}

// Restore writes the replicas of the databases named (base names; the
// first is required, the others restored when present) and of the files
// into dataDir, where none of them may exist yet.
func Restore(ctx context.Context, t Target, dataDir string, databases, files []string, opts RestoreOptions, logger *slog.Logger) ([]DatabaseRestore, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	for _, name := range append(append([]string(nil), databases...), files...) {
		if _, err := os.Stat(filepath.Join(dataDir, name)); err == nil {
			return nil, fmt.Errorf("%s already exists: restore into an empty data directory", filepath.Join(dataDir, name))
		}
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("couldn't create %s: %w", dataDir, err)
	}
	// Plan every database first, so that progress has a total.
	type planned struct {
		name   string
		client *countingClient
		ts     time.Time
		found  bool
	}
	var plans []planned
	var total atomic.Int64
	var done atomic.Int64
	for i, name := range databases {
		c := &countingClient{ReplicaClient: t.ltxClient(name), done: &done, total: &total, progress: opts.Progress}
		if err := c.Init(ctx); err != nil {
			return nil, fmt.Errorf("couldn't reach %s: %w", t, err)
		}
		ts := opts.Timestamp
		if i > 0 {
			ts = time.Time{} // the others at their newest: see docs/BACKUP.md
		}
		infos, err := litestream.CalcRestorePlan(ctx, c, 0, ts, logger)
		if errors.Is(err, litestream.ErrTxNotAvailable) || errors.Is(err, litestream.ErrNoSnapshots) {
			if i == 0 {
				if !ts.IsZero() {
					return nil, fmt.Errorf("%s holds no state of %s at %s (too early, or older than its retention): %w", t, name, ts.Format(time.RFC3339), ErrNoReplica)
				}
				return nil, fmt.Errorf("%s holds no replica of %s: %w", t, name, ErrNoReplica)
			}
			plans = append(plans, planned{name: name, client: c})
			continue
		} else if err != nil {
			return nil, fmt.Errorf("couldn't plan the restore of %s from %s: %w", name, t, err)
		}
		for _, info := range infos {
			total.Add(info.Size)
		}
		plans = append(plans, planned{name: name, client: c, ts: ts, found: true})
	}
	var out []DatabaseRestore
	for _, p := range plans {
		if !p.found {
			out = append(out, DatabaseRestore{File: p.name})
			continue
		}
		before := done.Load()
		ro := litestream.NewRestoreOptions()
		ro.OutputPath = filepath.Join(dataDir, p.name)
		ro.Timestamp = p.ts
		ro.IntegrityCheck = litestream.IntegrityCheckQuick
		// The DB is never opened: it only carries the logger.
		db := litestream.NewDB(ro.OutputPath)
		db.Logger = logger
		rep := litestream.NewReplicaWithClient(db, p.client)
		rep.MonitorEnabled = false
		if err := rep.Restore(ctx, ro); err != nil {
			return nil, fmt.Errorf("couldn't restore %s from %s: %w", p.name, t, err)
		}
		if err := os.Chmod(ro.OutputPath, 0o600); err != nil {
			return nil, fmt.Errorf("couldn't restrict %s to its owner: %w", ro.OutputPath, err)
		}
		out = append(out, DatabaseRestore{File: p.name, Found: true, Bytes: done.Load() - before})
	}
	b := t.blobs()
	for _, name := range files {
		data, err := b.get(ctx, "files/"+name)
		if errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dataDir, name), data, 0o600); err != nil {
			return nil, fmt.Errorf("couldn't write %s: %w", filepath.Join(dataDir, name), err)
		}
	}
	return out, nil
}

// ReadPublished returns the record of published checkpoints the target
// holds; ok is false when it holds none (nothing was published while
// replicating there).
func ReadPublished(ctx context.Context, t Target) (rec Record, ok bool, err error) {
	data, err := t.blobs().get(ctx, PublishedFile)
	if errors.Is(err, os.ErrNotExist) {
		return Record{}, false, nil
	} else if err != nil {
		return Record{}, false, err
	}
	rec, err = parseRecord(data)
	if err != nil {
		return Record{}, false, fmt.Errorf("%s/%s: %w", t, PublishedFile, err)
	}
	return rec, true, nil
}

// countingClient counts the bytes read from the replica, for progress.
type countingClient struct {
	litestream.ReplicaClient
	done, total *atomic.Int64
	progress    func(done, total int64)
}

func (c *countingClient) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	rc, err := c.ReplicaClient.OpenLTXFile(ctx, level, minTXID, maxTXID, offset, size)
	if err != nil {
		return nil, err
	}
	return &countingReader{ReadCloser: rc, c: c}, nil
}

type countingReader struct {
	io.ReadCloser
	c *countingClient
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if n > 0 {
		d := r.c.done.Add(int64(n))
		if r.c.progress != nil {
			r.c.progress(d, r.c.total.Load())
		}
	}
	return n, err
}
