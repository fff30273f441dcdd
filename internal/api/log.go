package api

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/trailaudit/trail/internal/access"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/store"
)

// The verifiable log over HTTP (docs/DESIGN.md §3): the verifier key, checkpoints,
// RFC 6962 inclusion and consistency proofs, the canonical records, and
// bundles that `trail verify` checks offline. Nothing here needs to be
// trusted: every answer is checkable against a checkpoint signed by the
// deployment's key.

// LogConfig connects the API to the verifiable log. Without Storage the log
// routes are not served.
type LogConfig struct {
	Storage ledger.Storage
	// VerifierKey is the note verifier key checkpoints are signed with.
	VerifierKey string
	// NewestKey, when set, returns the newest active verifier key (it
	// changes when the signing key rotates); it overrides VerifierKey.
	NewestKey func() string
	// Keys, when set, returns the log's key history: GET /v1/log/keys
	// serves it (docs/VERIFYING.md, "Key history").
	Keys func() *ledger.KeyHistory
	// Refused, when set, reports the organizations whose logs the
	// integrator refuses to extend, with the reason (/readyz on the
	// operator listener shows them).
	Refused func() map[string]string
	// Checked, when set, reports whether the stored logs have been checked
	// against the checkpoints this server signed; /readyz answers 503
	// until then.
	Checked func() bool
	// WitnessesDown, when set, names the witnesses whose last request
	// failed: /readyz stays 200 (ingest goes on, checkpoints are published
	// without their cosignatures) but says "degraded", and the operator
	// listener's /readyz names them.
	WitnessesDown func() []string
}

func (s *Server) logKey(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.WriteHeader(http.StatusOK)
	key := s.cfg.Log.VerifierKey
	if s.cfg.Log.NewestKey != nil {
		key = s.cfg.Log.NewestKey()
	}
	fmt.Fprintln(w, key)
	return nil
}

// logKeys serves the log's key history: every key checkpoints were signed
// with, its state and validity period (docs/VERIFYING.md, "Key history").
func (s *Server) logKeys(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=60")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, s.cfg.Log.Keys().String())
	return nil
}

// logOrg authorizes a log request and returns the organization and its log
// state. A key restricted to another organization gets the same 404 as an
// organization that does not exist.
func (s *Server) logOrg(r *http.Request) (string, ledger.LogState, error) {
	p, id := principal(r), r.PathValue("id")
	var st ledger.LogState
	if !p.CanAccessOrg(id) {
		return id, st, errOrgNotFound(id)
	}
	if !p.Can(access.ScopeEventsRead) && !p.Can(access.ScopeExports) && !p.Can(access.ScopeAdmin) {
		return id, st, errForbidden(access.ScopeEventsRead)
	}
	setOrg(r, id)
	st, err := s.cfg.Log.Storage.LogState(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return id, st, errOrgNotFound(id)
	}
	if err != nil {
		return id, st, err
	}
	return id, st, nil
}

// int64Param reads an optional non-negative integer query parameter; def
// when absent.
func int64Param(v url.Values, name string, def int64, errs *[]fieldError) int64 {
	raw := single(v, name, errs)
	if raw == "" {
		return def
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || n < 0 {
		addErr(errs, name, "invalid", fmt.Sprintf("%s must be a non-negative integer, not %q.", name, raw))
		return def
	}
	return n
}

func logParams(r *http.Request, known ...string) (url.Values, error) {
	v, err := parseQuery(r)
	if err != nil {
		return nil, err
	}
	k := map[string]bool{}
	for _, n := range known {
		k[n] = true
	}
	var errs []fieldError
	unknownParams(v, k, &errs)
	if errs != nil {
		return nil, errInvalidParams(errs)
	}
	return v, nil
}

// errNoCheckpoint: the log has records but the integrator has not signed a
// checkpoint for them yet (it does within about a second).
func errNoCheckpoint(org string) *apiError {
	return &apiError{status: http.StatusNotFound, code: "checkpoint_not_found",
		message: fmt.Sprintf("No checkpoint has been signed for organization %s yet; retry in a second.", org), retryAfter: 1}
}

func errBeyondCheckpoint(org string, size, integrated int64) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "tree_size_not_signed",
		message: fmt.Sprintf("Tree size %d of organization %s is beyond its newest checkpoint (size %d); ask for a size at most %d.", size, org, integrated, integrated)}
}

func badRange(field, msg string) *apiError {
	return errInvalidParams([]fieldError{{Code: "invalid_range", Field: field, Message: msg}})
}

// logCheckpoint is GET /v1/organizations/{id}/log/checkpoint[?size=N]: the
// signed note (C2SP tlog-checkpoint) of the newest tree, or of the tree of
// exactly size N.
func (s *Server) logCheckpoint(w http.ResponseWriter, r *http.Request) error {
	org, st, err := s.logOrg(r)
	if err != nil {
		return err
	}
	v, err := logParams(r, "size")
	if err != nil {
		return err
	}
	var errs []fieldError
	size := int64Param(v, "size", 0, &errs)
	if errs != nil {
		return errInvalidParams(errs)
	}
	var note []byte
	if v.Has("size") {
		if size > st.IntegratedSize {
			return errBeyondCheckpoint(org, size, st.IntegratedSize)
		}
		note, err = s.cfg.Log.Storage.Checkpoint(r.Context(), org, size)
		if errors.Is(err, store.ErrNotFound) {
			return &apiError{status: http.StatusNotFound, code: "checkpoint_not_found",
				message: fmt.Sprintf("No checkpoint of size %d is stored for organization %s (checkpoints exist only for the sizes the log had when it was integrated, and old ones are kept only one an hour or a day); use the newest one and a consistency proof.", size, org)}
		}
	} else {
		note, err = s.cfg.Log.Storage.LatestCheckpoint(r.Context(), org)
		if errors.Is(err, store.ErrNotFound) {
			return errNoCheckpoint(org)
		}
	}
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	w.Write(note)
	return nil
}

type inclusionProofJSON struct {
	Object         string      `json:"object"`
	OrganizationID string      `json:"organization_id"`
	Seq            int64       `json:"seq"`
	TreeSize       int64       `json:"tree_size"`
	Proof          []tlog.Hash `json:"proof"`
}

type consistencyProofJSON struct {
	Object         string      `json:"object"`
	OrganizationID string      `json:"organization_id"`
	From           int64       `json:"from"`
	To             int64       `json:"to"`
	Proof          []tlog.Hash `json:"proof"`
}

// logInclusionProof is GET …/log/proof/inclusion?seq=N[&size=M]: the RFC
// 6962 audit path of record N in the tree of size M (default: the newest
// checkpoint's). Hashes are base64, in tlog.RecordProof order.
func (s *Server) logInclusionProof(w http.ResponseWriter, r *http.Request) error {
	org, st, err := s.logOrg(r)
	if err != nil {
		return err
	}
	v, err := logParams(r, "seq", "size")
	if err != nil {
		return err
	}
	var errs []fieldError
	if !v.Has("seq") {
		addErr(&errs, "seq", "required", "seq is required: the seq of the event to prove.")
	}
	seq := int64Param(v, "seq", 0, &errs)
	size := int64Param(v, "size", st.IntegratedSize, &errs)
	if errs != nil {
		return errInvalidParams(errs)
	}
	if st.IntegratedSize == 0 {
		return errNoCheckpoint(org)
	}
	if size > st.IntegratedSize {
		return errBeyondCheckpoint(org, size, st.IntegratedSize)
	}
	if seq >= size {
		if seq < st.NextSeq && !v.Has("size") {
			return &apiError{status: http.StatusNotFound, code: "not_yet_integrated", retryAfter: 1,
				message: fmt.Sprintf("Event seq %d of organization %s is not covered by a checkpoint yet (newest size %d); retry in a second.", seq, org, size)}
		}
		return badRange("seq", fmt.Sprintf("seq %d is not in a tree of size %d; seq must be below size.", seq, size))
	}
	proof, err := ledger.InclusionProof(r.Context(), s.cfg.Log.Storage, org, seq, size)
	if err != nil {
		return err
	}
	if proof == nil {
		proof = tlog.RecordProof{}
	}
	writeJSON(w, http.StatusOK, inclusionProofJSON{Object: "inclusion_proof", OrganizationID: org, Seq: seq, TreeSize: size, Proof: proof})
	return nil
}

// logConsistencyProof is GET …/log/proof/consistency?from=A&to=B: the RFC
// 6962 proof that the tree of size A is a prefix of the tree of size B
// (default: the newest checkpoint's).
func (s *Server) logConsistencyProof(w http.ResponseWriter, r *http.Request) error {
	org, st, err := s.logOrg(r)
	if err != nil {
		return err
	}
	v, err := logParams(r, "from", "to")
	if err != nil {
		return err
	}
	var errs []fieldError
	if !v.Has("from") {
		addErr(&errs, "from", "required", "from is required: the size of the older tree.")
	}
	from := int64Param(v, "from", 0, &errs)
	to := int64Param(v, "to", st.IntegratedSize, &errs)
	if errs != nil {
		return errInvalidParams(errs)
	}
	if to > st.IntegratedSize {
		return errBeyondCheckpoint(org, to, st.IntegratedSize)
	}
	if from > to {
		return badRange("from", fmt.Sprintf("from (%d) must be at most to (%d).", from, to))
	}
	proof, err := ledger.ConsistencyProof(r.Context(), s.cfg.Log.Storage, org, from, to)
	if err != nil {
		return err
	}
	if proof == nil {
		proof = tlog.TreeProof{}
	}
	writeJSON(w, http.StatusOK, consistencyProofJSON{Object: "consistency_proof", OrganizationID: org, From: from, To: to, Proof: proof})
	return nil
}

// logRecords is GET …/log/records?from=A[&to=B]: the canonical record lines
// of seqs [A, B) as NDJSON, exactly as stored and hashed (default B: the
// log's size). Seqs whose records retention removed are absent.
func (s *Server) logRecords(w http.ResponseWriter, r *http.Request) error {
	org, st, err := s.logOrg(r)
	if err != nil {
		return err
	}
	v, err := logParams(r, "from", "to")
	if err != nil {
		return err
	}
	var errs []fieldError
	from := int64Param(v, "from", 0, &errs)
	to := int64Param(v, "to", st.NextSeq, &errs)
	if errs != nil {
		return errInvalidParams(errs)
	}
	if to > st.NextSeq {
		return badRange("to", fmt.Sprintf("to (%d) is beyond the log of organization %s, which holds seqs below %d.", to, org, st.NextSeq))
	}
	if from > to {
		return badRange("from", fmt.Sprintf("from (%d) must be at most to (%d).", from, to))
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	bw := bufio.NewWriterSize(w, 64<<10)
	started := false
	err = s.cfg.Log.Storage.ReadRecords(r.Context(), org, from, to, func(seq int64, record []byte) error {
		if !started {
			w.WriteHeader(http.StatusOK)
			started = true
		}
		bw.Write(record)
		return bw.WriteByte('\n')
	})
	if err != nil && !started {
		return err
	}
	if err != nil {
		// Headers are gone: cut the stream short so the client sees a
		// truncated body rather than a complete-looking one.
		s.log.Error("log records stream failed", "organization_id", org, "error", err)
		panic(http.ErrAbortHandler)
	}
	if !started {
		w.WriteHeader(http.StatusOK)
	}
	return bw.Flush()
}

// logBundle is GET …/log/bundle?from=A[&to=B][&size=S][&since=N]: a bundle
// (internal/ledger's format) proving records [A, B) against the checkpoint of
// size S (default: the newest), with, when since is given, the consistency
// proof from the caller's older checkpoint of size N. `trail log pull` saves
// it and `trail verify` checks it offline.
func (s *Server) logBundle(w http.ResponseWriter, r *http.Request) error {
	org, st, err := s.logOrg(r)
	if err != nil {
		return err
	}
	v, err := logParams(r, "from", "to", "size", "since")
	if err != nil {
		return err
	}
	var errs []fieldError
	opts := ledger.BundleOptions{
		From:  int64Param(v, "from", 0, &errs),
		To:    int64Param(v, "to", 0, &errs),
		Size:  int64Param(v, "size", 0, &errs),
		Since: int64Param(v, "since", 0, &errs),
	}
	if errs != nil {
		return errInvalidParams(errs)
	}
	if st.IntegratedSize == 0 {
		return errNoCheckpoint(org)
	}
	size := st.IntegratedSize
	if opts.Size > 0 {
		if opts.Size > st.IntegratedSize {
			return errBeyondCheckpoint(org, opts.Size, st.IntegratedSize)
		}
		size = opts.Size
	}
	to := size
	if v.Has("to") {
		if opts.To == 0 {
			// BundleOptions takes To = 0 as "the checkpoint's size".
			return badRange("to", "to must be above 0 (leave it out for the whole log).")
		}
		to = opts.To
	}
	switch {
	case to > size:
		return badRange("to", fmt.Sprintf("to (%d) is beyond the checkpoint's tree size %d.", to, size))
	case opts.From > to:
		return badRange("from", fmt.Sprintf("from (%d) must be at most to (%d).", opts.From, to))
	case opts.Since > size:
		return badRange("since", fmt.Sprintf("since (%d) is beyond the checkpoint's tree size %d; your saved checkpoint is newer than this one.", opts.Since, size))
	}
	opts.To = to
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-%d.trail-bundle"`, org, size))
	w.Header().Set("Cache-Control", "no-store")
	cw := &commitWriter{w: w}
	if _, err := ledger.WriteBundle(r.Context(), cw, s.cfg.Log.Storage, org, opts); err != nil {
		if !cw.started {
			if errors.Is(err, ledger.ErrInvalidRange) {
				return badRange("from", err.Error())
			}
			return err
		}
		s.log.Error("log bundle stream failed", "organization_id", org, "error", err)
		panic(http.ErrAbortHandler)
	}
	if !cw.started {
		w.WriteHeader(http.StatusOK)
	}
	return nil
}

// commitWriter sends the 200 status with the first byte, so an error before
// any output can still be answered with a proper error status.
type commitWriter struct {
	w       http.ResponseWriter
	started bool
}

func (c *commitWriter) Write(p []byte) (int, error) {
	if !c.started {
		c.w.WriteHeader(http.StatusOK)
		c.started = true
	}
	return c.w.Write(p)
}
