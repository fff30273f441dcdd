package logbuf

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the Writer's timer goroutine and the
// test reading it at once.
type syncBuffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Writes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes
}

// hour is an interval no test waits for: lines leave the buffer only
// through what the test does.
const hour = time.Hour

func TestHandlerWritesOutUnlessTheLineMayWait(t *testing.T) {
	tests := []struct {
		name      string
		ctxs      []context.Context // one record each
		warnLast  bool              // the last record is a warning
		wantOut   int               // lines written out after the records
		wantWrite int               // writes to the underlying writer
	}{
		{"a warning goes out at once even with a context that may wait",
			[]context.Context{MayWait(context.Background()), MayWait(context.Background())}, true, 2, 1},
		{"plain lines go out at once", []context.Context{context.Background(), context.Background()}, false, 2, 2},
		{"lines that may wait stay buffered", []context.Context{MayWait(context.Background()), MayWait(context.Background())}, false, 0, 0},
		{"a plain line takes the waiting ones out with it, in order",
			[]context.Context{MayWait(context.Background()), MayWait(context.Background()), context.Background()}, false, 3, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := &syncBuffer{}
			w := New(out, hour, 1<<10)
			log := slog.New(NewHandler(slog.NewTextHandler(w, nil), w))
			for i, ctx := range tt.ctxs {
				if tt.warnLast && i == len(tt.ctxs)-1 {
					log.WarnContext(ctx, "line", "n", i)
					continue
				}
				log.InfoContext(ctx, "line", "n", i)
			}
			if got := strings.Count(out.String(), "\n"); got != tt.wantOut {
				t.Errorf("lines written out = %d, want %d:\n%s", got, tt.wantOut, out.String())
			}
			if got := out.Writes(); got != tt.wantWrite {
				t.Errorf("writes = %d, want %d", got, tt.wantWrite)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			got := out.String()
			for i := range tt.ctxs {
				if !strings.Contains(got, "n="+string(rune('0'+i))) {
					t.Errorf("line %d missing after Close:\n%s", i, got)
				}
			}
			if strings.Index(got, "n=0") > strings.Index(got, "n=1") {
				t.Errorf("lines out of order:\n%s", got)
			}
		})
	}
}

func TestWriterLimitAndClose(t *testing.T) {
	tests := []struct {
		name       string
		limit      int
		writes     []string
		wantBefore string // written out before Close
	}{
		{"under the limit nothing is written", 16, []string{"aaaa\n", "bbbb\n"}, ""},
		{"passing the limit writes out the buffer first", 8, []string{"aaaa\n", "bbbb\n"}, "aaaa\n"},
		{"a line as long as the limit goes through", 4, []string{"aa\n", "bbbbbbb\n"}, "aa\nbbbbbbb\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := &syncBuffer{}
			w := New(out, hour, tt.limit)
			for _, s := range tt.writes {
				if n, err := w.Write([]byte(s)); err != nil || n != len(s) {
					t.Fatalf("Write(%q) = %d, %v", s, n, err)
				}
			}
			if got := out.String(); got != tt.wantBefore {
				t.Errorf("before Close: %q, want %q", got, tt.wantBefore)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			all := strings.Join(tt.writes, "")
			if got := out.String(); got != all {
				t.Errorf("after Close: %q, want %q", got, all)
			}
			if _, err := w.Write([]byte("late\n")); err != nil {
				t.Fatal(err)
			}
			if got := out.String(); got != all+"late\n" {
				t.Errorf("a write after Close was not written through: %q", got)
			}
		})
	}
}

func TestWriterWritesOutOnItsTimer(t *testing.T) {
	out := &syncBuffer{}
	w := New(out, time.Millisecond, 1<<10)
	defer w.Close()
	if _, err := w.Write([]byte("waiting\n")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for out.String() != "waiting\n" {
		if time.Now().After(deadline) {
			t.Fatalf("the timer never wrote the line out: %q", out.String())
		}
		time.Sleep(time.Millisecond)
	}
}

// failingOnce fails its first write and records the others.
type failingOnce struct {
	syncBuffer
	failed bool
}

func (f *failingOnce) Write(p []byte) (int, error) {
	if !f.failed {
		f.failed = true
		return 0, errors.New("disk full")
	}
	return f.syncBuffer.Write(p)
}

// A batch that fails to write is dropped, but the line being written when
// it failed is not: it is kept, or written through when it is too large.
func TestWriterKeepsTheLineWhenABatchFails(t *testing.T) {
	for _, tt := range []struct {
		name string
		line string
	}{
		{"a line that fits is kept", "kept-kept-kept-kept\n"},
		{"a line too large is written through", strings.Repeat("x", 64) + "\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := &failingOnce{}
			w := New(out, hour, 32)
			if _, err := w.Write([]byte("lost-lost-lost-lost\n")); err != nil {
				t.Fatal(err)
			}
			n, err := w.Write([]byte(tt.line))
			if err == nil {
				t.Error("the failed batch was not reported")
			}
			if n != len(tt.line) {
				t.Errorf("n = %d, want %d", n, len(tt.line))
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if got := out.String(); got != tt.line {
				t.Errorf("written = %q, want %q", got, tt.line)
			}
		})
	}
}
