#!/bin/bash
# What each index of events and event_targets costs an insert, on PostgreSQL.
#
# usage: bench/pg-index-cost.sh SOURCE_DB [ROUNDS]
#
# SOURCE_DB is a database migrated by `trail migrate` and holding events
# (e.g. what a `trail serve` took from wrk for 10 s). Connection settings
# come from the PG* environment variables; the role must be a superuser
# (it reads its backend's CPU time from /proc through pg_read_file, so the
# server must run on this machine). For every variant — every index, and
# each one dropped in turn — it copies SOURCE_DB (CREATE DATABASE …
# TEMPLATE), then, rounds times in turn, re-inserts the events in groups of
# 30 events with their targets, one commit a group, merges the GIN pending
# list, and prints the backend's CPU µs and the WAL bytes per event.
# Report the lowest CPU and the median WAL of each variant: on a shared
# machine the lowest CPU is the least disturbed.
set -e
SRC=$1; ROUNDS=${2:-5}
export PGOPTIONS="-c client_min_messages=warning"
P="psql -X -q -v ON_ERROR_STOP=1"
VARS="none events_pkey events_id events_org_time events_action events_actor_id events_actor_name events_search events_schema_mismatch event_targets_pkey event_targets_type event_targets_id"
cols() { $P -d $SRC -Atc "SELECT string_agg(column_name, ', ' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_schema = 'public' AND table_name = '$1'"; }
EC=$(cols events); TC=$(cols event_targets)
$P -d $SRC -c "DROP TABLE IF EXISTS src, src_t;
CREATE TABLE src AS SELECT ((row_number() OVER (ORDER BY received_at, organization_id, seq)) - 1) / 30 AS b, e.* FROM events e;
CREATE INDEX ON src (b);
CREATE TABLE src_t AS SELECT s.b, t.* FROM event_targets t JOIN src s USING (organization_id, seq);
CREATE INDEX ON src_t (b);
ANALYZE src; ANALYZE src_t;
TRUNCATE events, event_targets;"
N=$($P -d $SRC -Atc "SELECT count(*) FROM src"); G=$($P -d $SRC -Atc "SELECT max(b) FROM src")
for v in $VARS; do
	$P -c "DROP DATABASE IF EXISTS ix_$v" -c "CREATE DATABASE ix_$v TEMPLATE $SRC"
	case $v in
	none) ;;
	*_pkey) $P -d ix_$v -c "ALTER TABLE ${v%_pkey} DROP CONSTRAINT $v" ;;
	*) $P -d ix_$v -c "DROP INDEX $v" ;;
	esac
done
CPU="(split_part(split_part(pg_read_file('/proc/self/stat'), ') ', 2), ' ', 12)::bigint + split_part(split_part(pg_read_file('/proc/self/stat'), ') ', 2), ' ', 13)::bigint)"
for r in $(seq $ROUNDS); do for v in $VARS; do
	$P -d ix_$v -At <<SQL
TRUNCATE events, event_targets;
CHECKPOINT;
SELECT $CPU AS c0, pg_current_wal_lsn() AS w0 \gset
DO \$\$ BEGIN FOR i IN 0..$G LOOP
	INSERT INTO events ($EC) SELECT $EC FROM src WHERE b = i;
	INSERT INTO event_targets ($TC) SELECT $TC FROM src_t WHERE b = i;
	COMMIT;
END LOOP; END \$\$;
SELECT coalesce(sum(gin_clean_pending_list(i.inhrelid::regclass)), 0) FROM pg_inherits i
	JOIN pg_class c ON c.oid = i.inhparent WHERE c.relname = 'events_search' \g /dev/null
SELECT '$v', ($CPU - :c0) * 10000 / $N AS cpu_us_per_event, pg_wal_lsn_diff(pg_current_wal_lsn(), :'w0')::bigint / $N AS wal_bytes_per_event;
SQL
done; done
for v in $VARS; do $P -c "DROP DATABASE ix_$v"; done
