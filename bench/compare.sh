#!/usr/bin/env bash
# Measures Trail's ingest against its baselines (naive and bare SQLite and
# PostgreSQL) on this machine in one run and writes docs/PERFORMANCE.md and
# docs/performance.svg. Needs Go and PostgreSQL's server binaries (as
# ./scripts/test installs them). Extra flags go to the program, e.g.
#   bench/compare.sh -duration 5s -runs 1 -concurrency 1,16
set -euo pipefail
cd "$(dirname "$0")/.."
exec go run ./bench/compare "$@"
