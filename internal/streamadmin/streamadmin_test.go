package streamadmin_test

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/keyring"
	"github.com/trailaudit/trail/internal/pgtest"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/store/postgres"
	"github.com/trailaudit/trail/internal/store/sqlite"
	"github.com/trailaudit/trail/internal/stream"
	"github.com/trailaudit/trail/internal/streamadmin"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// backends are the real stores the manager is checked on.
var backends = []struct {
	name string
	open func(t *testing.T) store.Backend
}{
	{"sqlite", func(t *testing.T) store.Backend {
		s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "trail.db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
	{"postgres", func(t *testing.T) store.Backend {
		s, err := postgres.Open(t.Context(), pgtest.New(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
}

const webhook = `{"url":"https://siem.example.com/hook","secret":"0123456789abcdef0123"}`

func TestCreate(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			st := b.open(t)
			now := time.Now().UTC().Truncate(time.Millisecond)
			for _, org := range []string{"org_a", "org_b"} {
				if err := st.CreateOrganization(t.Context(), store.Organization{ID: org, Name: org, CreatedAt: now, UpdatedAt: now}); err != nil {
					t.Fatal(err)
				}
			}
			keys, err := keyring.Generate()
			if err != nil {
				t.Fatal(err)
			}
			woken := 0
			m := streamadmin.New(streamadmin.Config{Store: st, Log: st, Records: st, Wake: func() { woken++ },
				Codec: stream.NewCodec(stream.Policy{}, keys.Sealer(stream.SealPurpose))})
			for _, tt := range []struct {
				name, typ, stName, start, config string
				fields                           []string // the fields refused; none: created
			}{
				{"valid", "webhook", "SIEM", "now", webhook, nil},
				{"name from the type", "webhook", "", "beginning", webhook, nil},
				{"control character in the name", "webhook", "a\x00b", "now", webhook, []string{"name"}},
				{"bad start", "webhook", "SIEM", "yesterday", webhook, []string{"start"}},
				{"name and start", "webhook", "a\nb", "later", webhook, []string{"name", "start"}},
			} {
				t.Run(tt.name, func(t *testing.T) {
					before := woken
					got, err := m.Create(t.Context(), "org_a", tt.typ, tt.stName, tt.start, []byte(tt.config))
					var ce *stream.ConfigError
					if tt.fields != nil {
						var fields []string
						if errors.As(err, &ce) {
							for _, fe := range ce.Errors {
								fields = append(fields, fe.Field)
							}
						}
						if !slices.Equal(fields, tt.fields) || woken != before {
							t.Errorf("Create = %v (fields %v, woken %d times); want fields %v refused and no wake-up", err, fields, woken-before, tt.fields)
						}
						return
					}
					if err != nil {
						t.Fatalf("Create: %v", err)
					}
					want := tt.stName
					if want == "" {
						want = tt.typ
					}
					if got.Name != want || got.State != store.StreamActive || woken != before+1 {
						t.Errorf("Create = %+v (woken %d times); want an active stream named %q and one wake-up", got, woken-before, want)
					}
					status, err := m.Get(t.Context(), "org_a", got.ID)
					if err != nil || status.ID != got.ID || !slices.Equal(status.SecretNames, []string{"secret"}) || status.Unreadable {
						t.Errorf("Get = %+v, %v; want the stream with its secret named", status, err)
					}
					if _, err := m.Get(t.Context(), "org_b", got.ID); !errors.Is(err, store.ErrNotFound) {
						t.Errorf("Get from another organization = %v, want store.ErrNotFound", err)
					}
				})
			}
		})
	}
}
