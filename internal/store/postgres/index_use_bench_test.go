package postgres

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/trailaudit/trail/internal/store"
)

type explainTracer struct{ sqls *[]tracedQuery }
type tracedQuery struct {
	sql  string
	args []any
}

func (c explainTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.Contains(d.SQL, "FROM events") || strings.Contains(d.SQL, "event_targets") {
		*c.sqls = append(*c.sqls, tracedQuery{d.SQL, d.Args})
	}
	return ctx
}
func (c explainTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

var (
	partitionIndex = regexp.MustCompile(`^(events|event_targets)_(y\d{4}m\d{2}|default)_(organization_id_)?`)
	idxRe          = regexp.MustCompile(`(?:Scan(?: Backward)? using|Bitmap Index Scan on) (\w+)`)
)

// BenchmarkFirstPagesByIndex shows which indexes each kind of first page
// uses and what it costs without some of them (docs/PERFORMANCE.md,
// "PostgreSQL: which indexes earn their keep"), on a copy of a database
// seeded by `trail bench query --seed` (it drops indexes inside
// transactions it rolls back, but use a copy):
//
//	TRAIL_INDEX_DATABASE=postgres://…/copy TRAIL_INDEX_ORG=org_… [TRAIL_INDEX_DROP=event_targets_id,…] \
//	  go test ./internal/store/postgres -run '^$' -bench FirstPagesByIndex -benchtime 1x -v
//
// For each kind it logs, per statement SearchEvents issued, the best of
// five EXPLAIN ANALYZE runs: time, indexes used, buffers. With
// TRAIL_INDEX_TIME=1 it logs p50/p95/p99 of 60 first pages instead.
func BenchmarkFirstPagesByIndex(b *testing.B) {
	t := b
	dsn := os.Getenv("TRAIL_INDEX_DATABASE")
	if dsn == "" {
		b.Skip("TRAIL_INDEX_DATABASE is not set")
	}
	ctx := context.Background()
	var sqls []tracedQuery
	cfg, _ := pgxpool.ParseConfig(dsn)
	cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
	cfg.ConnConfig.Tracer = explainTracer{&sqls}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &Store{pool: pool}
	org := os.Getenv("TRAIL_INDEX_ORG")
	var actor, name, ttype, tid string
	pool.QueryRow(ctx, `SELECT actor_id, actor_name FROM events WHERE organization_id=$1 ORDER BY occurred_at DESC LIMIT 1 OFFSET 7`, org).Scan(&actor, &name)
	pool.QueryRow(ctx, `SELECT target_type, target_id FROM event_targets WHERE organization_id=$1 AND target_type='team' ORDER BY occurred_at DESC LIMIT 1`, org).Scan(&ttype, &tid)
	var did string
	pool.QueryRow(ctx, `SELECT target_id FROM event_targets WHERE organization_id=$1 AND target_type='document' ORDER BY occurred_at DESC LIMIT 1`, org).Scan(&did)
	t.Logf("actor %s name %q target %s/%s doc %s", actor, name, ttype, tid, did)
	drop := os.Getenv("TRAIL_INDEX_DROP")
	kinds := []struct {
		name string
		q    store.EventQuery
	}{
		{"newest", store.EventQuery{}},
		{"action", store.EventQuery{Actions: []string{"user.signed_in"}}},
		{"action_prefix", store.EventQuery{ActionPrefixes: []string{"user."}}},
		{"actor_id", store.EventQuery{ActorID: actor}},
		{"actor_name", store.EventQuery{ActorName: name}},
		{"actor_id_action", store.EventQuery{ActorID: actor, Actions: []string{"user.signed_in"}}},
		{"target", store.EventQuery{TargetType: ttype, TargetID: tid}},
		{"target_id", store.EventQuery{TargetID: tid}},
		{"target_id_doc", store.EventQuery{TargetID: did}},
		{"target_type", store.EventQuery{TargetType: "team"}},
		{"target_type_rare", store.EventQuery{TargetType: "organization"}},
		{"target_type_actor", store.EventQuery{TargetType: "team", ActorID: actor}},
		{"text", store.EventQuery{Text: "user_000123"}},
		{"range", store.EventQuery{From: time.Now().Add(-2 * time.Hour), To: time.Now().Add(-time.Hour)}},
		{"schema_mismatch", store.EventQuery{SchemaMismatch: true}},
	}
	for _, k := range kinds {
		sqls = sqls[:0]
		q := k.q
		q.OrganizationID, q.Limit = org, 50
		if _, err := s.SearchEvents(ctx, q); err != nil {
			t.Fatal(k.name, err)
		}
		caps := append([]tracedQuery(nil), sqls...)
		if os.Getenv("TRAIL_INDEX_TIME") != "" {
			var ds []time.Duration
			for range 60 {
				t0 := time.Now()
				if _, err := s.SearchEvents(ctx, q); err != nil {
					t.Fatal(err)
				}
				ds = append(ds, time.Since(t0))
			}
			sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
			pc := func(f float64) float64 { return float64(ds[int(f*float64(len(ds)-1))].Microseconds()) / 1000 }
			t.Logf("TIME %-18s p50 %.2f p95 %.2f p99 %.2f ms", k.name, pc(0.5), pc(0.95), pc(0.99))
			continue
		}
		var parts []string
		for _, c := range caps {
			tx, err := pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if drop != "" {
				for _, d := range strings.Split(drop, ",") {
					stmt := "DROP INDEX " + d
					if strings.HasSuffix(d, "_pkey") {
						stmt = "ALTER TABLE " + strings.TrimSuffix(d, "_pkey") + " DROP CONSTRAINT " + d
					}
					if _, err := tx.Exec(ctx, stmt); err != nil {
						t.Fatal(err)
					}
				}
			}
			var best float64 = 1e9
			var used map[string]bool
			var bufs string
			for range 5 {
				rows, err := tx.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS, FORMAT TEXT) "+c.sql, c.args...)
				if err != nil {
					t.Fatal(k.name, err, c.sql)
				}
				lines, _ := pgx.CollectRows(rows, pgx.RowTo[string])
				u := map[string]bool{}
				var ms float64
				for _, l := range lines {
					for _, m := range idxRe.FindAllStringSubmatch(l, -1) {
						u[partitionIndex.ReplaceAllString(m[1], "$1:")] = true
					}
					if strings.HasPrefix(strings.TrimSpace(l), "Execution Time:") {
						fmt.Sscanf(strings.TrimSpace(l), "Execution Time: %f ms", &ms)
					}
				}
				if len(lines) > 1 && strings.Contains(lines[1], "Buffers") {
					bufs = strings.TrimSpace(lines[1])
				}
				for _, l := range lines {
					if strings.Contains(l, "Buffers:") {
						bufs = strings.TrimSpace(l)
						break
					}
				}
				if ms < best {
					best, used = ms, u
				}
			}
			tx.Rollback(ctx)
			var names []string
			for n := range used {
				names = append(names, n)
			}
			sort.Strings(names)
			parts = append(parts, fmt.Sprintf("%.2fms[%s]{%s}", best, strings.Join(names, " "), bufs))
		}
		t.Logf("%-18s %s", k.name, strings.Join(parts, " + "))
	}
}
