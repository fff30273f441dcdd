package sqlite

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/store/storetest"
)

// TestHeldFields: what an event waiting for the indexer holds gives the
// indexer and reads of the tail the same fields, facets and text as its
// record parsed, which is what retention deletes from the index with.
func TestHeldFields(t *testing.T) {
	long := strings.Repeat("ü", 300) // lengths past one byte of uvarint
	for _, tc := range []struct {
		name, raw string
	}{
		{"no targets", `{"action":"user.signed_in","occurred_at":"2025-01-02T03:04:05.678Z","actor":{"id":"user_1","type":"user"},"targets":[],"context":{"location":"1.2.3.4"}}`},
		{"named actor, targets and metadata", `{"action":"doc.shared","occurred_at":"2025-01-02T03:04:05Z","actor":{"id":"user_1","type":"user","name":"Ana Lima","metadata":{"role":"admin"}},` +
			`"targets":[{"id":"doc_1","type":"document","name":"Plan"},{"id":"%%","type":"team","metadata":{"n":3}}],"context":{"location":"::1","user_agent":"curl/8"},"metadata":{"b":"x y","a":1.5,"c":true}}`},
		{"long values", `{"action":"a.b","occurred_at":"2025-01-02T03:04:05Z","actor":{"id":"` + long + `","type":"user","name":"` + long + `"},` +
			`"targets":[{"id":"` + long + `","type":"` + long + `"}],"context":{"location":"x"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := event.ParseEvent([]byte(tc.raw), testNow, event.DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			a := event.Accepted{ID: event.NewID(testNow), OrganizationID: "org_a", Seq: 7, ReceivedAt: testNow}
			p := pendingRow{org: "org_a", record: event.AppendRecord(nil, a, d.Tail), draft: d, mismatch: true}
			p.hold(nil)
			if p.draft != nil || p.held == "" {
				t.Fatalf("hold kept the draft (%v) or made no fields (%q)", p.draft != nil, p.held)
			}
			rec, err := event.ParseRecord(p.record)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := fieldsOf(&rec.Draft, nil, nil)
			got := p.held.fields(nil)
			if got.action != want.action || got.actorID != want.actorID || got.actorName != want.actorName ||
				!slices.Equal(got.targets, want.targets) || got.text != want.text {
				t.Fatalf("held fields = %+v, want %+v", got, want)
			}
			if p.held.action() != want.action {
				t.Fatalf("action() = %q, want %q", p.held.action(), want.action)
			}
			if p.ms != rec.OccurredAt.UnixMilli() {
				t.Fatalf("ms = %d, want %d", p.ms, rec.OccurredAt.UnixMilli())
			}
			h := newFacetHasher()
			facets, text := h.ftsEntry("org_a", rec, true)
			if got := h.appendFacets(nil, "org_a", &got, p.mismatch); string(got) != string(facets) || want.text != text {
				t.Fatalf("facets from held fields = %q, from the record %q", got, facets)
			}
			if got, want := h.appendExact(nil, "org_a", &got), h.appendExact(nil, "org_a", &want); string(got) != string(want) {
				t.Fatalf("exact from held fields = %q, from the record %q", got, want)
			}
		})
	}
}

// TestHeldEventCost: events waiting for the indexer keep no drafts, and
// the backlog's budget counts at least what they take in the heap, so
// that the bound it sets (WithBacklogMemory) is a bound on memory.
func TestHeldEventCost(t *testing.T) {
	const n = 10_000
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "trail.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateOrganization(ctx, store.Organization{ID: "org_a", Name: "a", CreatedAt: testNow, UpdatedAt: testNow}); err != nil {
		t.Fatal(err)
	}
	s.unindexed.budget = math.MaxInt
	rng := rand.New(rand.NewPCG(1, 2))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range n / 1000 {
		var sub store.Submission
		for j := range 1000 {
			d, err := event.ParseEvent(storetest.Event(rng, i*1000+j), testNow, event.DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			sub.Events = append(sub.Events, store.PendingEvent{OrganizationID: "org_a", ID: event.NewID(testNow), ReceivedAt: testNow, Tail: d.Tail, Draft: d})
		}
		if res, err := s.Append(ctx, []store.Submission{sub}, testNow); err != nil || res[0].Err != nil {
			t.Fatal(err, res[0].Err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	s.unindexed.mu.RLock()
	items := s.unindexed.items[s.unindexed.head:]
	for _, p := range items {
		if p.draft != nil || p.held == "" {
			t.Fatalf("event %d held with its draft (%v) or without fields", p.pos, p.draft != nil)
		}
	}
	s.unindexed.mu.RUnlock()
	if len(items) != n {
		t.Fatalf("%d events held, want %d", len(items), n)
	}
	grew, counted := int64(after.HeapAlloc)-int64(before.HeapAlloc), int64(s.unindexed.heldBytes())
	t.Logf("heap grew %d bytes a held event, %d counted", grew/n, counted/n)
	// A tenth of slack for what else the heap did meanwhile.
	if grew > counted+counted/10 {
		t.Fatalf("the heap grew %d bytes for %d held events, the budget counted %d", grew, n, counted)
	}
}

// TestHeldIDsOwnTheirBytes: an organization id an event came with may be a
// part of its request body (a WorkOS body names its organization); what
// the store keeps after the commit, for the integrator and the indexer,
// must not keep that body alive.
func TestHeldIDsOwnTheirBytes(t *testing.T) {
	body := []byte(`{"organization_id":"org_a","action":"a.b"}`)
	org := string(body)[19:24] // "org_a", a part of the body's string
	inBody := func(s string) bool {
		p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
		start := uintptr(unsafe.Pointer(unsafe.StringData(org))) - 19
		return p >= start && p < start+uintptr(len(body))
	}
	rows := []pendingRow{{pos: 1, org: org, seq: 0, record: []byte("x")}, {pos: 2, org: org, seq: 1, record: []byte("y")}}
	r := newRecentRecords()
	r.add(slices.Clone(rows))
	var u unindexedEvents
	u.add(slices.Clone(rows))
	for _, e := range r.fifo[r.head:] {
		if inBody(e.org) {
			t.Fatal("the integrator's records keep the request body alive")
		}
	}
	for _, p := range u.items[u.head:] {
		if inBody(p.org) {
			t.Fatal("a held event keeps the request body alive")
		}
	}
}
