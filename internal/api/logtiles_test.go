package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/trailaudit/trail/internal/access"
)

// bearerTransport adds an API key to every request.
type bearerTransport struct {
	key  string
	next http.RoundTripper
}

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return b.next.RoundTrip(r)
}

// TestLogTilesWithTorchwood: an independent tlog-tiles client (torchwood)
// fetches an organization's tree through the tiles endpoints and verifies
// every entry against the signed checkpoint.
func TestLogTilesWithTorchwood(t *testing.T) {
	e := newLogEnv(t, nil)
	org := e.org("Acme")
	e.send(org, 300) // with the organization's creation: more than one full tile
	ck := e.integrated(org)
	reader, _ := e.key("acme reader", []string{access.ScopeEventsRead}, org)
	hs := httptest.NewServer(e.srv)
	defer hs.Close()

	hc := &http.Client{Transport: bearerTransport{key: reader, next: http.DefaultTransport}}
	tf, err := torchwood.NewTileFetcher(hs.URL+"/v1/organizations/"+org+"/log/tiles/", torchwood.WithHTTPClient(hc))
	if err != nil {
		t.Fatal(err)
	}
	cli, err := torchwood.NewClient(tf)
	if err != nil {
		t.Fatal(err)
	}
	records := e.do("GET", "/v1/organizations/"+org+"/log/records", reader, "").Body.Bytes()
	lines := bytes.Split(bytes.TrimSuffix(records, []byte("\n")), []byte("\n"))
	// Entries may stop before a partial tile; resuming reads the rest.
	n := int64(0)
	for resumed := 0; n < ck.Size && resumed < 3; resumed++ {
		for i, entry := range cli.Entries(context.Background(), tlog.Tree{N: ck.Size, Hash: ck.Hash}, n) {
			if i != n {
				t.Fatalf("entry %d, want %d", i, n)
			}
			if !bytes.Equal(entry, lines[i]) {
				t.Fatalf("entry %d is not record %d:\n%s\n%s", i, i, entry, lines[i])
			}
			n++
		}
		if err := cli.Err(); err != nil {
			t.Fatalf("torchwood: %v", err)
		}
	}
	if n != ck.Size {
		t.Fatalf("%d entries, want %d", n, ck.Size)
	}
	cp, err := tf.ReadEndpoint(context.Background(), "checkpoint")
	if err != nil || !bytes.HasPrefix(cp, fmt.Appendf(nil, "test.example/trail/%s\n%d\n", org, ck.Size)) {
		t.Fatalf("checkpoint: %v %q", err, cp)
	}
}

func TestLogTilesErrors(t *testing.T) {
	e := newLogEnv(t, nil)
	org := e.org("Acme")
	other := e.org("Other")
	e.send(org, 4)
	ck := e.integrated(org) // 5 records: the creation and 4 events
	restricted, _ := e.key("other reader", []string{access.ScopeEventsRead}, other)
	reader, _ := e.key("acme reader", []string{access.ScopeEventsRead}, org)
	base := "/v1/organizations/" + org + "/log/tiles/"
	tests := []struct {
		name, secret, path string
		status             int
		size               int // body bytes when 200
	}{
		{"partial hash tile", reader, base + "tile/0/000.p/5", 200, 5 * 32},
		{"narrower partial hash tile", reader, base + "tile/0/000.p/2", 200, 2 * 32},
		{"partial entry bundle", reader, base + "tile/entries/000.p/5", 200, -1},
		{"checkpoint", reader, base + "checkpoint", 200, -1},
		{"beyond the tree", reader, base + "tile/0/000.p/6", 404, 0},
		{"full tile of a small tree", reader, base + "tile/0/000", 404, 0},
		{"level above the tree", reader, base + "tile/1/000.p/1", 404, 0},
		{"malformed path", reader, base + "tile/zero/000", 400, 0},
		{"zero width", reader, base + "tile/0/000.p/0", 400, 0},
		{"no key", "", base + "tile/0/000.p/5", 401, 0},
		{"another organization's key", restricted, base + "tile/0/000.p/5", 404, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.do("GET", tt.path, tt.secret, "")
			if res.Code != tt.status {
				t.Fatalf("GET %s = %d %s, want %d", tt.path, res.Code, res.Body, tt.status)
			}
			if tt.status != 200 {
				var body errorBody
				if err := json.Unmarshal(res.Body.Bytes(), &body); err != nil || body.Message == "" {
					t.Fatalf("error body %q is not a JSON error with a message", res.Body)
				}
				return
			}
			if tt.size >= 0 && res.Body.Len() != tt.size {
				t.Errorf("%d bytes, want %d", res.Body.Len(), tt.size)
			}
		})
	}
	// The level-0 hashes are the records' leaf hashes.
	tile := e.do("GET", base+fmt.Sprintf("tile/0/000.p/%d", ck.Size), reader, "").Body.Bytes()
	bundle := e.do("GET", base+fmt.Sprintf("tile/entries/000.p/%d", ck.Size), reader, "").Body.Bytes()
	for i := range ck.Size {
		entry, rest, err := torchwood.ReadTileEntry(bundle)
		if err != nil {
			t.Fatal(err)
		}
		bundle = rest
		if h := tlog.RecordHash(entry); !bytes.Equal(h[:], tile[i*32:i*32+32]) {
			t.Fatalf("entry %d does not hash to the tile's leaf hash", i)
		}
	}
}
