package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
)

// TestCacheBudget checks that WithCache divides its budget among the
// connections' page caches, counting each page as the memory it takes.
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
		{name: "backlog memory too small", opts: []Option{WithBacklogMemory(1000)}, wantErr: true},
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
			// A positive cache_size is in pages, each counted as the
			// pageMemory it occupies.
			wantWrite, wantRead := tc.write/pageMemory, tc.read/pageMemory
			if write != wantWrite || searchWrite != wantWrite || read != wantRead || searchRead != wantRead {
				t.Errorf("cache_size write %d pages, search write %d, read %d, search read %d; want %d and %d bytes of %d-byte pages",
					write, searchWrite, read, searchRead, tc.write, tc.read, pageMemory)
			}
			// pageMemory assumes SQLite's default page of 4 KiB.
			for _, db := range []*sql.DB{s.write, s.searchWrite} {
				var size int64
				if err := db.QueryRowContext(ctx, `PRAGMA page_size`).Scan(&size); err != nil {
					t.Fatal(err)
				}
				if size != 4096 {
					t.Errorf("page_size %d, want the 4096 bytes pageMemory is for", size)
				}
			}
		})
	}
}
