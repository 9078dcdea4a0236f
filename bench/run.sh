#!/usr/bin/env bash
# The benchmark: builds the release binary, measures argon2 on one core (the
# login limit), runs every scenario on SQLite and on PostgreSQL with wrk, and
# writes bench/results/<date>-<backend>.json and bench/results/<date>.md.
# Needs wrk (apt-get install -y wrk), python3 and, for PostgreSQL, psql and a
# server at BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres).
# BACKENDS="sqlite" limits the run; BENCH_SMOKE=1 runs each scenario for seconds.
# Peer figures (bench/peer.sh) are folded in when PEER_RESULTS points at them.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 3; }

cargo build --release -p portcullis
cargo build --release -p portcullis-crypto --example argon2_verify
run="$(mktemp -d)"
trap 'rm -rf "$run"' EXIT
date="${BENCH_NAME:-$(date -u +%Y-%m-%d)}"   # BENCH_NAME names the results of a second run on one day

rounds=40; [ "${BENCH_SMOKE:-}" = 1 ] && rounds=3
target/release/examples/argon2_verify "$rounds" > "$run/argon2.json"
cat "$run/argon2.json"
# Each backend times argon2 again around each slice of its S1 at 16: its limit.
export BENCH_ARGON2_BIN="$PWD/target/release/examples/argon2_verify"
for backend in ${BACKENDS:-sqlite postgres}; do
  python3 bench/bench.py target/release/portcullis "$backend" "$run"
done
if [ -n "${PEER_RESULTS:-}" ] && [ -f "$PEER_RESULTS" ]; then
  mkdir -p "$run/peer" && cp "$PEER_RESULTS" "$run/peer/results.json"
fi
out="bench/results"
[ "${BENCH_SMOKE:-}" = 1 ] && out="$run/results"
python3 bench/report.py "$run" "$out" "$date"
