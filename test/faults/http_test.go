package faults_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/trailtest"
)

// The timeouts and limits of cmd/trail/serve.go's http.Server.
const (
	readHeaderTimeout = 10 * time.Second
	// slowGiveUp is when a slow client stops waiting for the server to
	// close its connection: far past ReadHeaderTimeout, so a busy machine
	// cannot fail the test, and well before a slow client would have sent
	// its whole request.
	slowGiveUp     = readHeaderTimeout + time.Minute
	readTimeout    = 2 * time.Minute
	maxHeaderBytes = 64 << 10
)

func dial(t *testing.T, srv *trailtest.Server) net.Conn {
	t.Helper()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatalf("dialing %s: %v", u.Host, err)
	}
	return conn
}

// statusOf reads the status code of the answer on conn (0 when the server
// closed the connection without one) within d.
func statusOf(conn net.Conn, d time.Duration) (int, error) {
	conn.SetReadDeadline(time.Now().Add(d))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
			return 0, nil
		}
		return 0, err
	}
	res.Body.Close()
	return res.StatusCode, nil
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"))
}

// prober sends an event every 50 ms while a fault is applied, and records
// whether the server kept serving: every probe must be acknowledged, within
// the client's timeout (its latency is logged, not asserted).
type prober struct {
	lat  []time.Duration
	bad  []string
	stop func()
	done chan struct{}
}

func startProber(c *http.Client, srv *trailtest.Server, orgs []string, tr *tracker) *prober {
	ctx, cancel := context.WithCancel(context.Background())
	p := &prober{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for ctx.Err() == nil {
			evOrgs, toks := tr.tokens("probe", orgs, 1)
			a, _ := send(context.Background(), c, srv, evOrgs, toks)
			if a.code == http.StatusCreated {
				tr.ack(toks, nil)
				p.lat = append(p.lat, a.took)
			} else if len(p.bad) < 10 {
				p.bad = append(p.bad, fmt.Sprintf("%d %v %.200s", a.code, a.err, a.body))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	return p
}

func (p *prober) finish(t *testing.T) {
	t.Helper()
	p.stop()
	<-p.done
	for _, b := range p.bad {
		t.Errorf("a well-behaved client was not served meanwhile: %s", b)
	}
	if len(p.lat) == 0 {
		t.Error("no well-behaved request was served meanwhile")
	}

}

// TestSlowloris opens many connections that send their headers one byte a
// second: the server must close each on its ReadHeaderTimeout, long before
// the request could be complete, and keep serving other clients meanwhile.
func TestSlowloris(t *testing.T) {
	conns := pick(200, 2000)
	srv := trailtest.Start(t, trailtest.Options{})
	tg := newTarget(srv)
	dumpOnFailure(t, tg)
	c := newClient(8)
	orgs := createOrgs(t, c, srv, 1, "Slowloris")
	tr := newTracker()

	probe := startProber(c, srv, orgs, tr)
	request := "POST /audit_logs/events HTTP/1.1\r\nHost: trail\r\nAuthorization: Bearer " + srv.Key + "\r\nX-Slow: " + strings.Repeat("a", 60)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		closed  []time.Duration
		answers = map[int]int{}
		open    atomic.Int64
		errs    []string
	)
	start := time.Now()
	for range conns {
		conn := dial(t, srv)
		open.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			began := time.Now()
			// Read in the background: the server's close ends the read.
			status := make(chan int, 1)
			go func() {
				code, _ := statusOf(conn, slowGiveUp+5*time.Second)
				status <- code
			}()
			for i := 0; ; i++ {
				select {
				case code := <-status:
					mu.Lock()
					closed = append(closed, time.Since(began))
					answers[code]++
					mu.Unlock()
					open.Add(-1)
					return
				case <-time.After(time.Second):
				}
				if time.Since(began) > slowGiveUp {
					mu.Lock()
					errs = append(errs, fmt.Sprintf("connection still open after %v", time.Since(began).Round(time.Second)))
					mu.Unlock()
					return
				}
				conn.SetWriteDeadline(time.Now().Add(time.Second))
				conn.Write([]byte{request[i%len(request)]})
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	probe.finish(t)
	for _, e := range errs[:min(len(errs), 10)] {
		t.Error(e)
	}
	if n := open.Load(); n > 0 {
		t.Errorf("%d slow connections were never closed", n)
	}
	// Sending the whole request at a byte a second would take minutes:
	// every connection closed before slowGiveUp was closed by the server's
	// timeout, however busy the machine was meanwhile.
	longest := percentile(closed, 100)
	requireLogs(t, checkLogs(t, c, srv, orgs, tr))
	t.Logf("%d slow connections closed after %v–%v (answers %v, 0 = closed without one) in %v; %d well-behaved requests served meanwhile, p99 %v",
		conns, percentile(closed, 0).Round(time.Millisecond), longest.Round(time.Millisecond), answers, took.Round(time.Millisecond),
		len(probe.lat), percentile(probe.lat, 99).Round(time.Millisecond))
}

// TestMalformedRequests sends requests an HTTP server must survive: huge
// headers, truncated bodies, bodies that never end. Each must get its error
// (or a closed connection), store nothing, and leave the server serving.
func TestMalformedRequests(t *testing.T) {
	srv := trailtest.Start(t, trailtest.Options{})
	tg := newTarget(srv)
	dumpOnFailure(t, tg)
	c := newClient(8)
	orgs := createOrgs(t, c, srv, 1, "Malformed")
	org := orgs[0]
	tr := newTracker() // well-behaved events only
	probe := startProber(c, srv, orgs, tr)

	// Events sent in malformed requests: none may be stored.
	var forbidden []string
	token := func(name string) string {
		tok := "bad-" + strings.ReplaceAll(name, " ", "-") + fmt.Sprint(len(forbidden))
		forbidden = append(forbidden, tok)
		return tok
	}
	head := func(path string, extra string) string {
		return "POST " + path + " HTTP/1.1\r\nHost: trail\r\nAuthorization: Bearer " + srv.Key + "\r\nContent-Type: application/json\r\n" + extra
	}

	t.Run("huge headers", func(t *testing.T) {
		for _, size := range []int{maxHeaderBytes + 8<<10, 1 << 20} {
			conn := dial(t, srv)
			body := eventJSON(org, token("huge headers"))
			req := head("/audit_logs/events", fmt.Sprintf("X-Huge: %s\r\nContent-Length: %d\r\n\r\n%s", strings.Repeat("h", size), len(body), body))
			start := time.Now()
			go func() {
				conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
				io.WriteString(conn, req)
			}()
			code, err := statusOf(conn, 10*time.Second)
			conn.Close()
			if err != nil || code != http.StatusRequestHeaderFieldsTooLarge {
				t.Errorf("a %d KiB header: status %d (%v), want 431", size>>10, code, err)
			}
			t.Logf("%d KiB header: %d in %v", size>>10, code, time.Since(start).Round(time.Millisecond))
		}
	})

	t.Run("truncated bodies", func(t *testing.T) {
		cases := []struct {
			name      string
			path      string
			body      []byte
			missing   int  // bytes the Content-Length claims beyond the body
			halfClose bool // close only the writing side, then read the answer
		}{
			{"whole event, 100 bytes short", "/audit_logs/events", eventJSON(org, token("trunc single")), 100, true},
			{"whole event, 1 byte short", "/audit_logs/events", eventJSON(org, token("trunc single1")), 1, true},
			{"half an event", "/audit_logs/events", eventJSON(org, token("trunc half"))[:120], 300, true},
			{"whole batch, 1 byte short", "/v1/events/batch", batchJSON([]string{org, org}, []string{token("trunc batch"), token("trunc batch")}), 1, true},
			{"whole event, connection dropped", "/audit_logs/events", eventJSON(org, token("trunc drop")), 10, false},
			{"whole batch, connection dropped", "/v1/events/batch", batchJSON([]string{org}, []string{token("trunc batch drop")}), 10, false},
		}
		for _, tc := range cases {
			conn := dial(t, srv)
			req := head(tc.path, fmt.Sprintf("Content-Length: %d\r\n\r\n", len(tc.body)+tc.missing)) + string(tc.body)
			if _, err := io.WriteString(conn, req); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if !tc.halfClose {
				conn.Close()
				continue
			}
			conn.(*net.TCPConn).CloseWrite()
			code, err := statusOf(conn, 10*time.Second)
			conn.Close()
			if err != nil || (code != 0 && code != http.StatusBadRequest) {
				t.Errorf("%s: status %d (%v), want 400 or a closed connection", tc.name, code, err)
			}
			t.Logf("%s: %d (0 = closed without an answer)", tc.name, code)
		}
	})

	t.Run("endless bodies", func(t *testing.T) {
		cases := []struct {
			path  string
			limit int64
		}{
			{"/audit_logs/events", 1 << 20},
			{"/v1/events/batch", 16 << 20},
		}
		for _, tc := range cases {
			conn := dial(t, srv)
			start := time.Now()
			var written atomic.Int64
			event := append(eventJSON(org, token("endless")), ',')
			go func() {
				// A chunked body that never ends: valid JSON as far as it
				// goes, an array of events that keeps growing.
				w := bufio.NewWriter(conn)
				w.WriteString(head(tc.path, "Transfer-Encoding: chunked\r\n\r\n"))
				chunk := []byte(`{"events":[`)
				for {
					fmt.Fprintf(w, "%x\r\n%s\r\n", len(chunk), chunk)
					conn.SetWriteDeadline(time.Now().Add(15 * time.Second))
					if err := w.Flush(); err != nil {
						return
					}
					written.Add(int64(len(chunk)))
					chunk = event
					if tc.path == "/v1/events/batch" {
						chunk = append(chunk[:len(chunk):len(chunk)], strings.Repeat(" ", 32<<10)...)
					}
				}
			}()
			code, err := statusOf(conn, 15*time.Second)
			conn.Close()
			if err != nil || code != http.StatusRequestEntityTooLarge {
				t.Errorf("%s: endless body answered %d (%v) after %v, want 413", tc.path, code, err, time.Since(start).Round(time.Millisecond))
			}
			t.Logf("%s: endless body answered %d after %v and %d KiB", tc.path, code, time.Since(start).Round(time.Millisecond), written.Load()>>10)
		}
	})

	t.Run("slow endless body", func(t *testing.T) {
		if !long() {
			t.Skip("takes ReadTimeout (2 minutes); set TRAIL_FAULTS_LONG=1")
		}
		conn := dial(t, srv)
		defer conn.Close()
		io.WriteString(conn, head("/audit_logs/events", "Transfer-Encoding: chunked\r\n\r\n"))
		start := time.Now()
		status := make(chan int, 1)
		go func() {
			code, _ := statusOf(conn, readTimeout+30*time.Second)
			status <- code
		}()
		body := string(eventJSON(org, token("slow endless")))
		for i := 0; ; i++ {
			select {
			case code := <-status:
				took := time.Since(start)
				if took > readTimeout+10*time.Second {
					t.Errorf("a body sent one byte a second was cut after %v; ReadTimeout is %v", took, readTimeout)
				}
				t.Logf("a body sent one byte a second: answered %d (0 = closed) after %v", code, took.Round(time.Millisecond))
				return
			case <-time.After(time.Second):
			}
			if time.Since(start) > readTimeout+30*time.Second {
				t.Fatalf("a body sent one byte a second was still read after %v", time.Since(start).Round(time.Second))
			}
			conn.SetWriteDeadline(time.Now().Add(time.Second))
			fmt.Fprintf(conn, "1\r\n%c\r\n", body[i%len(body)])
		}
	})

	probe.finish(t)
	if a := do(context.Background(), c, srv, "GET", "/healthz", nil); a.code != http.StatusOK {
		t.Errorf("/healthz after the malformed requests: %d %v", a.code, a.err)
	}
	// Nothing of the malformed requests is stored; the probes all are.
	lc := checkLogs(t, c, srv, orgs, tr)
	stored := map[string]bool{}
	for _, rec := range readLog(t, c, srv, org) {
		stored[rec.Metadata["token"]] = true
	}
	for _, tok := range forbidden {
		if stored[tok] {
			t.Errorf("event %s of a malformed request was stored", tok)
		}
	}
	var extra []string
	for _, p := range lc.problems {
		if !strings.Contains(p, "never sent") {
			extra = append(extra, p)
		}
	}
	for _, p := range extra {
		t.Error(p)
	}
	t.Logf("%d events of malformed requests, none stored; %d well-behaved requests served meanwhile, p99 %v",
		len(forbidden), len(probe.lat), percentile(probe.lat, 99).Round(time.Millisecond))
}
