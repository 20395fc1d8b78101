#!/usr/bin/env bash
# The control plane's load benchmark: Polling and EncoderClaim throughput and latency,
# measured by wrk (a real HTTP load generator) against a release psm-controlplane.
#
#   psm-server/bench/run.sh sqlite      # or: postgres
#
# Env: PSM_BENCH_SECONDS (15), PSM_BENCH_CONNECTIONS (64), PSM_BENCH_THREADS (2),
#      PSM_BENCH_ENDED (claim queue size, 150000), PSM_TEST_DATABASE_URL (PostgreSQL).
# Needs: wrk (apt-get install wrk), python3, a Rust toolchain; PostgreSQL for `postgres`.
set -euo pipefail

backend="${1:-sqlite}"
secs="${PSM_BENCH_SECONDS:-15}"
conns="${PSM_BENCH_CONNECTIONS:-64}"
threads="${PSM_BENCH_THREADS:-2}"
ended="${PSM_BENCH_ENDED:-150000}"
pg_url="${PSM_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }

(cd "$root" && cargo build --release -q -p psm-examples --bin psm-controlplane \
  && cargo build --release -q -p psm-server --example bench_seed)

data="$(mktemp -d)"
db=()
schema=""
if [[ "$backend" == postgres ]]; then
  schema="psm_bench_$$"
  db=(--database "$pg_url" --schema "$schema")
fi
pid=""
cleanup() {
  [[ -n "$pid" ]] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  [[ -n "$schema" ]] && psql -q "$pg_url" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  rm -rf "$data"
}
trap cleanup EXIT

echo "== seeding 1000 connected and $ended ended sessions ($backend)"
"$target/release/examples/bench_seed" --data "$data" "${db[@]}" --connected 1000 --ended "$ended" \
  --ids "$data/ids" --engine-polling "$secs"

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
RUST_LOG=warn "$target/release/psm-controlplane" --listen "127.0.0.1:$port" --data "$data" "${db[@]}" \
  --sweep-interval 3600 --connected-stale-after 3600 >"$data/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.1
done

echo "== Polling: wrk -t$threads -c$conns -d${secs}s ($backend)"
PSM_BENCH_IDS="$data/ids" PSM_BENCH_KEY="$(cat "$data/keys/gateway.key")" \
  wrk -t"$threads" -c"$conns" -d"${secs}s" --latency -s "$here/polling.lua" "http://127.0.0.1:$port"

echo "== EncoderClaim: wrk -t$threads -c$conns -d${secs}s ($backend)"
PSM_BENCH_KEY="$(cat "$data/keys/encoder.key")" \
  wrk -t"$threads" -c"$conns" -d"${secs}s" --latency -s "$here/claim.lua" "http://127.0.0.1:$port"

# Every claim must have found a session: the queue may not have run dry.
if [[ "$backend" == postgres ]]; then
  left="$(psql -tA "$pg_url" -c "SELECT count(*) FROM $schema.sessions WHERE stage = 'Ended'")"
  claimed="$(psql -tA "$pg_url" -c "SELECT count(*) FROM $schema.sessions WHERE stage = 'Encoding'")"
else
  read -r left claimed < <(python3 - "$data/psm.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
n = lambda s: c.execute("SELECT count(*) FROM sessions WHERE stage = ?", (s,)).fetchone()[0]
print(n("Ended"), n("Encoding"))
PY
)
fi
echo "== sessions claimed: $claimed; still queued: $left"
[[ "$left" -gt 0 ]] || echo "WARNING: the claim queue ran dry; raise PSM_BENCH_ENDED" >&2
if grep -q ' ERROR ' "$data/server.log"; then grep ' ERROR ' "$data/server.log" | head >&2; fi
