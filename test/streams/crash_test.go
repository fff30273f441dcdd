// Package streams_test drives real `trail serve` processes delivering a log
// stream to a real HTTP receiver while they are killed.
package streams_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trailaudit/trail/client"
	"github.com/trailaudit/trail/internal/trailtest"
)

const hmacSecret = "crash-test-secret-0123456789"

// receiver is a webhook endpoint that checks Trail's signature and records
// every seq it is given, repeats included, in arrival order.
type receiver struct {
	mu       sync.Mutex
	seqs     []int64
	requests int
	bad      []string
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	if !validSignature(r.Header.Get("Trail-Signature"), body) {
		rc.mu.Lock()
		rc.bad = append(rc.bad, "bad signature")
		rc.mu.Unlock()
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var batch []struct {
		Seq int64 `json:"seq"`
	}
	if err := json.Unmarshal(body, &batch); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	time.Sleep(2 * time.Millisecond) // a receiver that takes a moment: deliveries are in flight when Trail dies
	rc.mu.Lock()
	rc.requests++
	for _, b := range batch {
		rc.seqs = append(rc.seqs, b.Seq)
	}
	rc.mu.Unlock()
	w.WriteHeader(200)
}

func validSignature(header string, body []byte) bool {
	var ts, sig string
	for _, p := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(p, "=")
		if k == "t" {
			ts = v
		} else if k == "v1" {
			sig = v
		}
	}
	mac := hmac.New(sha256.New, []byte(hmacSecret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	want, err := hex.DecodeString(sig)
	return err == nil && hmac.Equal(mac.Sum(nil), want)
}

// api is a client of srv with its bootstrap key.
func api(t *testing.T, srv *trailtest.Server) *client.Client {
	t.Helper()
	c, err := client.New(srv.URL, srv.Key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// setup creates an organization (asking orgSrv) and a webhook stream of it
// to url from the beginning of its log (asking streamSrv).
func setup(t *testing.T, orgSrv, streamSrv *trailtest.Server, name, url string) (org, stream string) {
	t.Helper()
	ctx := context.Background()
	o, err := api(t, orgSrv).CreateOrganization(ctx, name, "")
	if err != nil {
		t.Fatal(err)
	}
	st, err := api(t, streamSrv).CreateStream(ctx, o.ID, client.StreamRequest{Type: "webhook", Start: "beginning",
		Config: json.RawMessage(`{"url":"` + url + `","secret":"` + hmacSecret + `"}`)})
	if err != nil {
		t.Fatal(err)
	}
	return o.ID, st.ID
}

// batch is n events of org numbered from.
func batch(org string, n, from int) []client.OrgEvent {
	evs := make([]client.OrgEvent, n)
	for i := range evs {
		evs[i] = client.OrgEvent{OrganizationID: org, Event: client.Event{Action: "crash.tested", OccurredAt: time.Now(),
			Actor: client.Entity{Type: "user", ID: "user_1"}, Context: client.EventContext{Location: "203.0.113.7"},
			Metadata: map[string]any{"n": from + i}}}
	}
	return evs
}

// waitDelivered waits until the stream has delivered the whole log, and
// returns the stream's state then.
func waitDelivered(t *testing.T, srv func() *trailtest.Server, org, stream string) *client.Stream {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		view, err := api(t, srv()).GetStream(context.Background(), org, stream)
		if err != nil {
			t.Fatal(err)
		}
		if view.LagEvents == 0 && view.Cursor > 0 {
			return view
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream stuck: %+v\n%s", view, srv().Logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestKilledMidDelivery SIGKILLs a server at random moments while it
// ingests events and streams them to a webhook, restarting it on the same
// data directory each time. Afterwards every event of the log was
// delivered, first deliveries in seq order, none missing; repeats (a batch
// sent again because the process died before recording its delivery) are
// counted and reported. TRAIL_STREAMS_LONG=1 kills it 20 times instead of 5.
func TestKilledMidDelivery(t *testing.T) {
	kills := 5
	if os.Getenv("TRAIL_STREAMS_LONG") == "1" {
		kills = 20
	}
	rc := &receiver{}
	sink := httptest.NewServer(rc)
	defer sink.Close()
	data := t.TempDir()
	opts := trailtest.Options{Data: data, Args: []string{"--streams-allow-private"}}
	var cur atomic.Pointer[trailtest.Server]
	cur.Store(trailtest.Start(t, opts))
	defer func() {
		if t.Failed() {
			t.Logf("server log:\n%s", cur.Load().Logs())
		}
	}()
	org, st := setup(t, cur.Load(), cur.Load(), "Crash", sink.URL)

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var sent atomic.Int64
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				if _, err := api(t, cur.Load()).CreateEvents(context.Background(), batch(org, 50, w*1_000_000+i*50)); err == nil {
					sent.Add(50)
				} else {
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	for range kills {
		time.Sleep(time.Duration(300+rand.IntN(1200)) * time.Millisecond)
		cur.Load().Kill()
		cur.Store(trailtest.Start(t, opts))
	}
	time.Sleep(500 * time.Millisecond)
	stop()
	wg.Wait()

	view := waitDelivered(t, cur.Load, org, st)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.bad) > 0 {
		t.Errorf("%d deliveries with a bad signature", len(rc.bad))
	}
	seen := map[int64]bool{}
	next, dups := int64(0), 0
	for _, q := range rc.seqs {
		if seen[q] {
			dups++
			continue
		}
		if q != next {
			t.Fatalf("first delivery of seq %d when %d was due: out of order or missing", q, next)
		}
		seen[q] = true
		next++
	}
	if next != view.Cursor {
		t.Fatalf("receiver has seqs 0…%d, the log holds %d events", next-1, view.Cursor)
	}
	t.Logf("%d kills: %d events in the log (%d acknowledged by ingest), all delivered in order, none missing; %d repeats in %d requests (around the crash points)",
		kills, view.Cursor, sent.Load(), dups, rc.requests)
}
