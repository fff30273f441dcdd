package schema

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/store"
)

// memStore is an in-memory store.SchemaStore that counts reads and can fail.
type memStore struct {
	mu    sync.Mutex
	byKey map[[2]string][]store.Schema
	reads int
	fail  error
}

func newMemStore() *memStore { return &memStore{byKey: map[[2]string][]store.Schema{}} }

func (m *memStore) CreateSchema(_ context.Context, s store.Schema) (store.Schema, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := [2]string{s.Kind, s.Name}
	s.Version = len(m.byKey[k]) + 1
	m.byKey[k] = append(m.byKey[k], s)
	return s, nil
}

func (m *memStore) Schema(_ context.Context, kind, name string, version int) (store.Schema, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads++
	if m.fail != nil {
		return store.Schema{}, m.fail
	}
	vs := m.byKey[[2]string{kind, name}]
	if version == 0 {
		version = len(vs)
	}
	if version < 1 || version > len(vs) {
		return store.Schema{}, store.ErrNotFound
	}
	return vs[version-1], nil
}

func (m *memStore) ListSchemas(context.Context, string, string, store.ListParams) (store.ListPage[store.Schema], error) {
	return store.ListPage[store.Schema]{}, errors.ErrUnsupported
}

func (m *memStore) ListActions(context.Context, store.ListParams) (store.ListPage[store.ActionSchemas], error) {
	return store.ListPage[store.ActionSchemas]{}, errors.ErrUnsupported
}

func (m *memStore) readCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reads
}

func create(t testing.TB, st store.SchemaStore, kind, name, body string) {
	t.Helper()
	var enc []byte
	if kind == store.SchemaKindActor {
		enc = mustActor(t, body).EncodeActor()
	} else {
		enc = mustAction(t, body).Encode()
	}
	if _, err := st.CreateSchema(context.Background(), store.Schema{Kind: kind, Name: name, Body: enc}); err != nil {
		t.Fatal(err)
	}
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func withVersion(d *event.Draft, v int64) *event.Draft { d.Version = v; return d }

func TestRegistry(t *testing.T) {
	ctx := context.Background()
	st := newMemStore()
	clk := &clock{t: testNow}
	reg := prometheus.NewRegistry()
	r := NewRegistry(st, Options{Now: clk.now, Registerer: reg})

	// invoice.paid v1 requires targets of type invoice.
	create(t, st, store.SchemaKindAction, "invoice.paid", `{"targets":[{"type":"invoice"}]}`)
	good := func() *event.Draft { return draftOf(t, "", [][2]string{{"invoice", ""}}, "") }
	bad := func() *event.Draft { return draftOf(t, "", [][2]string{{"team", ""}}, "") }

	check := func(d *event.Draft) Outcome {
		t.Helper()
		o, err := r.Check(ctx, d)
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		return o
	}
	if o := check(withVersion(good(), 1)); o.Reject != nil || o.Mismatch || !o.HasActionSchema {
		t.Errorf("conforming event with version 1: %+v", o)
	}
	o := check(withVersion(bad(), 1))
	if o.Reject == nil || o.Reject.Status != 400 || o.Reject.Code != "invalid_audit_log_event" ||
		len(o.Reject.Errors) != 1 || o.Reject.Errors[0].Field != "event.targets[0].type" {
		t.Errorf("failing event with version 1: %+v", o.Reject)
	}
	o = check(withVersion(good(), 2))
	if o.Reject == nil || o.Reject.Errors[0].Field != "event.version" || o.Reject.Errors[0].Message !=
		`schema version 2 does not exist: the latest schema version of action "invoice.paid" is 1` {
		t.Errorf("unknown version: %+v", o.Reject)
	}
	other := draftOf(t, "", nil, "")
	other.Action = "user.signed_in"
	if o := check(withVersion(other, 1)); o.Reject == nil || o.Reject.Errors[0].Field != "event.version" {
		t.Errorf("version of an action without schema: %+v", o)
	}
	other.Version = 0
	if o := check(other); o != (Outcome{}) {
		t.Errorf("no version, no schema: %+v", o)
	}

	// Without a version: checked against the latest, a mismatch recorded.
	if o := check(good()); o.Mismatch || o.Reject != nil {
		t.Errorf("no version, conforming: %+v", o)
	}
	if o := check(bad()); !o.Mismatch || o.Reject != nil || !o.HasActionSchema {
		t.Errorf("no version, not conforming: %+v", o)
	}

	// Cached: checks read nothing more until the TTL passes.
	reads := st.readCount()
	for range 10 {
		check(good())
		check(withVersion(bad(), 1))
	}
	if n := st.readCount() - reads; n != 0 {
		t.Errorf("cached checks read the store %d times", n)
	}

	// Another replica makes v2, which accepts teams: seen after the TTL.
	create(t, st, store.SchemaKindAction, "invoice.paid", `{"targets":[{"type":"team"}]}`)
	if o := check(bad()); !o.Mismatch {
		t.Errorf("within the TTL the old latest version still applies: %+v", o)
	}
	clk.t = clk.t.Add(DefaultLatestTTL)
	if o := check(bad()); o.Mismatch {
		t.Errorf("after the TTL v2 applies: %+v", o)
	}
	if o := check(withVersion(bad(), 1)); o.Reject == nil {
		t.Errorf("v1 is immutable: a team still fails it: %+v", o)
	}

	// The actor schema applies on top, from when this process forgets.
	create(t, st, store.SchemaKindActor, "", `{"metadata":{"properties":{"email":{"type":"string"}}}}`)
	r.Forget(store.SchemaKindActor, "")
	o = check(withVersion(bad(), 2))
	if o.Reject == nil || len(o.Reject.Errors) != 1 || o.Reject.Errors[0].Field != "event.actor.metadata.email" {
		t.Errorf("actor schema with version 2: %+v", o.Reject)
	}
	other.Version = 0
	if o := check(other); !o.Mismatch || o.HasActionSchema {
		t.Errorf("actor schema alone, no version: %+v", o)
	}

	r.CountMismatches("invoice.paid", true, 2)
	r.CountMismatches("whatever.client.sent", false, 1)
	for label, want := range map[string]float64{"invoice.paid": 2, "(none)": 1} {
		var m dto.Metric
		if err := r.mismatches.WithLabelValues(label).Write(&m); err != nil {
			t.Fatal(err)
		}
		if got := m.GetCounter().GetValue(); got != want {
			t.Errorf("trail_schema_mismatch_total{action=%q} = %v, want %v", label, got, want)
		}
	}
	if mfs, err := reg.Gather(); err != nil || len(mfs) != 1 || mfs[0].GetName() != "trail_schema_mismatch_total" {
		t.Errorf("registry gathers %v, %v; want trail_schema_mismatch_total", mfs, err)
	}

	// A store failure decides nothing.
	st.mu.Lock()
	st.fail = errors.New("disk on fire")
	st.mu.Unlock()
	clk.t = clk.t.Add(time.Hour)
	if _, err := r.Check(ctx, good()); err == nil {
		t.Errorf("Check with a failing store: no error")
	}
}

func TestRegistryRequireSchemas(t *testing.T) {
	st := newMemStore()
	r := NewRegistry(st, Options{RequireSchemas: true})
	create(t, st, store.SchemaKindAction, "invoice.paid", `{"targets":[{"type":"invoice"}]}`)
	d := draftOf(t, "", [][2]string{{"invoice", ""}}, "")
	if o, err := r.Check(context.Background(), d); err != nil || o.Reject != nil {
		t.Errorf("action with a schema: %+v, %v", o, err)
	}
	d.Action = "user.signed_in"
	o, err := r.Check(context.Background(), d)
	if err != nil || o.Reject == nil || o.Reject.Errors[0].Field != "event.action" || o.Reject.Errors[0].Code != "schema_required" {
		t.Errorf("action without a schema: %+v, %v", o.Reject, err)
	}
}

// BenchmarkCheckNoSchema is what every event pays when its action has no
// schema (the common case of a deployment that defines none): two cached
// lookups.
func BenchmarkCheckNoSchema(b *testing.B) {
	r := NewRegistry(newMemStore(), Options{})
	d := draftOf(b, "", [][2]string{{"invoice", ""}}, "")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if o, err := r.Check(ctx, d); err != nil || o != (Outcome{}) {
			b.Fatal(o, err)
		}
	}
}

// BenchmarkCheckWithSchema checks an event without version against its
// action's latest schema and the actor schema, both cached and compiled.
func BenchmarkCheckWithSchema(b *testing.B) {
	st := newMemStore()
	ctx := context.Background()
	for _, s := range []store.Schema{
		{Kind: store.SchemaKindAction, Name: "invoice.paid", Body: mustAction(b, invoiceSchema).Encode()},
		{Kind: store.SchemaKindActor, Body: mustActor(b, actorSchema).EncodeActor()},
	} {
		if _, err := st.CreateSchema(ctx, s); err != nil {
			b.Fatal(err)
		}
	}
	r := NewRegistry(st, Options{})
	d := draftOf(b, `{"role":"admin","email":"a@example.com"}`, [][2]string{{"invoice", `{"cost":1,"paid":true}`}}, `{"transactionId":"tx"}`)
	b.ReportAllocs()
	for b.Loop() {
		if o, err := r.Check(ctx, d); err != nil || o.Mismatch || !o.HasActionSchema {
			b.Fatal(o, err)
		}
	}
}
