package postgres

import (
	"errors"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/store"
)

// FuzzDecodeCursor: a search cursor comes from the client. Anything must
// decode or fail with ErrInvalidCursor, and what decodes must be within
// what PostgreSQL's timestamptz holds (else the query, not the cursor,
// would fail: a 500 instead of a 400) and re-encode to itself.
func FuzzDecodeCursor(f *testing.F) {
	f.Add(cursor{at: time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC), seq: 42}.encode())
	f.Add(cursor{at: time.UnixMilli(-1e14).UTC(), seq: 0}.encode())
	f.Add("cDE6OjE")
	f.Add("")
	f.Add("%%%")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := decodeCursor(s)
		if err != nil {
			if !errors.Is(err, store.ErrInvalidCursor) {
				t.Fatalf("decodeCursor(%q): %v, not ErrInvalidCursor", s, err)
			}
			return
		}
		if ms := c.at.UnixMilli(); c.seq < 0 || ms < -1e14 || ms > 1e14 {
			t.Fatalf("decodeCursor(%q) = %+v: outside what a query can hold", s, c)
		}
		again, err := decodeCursor(c.encode())
		if err != nil || !again.at.Equal(c.at) || again.seq != c.seq {
			t.Fatalf("cursor %+v does not survive encode/decode: %+v, %v", c, again, err)
		}
	})
}
