#!/bin/bash
# Trail's ingest on PostgreSQL over HTTP, with one or more replicas, and
# what it costs the database per event.
#
# usage: bench/pg-ingest.sh TRAIL_BIN REPLICAS CLIENTS CONCURRENCY ORGS [SECONDS] [BATCH]
#
# Creates a fresh database (connection settings from the PG* environment
# variables; the server must run on this machine, since its backends' CPU
# is read from /proc), runs `trail migrate`, starts REPLICAS `trail serve`
# on it (sharing the first one's master and signing keys), then CLIENTS
# `trail bench ingest` processes at once, each with CONCURRENCY clients and
# ORGS organizations of its own, client i against replica i mod REPLICAS;
# BATCH > 0 sends batches of that many events. It prints the events/s of all
# clients together, their p99s, events per group commit (from the replicas'
# trail_ingest_batch_events), and per event: the replicas' CPU, the CPU of
# this database's backends, and the WAL written (pg_current_wal_lsn, so the
# whole server's: an upper bound when other databases write). The database
# is dropped at the end. Examples (alternate the two of a pair, A B A B …):
#
#	bench/pg-ingest.sh ./trail 1 1 64 1 8      # one organization
#	bench/pg-ingest.sh ./trail 1 1 64 100 8    # the same load over 100
#	bench/pg-ingest.sh ./trail 1 3 21 4 8      # one replica, three load clients
#	bench/pg-ingest.sh ./trail 3 3 21 4 8      # three replicas, one client each
set -e
BIN=$1; R=$2; K=$3; C=$4; O=$5; DUR=${6:-8}; BATCH=${7:-0}
P="psql -X -q -v ON_ERROR_STOP=1 -d postgres"
DB=trail_ingest_$RANDOM$RANDOM
$P -c "CREATE DATABASE $DB"
DSN="postgres:///$DB"
W=$(mktemp -d)
KEY=sk_$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
PIDS=(); PORTS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	$P -c "DROP DATABASE $DB WITH (FORCE)" || true
	rm -rf "$W"
}
trap cleanup EXIT
"$BIN" migrate --database "$DSN" >/dev/null
for i in $(seq 0 $((R - 1))); do
	PORT=$((19000 + RANDOM % 800)); PORTS+=($PORT); mkdir -p "$W/d$i"
	KEYS=(); [ "$i" -gt 0 ] && KEYS=(--master-key-file "$W/d0/master.key" --signing-key-file "$W/d0/signing.key")
	TRAIL_BOOTSTRAP_KEY=$KEY "$BIN" serve --data "$W/d$i" --database "$DSN" --log-origin bench.trail.example/audit \
		--listen 127.0.0.1:$PORT --metrics-listen 127.0.0.1:$((PORT + 1000)) --shutdown-delay 0 "${KEYS[@]}" >"$W/serve$i.log" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 1 300); do curl -sf http://127.0.0.1:$PORT/readyz >/dev/null 2>&1 && break; sleep 0.1; done
done
ticks() { local s=0; for p in "$@"; do [ -r /proc/$p/stat ] && s=$((s + $(awk '{print $14 + $15}' /proc/$p/stat))); done; echo $s; }
backends() { $P -Atc "SELECT pid FROM pg_stat_activity WHERE datname = '$DB'"; }
declare -A B0
for p in $(backends); do B0[$p]=$(ticks $p); done
T0=$(ticks "${PIDS[@]}"); L0=$($P -Atc "SELECT pg_current_wal_lsn()")
CP=()
for k in $(seq 0 $((K - 1))); do
	PORT=${PORTS[$((k % R))]}
	"$BIN" bench ingest --server http://127.0.0.1:$PORT --api-key "$KEY" --json --concurrency "$C" --orgs "$O" \
		--duration "${DUR}s" --batch "$BATCH" >"$W/c$k.json" &
	CP+=($!)
done
for p in "${CP[@]}"; do wait "$p"; done
T1=$(ticks "${PIDS[@]}"); L1=$($P -Atc "SELECT pg_current_wal_lsn()")
PG=0; for p in $(backends); do PG=$((PG + $(ticks $p) - ${B0[$p]:-0})); done
WAL=$($P -Atc "SELECT pg_wal_lsn_diff('$L1', '$L0')::bigint")
for p in "${PORTS[@]}"; do curl -s http://127.0.0.1:$((p + 1000))/metrics; done |
	awk '/^trail_ingest_batch_events_(sum|count)/ {a[$1] += $2} END {print a["trail_ingest_batch_events_sum"], a["trail_ingest_batch_events_count"]}' >"$W/commits"
python3 - "$W" "$K" "$((T1 - T0))" "$PG" "$WAL" <<'EOF'
import json, sys
w, k, trail, pg, wal = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rs = [json.load(open(f"{w}/c{i}.json")) for i in range(k)]
ev = sum(r["events"] for r in rs) or 1
s, n = (float(x) for x in open(f"{w}/commits").read().split())
tick = 10000  # µs per clock tick (100 Hz)
print(f"events/s={sum(r['events_per_second'] for r in rs):.0f} p99_ms={[r['latency']['p99_ms'] for r in rs]} "
      f"errors={sum(r['errors'] for r in rs)} events/commit={s / max(n, 1):.1f} "
      f"trail_cpu_us/event={trail * tick / ev:.0f} pg_cpu_us/event={pg * tick / ev:.0f} wal_bytes/event={wal / ev:.0f}")
EOF
