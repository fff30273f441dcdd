package witness

import (
	"bufio"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/trailaudit/trail/internal/ledger"
)

// DatabaseFile is the name of the witness's state in its data directory.
const DatabaseFile = "witness.db"

// LogConfig is one log the witness cosigns: an exact origin, or with
// Prefix, every origin "<Origin>/<one path segment>" (a Trail deployment has
// one origin per organization), and the log's verifier key.
type LogConfig struct {
	Origin   string
	Prefix   bool
	Verifier note.Verifier
}

// ParseLogConfig parses "<origin> <verifier key>" or "<prefix>/* <verifier
// key>", as --log and the log file take it.
func ParseLogConfig(s string) (LogConfig, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return LogConfig{}, fmt.Errorf("log %q: want \"<origin> <verifier key>\" or \"<origin prefix>/* <verifier key>\"", s)
	}
	v, err := note.NewVerifier(f[1])
	if err != nil {
		return LogConfig{}, fmt.Errorf("log %q: invalid verifier key: %w", s, err)
	}
	c := LogConfig{Origin: f[0], Verifier: v}
	if p, ok := strings.CutSuffix(f[0], "/*"); ok {
		c.Origin, c.Prefix = p, true
	}
	if c.Origin == "" || strings.Contains(c.Origin, "*") {
		return LogConfig{}, fmt.Errorf("log %q: origin must be non-empty, and * may only end a prefix as /*", s)
	}
	return c, nil
}

// ReadLogFile reads a file of log lines ("<origin> <vkey>"); blank lines and
// lines starting with # are skipped.
func ReadLogFile(path string) ([]LogConfig, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("couldn't open log list: %w", err)
	}
	defer f.Close()
	var logs []LogConfig
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		c, err := ParseLogConfig(l)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		logs = append(logs, c)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("couldn't read %s: %w", path, err)
	}
	return logs, nil
}

// Server is a tlog-witness: POST /add-checkpoint, and GET
// /<hex SHA-256 of origin>/checkpoint for monitors.
type Server struct {
	signer *Signer
	logs   []LogConfig
	db     *sql.DB
	logger *slog.Logger
	mux    *http.ServeMux

	// mu makes "check the newest cosigned size, record the new one"
	// atomic. heads caches, per origin, the newest checkpoint accepted:
	// durable, or queued for the committer, which stores the writes of
	// concurrent requests in one transaction (one sync for many logs). A
	// request answers only once its write is durable.
	mu     sync.Mutex
	heads  map[string]head
	broken atomic.Bool // a commit failed: cosign nothing more
	writes chan *write
	stop   chan struct{}
	done   chan struct{}
}

type head struct {
	size int64
	hash tlog.Hash
}

// write is one accepted checkpoint to store.
type write struct {
	origin string
	head   head
	note   []byte // the checkpoint with the log's and the witness's signatures
	done   chan error
}

// OpenServer opens (creating if needed) the witness state <dir>/witness.db.
func OpenServer(dir string, signer *Signer, logs []LogConfig, logger *slog.Logger) (*Server, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("couldn't create data directory %s: %w", dir, err)
	}
	db, err := openDB(filepath.Join(dir, DatabaseFile), true)
	if err != nil {
		return nil, err
	}
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS logs (
		origin     TEXT PRIMARY KEY,
		origin_sha256 TEXT NOT NULL UNIQUE, -- hex, for GET /<hash>/checkpoint
		size       INTEGER NOT NULL,
		hash       TEXT NOT NULL,
		checkpoint BLOB NOT NULL,  -- the note as cosigned, log and witness signatures
		updated_at INTEGER NOT NULL
	) STRICT`); err != nil {
		db.Close()
		return nil, fmt.Errorf("couldn't create the witness tables: %w", err)
	}
	s := &Server{signer: signer, logs: logs, db: db, logger: logger, mux: http.NewServeMux(),
		heads: map[string]head{}, writes: make(chan *write, 4096), stop: make(chan struct{}), done: make(chan struct{})}
	s.mux.HandleFunc("POST /add-checkpoint", s.addCheckpoint)
	s.mux.HandleFunc("GET /{hash}/checkpoint", s.checkpoint)
	if err := s.loadHeads(); err != nil {
		db.Close()
		return nil, err
	}
	go s.commitLoop()
	return s, nil
}

// loadHeads reads every log's newest cosigned checkpoint into the cache, so
// that requests never wait for the database to check a request.
func (s *Server) loadHeads() error {
	rows, err := s.db.Query(`SELECT origin, size, hash FROM logs`)
	if err != nil {
		return fmt.Errorf("couldn't read the witness state: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var origin, hash string
		var size int64
		if err := rows.Scan(&origin, &size, &hash); err != nil {
			return fmt.Errorf("couldn't read the witness state: %w", err)
		}
		h, err := tlog.ParseHash(hash)
		if err != nil {
			return fmt.Errorf("stored hash of %s is corrupt: %w", origin, err)
		}
		s.heads[origin] = head{size: size, hash: h}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("couldn't read the witness state: %w", err)
	}
	return nil
}

// commitLoop stores queued writes, as many as are waiting per transaction.
func (s *Server) commitLoop() {
	defer close(s.done)
	for {
		var batch []*write
		select {
		case w := <-s.writes:
			batch = append(batch, w)
		case <-s.stop:
			return
		}
	more:
		for len(batch) < 1024 {
			select {
			case w := <-s.writes:
				batch = append(batch, w)
			default:
				break more
			}
		}
		err := errBroken
		if !s.broken.Load() {
			err = s.store(batch)
		}
		if err != nil && !s.broken.Swap(true) {
			// The cache now holds heads that are not stored, and requests
			// queued behind were checked against them: storing anything
			// more could record a head that does not extend the stored
			// one. Stop cosigning; a restart reads the stored state.
			s.logger.Error("couldn't store cosigned checkpoints: no more cosigning until the witness is restarted", "err", err, "checkpoints", len(batch))
		}
		for _, w := range batch {
			w.done <- err
		}
	}
}

func (s *Server) store(batch []*write) error {
	tx, err := s.db.Begin()
	if err != nil {
		return fmt.Errorf("couldn't begin a transaction: %w", err)
	}
	defer tx.Rollback()
	now := time.Now().Unix()
	for _, w := range batch {
		if _, err := tx.Exec(`INSERT INTO logs (origin, origin_sha256, size, hash, checkpoint, updated_at) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (origin) DO UPDATE SET size = excluded.size, hash = excluded.hash,
				checkpoint = excluded.checkpoint, updated_at = excluded.updated_at`,
			w.origin, originHash(w.origin), w.head.size, w.head.hash.String(), w.note, now); err != nil {
			return fmt.Errorf("couldn't store the checkpoint of %s: %w", w.origin, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("couldn't commit: %w", err)
	}
	return nil
}

// openDB opens a SQLite database with one connection. durable syncs every
// commit (the witness's state); otherwise a crash may lose the last commits,
// never corrupt the file.
func openDB(path string, durable bool) (*sql.DB, error) {
	v := url.Values{}
	v.Add("_pragma", "busy_timeout(10000)")
	v.Add("_pragma", "journal_mode(WAL)")
	if durable {
		v.Add("_pragma", "synchronous(FULL)")
	} else {
		v.Add("_pragma", "synchronous(NORMAL)")
	}
	db, err := sql.Open("sqlite", "file:"+path+"?"+v.Encode())
	if err != nil {
		return nil, fmt.Errorf("couldn't open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("couldn't open %s: %w", path, err)
	}
	return db, nil
}

// Close closes the database.
// Close stops the committer and closes the database. Requests must have
// ended (the HTTP server shut down) first.
func (s *Server) Close() error {
	close(s.stop)
	<-s.done
	return s.db.Close()
}

// VerifierKey is the witness's public key, what log operators configure.
func (s *Server) VerifierKey() string { return s.signer.Verifier().String() }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// verifiersFor returns the verifiers configured for origin (none: not a
// log this witness cosigns). A log may be configured with several keys
// (one line per key): a checkpoint signed by any of them is accepted, which
// is how a witness follows a log's signing-key rotation (docs/WITNESS.md).
// Exact origins take precedence over prefixes.
func (s *Server) verifiersFor(origin string) []note.Verifier {
	var vs []note.Verifier
	add := func(v note.Verifier) {
		for _, o := range vs {
			if o.Name() == v.Name() && o.KeyHash() == v.KeyHash() {
				return // the same key twice would make the list ambiguous
			}
		}
		vs = append(vs, v)
	}
	for _, l := range s.logs {
		if !l.Prefix && l.Origin == origin {
			add(l.Verifier)
		}
	}
	if len(vs) > 0 {
		return vs
	}
	for _, l := range s.logs {
		rest, ok := strings.CutPrefix(origin, l.Origin+"/")
		if l.Prefix && ok && rest != "" && !strings.Contains(rest, "/") {
			add(l.Verifier)
		}
	}
	return vs
}

// statusError is an answer other than 200.
type statusError struct {
	code int
	msg  string
	size int64 // for 409
}

func (e *statusError) Error() string { return e.msg }

func fail(code int, format string, a ...any) *statusError {
	return &statusError{code: code, msg: fmt.Sprintf(format, a...)}
}

func (s *Server) addCheckpoint(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequest))
	if err != nil {
		http.Error(w, fmt.Sprintf("couldn't read the request body (at most %d bytes): %v", maxRequest, err), http.StatusBadRequest)
		return
	}
	sigs, err := s.add(r.Context(), body)
	var se *statusError
	switch {
	case errors.As(err, &se) && se.code == http.StatusConflict:
		w.Header().Set("Content-Type", sizeContentType)
		w.WriteHeader(http.StatusConflict)
		fmt.Fprintf(w, "%d\n", se.size)
	case errors.As(err, &se):
		http.Error(w, se.msg, se.code)
	case err != nil:
		s.logger.Error("add-checkpoint failed", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
	default:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(sigs)
	}
}

// add does the checks of add-checkpoint in the order the protocol gives and
// returns the cosignature lines.
func (s *Server) add(ctx context.Context, body []byte) ([]byte, error) {
	req, err := parseAddRequest(body)
	if err != nil {
		return nil, fail(http.StatusBadRequest, "%v", err)
	}
	origin, _, _ := strings.Cut(string(req.Note), "\n")
	vs := s.verifiersFor(origin)
	if len(vs) == 0 {
		return nil, fail(http.StatusNotFound, "unknown log origin %q", origin)
	}
	n, err := note.Open(req.Note, note.VerifierList(vs...))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		if errors.As(err, &unverified) || errors.As(err, &invalid) {
			return nil, fail(http.StatusForbidden, "checkpoint is not validly signed by a key configured for %q", origin)
		}
		return nil, fail(http.StatusBadRequest, "malformed checkpoint note: %v", err)
	}
	ck, err := ledger.ParseCheckpointBody([]byte(n.Text))
	if err != nil {
		return nil, fail(http.StatusBadRequest, "%v", err)
	}
	if req.OldSize > ck.Size {
		return nil, fail(http.StatusBadRequest, "old size %d is above the checkpoint size %d", req.OldSize, ck.Size)
	}
	log := s.logger.With("origin", origin, "old_size", req.OldSize, "size", ck.Size)

	// The signature is made before the state is checked, outside the lock;
	// it is only returned if the checkpoint is accepted and stored.
	cosigned, err := note.Sign(&note.Note{Text: n.Text}, s.signer)
	if err != nil {
		return nil, fmt.Errorf("couldn't cosign: %w", err)
	}
	_, sigs, err := splitNote(cosigned)
	if err != nil {
		return nil, err
	}
	w, err := s.accept(log, origin, req, ck)
	if err != nil {
		return nil, err
	}
	w.note = append(append([]byte{}, req.Note...), sigs...)
	s.writes <- w
	s.mu.Unlock()
	select {
	case err := <-w.done:
		if err != nil {
			return nil, err
		}
	case <-ctx.Done():
		// The write may still be stored; not answering is safe.
		return nil, ctx.Err()
	}
	log.Debug("cosigned")
	return sigs, nil
}

// accept checks the request against the newest checkpoint accepted for
// origin and, if it passes, records the new one in the cache and returns its
// write, with s.mu held: the caller queues the write, then unlocks. On error
// s.mu is not held.
func (s *Server) accept(log *slog.Logger, origin string, req addRequest, ck ledger.Checkpoint) (*write, error) {
	s.mu.Lock()
	known, err := s.head(origin)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	if err := check(log, req, ck, known); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	h := head{size: ck.Size, hash: ck.Hash}
	s.heads[origin] = h
	return &write{origin: origin, head: h, done: make(chan error, 1)}, nil
}

// check applies the protocol's consistency rules to a request, given the
// newest checkpoint cosigned for its origin.
func check(log *slog.Logger, req addRequest, ck ledger.Checkpoint, known head) error {
	if req.OldSize != known.size {
		log.Info("conflict: the log's old size is not the one last cosigned", "known_size", known.size)
		return &statusError{code: http.StatusConflict, msg: "old size does not match", size: known.size}
	}
	if ck.Size == 0 && ck.Hash != emptyTreeHash() {
		return fail(http.StatusUnprocessableEntity, "a checkpoint of size 0 must carry the empty tree's hash")
	}
	switch {
	case req.OldSize == 0:
		if len(req.Proof) != 0 {
			return fail(http.StatusUnprocessableEntity, "old size 0 takes no consistency proof")
		}
	case req.OldSize == ck.Size:
		if ck.Hash != known.hash {
			log.Warn("refused: the log signed a different tree at the size already cosigned (evidence of a fork)", "known_hash", known.hash.String(), "hash", ck.Hash.String(), "checkpoint", string(req.Note))
			return fail(http.StatusUnprocessableEntity, "the root hash differs from the one cosigned at size %d", known.size)
		}
	default:
		if err := tlog.CheckTree(req.Proof, ck.Size, ck.Hash, req.OldSize, known.hash); err != nil {
			log.Warn("refused: the checkpoint is not consistent with the one cosigned (evidence of a fork, or a bad proof)", "known_hash", known.hash.String(), "checkpoint", string(req.Note))
			return fail(http.StatusUnprocessableEntity, "the consistency proof from size %d does not verify", req.OldSize)
		}
	}
	return nil
}

// head returns the newest checkpoint accepted for origin (size 0 and the
// empty tree's hash when none). The cache holds every stored log (loaded at
// start) and every accepted one since. s.mu is held.
func (s *Server) head(origin string) (head, error) {
	if s.broken.Load() {
		return head{}, errBroken
	}
	if h, ok := s.heads[origin]; ok {
		return h, nil
	}
	return head{size: 0, hash: emptyTreeHash()}, nil
}

// checkpoint is GET /<hex SHA-256 of origin>/checkpoint: the newest
// checkpoint cosigned for that log, with the log's and the witness's
// signatures.
func (s *Server) checkpoint(w http.ResponseWriter, r *http.Request) {
	var ck []byte
	err := s.db.QueryRowContext(r.Context(), `SELECT checkpoint FROM logs WHERE origin_sha256 = ?`,
		strings.ToLower(r.PathValue("hash"))).Scan(&ck)
	if errors.Is(err, sql.ErrNoRows) {
		http.Error(w, "no checkpoint cosigned for this log", http.StatusNotFound)
		return
	}
	if err != nil {
		s.logger.Error("couldn't read a cosigned checkpoint", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write(ck)
}

func originHash(origin string) string {
	sum := sha256.Sum256([]byte(origin))
	return hex.EncodeToString(sum[:])
}

// errBroken is the answer (500) once storing the witness's state failed.
var errBroken = errors.New("the witness could not store its state and stopped cosigning; restart it")

func emptyTreeHash() tlog.Hash { return sha256.Sum256(nil) }
