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
	// mu makes "check the stored size, store the new one" atomic (the
	// database has one connection too; this keeps the intent visible).
	mu sync.Mutex
}

// OpenServer opens (creating if needed) the witness state <dir>/witness.db.
func OpenServer(dir string, signer *Signer, logs []LogConfig, logger *slog.Logger) (*Server, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("couldn't create data directory %s: %w", dir, err)
	}
	db, err := openDB(filepath.Join(dir, DatabaseFile))
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
	s := &Server{signer: signer, logs: logs, db: db, logger: logger, mux: http.NewServeMux()}
	s.mux.HandleFunc("POST /add-checkpoint", s.addCheckpoint)
	s.mux.HandleFunc("GET /{hash}/checkpoint", s.checkpoint)
	return s, nil
}

func openDB(path string) (*sql.DB, error) {
	v := url.Values{}
	v.Add("_pragma", "busy_timeout(10000)")
	v.Add("_pragma", "journal_mode(WAL)")
	v.Add("_pragma", "synchronous(FULL)")
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
func (s *Server) Close() error { return s.db.Close() }

// VerifierKey is the witness's public key, what log operators configure.
func (s *Server) VerifierKey() string { return s.signer.Verifier().String() }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// verifierFor returns the verifier configured for origin, or nil.
func (s *Server) verifierFor(origin string) note.Verifier {
	for _, l := range s.logs {
		if !l.Prefix && l.Origin == origin {
			return l.Verifier
		}
	}
	for _, l := range s.logs {
		rest, ok := strings.CutPrefix(origin, l.Origin+"/")
		if l.Prefix && ok && rest != "" && !strings.Contains(rest, "/") {
			return l.Verifier
		}
	}
	return nil
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
	v := s.verifierFor(origin)
	if v == nil {
		return nil, fail(http.StatusNotFound, "unknown log origin %q", origin)
	}
	n, err := note.Open(req.Note, note.VerifierList(v))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		if errors.As(err, &unverified) || errors.As(err, &invalid) {
			return nil, fail(http.StatusForbidden, "checkpoint is not validly signed by the key configured for %q", origin)
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

	s.mu.Lock()
	defer s.mu.Unlock()
	known, knownHash, err := s.state(ctx, origin)
	if err != nil {
		return nil, err
	}
	if req.OldSize != known {
		log.Info("conflict: the log's old size is not the one last cosigned", "known_size", known)
		return nil, &statusError{code: http.StatusConflict, msg: "old size does not match", size: known}
	}
	if ck.Size == 0 && ck.Hash != emptyTreeHash() {
		return nil, fail(http.StatusUnprocessableEntity, "a checkpoint of size 0 must carry the empty tree's hash")
	}
	switch {
	case req.OldSize == 0:
		if len(req.Proof) != 0 {
			return nil, fail(http.StatusUnprocessableEntity, "old size 0 takes no consistency proof")
		}
	case req.OldSize == ck.Size:
		if ck.Hash != knownHash {
			log.Warn("refused: the log signed a different tree at the size already cosigned (evidence of a fork)", "known_hash", knownHash.String(), "hash", ck.Hash.String(), "checkpoint", string(req.Note))
			return nil, fail(http.StatusUnprocessableEntity, "the root hash differs from the one cosigned at size %d", known)
		}
	default:
		if err := tlog.CheckTree(req.Proof, ck.Size, ck.Hash, req.OldSize, knownHash); err != nil {
			log.Warn("refused: the checkpoint is not consistent with the one cosigned (evidence of a fork, or a bad proof)", "known_hash", knownHash.String(), "checkpoint", string(req.Note))
			return nil, fail(http.StatusUnprocessableEntity, "the consistency proof from size %d does not verify", req.OldSize)
		}
	}
	cosigned, err := note.Sign(&note.Note{Text: n.Text}, s.signer)
	if err != nil {
		return nil, fmt.Errorf("couldn't cosign: %w", err)
	}
	_, sigs, err := splitNote(cosigned)
	if err != nil {
		return nil, err
	}
	stored := append(append([]byte{}, req.Note...), sigs...)
	if _, err := s.db.ExecContext(ctx, `INSERT INTO logs (origin, origin_sha256, size, hash, checkpoint, updated_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (origin) DO UPDATE SET size = excluded.size, hash = excluded.hash,
			checkpoint = excluded.checkpoint, updated_at = excluded.updated_at`,
		origin, originHash(origin), ck.Size, ck.Hash.String(), stored, time.Now().Unix()); err != nil {
		return nil, fmt.Errorf("couldn't store the checkpoint of %s: %w", origin, err)
	}
	log.Debug("cosigned")
	return sigs, nil
}

// state returns the newest cosigned size and hash of origin (0 and the
// empty tree's hash when none).
func (s *Server) state(ctx context.Context, origin string) (int64, tlog.Hash, error) {
	var size int64
	var hash string
	err := s.db.QueryRowContext(ctx, `SELECT size, hash FROM logs WHERE origin = ?`, origin).Scan(&size, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, emptyTreeHash(), nil
	}
	if err != nil {
		return 0, tlog.Hash{}, fmt.Errorf("couldn't read the state of %s: %w", origin, err)
	}
	h, err := tlog.ParseHash(hash)
	if err != nil {
		return 0, tlog.Hash{}, fmt.Errorf("stored hash of %s is corrupt: %w", origin, err)
	}
	return size, h, nil
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

func emptyTreeHash() tlog.Hash { return sha256.Sum256(nil) }
