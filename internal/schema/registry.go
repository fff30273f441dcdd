package schema

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/store"
)

// Cache bounds. Schemas are small; these bound memory against a flood of
// distinct action names, not normal use.
const (
	maxCompiled = 4096   // compiled validators (one per action version × actor version)
	maxLatest   = 16_384 // "latest version" entries (actions with and without schemas)
	// DefaultLatestTTL is how long this process trusts what it knows of an
	// action's latest version: a version created on another replica applies
	// here within it.
	DefaultLatestTTL = 2 * time.Second
	// readTimeout bounds one read of a latest version shared by waiters.
	readTimeout = 10 * time.Second
)

// Registry checks events against the stored schemas, caching what it
// compiles. Versions are immutable, so a compiled (action version, actor
// version) pair is kept until the cache is full; which version is the
// latest is re-read after LatestTTL. Safe for concurrent use.
type Registry struct {
	st      store.SchemaStore
	require bool
	ttl     time.Duration
	now     func() time.Time
	// mismatches is trail_schema_mismatch_total, by action.
	mismatches *prometheus.CounterVec

	// reads collapses concurrent store reads of one latest version: when
	// its TTL ends under load, one query runs, not one per request.
	reads singleflight.Group

	mu       sync.Mutex
	compiled map[compiledKey]*Validator
	defs     map[defKey]*Definition
	latest   map[defKey]latestEntry
}

type compiledKey struct {
	action       string
	version      int // 0: no action schema
	actorVersion int // 0: no actor schema
}

type defKey struct {
	kind, name string
	version    int
}

type latestEntry struct {
	version int // 0: none
	at      time.Time
}

// Options tune a Registry.
type Options struct {
	// RequireSchemas refuses events of actions that have no schema.
	RequireSchemas bool
	// LatestTTL: see DefaultLatestTTL.
	LatestTTL time.Duration
	// Now is the clock of the TTL; default time.Now.
	Now func() time.Time
	// Registerer receives trail_schema_mismatch_total; nil: not exported.
	Registerer prometheus.Registerer
}

// NewRegistry returns a Registry reading st.
func NewRegistry(st store.SchemaStore, o Options) *Registry {
	if o.LatestTTL <= 0 {
		o.LatestTTL = DefaultLatestTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	r := &Registry{st: st, require: o.RequireSchemas, ttl: o.LatestTTL, now: o.Now,
		compiled: map[compiledKey]*Validator{}, defs: map[defKey]*Definition{}, latest: map[defKey]latestEntry{},
		mismatches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trail_schema_mismatch_total",
			Help: "Events accepted without a schema version that did not match their action's latest schema (or the actor schema), by action; action=\"(none)\" when the action has no schema of its own.",
		}, []string{"action"}),
	}
	if o.Registerer != nil {
		if err := o.Registerer.Register(r.mismatches); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
					r.mismatches = existing
				}
			}
		}
	}
	return r
}

// CountMismatches adds n stored mismatches of action to
// trail_schema_mismatch_total. The label is the action only when it has a
// schema of its own (created by an operator, so bounded); otherwise
// "(none)", since any client-chosen name could fail the actor schema.
func (r *Registry) CountMismatches(action string, hasActionSchema bool, n int) {
	if !hasActionSchema {
		action = "(none)"
	}
	r.mismatches.WithLabelValues(action).Add(float64(n))
}

// RequireSchemas reports whether events of actions without a schema are
// refused.
func (r *Registry) RequireSchemas() bool { return r.require }

// Store is the registry's store.
func (r *Registry) Store() store.SchemaStore { return r.st }

// Outcome is what the schemas say of one event.
type Outcome struct {
	// Reject, when not nil, refuses the event: 400
	// invalid_audit_log_event with field errors.
	Reject *event.Error
	// Mismatch: the event named no version and does not match its
	// action's latest schema (or the actor schema); it is accepted and
	// the mismatch recorded.
	Mismatch bool
	// HasActionSchema: the action has a schema (bounds metric labels).
	HasActionSchema bool
}

// Check validates d: against the version it names, else against its
// action's latest version. An error means the schemas could not be read
// (storage); nothing is decided then.
func (r *Registry) Check(ctx context.Context, d *event.Draft) (Outcome, error) {
	actorVersion, err := r.latestVersion(ctx, store.SchemaKindActor, "")
	if err != nil {
		return Outcome{}, err
	}
	if d.Version > 0 {
		if d.Version > int64(^uint32(0)>>1) {
			return Outcome{Reject: rejectVersion(d, "does not exist")}, nil
		}
		v, ok, err := r.validator(ctx, d.Action, int(d.Version), actorVersion)
		if err != nil {
			return Outcome{}, err
		}
		if !ok {
			latest, err := r.latestVersion(ctx, store.SchemaKindAction, d.Action)
			if err != nil {
				return Outcome{}, err
			}
			msg := "does not exist: action " + strconv.Quote(d.Action) + " has no schema; create one with POST /audit_logs/actions/{action}/schemas or send the event without a version"
			if latest > 0 {
				msg = fmt.Sprintf("does not exist: the latest schema version of action %q is %d", d.Action, latest)
			}
			return Outcome{Reject: rejectVersion(d, msg), HasActionSchema: latest > 0}, nil
		}
		if errs := v.Validate(d); errs != nil {
			return Outcome{Reject: invalid(errs), HasActionSchema: true}, nil
		}
		return Outcome{HasActionSchema: true}, nil
	}
	latest, err := r.latestVersion(ctx, store.SchemaKindAction, d.Action)
	if err != nil {
		return Outcome{}, err
	}
	if latest == 0 && r.require {
		return Outcome{Reject: invalid([]event.FieldError{{Field: "event.action", Code: "schema_required",
			Message: fmt.Sprintf("action %q has no schema, and this deployment requires one for every action: create it with POST /audit_logs/actions/%s/schemas", truncate(d.Action, 100), truncate(d.Action, 100))}})}, nil
	}
	if latest == 0 && actorVersion == 0 {
		return Outcome{}, nil
	}
	v, ok, err := r.validator(ctx, d.Action, latest, actorVersion)
	if err != nil {
		return Outcome{}, err
	}
	if !ok { // the latest version vanished: versions are never deleted
		return Outcome{}, fmt.Errorf("schema version %d of action %q is missing from the store", latest, d.Action)
	}
	return Outcome{Mismatch: v.Validate(d) != nil, HasActionSchema: latest > 0}, nil
}

func rejectVersion(d *event.Draft, msg string) *event.Error {
	return invalid([]event.FieldError{{Field: "event.version", Code: event.CodeInvalidValue,
		Message: "schema version " + strconv.FormatInt(d.Version, 10) + " " + msg}})
}

// invalid is WorkOS's 400 for an event that fails its schema.
func invalid(errs []event.FieldError) *event.Error {
	return &event.Error{Status: http.StatusBadRequest, Code: event.CodeInvalidEvent, Message: "Invalid Audit Log event.", Errors: errs}
}

// Forget drops what the registry knows of (kind, name)'s latest version,
// after this process created a new one.
func (r *Registry) Forget(kind, name string) {
	r.mu.Lock()
	delete(r.latest, defKey{kind: kind, name: name})
	r.mu.Unlock()
}

// latestVersion is (kind, name)'s latest version, 0 when it has none.
func (r *Registry) latestVersion(ctx context.Context, kind, name string) (int, error) {
	k := defKey{kind: kind, name: name}
	now := r.now()
	r.mu.Lock()
	e, ok := r.latest[k]
	r.mu.Unlock()
	if ok && now.Sub(e.at) < r.ttl {
		return e.version, nil
	}
	v, err, _ := r.reads.Do(kind+"\x00"+name, func() (any, error) {
		// Not the request's context: the result serves every caller
		// waiting on it, whichever of them goes away.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readTimeout)
		defer cancel()
		s, err := r.st.Schema(ctx, kind, name, 0)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return 0, nil
		case err != nil:
			return 0, fmt.Errorf("couldn't read the latest %s schema %q: %w", kind, name, err)
		}
		return s.Version, r.remember(k, s)
	})
	if err != nil {
		return 0, err
	}
	version := v.(int)
	r.mu.Lock()
	if len(r.latest) >= maxLatest {
		clear(r.latest)
	}
	r.latest[k] = latestEntry{version: version, at: now}
	r.mu.Unlock()
	return version, nil
}

// remember decodes and caches a stored version.
func (r *Registry) remember(k defKey, s store.Schema) error {
	k.version = s.Version
	r.mu.Lock()
	_, ok := r.defs[k]
	r.mu.Unlock()
	if ok {
		return nil
	}
	var d *Definition
	var err error
	if k.kind == store.SchemaKindActor {
		d, err = DecodeActor(s.Body)
	} else {
		d, err = Decode(s.Body)
	}
	if err != nil {
		return fmt.Errorf("%s schema %q version %d: %w", k.kind, k.name, s.Version, err)
	}
	r.mu.Lock()
	if len(r.defs) >= maxCompiled {
		clear(r.defs)
	}
	r.defs[k] = d
	r.mu.Unlock()
	return nil
}

// definition returns a version (0: none), reading the store on a miss.
func (r *Registry) definition(ctx context.Context, kind, name string, version int) (*Definition, bool, error) {
	if version == 0 {
		return nil, true, nil
	}
	k := defKey{kind: kind, name: name, version: version}
	r.mu.Lock()
	d, ok := r.defs[k]
	r.mu.Unlock()
	if ok {
		return d, true, nil
	}
	s, err := r.st.Schema(ctx, kind, name, version)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("couldn't read %s schema %q version %d: %w", kind, name, version, err)
	}
	if err := r.remember(defKey{kind: kind, name: name}, s); err != nil {
		return nil, false, err
	}
	r.mu.Lock()
	d = r.defs[k]
	r.mu.Unlock()
	if d == nil { // evicted at once by a full cache: decode again
		if kind == store.SchemaKindActor {
			d, err = DecodeActor(s.Body)
		} else {
			d, err = Decode(s.Body)
		}
		if err != nil {
			return nil, false, err
		}
	}
	return d, true, nil
}

// validator returns the compiled pair; ok is false when the action version
// does not exist.
func (r *Registry) validator(ctx context.Context, action string, version, actorVersion int) (*Validator, bool, error) {
	k := compiledKey{action: action, version: version, actorVersion: actorVersion}
	r.mu.Lock()
	v, ok := r.compiled[k]
	r.mu.Unlock()
	if ok {
		return v, true, nil
	}
	ad, ok, err := r.definition(ctx, store.SchemaKindAction, action, version)
	if err != nil || !ok {
		return nil, false, err
	}
	pd, ok, err := r.definition(ctx, store.SchemaKindActor, "", actorVersion)
	if err != nil {
		return nil, false, err
	}
	if !ok {
		return nil, false, fmt.Errorf("actor schema version %d is missing from the store", actorVersion)
	}
	v, err = Compile(ad, pd)
	if err != nil {
		return nil, false, err
	}
	r.mu.Lock()
	if len(r.compiled) >= maxCompiled {
		clear(r.compiled)
	}
	r.compiled[k] = v
	r.mu.Unlock()
	return v, true, nil
}
