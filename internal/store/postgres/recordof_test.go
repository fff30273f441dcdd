package postgres

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/store/storetest"
)

// The search fields of an event that came with its draft are those of its
// record parsed back: the columns (occurred_at, action, actor, targets),
// the search text and the vector. A draft the tail no longer matches is not
// used.
func TestRecordOfDraftMatchesRecord(t *testing.T) {
	raws := [][]byte{
		// occurred_at beyond millisecond precision and with an offset,
		// escapes, non-ASCII text, numbers written several ways,
		// repeated targets.
		[]byte(`{"action":"doc.updated","occurred_at":"2026-01-02T03:04:05.123456789+05:30",` +
			`"actor":{"id":"user_\u00e9","type":"user","name":"Zo\u00eb \"Z\" O'Neil\\x","metadata":{"n":1e3,"m":1.50,"z":-0}},` +
			`"targets":[{"id":"doc_1","type":"document","name":"Q3 \u2014 plan"},{"id":"doc_1","type":"document"},{"id":"t 2","type":"team"}],` +
			`"context":{"location":"2001:db8::1","user_agent":"curl/8.5.0"},"metadata":{"big":12345678901234567890,"s":"tab\there","b":false}}`),
		[]byte(`{"action":"a.b","occurred_at":"2026-01-02T03:04:05Z","actor":{"id":"u","type":"user"},"targets":[],"context":{"location":"192.0.2.1"}}`),
	}
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range 300 {
		raws = append(raws, storetest.Event(rng, i))
	}
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	for i, raw := range raws {
		d, err := event.ParseEvent(raw, now, event.DefaultLimits())
		if err != nil {
			t.Fatalf("event %d: %v\n%s", i, err, raw)
		}
		a := event.Accepted{ID: event.NewID(now), OrganizationID: "org_a", ReceivedAt: now}
		record := event.AppendRecord(nil, a, d.Tail)
		withDraft := store.PendingEvent{OrganizationID: "org_a", ID: a.ID, ReceivedAt: now, Tail: d.Tail, Draft: d}
		alone := withDraft
		alone.Draft = nil
		got, err := recordOf(withDraft, a, record)
		if err != nil {
			t.Fatal(err)
		}
		want, err := recordOf(alone, a, record)
		if err != nil {
			t.Fatal(err)
		}
		if g, w := fieldsOf(got), fieldsOf(want); g != w {
			t.Errorf("event %d: from the draft\n%s\nfrom the record\n%s", i, g, w)
		}
		stale := withDraft // a draft whose tail is not the event's (a field policy re-encodes both)
		stale.Draft = &event.Draft{Action: "stale.draft", Tail: []byte(`"action":"stale.draft"`)}
		if r, err := recordOf(stale, a, record); err != nil || fieldsOf(r) != fieldsOf(want) {
			t.Fatalf("event %d: a draft that does not encode the tail was used (%v)", i, err)
		}
	}
}

// fieldsOf is what the append stores of rec besides its bytes.
func fieldsOf(rec *event.Record) string {
	text := rec.AppendSearchText(nil)
	vec, _ := searchVector(rec.OrganizationID, text, nil)
	return fmt.Sprintf("occurred %s\naction %q\nactor %q %q\ntargets %v\ntext %q\nvector %v",
		rec.OccurredAt.UTC().Format(time.RFC3339Nano), rec.Action, rec.Actor.ID, rec.Actor.Name, rec.Targets, text, vec)
}

// BenchmarkSearchFields is the Go side of an append's search columns for a
// group commit of 30 single-event submissions (what 64 clients make): the
// events with the drafts they were parsed into (as requests bring them),
// and without (parsed back from their records).
func BenchmarkSearchFields(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	for _, withDrafts := range []bool{true, false} {
		subs := make([]store.Submission, 30)
		for i := range subs {
			d, err := event.ParseEvent(storetest.Event(rng, i), now, event.DefaultLimits())
			if err != nil {
				b.Fatal(err)
			}
			e := store.PendingEvent{OrganizationID: "org_a", ID: event.NewID(now), ReceivedAt: now, Tail: d.Tail}
			if withDrafts {
				e.Draft = d
			}
			subs[i].Events = []store.PendingEvent{e}
		}
		b.Run(fmt.Sprintf("drafts=%v", withDrafts), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := searchFieldsOf(subs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(subs))/1e3, "µs/event")
		})
	}
}
