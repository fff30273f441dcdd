// Package sqlite is Trail's embedded storage: SQLite in WAL mode through the
// pure-Go driver modernc.org/sqlite.
//
// The log (organizations, keys, events, tree tiles, checkpoints) lives in one
// file with synchronous=FULL: a commit there is what "acknowledged" means.
// The search indexes live in a second file beside it (<name>.search.db),
// written by IndexPending in large batches on a writer of their own, so
// indexing never holds the lock ingest waits for and can run on another core
// (see docs/ARCHITECTURE.md). That file is a projection: it can be deleted at
// any time and is rebuilt from the events.
//
// Each file is written through one connection (SQLite has one writer anyway;
// serialising in Go avoids SQLITE_BUSY retries) and read through a separate
// read-only pool.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/trailaudit/trail/internal/store"
)

//go:embed migrations/*.sql search_migrations/*.sql
var migrations embed.FS

// Store is the SQLite implementation of store.Store.
type Store struct {
	path        string
	write       *sql.DB // exactly one connection
	read        *sql.DB
	searchPath  string
	searchWrite *sql.DB // exactly one connection
	searchRead  *sql.DB
	logger      *slog.Logger
	stmts       appendStmts
	recent      *recentRecords
	unindexed   unindexedEvents
	indexCache  indexerCache
	// lastPos is the highest pos this process committed, indexedMark the
	// highest search high-water mark it saw: together the backlog
	// (backlog.go). backlogLimit, when not 0, replaces maxBacklogEvents
	// (< 0: unbounded, for benchmarks of ingest alone).
	lastPos, indexedMark atomic.Int64
	backlogLimit         int64

	opts               options
	stopCheckpoints    func()
	stopLogCheckpoints func() // the log file's checkpointer only
	checkpoints        sync.WaitGroup
}

// Both backends implement the whole contract.
var _ store.Backend = (*Store)(nil)

// Open opens (creating if needed) the database file at path and migrates it
// to the current schema. It is for tests and tools that own their
// database; trail's commands open with OpenCurrent and migrate only when
// told to (Migrate).
func Open(ctx context.Context, path string, logger *slog.Logger, opts ...Option) (*Store, error) {
	return open(ctx, path, logger, applyPending, opts)
}

// DefaultCacheBytes is the memory SQLite may hold for the store's page
// caches (every connection of the log and of the search index together)
// unless WithCache says otherwise.
const DefaultCacheBytes = 128 << 20

// Option tunes how a Store is opened.
type Option func(*options)

type options struct {
	cache   int64 // bytes; see WithCache
	backlog int64 // bytes; see WithBacklogMemory; 0 means maxBacklogBytes
}

// WithBacklogMemory sets the memory the store may hold in the Go heap for
// accepted events the search indexer has not reached yet (counted as
// heldSize, which follows the heap's measured cost): past it, Append
// refuses new submissions with store.ErrUnavailable until the indexer has
// caught up (backlog.go). Less memory means a burst is refused sooner when
// ingest outruns the indexer, never a stale search. The default is
// maxBacklogBytes.
func WithBacklogMemory(bytes int64) Option {
	return func(o *options) { o.backlog = bytes }
}

// backlogBytes is the most held bytes admit lets the backlog reach.
func (o options) backlogBytes() int {
	if o.backlog == 0 {
		return maxBacklogBytes
	}
	return int(o.backlog)
}

// WithCache sets the memory SQLite may hold in page caches, every
// connection of the log and of the search index together: each of the two
// writers gets a quarter of it (at most 256 MiB), and the readers share the
// other half equally (at most 32 MiB each). A connection past its share
// reuses its least recently used pages rather than allocating more. Less
// memory means more page reads from the operating system's file cache;
// docs/OPERATIONS.md says how to size it. The budget is memory, not page
// data: each 4 KiB page counts as the 8 KiB it occupies (pageMemory).
//
// The budget is divided rather than enforced as SQLite's soft heap limit
// because the driver's SQLite is built without memory statistics
// (SQLITE_DEFAULT_MEMSTATUS=0), under which that limit is not enforced.
func WithCache(bytes int64) Option {
	return func(o *options) { o.cache = bytes }
}

// pageMemory is what one cached page costs: a page of SQLite's default
// 4 KiB with its header is a little over 4 KiB, which the pure-Go SQLite's
// allocator (modernc.org/memory, power-of-two slots) places in an 8 KiB
// slot. A cache_size given in KiB of page data therefore took twice its
// budget in memory; given in pages of pageMemory, it takes the budget.
const pageMemory = 8 << 10

// readers is how many connections each file's read pool opens at most.
func readers() int { return max(4, runtime.GOMAXPROCS(0)*2) }

// writerCache and readerCache are the cache_size of a writing and a
// reading connection under the budget.
func (o options) writerCache() int64 { return min(256<<20, o.cache/4) }
func (o options) readerCache() int64 { return min(32<<20, o.cache/int64(4*readers())) }

// OpenCurrent opens the database file at path as Open does, but changes
// no schema: a missing file is refused, one with pending migrations with
// store.ErrSchemaBehind, one migrated by a newer Trail with
// store.ErrSchemaTooNew, both naming the versions. Only the search index
// file, a projection rebuilt from the events, is created when it is
// missing.
func OpenCurrent(ctx context.Context, path string, logger *slog.Logger, opts ...Option) (*Store, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("there is no database at %s: run `trail migrate` (or `trail serve`, which creates a new one) first", path)
	}
	return open(ctx, path, logger, requireCurrent, opts)
}

// migrationMode says what opening a file does about its schema.
type migrationMode int

const (
	requireCurrent migrationMode = iota // refuse pending migrations
	applyPending                        // apply them
)

func open(ctx context.Context, path string, logger *slog.Logger, mode migrationMode, opts []Option) (*Store, error) {
	o := options{cache: DefaultCacheBytes}
	for _, opt := range opts {
		opt(&o)
	}
	if o.cache < 1<<20 {
		return nil, fmt.Errorf("SQLite cache budget of %d bytes: give at least 1 MiB", o.cache)
	}
	if o.backlog != 0 && o.backlog < 1<<20 {
		return nil, fmt.Errorf("search backlog memory of %d bytes: give at least 1 MiB", o.backlog)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("couldn't create database directory %s: %w", dir, err)
		}
	}
	s := &Store{path: path, searchPath: SearchPath(path), logger: logger, recent: newRecentRecords(), opts: o}
	// The queue holds a quarter more than the bound, so that it keeps
	// every event of the backlog admit allows.
	s.unindexed.budget = o.backlogBytes() + o.backlogBytes()/4
	var err error
	if s.write, s.read, err = openPools(ctx, path, true, "migrations", mode, o); err != nil {
		return nil, err
	}
	if err := s.openSearch(ctx, mode); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.prepare(ctx); err != nil {
		s.Close()
		return nil, err
	}
	ckCtx, stop := context.WithCancel(context.Background())
	s.stopCheckpoints = stop
	for _, path := range []string{s.path, s.searchPath} {
		// A checkpoint copies WAL frames into the file without the page
		// cache: a small one is enough.
		db, err := sql.Open("sqlite", dsn(path, false, path == s.path, 2<<20))
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("couldn't open %s for checkpoints: %w", path, err)
		}
		db.SetMaxOpenConns(1)
		s.checkpoints.Add(1)
		loopCtx := ckCtx
		if path == s.path {
			var stopLog context.CancelFunc
			loopCtx, stopLog = context.WithCancel(ckCtx)
			done := make(chan struct{})
			s.stopLogCheckpoints = func() { stopLog(); <-done }
			go func() { defer close(done); s.checkpointLoop(loopCtx, path, db) }()
			continue
		}
		go s.checkpointLoop(loopCtx, path, db)
	}
	return s, nil
}

// LeaveCheckpoints stops this store's own WAL checkpoints of the log file
// (not of the search index), for a replicator that must control them:
// Litestream copies each transaction out of the WAL before it checkpoints
// (package replicate). It returns once the last checkpoint has finished.
func (s *Store) LeaveCheckpoints() {
	if s.stopLogCheckpoints != nil {
		s.stopLogCheckpoints()
	}
}

// checkpointInterval is how often the WAL is copied back into the database
// file. The writers never do it themselves (wal_autocheckpoint is off):
// a checkpoint inside a commit would stall every request waiting on it.
// Commits under load rewrite the same pages (the right edges of the events
// table and its indexes, each organization's right-edge tiles), and a
// checkpoint copies each page once however many commits rewrote it, then
// syncs the file: a second apart, one copy stands for hundreds of commits
// (docs/PERFORMANCE.md, "CPU per event"), and the WAL holds about a
// second of ingest.
const checkpointInterval = time.Second

// checkpointLoop runs PASSIVE checkpoints on its own connection until ctx
// ends: they copy committed frames into the database file beside the writer,
// never blocking it, and once a checkpoint has caught up the next write
// starts the WAL over, so it stays small.
func (s *Store) checkpointLoop(ctx context.Context, path string, db *sql.DB) {
	defer s.checkpoints.Done()
	defer db.Close()
	t := time.NewTicker(checkpointInterval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var busy, logFrames, done int
		err := db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &logFrames, &done)
		if err != nil && ctx.Err() == nil && !failing {
			s.logger.Warn("WAL checkpoint failed; will retry", "file", path, "err", err)
		}
		failing = err != nil
	}
}

// SearchPath is the search index file that belongs to the database at path.
func SearchPath(path string) string {
	return strings.TrimSuffix(path, filepath.Ext(path)) + ".search.db"
}

// openPools opens one file's writer and reader pools and migrates it with the
// migrations in dir, or checks that it needs none (mode).
func openPools(ctx context.Context, path string, durable bool, dir string, mode migrationMode, o options) (write, read *sql.DB, err error) {
	// The file holds API key hashes and every event: readable by the
	// owner only. SQLite gives the -wal and -shm files the mode of the
	// database file, so creating it here first covers them too.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't open %s: %w", path, err)
	}
	f.Close()
	write, err = sql.Open("sqlite", dsn(path, false, durable, o.writerCache()))
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't open %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)
	if mode == applyPending {
		if _, err := migrate(ctx, write, dir); err != nil {
			write.Close()
			return nil, nil, fmt.Errorf("couldn't migrate %s: %w", path, err)
		}
	} else {
		st, err := schemaStatus(ctx, write, dir)
		if err == nil {
			err = st.Check()
		}
		if err != nil {
			write.Close()
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	read, err = sql.Open("sqlite", dsn(path, true, durable, o.readerCache()))
	if err != nil {
		write.Close()
		return nil, nil, fmt.Errorf("couldn't open %s for reading: %w", path, err)
	}
	n := readers()
	read.SetMaxOpenConns(n)
	read.SetMaxIdleConns(n)
	return write, read, nil
}

// openSearch opens the search index file, and starts it over when it was
// built from another database or from a later state of this one (a restored
// backup): an index that names events which do not exist would return
// wrong results.
func (s *Store) openSearch(ctx context.Context, mode migrationMode) error {
	var identity string
	var maxPos sql.NullInt64
	// The highest pos ever handed out (AUTOINCREMENT's high-water mark in
	// sqlite_sequence), not max(pos) of the rows left: retention may have
	// deleted the newest events of an idle deployment, which is no reason
	// to rebuild; a restored backup lowers the mark too.
	if err := s.read.QueryRowContext(ctx, `SELECT (SELECT value FROM database_identity WHERE id = 1),
		max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0), coalesce((SELECT max(pos) FROM events), 0))`).Scan(&identity, &maxPos); err != nil {
		return fmt.Errorf("couldn't read database identity of %s: %w", s.path, classify(err))
	}
	for attempt := 0; ; attempt++ {
		var err error
		// A missing or empty index file is created whatever the mode: it
		// is a projection of the events, not data to migrate.
		searchMode := mode
		if empty, err := fileSchemaEmpty(ctx, s.searchPath); err != nil {
			return err
		} else if empty {
			searchMode = applyPending
		}
		if s.searchWrite, s.searchRead, err = openPools(ctx, s.searchPath, false, "search_migrations", searchMode, s.opts); err != nil {
			return err
		}
		var source string
		var indexed int64
		if err := s.searchWrite.QueryRowContext(ctx, `SELECT source, indexed_pos FROM search_state WHERE id = 1`).Scan(&source, &indexed); err != nil {
			return fmt.Errorf("couldn't read search state of %s: %w", s.searchPath, classify(err))
		}
		if source == identity && indexed <= maxPos.Int64 {
			return nil
		}
		if source == "" && indexed == 0 {
			if _, err := s.searchWrite.ExecContext(ctx, `UPDATE search_state SET source = ? WHERE id = 1`, identity); err != nil {
				return fmt.Errorf("couldn't claim search index %s: %w", s.searchPath, classify(err))
			}
			return nil
		}
		if attempt > 0 {
			return fmt.Errorf("search index %s still does not match %s after rebuilding it", s.searchPath, s.path)
		}
		s.logger.Warn("search index does not match the database (restored from a backup?); rebuilding it from the events",
			"search_index", s.searchPath, "database", s.path, "indexed_pos", indexed, "max_pos", maxPos.Int64)
		s.searchRead.Close()
		s.searchWrite.Close()
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if err := os.Remove(s.searchPath + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("couldn't remove stale search index: %w", err)
			}
		}
	}
}

// dsn builds the connection string. synchronous=FULL makes a commit durable
// against power loss in WAL mode, which is what "acknowledged" means for the
// log; the search file, rebuildable, uses NORMAL (consistent after a crash,
// possibly missing its last commits, which the indexer redoes).
// cache is the connection's page cache size in bytes.
func dsn(path string, readOnly, durable bool, cache int64) string {
	v := url.Values{}
	v.Add("_pragma", "busy_timeout(10000)")
	v.Add("_pragma", "journal_mode(WAL)")
	if durable {
		v.Add("_pragma", "synchronous(FULL)")
	} else {
		v.Add("_pragma", "synchronous(NORMAL)")
	}
	v.Add("_pragma", "foreign_keys(1)")
	v.Add("_pragma", "temp_store(MEMORY)")
	// A writer's cache keeps the hot right edges of every index in
	// memory, so a commit writes only the pages it dirtied (WithCache).
	v.Add("_pragma", fmt.Sprintf("cache_size(%d)", max(cache/pageMemory, 16))) // in pages when positive
	if readOnly {
		v.Add("_pragma", "query_only(1)")
	} else {
		// The writer never checkpoints: copying the WAL back into the
		// database (and syncing it) inside a commit stalls every request
		// waiting on that commit. A background checkpointer does it
		// (Store.checkpointLoop).
		v.Add("_pragma", "wal_autocheckpoint(0)")
		// Once checkpointed, the WAL is cut back to 64 MiB when it
		// restarts: a burst (or a full disk, where the WAL grew into every
		// free byte) does not keep its space for ever.
		v.Add("_pragma", "journal_size_limit(67108864)")
		v.Add("_txlock", "immediate")
	}
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + v.Encode()
}

func migrate(ctx context.Context, db *sql.DB, dir string) ([]store.Migration, error) {
	p, err := goose.NewProvider(goose.DialectSQLite3, db, mustSub(migrations, dir), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return nil, err
	}
	if err := store.CheckSchemaVersion(ctx, p); err != nil {
		return nil, err
	}
	results, err := p.Up(ctx)
	var applied []store.Migration
	for _, r := range results {
		if r.Error == nil && r.Source != nil {
			applied = append(applied, store.Migration{Version: r.Source.Version, Name: filepath.Base(r.Source.Path)})
		}
	}
	return applied, err
}

// Migrator returns the goose provider for this schema (for `trail migrate`).
func Migrator(db *sql.DB) (*goose.Provider, error) {
	return goose.NewProvider(goose.DialectSQLite3, db, mustSub(migrations, "migrations"), goose.WithDisableGlobalRegistry(true))
}

// Close closes all pools.
func (s *Store) Close() error {
	if s.stopCheckpoints != nil {
		s.stopCheckpoints()
		s.checkpoints.Wait()
	}
	s.stmts.close()
	var errs []error
	for _, db := range []*sql.DB{s.searchRead, s.searchWrite, s.read, s.write} {
		if db != nil {
			errs = append(errs, db.Close())
		}
	}
	return errors.Join(errs...)
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// classify maps driver errors to the store's sentinels.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_FULL:
			return fmt.Errorf("%w (%w): %w", store.ErrUnavailable, store.ErrDiskFull, err)
		case sqlite3.SQLITE_IOERR, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY:
			return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
		case sqlite3.SQLITE_CONSTRAINT:
			return fmt.Errorf("%w: %w", store.ErrConflict, err)
		}
	}
	return err
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

func fromNullMS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMS(v.Int64)
}

// Ping checks that the database file answers a query, through the
// reader pool.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.read.QueryRowContext(ctx, `SELECT 1 FROM database_identity WHERE id = 1`).Scan(&one); err != nil {
		return classify(err)
	}
	return nil
}
