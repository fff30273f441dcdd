// Package postgres is Trail's scale-out storage: PostgreSQL through pgx
// (pgxpool), shared by any number of stateless `trail serve` replicas.
//
// # Agreement between replicas
//
// Everything replicas must agree on is decided inside the database:
//
//   - Seqs. One statement per append (appendSQL in append.go) locks the
//     organizations' rows in id order, advances each next_seq and inserts
//     the events and targets numbered from the start it got; it is sent
//     with the commit in one pipelined round trip. The row lock is held
//     until that commit, so an organization's seqs are handed out and
//     committed in order, without gaps, whichever replica accepts the
//     events, while appends to other organizations proceed in parallel.
//   - Idempotency. Keys are claimed with INSERT … ON CONFLICT before any
//     organization is locked (keys first, then organizations: one global
//     lock order, so appends never deadlock). A replica given a request
//     that another replica is storing at that moment waits on the key's
//     row, then answers with the stored result.
//   - The ledger's integrated size is a compare-and-swap (integrated_size
//     = old AND next_seq >= new), for a whole batch of organizations in
//     one statement that also stores their tiles and checkpoints
//     (integrateSQL in ledger.go); it locks the rows in id order too.
//   - Migrations run (ApplyMigrations, Open) under a session advisory
//     lock on a dedicated connection (LockMigrations); OpenCurrent, what
//     trail's commands use, only checks the schema version. Partitions are
//     created under a transaction advisory lock.
//
// # Schema
//
// Every key leads with organization_id, so a later move to Citus
// (distribution column organization_id) needs no redesign. events and
// event_targets are partitioned by month of received_at, so that retention
// can drop partitions; EnsurePartitions keeps the current month and the
// next two ready, and a DEFAULT partition takes anything else. The primary
// key of events is (organization_id, seq, received_at) because a unique
// index of a partitioned table must hold the partition key; (organization_id,
// seq) is unique by the sequencing above.
//
// # Search is written in the ingest transaction
//
// Unlike the SQLite store (whose single writer lock made deferred indexing
// worth a second file), this store writes the search columns, the target
// rows, the organization's action list and the full-text vector in the
// append transaction, and does not implement store.SearchIndexer. Indexing
// after the fact would not make the database do less: it would do the same
// index work later, plus read every record back and write each event's
// search row a second time, on the one database every replica shares. It
// would also need coordination (which replica indexes what) and a
// high-water mark, which a log appended concurrently by many replicas does
// not have (a global counter commits out of order). What it would save is
// latency of the ingest transaction: maintaining the search indexes is
// about half of the append's database time (BenchmarkAppend,
// indexes=all against indexes=noindexes). Search is then never behind
// acceptance, which is stricter than the contract asks.
//
// # Free text
//
// The vector is built here rather than by to_tsvector: PostgreSQL's parser
// keeps "carol@example.com" or "203.0.113.7" as single tokens and splits
// "user_07" in two, so the same query would find other events than on
// SQLite. Words are split as the SQLite store's FTS5 tokenizer does (runs
// of letters, digits and '_', case folded, no stemming or stop words, as
// the 'simple' configuration would) at consecutive positions, so a query
// word of several parts matches as a phrase, and diacritics are folded as
// FTS5's remove_diacritics does ("cafe" finds "café"). Each vector also holds a lexeme naming the organization, so that the GIN
// index narrows to one tenant. A query with free text (or a lone target
// type or id) first walks an index in result order checking each event,
// and reads the GIN (or target) index only when the first few thousand
// events hold less than a page: see searchChecked.
package postgres
