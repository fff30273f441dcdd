package sqlite

import (
	"context"
	"path/filepath"
	"testing"
)

// TestCacheBudget checks that WithCache divides its budget among the
// connections' page caches.
func TestCacheBudget(t *testing.T) {
	for _, tc := range []struct {
		name               string
		opts               []Option
		limit, write, read int64 // bytes
		wantErr            bool
	}{
		{name: "default", write: DefaultCacheBytes / 4, read: DefaultCacheBytes / int64(4*readers())},
		{name: "small", opts: []Option{WithCache(16 << 20)}, write: 4 << 20, read: 16 << 20 / int64(4*readers())},
		{name: "large caps each connection", opts: []Option{WithCache(8 << 30)}, write: 256 << 20, read: 32 << 20},
		{name: "too small", opts: []Option{WithCache(1000)}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s, err := Open(ctx, filepath.Join(t.TempDir(), "trail.db"), nil, tc.opts...)
			if tc.wantErr {
				if err == nil {
					s.Close()
					t.Fatal("Open accepted a budget under 1 MiB")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var write, read, searchWrite, searchRead int64
			if err := s.searchRead.QueryRowContext(ctx, `PRAGMA cache_size`).Scan(&searchRead); err != nil {
				t.Fatal(err)
			}
			if err := s.write.QueryRowContext(ctx, `PRAGMA cache_size`).Scan(&write); err != nil {
				t.Fatal(err)
			}
			if err := s.searchWrite.QueryRowContext(ctx, `PRAGMA cache_size`).Scan(&searchWrite); err != nil {
				t.Fatal(err)
			}
			if err := s.read.QueryRowContext(ctx, `PRAGMA cache_size`).Scan(&read); err != nil {
				t.Fatal(err)
			}
			// A negative cache_size is in KiB.
			if -write<<10 != tc.write || -searchWrite<<10 != tc.write || -read<<10 != tc.read || -searchRead<<10 != tc.read {
				t.Errorf("cache_size write %d KiB, search write %d KiB, read %d KiB, search read %d KiB; want %d and %d bytes",
					-write, -searchWrite, -read, -searchRead, tc.write, tc.read)
			}
		})
	}
}
