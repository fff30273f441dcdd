// Package streamadmin manages an organization's log streams with the same
// rules wherever the request comes from, the HTTP API or the Admin Portal:
// creating, reconfiguring, pausing, resuming, deleting and testing a
// stream, the configuration parsing and SSRF policy and the sealing of
// secrets (stream.Codec), the lag view, and waking the delivery engine after
// a change. Delivery itself is package stream. Neither records audit
// events: each caller records its own, attributed to its actor (package
// selfaudit).
package streamadmin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/stream"
)

// Config connects a Manager to the database and the delivery engine.
type Config struct {
	Store store.StreamStore
	// Log gives an organization's log size (where a stream started "now"
	// begins, and its lag).
	Log interface {
		NextSeq(ctx context.Context, org string) (int64, error)
	}
	// Records, when set, reads an organization's records, for the age of
	// the oldest undelivered event; ledger.Storage has it.
	Records interface {
		ReadRecords(ctx context.Context, org string, from, to int64, fn func(seq int64, record []byte) error) error
	}
	// Codec parses, seals and tests stream configurations.
	Codec *stream.Codec
	// Wake, when set, tells the delivery engine a stream changed.
	Wake func()
	// Now is the clock of created_at, updated_at and the lag; default
	// time.Now.
	Now func() time.Time
}

// Manager manages log streams. It is safe for concurrent use.
type Manager struct{ cfg Config }

// New returns a Manager.
func New(cfg Config) *Manager {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Manager{cfg: cfg}
}

// Store is the streams' storage.
func (m *Manager) Store() store.StreamStore { return m.cfg.Store }

// Codec is the streams' configuration codec.
func (m *Manager) Codec() *stream.Codec { return m.cfg.Codec }

// Wake tells the delivery engine a stream changed.
func (m *Manager) Wake() {
	if m.cfg.Wake != nil {
		m.cfg.Wake()
	}
}

// Status is a log stream with its delivery status.
type Status struct {
	store.Stream
	// SecretNames lists the secrets that are set (never their values).
	SecretNames []string
	LagEvents   int64
	LagSeconds  float64
	// Unreadable: the stored secrets do not open (the master key changed);
	// the stream must be given its secrets again.
	Unreadable bool
}

// Status returns st with its secrets' names and its lag, read from the log.
func (m *Manager) Status(ctx context.Context, st store.Stream) (Status, error) {
	out := Status{Stream: st, SecretNames: []string{}}
	if set, err := m.cfg.Codec.Unseal(st.Type, st.Secrets, st.ID); err == nil {
		out.SecretNames = set.SecretNames()
	} else {
		out.Unreadable = true
	}
	size, err := m.cfg.Log.NextSeq(ctx, st.OrganizationID)
	if err != nil {
		return out, err
	}
	out.LagEvents = max(0, size-st.Cursor)
	if out.LagEvents > 0 && m.cfg.Records != nil {
		err := m.cfg.Records.ReadRecords(ctx, st.OrganizationID, st.Cursor, st.Cursor+1, func(_ int64, rec []byte) error {
			at := stream.Event{Record: rec}.ReceivedAt()
			if !at.IsZero() {
				out.LagSeconds = max(0, float64(m.cfg.Now().Sub(at).Milliseconds())/1000)
			}
			return nil
		})
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// List lists org's streams (at most 100), oldest first, with their status.
func (m *Manager) List(ctx context.Context, org string) ([]Status, error) {
	page, err := m.cfg.Store.ListStreams(ctx, org, store.ListParams{Limit: 100, Order: store.OrderAsc})
	if err != nil {
		return nil, err
	}
	out := make([]Status, 0, len(page.Data))
	for _, st := range page.Data {
		ps, err := m.Status(ctx, st)
		if err != nil {
			return nil, err
		}
		out = append(out, ps)
	}
	return out, nil
}

// Stream loads one of org's streams: a stream of another organization is
// store.ErrNotFound.
func (m *Manager) Stream(ctx context.Context, org, id string) (store.Stream, error) {
	st, err := m.cfg.Store.Stream(ctx, id)
	if err == nil && st.OrganizationID != org {
		err = fmt.Errorf("log stream %s: %w", id, store.ErrNotFound)
	}
	return st, err
}

// Get returns one of org's streams with its status.
func (m *Manager) Get(ctx context.Context, org, id string) (Status, error) {
	st, err := m.Stream(ctx, org, id)
	if err != nil {
		return Status{}, err
	}
	return m.Status(ctx, st)
}

// CheckName is the one rule of a stream's name (stream.CheckName), as a
// list of field errors to add to.
func CheckName(name string, errs *[]stream.FieldError) {
	if fe := stream.CheckName(name); fe != nil {
		*errs = append(*errs, *fe)
	}
}

// Create creates a stream of org: typ, name ("" = the type), start ("now"
// or "beginning") and the configuration object, as the portal's form
// gives them. Bad input is a *stream.ConfigError.
func (m *Manager) Create(ctx context.Context, org, typ, name, start string, config []byte) (store.Stream, error) {
	var errs []stream.FieldError
	CheckName(name, &errs)
	if start != "now" && start != "beginning" {
		errs = append(errs, stream.FieldError{Field: "start", Code: "invalid", Message: "Start must be now or beginning."})
	}
	set, err := m.cfg.Codec.Parse(typ, config, nil)
	var ce *stream.ConfigError
	if errors.As(err, &ce) {
		errs = append(errs, ce.Errors...)
	} else if err != nil {
		return store.Stream{}, err
	}
	if len(errs) > 0 {
		return store.Stream{}, &stream.ConfigError{Errors: errs}
	}
	if name == "" {
		name = typ
	}
	return m.CreateParsed(ctx, org, name, start, set)
}

// CreateParsed stores a new stream of org with parsed settings, its
// secrets sealed, starting at the log's end (start "now") or its
// beginning, and wakes the delivery engine.
func (m *Manager) CreateParsed(ctx context.Context, org, name, start string, set *stream.Settings) (store.Stream, error) {
	now := m.cfg.Now().UTC().Truncate(time.Millisecond)
	st := store.Stream{ID: "ls_" + ulid.MustNew(ulid.Timestamp(now), ulid.DefaultEntropy()).String(),
		OrganizationID: org, Type: set.Type, Name: name, Config: set.Public(), State: store.StreamActive,
		CreatedAt: now, UpdatedAt: now, Version: 1}
	st.Secrets = m.cfg.Codec.Seal(set, st.ID)
	if start == "now" {
		var err error
		if st.Cursor, err = m.cfg.Log.NextSeq(ctx, org); err != nil {
			return store.Stream{}, err
		}
	}
	if err := m.cfg.Store.CreateStream(ctx, st); err != nil {
		return store.Stream{}, err
	}
	m.Wake()
	return st, nil
}

// Reconfigure parses config over st's settings (fields left out keep their
// values, secrets too) and seals the result into st. An invalid or failing
// stream becomes active again, to be tried with the new settings; a paused
// one stays paused. Bad input is a *stream.ConfigError.
func (m *Manager) Reconfigure(st store.Stream, config []byte) (store.Stream, error) {
	prev, err := m.cfg.Codec.Unseal(st.Type, st.Secrets, st.ID)
	if err != nil {
		prev = nil // start over: every required secret must be sent again
	}
	set, err := m.cfg.Codec.Parse(st.Type, config, prev)
	if err != nil {
		return st, err
	}
	st.Config, st.Secrets = set.Public(), m.cfg.Codec.Seal(set, st.ID)
	if st.State != store.StreamInactive {
		st.State = store.StreamActive
	}
	return st, nil
}

// Update changes the name and settings of one of org's streams, as
// Reconfigure does. Bad input is a *stream.ConfigError.
func (m *Manager) Update(ctx context.Context, org, id, name string, config []byte) (store.Stream, error) {
	st, err := m.Stream(ctx, org, id)
	if err != nil {
		return st, err
	}
	var errs []stream.FieldError
	if name == "" {
		errs = append(errs, stream.FieldError{Field: "name", Code: "required", Message: "The name is required."})
	}
	CheckName(name, &errs)
	up, err := m.Reconfigure(st, config)
	var ce *stream.ConfigError
	if errors.As(err, &ce) {
		errs = append(errs, ce.Errors...)
	} else if err != nil {
		return st, err
	}
	if len(errs) > 0 {
		return st, &stream.ConfigError{Errors: errs}
	}
	up.Name = name
	return m.Save(ctx, up)
}

// Save stores a changed stream, wakes the delivery engine and returns the
// stream as stored.
func (m *Manager) Save(ctx context.Context, st store.Stream) (store.Stream, error) {
	st.UpdatedAt = m.cfg.Now().UTC().Truncate(time.Millisecond)
	if err := m.cfg.Store.UpdateStream(ctx, st); err != nil {
		return st, err
	}
	m.Wake()
	return m.cfg.Store.Stream(ctx, st.ID)
}

// SetActive pauses (active false) or resumes one of org's streams;
// delivery resumes from its cursor.
func (m *Manager) SetActive(ctx context.Context, org, id string, active bool) (store.Stream, error) {
	st, err := m.Stream(ctx, org, id)
	if err != nil {
		return st, err
	}
	st.State = store.StreamInactive
	if active {
		st.State = store.StreamActive
	}
	return m.Save(ctx, st)
}

// Delete deletes one of org's streams and returns it.
func (m *Manager) Delete(ctx context.Context, org, id string) (store.Stream, error) {
	st, err := m.Stream(ctx, org, id)
	if err != nil {
		return st, err
	}
	return st, m.DeleteStream(ctx, st)
}

// DeleteStream deletes st and wakes the delivery engine.
func (m *Manager) DeleteStream(ctx context.Context, st store.Stream) error {
	if err := m.cfg.Store.DeleteStream(ctx, st.ID); err != nil {
		return err
	}
	m.Wake()
	return nil
}

// ErrUnreadable: a stream's stored secrets do not open (the master key
// changed); it must be given its secrets again.
var ErrUnreadable = errors.New("the stream's secrets do not open (was the master key changed?)")

// TestResult is the destination's answer to a test event.
type TestResult struct {
	Accepted  bool
	Message   string
	Retryable bool
	Duration  time.Duration
}

// TestStream sends one synthetic event to st's destination. A refusal is
// the answer, not an error; secrets that do not open are ErrUnreadable.
func (m *Manager) TestStream(ctx context.Context, st store.Stream) (TestResult, error) {
	set, err := m.cfg.Codec.Unseal(st.Type, st.Secrets, st.ID)
	if err != nil {
		return TestResult{}, ErrUnreadable
	}
	start := time.Now()
	terr := m.cfg.Codec.Test(ctx, set, st.OrganizationID)
	out := TestResult{Accepted: terr == nil, Message: "The destination accepted the test event.", Duration: time.Since(start)}
	if terr != nil {
		out.Message = stream.Excerpt(terr.Error(), 1000)
		var f *stream.Failure
		out.Retryable = !errors.As(terr, &f) || !f.Permanent
	}
	return out, nil
}

// Test sends one synthetic event to the destination of one of org's
// streams, for the portal: secrets that do not open are an answer too.
func (m *Manager) Test(ctx context.Context, org, id string) (store.Stream, TestResult, error) {
	st, err := m.Stream(ctx, org, id)
	if err != nil {
		return st, TestResult{}, err
	}
	res, err := m.TestStream(ctx, st)
	if errors.Is(err, ErrUnreadable) {
		return st, TestResult{Message: "Trail can't decrypt this stream's secrets (was the master key changed?); edit the stream and give its secrets again."}, nil
	}
	return st, res, err
}
