package streams_test

import (
	"context"
	crand "crypto/rand"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/trailaudit/trail/internal/keyring"
	"github.com/trailaudit/trail/internal/pgtest"
	"github.com/trailaudit/trail/internal/trailtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestReplicasDeliverOnce runs two replicas on one PostgreSQL: one holds
// the streams lease and delivers; it is SIGKILLed mid-delivery and the other
// takes over. Every event arrives, first deliveries in seq order, none
// missing.
func TestReplicasDeliverOnce(t *testing.T) {
	dsn := pgtest.New(t)
	master, _ := keyring.Generate()
	masterFile := filepath.Join(t.TempDir(), "master.key")
	os.WriteFile(masterFile, []byte(master.String()+"\n"), 0o600)
	skey, _, err := note.GenerateKey(crand.Reader, "trail.test")
	if err != nil {
		t.Fatal(err)
	}
	signing := filepath.Join(t.TempDir(), "signing.key")
	os.WriteFile(signing, []byte(skey+"\n"), 0o600)
	start := func(data string) *trailtest.Server {
		return trailtest.Start(t, trailtest.Options{Data: data, Args: []string{"--database", dsn, "--master-key-file", masterFile,
			"--signing-key-file", signing, "--log-origin", "trail.test/streams", "--streams-allow-private", "--log-level", "info"}})
	}
	replicas := []*trailtest.Server{start(t.TempDir()), start(t.TempDir())}
	rc := &receiver{}
	sink := httptest.NewServer(rc)
	defer sink.Close()

	org, st := setup(t, replicas[0], replicas[1], "Replicas", sink.URL)

	holder := func() int {
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			for i, r := range replicas {
				if r != nil && strings.Contains(r.Logs(), `"lease":"streams"`) && strings.Contains(r.Logs(), "lease taken") {
					return i
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatal("no replica took the streams lease")
		return -1
	}
	h := holder()

	var live atomic.Pointer[trailtest.Server]
	live.Store(replicas[1-h])
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			if _, err := api(t, live.Load()).CreateEvents(context.Background(), batch(org, 50, i*50)); err != nil {
				time.Sleep(20 * time.Millisecond)
			}
		}
	}()
	time.Sleep(2 * time.Second)
	replicas[h].Kill()
	replicas[h] = nil
	time.Sleep(3 * time.Second)
	stop()
	wg.Wait()
	if other := holder(); other != 1-h {
		t.Fatalf("lease holder %d", other)
	}

	view := waitDelivered(t, live.Load, org, st)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	seen := map[int64]bool{}
	next, dups := int64(0), 0
	for _, q := range rc.seqs {
		if seen[q] {
			dups++
			continue
		}
		if q != next {
			t.Fatalf("first delivery of seq %d when %d was due", q, next)
		}
		seen[q] = true
		next++
	}
	if next != view.Cursor {
		t.Fatalf("receiver has seqs 0…%d, the log holds %d", next-1, view.Cursor)
	}
	t.Logf("lease holder killed and replaced: %d events delivered in order, none missing, %d repeats", view.Cursor, dups)
}
