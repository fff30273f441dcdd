package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/store"
)

// RunStreams runs the conformance cases of store.StreamStore. open returns a
// fresh, empty, migrated store closed when t ends.
func runStreams(t *testing.T, open func(t *testing.T) store.Backend) {
	t.Run("CreateGet", func(t *testing.T) { testStreamCreateGet(t, open(t)) })
	t.Run("List", func(t *testing.T) { testStreamList(t, open(t)) })
	t.Run("Positions", func(t *testing.T) { testStreamPositions(t, open(t)) })
	t.Run("UpdateDelete", func(t *testing.T) { testStreamUpdateDelete(t, open(t)) })
	t.Run("Advance", func(t *testing.T) { testStreamAdvance(t, open(t)) })
	t.Run("ConcurrentAdvance", func(t *testing.T) { testStreamConcurrentAdvance(t, open(t)) })
}

func streamID(i int) string { return fmt.Sprintf("ls_01JT%020d", i) }

func newStream(org string, i int) store.Stream {
	return store.Stream{ID: streamID(i), OrganizationID: org, Type: "webhook", Name: fmt.Sprintf("stream %d", i),
		Config: []byte(`{"url":"https://siem.example/in"}`), Secrets: []byte{0, 1, 2, 0xff, byte(i)},
		State: store.StreamActive, CreatedAt: t0, UpdatedAt: t0}
}

func mustCreateStream(t *testing.T, s store.Backend, st store.Stream) {
	t.Helper()
	if err := s.CreateStream(ctxOf(t), st); err != nil {
		t.Fatalf("CreateStream(%s): %v", st.ID, err)
	}
}

func mustStream(t *testing.T, s store.Backend, id string) store.Stream {
	t.Helper()
	st, err := s.Stream(ctxOf(t), id)
	if err != nil {
		t.Fatalf("Stream(%s): %v", id, err)
	}
	return st
}

func sameStream(a, b store.Stream) bool {
	return a.ID == b.ID && a.OrganizationID == b.OrganizationID && a.Type == b.Type && a.Name == b.Name &&
		bytes.Equal(a.Config, b.Config) && bytes.Equal(a.Secrets, b.Secrets) && a.State == b.State &&
		a.Cursor == b.Cursor && a.Version == b.Version && a.LastSyncedAt.Equal(b.LastSyncedAt) &&
		a.LastError == b.LastError && a.LastErrorAt.Equal(b.LastErrorAt) &&
		a.CreatedAt.Equal(b.CreatedAt) && a.UpdatedAt.Equal(b.UpdatedAt)
}

func testStreamCreateGet(t *testing.T, s store.Backend) {
	org := orgID("STRM", 1)
	mustCreateOrg(t, s, org, t0)
	st := newStream(org, 1)
	st.Cursor = 42
	mustCreateStream(t, s, st)
	got := mustStream(t, s, st.ID)
	st.Version = 1
	if !sameStream(got, st) {
		t.Errorf("Stream = %+v\nwant %+v", got, st)
	}
	wantErr(t, "CreateStream with the same id", s.CreateStream(ctxOf(t), st), store.ErrConflict)
	other := newStream(orgID("STRM", 99), 2)
	wantErr(t, "CreateStream of an unknown organization", s.CreateStream(ctxOf(t), other), store.ErrNotFound)
	_, err := s.Stream(ctxOf(t), streamID(3))
	wantErr(t, "Stream of an unknown id", err, store.ErrNotFound)
}

func testStreamList(t *testing.T, s store.Backend) {
	a, b := orgID("STRM", 1), orgID("STRM", 2)
	mustCreateOrg(t, s, a, t0)
	mustCreateOrg(t, s, b, t0)
	for i := range 7 {
		org := a
		if i%2 == 1 {
			org = b
		}
		mustCreateStream(t, s, newStream(org, i))
	}
	var ids []string
	p := store.ListParams{Limit: 2, Order: store.OrderAsc}
	for range 10 {
		page, err := s.ListStreams(ctxOf(t), a, p)
		if err != nil {
			t.Fatalf("ListStreams: %v", err)
		}
		for _, st := range page.Data {
			ids = append(ids, st.ID)
		}
		if page.After == "" {
			break
		}
		p.After = page.After
	}
	want := []string{streamID(0), streamID(2), streamID(4), streamID(6)}
	if fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Errorf("ListStreams pages = %v, want %v", ids, want)
	}
	page, err := s.ListStreams(ctxOf(t), a, store.ListParams{Limit: 10, Order: store.OrderDesc})
	if err != nil || len(page.Data) != 4 || page.Data[0].ID != streamID(6) {
		t.Errorf("ListStreams desc = %d streams (first %v), %v; want 4 from %s", len(page.Data), page.Data, err, streamID(6))
	}
	page, err = s.ListStreams(ctxOf(t), orgID("STRM", 3), store.ListParams{Limit: 10})
	if err != nil || len(page.Data) != 0 {
		t.Errorf("ListStreams of an organization without streams = %v, %v; want none", page.Data, err)
	}
}

func testStreamPositions(t *testing.T, s store.Backend) {
	a, b := orgID("STRM", 1), orgID("STRM", 2)
	mustCreateOrg(t, s, a, t0)
	mustCreateOrg(t, s, b, t0)
	ap := newAppender(t, s, 7)
	for range 5 {
		ap.appendOK(t0, ap.sub(a))
	}
	ap.appendOK(t0, ap.sub(b))
	mustCreateStream(t, s, newStream(a, 1))
	paused := newStream(b, 2)
	paused.State, paused.Cursor = store.StreamInactive, 1
	mustCreateStream(t, s, paused)
	pos, err := s.StreamPositions(ctxOf(t))
	if err != nil {
		t.Fatalf("StreamPositions: %v", err)
	}
	got := map[string]store.StreamPosition{}
	for _, p := range pos {
		got[p.ID] = p
	}
	want := map[string]store.StreamPosition{
		streamID(1): {ID: streamID(1), OrganizationID: a, Type: "webhook", State: store.StreamActive, Version: 1, Cursor: 0, LogSize: 5},
		streamID(2): {ID: streamID(2), OrganizationID: b, Type: "webhook", State: store.StreamInactive, Version: 1, Cursor: 1, LogSize: 1},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("StreamPositions = %v\nwant %v", got, want)
	}
}

func testStreamUpdateDelete(t *testing.T, s store.Backend) {
	org := orgID("STRM", 1)
	mustCreateOrg(t, s, org, t0)
	st := newStream(org, 1)
	mustCreateStream(t, s, st)
	if err := s.SetStreamFailure(ctxOf(t), st.ID, store.StreamInvalid, "401 Unauthorized", t0.Add(time.Second)); err != nil {
		t.Fatalf("SetStreamFailure: %v", err)
	}
	got := mustStream(t, s, st.ID)
	if got.State != store.StreamInvalid || got.LastError != "401 Unauthorized" || !got.LastErrorAt.Equal(t0.Add(time.Second)) {
		t.Errorf("after SetStreamFailure: state %q, error %q at %v", got.State, got.LastError, got.LastErrorAt)
	}
	st.Name, st.Config, st.Secrets, st.State = "renamed", []byte(`{"url":"https://other.example"}`), []byte("sealed2"), store.StreamActive
	st.UpdatedAt = t0.Add(2 * time.Second)
	if err := s.UpdateStream(ctxOf(t), st); err != nil {
		t.Fatalf("UpdateStream: %v", err)
	}
	got = mustStream(t, s, st.ID)
	if got.Name != "renamed" || string(got.Config) != `{"url":"https://other.example"}` || string(got.Secrets) != "sealed2" ||
		got.State != store.StreamActive || got.Version != 2 || got.LastError != "" || !got.UpdatedAt.Equal(st.UpdatedAt) {
		t.Errorf("after UpdateStream = %+v", got)
	}
	// Paused: failures are recorded but the stream stays inactive.
	st.State = store.StreamInactive
	if err := s.UpdateStream(ctxOf(t), st); err != nil {
		t.Fatalf("UpdateStream (pause): %v", err)
	}
	if err := s.SetStreamFailure(ctxOf(t), st.ID, store.StreamError, "timeout", t0.Add(3*time.Second)); err != nil {
		t.Fatalf("SetStreamFailure: %v", err)
	}
	got = mustStream(t, s, st.ID)
	if got.State != store.StreamInactive || got.LastError != "timeout" || got.Version != 3 {
		t.Errorf("paused stream after a failure: state %q, error %q, version %d; want inactive, timeout, 3", got.State, got.LastError, got.Version)
	}
	if err := s.DeleteStream(ctxOf(t), st.ID); err != nil {
		t.Fatalf("DeleteStream: %v", err)
	}
	_, err := s.Stream(ctxOf(t), st.ID)
	wantErr(t, "Stream after DeleteStream", err, store.ErrNotFound)
	wantErr(t, "DeleteStream twice", s.DeleteStream(ctxOf(t), st.ID), store.ErrNotFound)
	wantErr(t, "UpdateStream of a deleted stream", s.UpdateStream(ctxOf(t), st), store.ErrNotFound)
	wantErr(t, "SetStreamFailure of a deleted stream", s.SetStreamFailure(ctxOf(t), st.ID, store.StreamError, "x", t0), store.ErrNotFound)
	wantErr(t, "AdvanceStream of a deleted stream", s.AdvanceStream(ctxOf(t), st.ID, 0, 1, t0), store.ErrNotFound)
}

func testStreamAdvance(t *testing.T, s store.Backend) {
	org := orgID("STRM", 1)
	mustCreateOrg(t, s, org, t0)
	st := newStream(org, 1)
	mustCreateStream(t, s, st)
	if err := s.SetStreamFailure(ctxOf(t), st.ID, store.StreamError, "503", t0); err != nil {
		t.Fatalf("SetStreamFailure: %v", err)
	}
	at := t0.Add(time.Minute)
	if err := s.AdvanceStream(ctxOf(t), st.ID, 0, 10, at); err != nil {
		t.Fatalf("AdvanceStream(0→10): %v", err)
	}
	got := mustStream(t, s, st.ID)
	if got.Cursor != 10 || got.State != store.StreamActive || got.LastError != "" || !got.LastSyncedAt.Equal(at) || got.Version != 1 {
		t.Errorf("after AdvanceStream: cursor %d, state %q, error %q, synced %v, version %d; want 10, active, \"\", %v, 1",
			got.Cursor, got.State, got.LastError, got.LastSyncedAt, got.Version, at)
	}
	wantErr(t, "AdvanceStream from a stale cursor", s.AdvanceStream(ctxOf(t), st.ID, 0, 5, at), store.ErrConflict)
	if got := mustStream(t, s, st.ID); got.Cursor != 10 {
		t.Errorf("a refused AdvanceStream moved the cursor to %d", got.Cursor)
	}
	// An invalid stream is not made active by a delivery (only an update does that).
	if err := s.SetStreamFailure(ctxOf(t), st.ID, store.StreamInvalid, "403", t0); err != nil {
		t.Fatal(err)
	}
	if err := s.AdvanceStream(ctxOf(t), st.ID, 10, 11, at); err != nil {
		t.Fatal(err)
	}
	if got := mustStream(t, s, st.ID); got.State != store.StreamInvalid {
		t.Errorf("AdvanceStream changed state invalid to %q", got.State)
	}
}

// testStreamConcurrentAdvance has two deliverers race from the same cursor:
// exactly one wins each step, so two replicas briefly overlapping can never
// move a cursor backwards or past what one of them delivered.
func testStreamConcurrentAdvance(t *testing.T, s store.Backend) {
	org := orgID("STRM", 1)
	mustCreateOrg(t, s, org, t0)
	st := newStream(org, 1)
	mustCreateStream(t, s, st)
	for step := range int64(20) {
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = s.AdvanceStream(ctxOf(t), st.ID, step, step+1, t0)
			}()
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, store.ErrConflict):
				t.Fatalf("AdvanceStream: %v", err)
			}
		}
		if won != 1 {
			t.Fatalf("step %d: %d deliverers advanced the cursor, want exactly 1", step, won)
		}
	}
	if got := mustStream(t, s, st.ID); got.Cursor != 20 {
		t.Errorf("cursor = %d, want 20", got.Cursor)
	}
}
