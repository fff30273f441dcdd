package privacy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/keyring"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/store"
)

// TombstoneAction is the action of the events that record an erasure.
const TombstoneAction = ledger.ErasureAction

// ErasureStorage is what an Eraser needs from the database.
type ErasureStorage interface {
	store.PrivacyStore
	SearchEvents(ctx context.Context, q store.EventQuery) (store.EventPage, error)
	NextSeq(ctx context.Context, org string) (int64, error)
}

// Submitter durably appends events (the ingest committer); a submission
// with an idempotency key is stored once.
type Submitter interface {
	Submit(ctx context.Context, s store.Submission) (store.AppendResult, error)
}

// EraserOptions tune an Eraser. Zero values take the defaults.
type EraserOptions struct {
	// BatchSize is how many records one EraseRecords call takes
	// (default 500).
	BatchSize int
	// BatchPause is the pause after each batch (default none).
	BatchPause time.Duration
	// Poll is how often the Eraser looks for jobs unwoken, and retries a
	// job waiting for its records to be integrated (default 2 s).
	Poll time.Duration
	Now  func() time.Time
}

// Eraser runs erasure jobs (docs/PRIVACY.md): each finds its subject's
// events, deletes their bodies (store.EraseRecords: leaf hashes stay), then
// appends the tombstone events signed with the log key, and completes. Each
// step is recorded in the job before the next begins, so a job interrupted
// anywhere (a crash, SIGKILL) resumes where it was when the Eraser runs
// again; every step is safe to repeat.
type Eraser struct {
	st     ErasureStorage
	sub    Submitter
	sealer *keyring.Sealer
	hasher *keyring.FieldHasher
	signer ledger.SelectionSigner
	opts   EraserOptions
	log    *slog.Logger
	wake   chan struct{}
}

// sealPurpose seals erasure subjects until their job completes.
const sealPurpose = "trail erasure subjects v1"

// NewEraser returns an Eraser; call Run to process jobs.
func NewEraser(st ErasureStorage, sub Submitter, keys *keyring.Keyring, signer ledger.SelectionSigner, opts EraserOptions, log *slog.Logger) *Eraser {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 500
	}
	if opts.Poll <= 0 {
		opts.Poll = 2 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Eraser{st: st, sub: sub, sealer: keys.Sealer(sealPurpose), hasher: keys.FieldHasher(), signer: signer,
		opts: opts, log: log, wake: make(chan struct{}, 1)}
}

// Request is an erasure asked for.
type Request struct {
	OrganizationID string
	RequestID      string // the client's idempotency key; "" for a new one
	// Subject: an actor id, or a target's type and id.
	ActorID, TargetType, TargetID string
	Reason                        string
	// RequestedBy: who asked (an API key).
	RequestedByType, RequestedByID, RequestedByName string
}

// ErrRequestReused means a request id was used before for another subject.
var ErrRequestReused = errors.New("the request id was used for an erasure of another subject")

// Request stores a new erasure job, or returns the one of the same request
// id (created false). Events accepted before it are erased; the job runs in
// the background.
func (e *Eraser) Request(ctx context.Context, r Request) (store.Erasure, bool, error) {
	now := e.opts.Now().UTC()
	kind, typ, subject := "actor", "", r.ActorID
	if r.ActorID == "" {
		kind, typ, subject = "target", r.TargetType, r.TargetID
	}
	id := "ers_" + ulid.MustNew(ulid.Timestamp(now), ulid.DefaultEntropy()).String()
	if r.RequestID == "" {
		r.RequestID = id
	}
	upTo, err := e.st.NextSeq(ctx, r.OrganizationID)
	if err != nil {
		return store.Erasure{}, false, err
	}
	job := store.Erasure{
		ID: id, OrganizationID: r.OrganizationID, RequestID: r.RequestID,
		SubjectKind: kind, SubjectType: typ, SubjectHash: e.hasher.Hash(r.OrganizationID, subject),
		SealedSubject: e.sealer.Seal([]byte(subject), []byte(id)), Reason: r.Reason,
		RequestedByType: r.RequestedByType, RequestedByID: r.RequestedByID, RequestedByName: r.RequestedByName,
		UpTo: upTo, State: store.ErasurePlanning, CreatedAt: now,
	}
	stored, created, err := e.st.CreateErasure(ctx, job)
	if err != nil {
		return store.Erasure{}, false, err
	}
	if !created && !e.sameSubject(stored, kind, typ, subject) {
		return stored, false, ErrRequestReused
	}
	e.Wake()
	return stored, created, nil
}

// sameSubject reports whether job erases the subject given.
func (e *Eraser) sameSubject(job store.Erasure, kind, typ, subject string) bool {
	if job.SubjectKind != kind || job.SubjectType != typ {
		return false
	}
	for _, h := range e.hasher.HashAll(job.OrganizationID, subject) {
		if h.Hash == job.SubjectHash {
			return true
		}
	}
	return false
}

// Wake makes Run look for jobs now.
func (e *Eraser) Wake() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Run processes erasure jobs until ctx ends.
func (e *Eraser) Run(ctx context.Context) {
	t := time.NewTicker(e.opts.Poll)
	defer t.Stop()
	for {
		jobs, err := e.st.UnfinishedErasures(ctx)
		if err != nil && ctx.Err() == nil {
			e.log.Error("couldn't read erasure jobs", "err", err)
		}
		for _, j := range jobs {
			if ctx.Err() != nil {
				return
			}
			// process advances j as it stores each step, so that a
			// failure is recorded on the job as it now is, never on the
			// state it was read in.
			if err := e.process(ctx, &j); err != nil && ctx.Err() == nil && !errors.Is(err, errWaiting) {
				e.log.Error("erasure job failed; it will be retried", "erasure", j.ID, "organization", j.OrganizationID, "err", err)
				j.Error = truncate(err.Error(), 500)
				if uerr := e.st.UpdateErasure(ctx, j); uerr != nil {
					e.log.Error("couldn't record an erasure job's failure", "erasure", j.ID, "err", uerr)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-e.wake:
		case <-t.C:
		}
	}
}

// errWaiting means a job waits for its records to be integrated.
var errWaiting = errors.New("waiting for records to be integrated")

// process takes job through its remaining steps. On an error, *job is
// the job as last stored.
func (e *Eraser) process(ctx context.Context, job *store.Erasure) error {
	for {
		next := *job
		var err error
		switch next.State {
		case store.ErasurePlanning:
			err = e.plan(ctx, &next)
		case store.ErasureErasing:
			err = e.erase(ctx, &next)
		case store.ErasureRecording:
			err = e.record(ctx, &next)
		default:
			return nil
		}
		if err == nil {
			err = e.st.UpdateErasure(ctx, next)
		}
		if err != nil {
			if next.State == job.State {
				job.Erased = next.Erased // erase stores its progress as it goes
			}
			return err
		}
		*job = next
		e.log.Info("erasure job advanced", "erasure", job.ID, "organization", job.OrganizationID, "state", job.State, "planned", job.Planned)
	}
}

// plan finds the subject's events below job.UpTo: its id as sent and as
// hashed under every master key (a field policy may have hashed it).
func (e *Eraser) plan(ctx context.Context, job *store.Erasure) error {
	subject, err := e.sealer.Open(job.SealedSubject, []byte(job.ID))
	if err != nil {
		return fmt.Errorf("couldn't open the subject of erasure %s: %w", job.ID, err)
	}
	values := []string{string(subject)}
	for _, h := range e.hasher.HashAll(job.OrganizationID, string(subject)) {
		values = append(values, h.Hash)
	}
	seen := map[int64]bool{}
	var seqs []int64
	for _, v := range values {
		q := store.EventQuery{OrganizationID: job.OrganizationID, Limit: 100, Order: store.OrderAsc}
		if job.SubjectKind == "actor" {
			q.ActorID = v
		} else {
			q.TargetType, q.TargetID = job.SubjectType, v
		}
		for {
			page, err := e.st.SearchEvents(ctx, q)
			if err != nil {
				return fmt.Errorf("couldn't search the events of erasure %s: %w", job.ID, err)
			}
			for _, ev := range page.Events {
				if ev.Seq < job.UpTo && !seen[ev.Seq] {
					seen[ev.Seq] = true
					seqs = append(seqs, ev.Seq)
				}
			}
			if page.After == "" {
				break
			}
			q.After = page.After
		}
	}
	slices.Sort(seqs)
	job.Seqs, job.Planned = FormatRanges(seqs), int64(len(seqs))
	job.State, job.Error = store.ErasureErasing, ""
	return nil
}

// erase deletes the planned records' bodies, in batches.
func (e *Eraser) erase(ctx context.Context, job *store.Erasure) error {
	seqs, err := ParseRanges(job.Seqs)
	if err != nil {
		return fmt.Errorf("erasure %s: stored seqs: %w", job.ID, err)
	}
	waiting := 0
	for start := 0; start < len(seqs); start += e.opts.BatchSize {
		batch := seqs[start:min(start+e.opts.BatchSize, len(seqs))]
		n, pending, err := e.st.EraseRecords(ctx, job.OrganizationID, batch)
		if err != nil {
			return fmt.Errorf("couldn't erase records of erasure %s: %w", job.ID, err)
		}
		waiting += pending
		if n > 0 {
			job.Erased += int64(n)
			if err := e.st.UpdateErasure(ctx, *job); err != nil {
				return err
			}
		}
		if e.opts.BatchPause > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(e.opts.BatchPause):
			}
		}
	}
	if waiting > 0 {
		return errWaiting
	}
	job.Erased = job.Planned
	job.State, job.CompletedAt, job.Error = store.ErasureRecording, e.opts.Now().UTC().Truncate(time.Millisecond), ""
	return nil
}

// record appends the tombstone events, once (their submission's
// idempotency key is the job's), and completes the job.
func (e *Eraser) record(ctx context.Context, job *store.Erasure) error {
	tombs, err := e.Tombstones(*job)
	if err != nil {
		return err
	}
	sub := store.Submission{IdempotencyKey: "trail-erasure:" + job.ID}
	for _, d := range tombs {
		sub.Events = append(sub.Events, store.PendingEvent{OrganizationID: job.OrganizationID, ID: event.NewID(job.CompletedAt),
			ReceivedAt: e.opts.Now().UTC(), Tail: d.Tail, Draft: d})
	}
	res, err := e.sub.Submit(ctx, sub)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		return fmt.Errorf("couldn't record the tombstone of erasure %s: %w", job.ID, err)
	}
	var seqs []int64
	for _, a := range res.Events {
		seqs = append(seqs, a.Seq)
	}
	job.Tombstones = FormatRanges(seqs)
	job.State, job.SealedSubject, job.Error = store.ErasureCompleted, nil, ""
	return nil
}

// Tombstone metadata limits: WorkOS's 50 keys of 500 characters.
const (
	seqsPerValue = 480
	seqKeys      = 40
)

// Tombstones returns the tombstone events of a job whose records are
// erased: one per 40 × 480 characters of seq ranges, each signed with the
// log key (ledger.ErasureText).
func (e *Eraser) Tombstones(job store.Erasure) ([]*event.Draft, error) {
	ranges := strings.Split(job.Seqs, ",")
	if job.Seqs == "" {
		ranges = nil
	}
	// Pack ranges into values, values into parts.
	var parts [][]string
	var values []string
	var cur strings.Builder
	flush := func() {
		if cur.Len() > 0 {
			values = append(values, cur.String())
			cur.Reset()
		}
		if len(values) == seqKeys {
			parts = append(parts, values)
			values = nil
		}
	}
	for _, r := range ranges {
		if cur.Len()+len(r)+1 > seqsPerValue {
			flush()
		}
		if cur.Len() > 0 {
			cur.WriteByte(',')
		}
		cur.WriteString(r)
	}
	flush()
	if len(values) > 0 || len(parts) == 0 {
		parts = append(parts, values)
	}
	var out []*event.Draft
	at := job.CompletedAt.UTC().Format(event.TimeLayout)
	for i, vals := range parts {
		t := ledger.ErasureTombstone{
			OrganizationID: job.OrganizationID, ErasureID: job.ID, ErasedAt: at, Subject: job.SubjectHash,
			Part: strconv.Itoa(i+1) + "/" + strconv.Itoa(len(parts)), Seqs: strings.Join(vals, ","),
		}
		sig, err := e.signer.SignText(t.Text())
		if err != nil {
			return nil, fmt.Errorf("couldn't sign the tombstone of erasure %s: %w", job.ID, err)
		}
		meta := map[string]any{
			"erasure_id": job.ID, "request_id": truncate(job.RequestID, 400), "subject": job.SubjectHash, "subject_kind": job.SubjectKind,
			"reason": truncate(job.Reason, 400), "erased_count": job.Planned, "erased_at": at, "part": t.Part, "signature": sig,
		}
		if job.SubjectType != "" {
			meta["subject_type"] = truncate(job.SubjectType, 400)
		}
		for j, v := range vals {
			meta[ledger.ErasureSeqKey(j)] = v
		}
		raw, err := json.Marshal(map[string]any{
			"action": TombstoneAction, "occurred_at": at,
			"actor":   map[string]string{"type": orDefault(job.RequestedByType, "trail"), "id": orDefault(job.RequestedByID, "trail"), "name": job.RequestedByName},
			"targets": []map[string]string{{"type": "erasure", "id": job.ID}},
			"context": map[string]string{"location": "trail"}, "metadata": meta,
		})
		if err != nil {
			return nil, err
		}
		d, err := event.ParseEvent(raw, job.CompletedAt.Add(time.Minute), event.Limits{})
		if err != nil {
			return nil, fmt.Errorf("the tombstone of erasure %s is not a valid event: %w", job.ID, err)
		}
		out = append(out, d)
	}
	return out, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// FormatRanges writes ascending seqs as ranges: "3-5,9".
func FormatRanges(seqs []int64) string {
	var b strings.Builder
	for i := 0; i < len(seqs); {
		j := i
		for j+1 < len(seqs) && seqs[j+1] == seqs[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(seqs[i], 10))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.FormatInt(seqs[j], 10))
		}
		i = j + 1
	}
	return b.String()
}

// ParseRanges reads what FormatRanges wrote.
func ParseRanges(s string) ([]int64, error) { return ledger.ParseSeqRanges(s, 1<<40) }
