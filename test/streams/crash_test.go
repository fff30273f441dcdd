// Package streams_test drives real `trail serve` processes delivering a log
// stream to a real HTTP receiver while they are killed.
package streams_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
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

func call(ctx context.Context, srv *trailtest.Server, method, path string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, srv.URL+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+srv.Key)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, b, err
}

func mustCall(t *testing.T, srv *trailtest.Server, method, path string, body string, want int) []byte {
	t.Helper()
	code, b, err := call(context.Background(), srv, method, path, []byte(body))
	if err != nil || code != want {
		t.Fatalf("%s %s = %d %s (%v), want %d", method, path, code, b, err, want)
	}
	return b
}

func batchBody(org string, n, from int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"events":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"organization_id":%q,"event":{"action":"crash.tested","occurred_at":%q,"actor":{"type":"user","id":"user_1"},"targets":[],"context":{"location":"203.0.113.7"},"metadata":{"n":%d}}}`,
			org, time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), from+i)
	}
	b.WriteString(`]}`)
	return b.Bytes()
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
	var org struct{ ID string }
	json.Unmarshal(mustCall(t, cur.Load(), "POST", "/organizations", `{"name":"Crash"}`, 201), &org)
	var st struct{ ID string }
	json.Unmarshal(mustCall(t, cur.Load(), "POST", "/v1/organizations/"+org.ID+"/log_streams",
		`{"type":"webhook","start":"beginning","config":{"url":"`+sink.URL+`","secret":"`+hmacSecret+`"}}`, 201), &st)

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var sent atomic.Int64
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				code, _, _ := call(context.Background(), cur.Load(), "POST", "/v1/events/batch", batchBody(org.ID, 50, w*1_000_000+i*50))
				if code == 201 {
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

	// Wait until the stream has delivered the whole log.
	var view struct {
		Cursor    int64  `json:"cursor"`
		LagEvents int64  `json:"lag_events"`
		State     string `json:"state"`
		LastError string `json:"last_error"`
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		json.Unmarshal(mustCall(t, cur.Load(), "GET", "/v1/organizations/"+org.ID+"/log_streams/"+st.ID, "", 200), &view)
		if view.LagEvents == 0 && view.Cursor > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream stuck: %+v", view)
		}
		time.Sleep(100 * time.Millisecond)
	}
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
