package api

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/stream"
)

// The Admin Portal's log streams pages act on streams through these
// methods, which share the HTTP API's rules (streams.go): the same
// configuration parsing and SSRF policy (stream.Codec), the same sealing of
// secrets, the same lag. They do not record audit events: the portal
// records them itself, attributed to its admin (AuditPortal). Every method
// is bounded to org: a stream of another organization is store.ErrNotFound.

// PortalStream is a log stream with its delivery status.
type PortalStream struct {
	store.Stream
	// SecretNames lists the secrets that are set (never their values).
	SecretNames []string
	LagEvents   int64
	LagSeconds  float64
	// Unreadable: the stored secrets do not open (the master key changed);
	// the stream must be given its secrets again.
	Unreadable bool
}

func (s *Server) portalStatus(ctx context.Context, st store.Stream) (PortalStream, error) {
	j, err := s.streamView(ctx, st)
	if err != nil {
		return PortalStream{}, err
	}
	ps := PortalStream{Stream: st, SecretNames: j.Secrets, LagEvents: j.LagEvents, LagSeconds: j.LagSeconds}
	if _, err := s.cfg.Streams.Codec.Unseal(st.Type, st.Secrets, st.ID); err != nil {
		ps.Unreadable = true
	}
	return ps, nil
}

// PortalStreams lists org's streams (at most 100), oldest first.
func (s *Server) PortalStreams(ctx context.Context, org string) ([]PortalStream, error) {
	page, err := s.cfg.Streams.Store.ListStreams(ctx, org, store.ListParams{Limit: 100, Order: store.OrderAsc})
	if err != nil {
		return nil, err
	}
	out := make([]PortalStream, 0, len(page.Data))
	for _, st := range page.Data {
		ps, err := s.portalStatus(ctx, st)
		if err != nil {
			return nil, err
		}
		out = append(out, ps)
	}
	return out, nil
}

// portalStream loads one of org's streams.
func (s *Server) portalStream(ctx context.Context, org, id string) (store.Stream, error) {
	st, err := s.cfg.Streams.Store.Stream(ctx, id)
	if err == nil && st.OrganizationID != org {
		err = fmt.Errorf("log stream %s: %w", id, store.ErrNotFound)
	}
	return st, err
}

// PortalStream returns one of org's streams with its status.
func (s *Server) PortalStream(ctx context.Context, org, id string) (PortalStream, error) {
	st, err := s.portalStream(ctx, org, id)
	if err != nil {
		return PortalStream{}, err
	}
	return s.portalStatus(ctx, st)
}

func checkStreamName(name string, errs *[]stream.FieldError) {
	if fe := stream.CheckName(name); fe != nil {
		*errs = append(*errs, *fe)
	}
}

// PortalCreateStream creates a stream of org: typ, name ("" = the type),
// start ("now" or "beginning") and the configuration object, as the API's
// POST …/log_streams takes them. Bad input is a *stream.ConfigError.
func (s *Server) PortalCreateStream(ctx context.Context, org, typ, name, start string, config []byte) (store.Stream, error) {
	var errs []stream.FieldError
	checkStreamName(name, &errs)
	if start != "now" && start != "beginning" {
		errs = append(errs, stream.FieldError{Field: "start", Code: "invalid", Message: "Start must be now or beginning."})
	}
	set, err := s.cfg.Streams.Codec.Parse(typ, config, nil)
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
	return s.createStoredStream(ctx, org, name, start, set)
}

// PortalUpdateStream changes the name and settings of one of org's
// streams; config fields left out keep their values (secrets too). An
// invalid or failing stream becomes active again; a paused one stays
// paused.
func (s *Server) PortalUpdateStream(ctx context.Context, org, id, name string, config []byte) (store.Stream, error) {
	st, err := s.portalStream(ctx, org, id)
	if err != nil {
		return st, err
	}
	var errs []stream.FieldError
	if name == "" {
		errs = append(errs, stream.FieldError{Field: "name", Code: "required", Message: "The name is required."})
	}
	checkStreamName(name, &errs)
	up, err := s.reconfigure(st, config)
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
	return s.portalSave(ctx, up)
}

func (s *Server) portalSave(ctx context.Context, st store.Stream) (store.Stream, error) {
	st.UpdatedAt = s.cfg.Now().UTC().Truncate(time.Millisecond)
	if err := s.cfg.Streams.Store.UpdateStream(ctx, st); err != nil {
		return st, err
	}
	s.wakeStreams()
	return s.cfg.Streams.Store.Stream(ctx, st.ID)
}

// PortalSetStreamActive pauses (active false) or resumes one of org's
// streams; delivery resumes from its cursor.
func (s *Server) PortalSetStreamActive(ctx context.Context, org, id string, active bool) (store.Stream, error) {
	st, err := s.portalStream(ctx, org, id)
	if err != nil {
		return st, err
	}
	st.State = store.StreamInactive
	if active {
		st.State = store.StreamActive
	}
	return s.portalSave(ctx, st)
}

// PortalDeleteStream deletes one of org's streams and returns it.
func (s *Server) PortalDeleteStream(ctx context.Context, org, id string) (store.Stream, error) {
	st, err := s.portalStream(ctx, org, id)
	if err != nil {
		return st, err
	}
	if err := s.cfg.Streams.Store.DeleteStream(ctx, st.ID); err != nil {
		return st, err
	}
	s.wakeStreams()
	return st, nil
}

// PortalStreamTest is the destination's answer to a test event.
type PortalStreamTest struct {
	Accepted  bool
	Message   string
	Retryable bool
	Duration  time.Duration
}

// PortalTestStream sends one synthetic event to the destination of one of
// org's streams. A refusal is the answer, not an error.
func (s *Server) PortalTestStream(ctx context.Context, org, id string) (store.Stream, PortalStreamTest, error) {
	st, err := s.portalStream(ctx, org, id)
	if err != nil {
		return st, PortalStreamTest{}, err
	}
	set, err := s.cfg.Streams.Codec.Unseal(st.Type, st.Secrets, st.ID)
	if err != nil {
		return st, PortalStreamTest{Message: "Trail can't decrypt this stream's secrets (was the master key changed?); edit the stream and give its secrets again."}, nil
	}
	start := time.Now()
	terr := s.cfg.Streams.Codec.Test(ctx, set, st.OrganizationID)
	out := PortalStreamTest{Accepted: terr == nil, Message: "The destination accepted the test event.", Duration: time.Since(start)}
	if terr != nil {
		out.Message = stream.Excerpt(terr.Error(), 1000)
		var f *stream.Failure
		out.Retryable = !errors.As(terr, &f) || !f.Permanent
	}
	return st, out, nil
}
