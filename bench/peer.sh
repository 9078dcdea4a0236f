#!/usr/bin/env bash
# The comparator: the fastapi-users reference app and its wrk harness, run on
# this machine with our argon2 parameters (m=19456 KiB, t=2, p=1) and 2 workers.
# Usage: bench/peer.sh PEERS_DIR [SCENARIOS]   (PEERS_DIR holds fastapi/ and load/;
# it is not part of this repository). Writes bench/results/peer-<date>.json,
# (the harness's raw figures), which `PEER_RESULTS=... bench/run.sh` folds into the report.
set -euo pipefail
[ $# -ge 1 ] || { sed -n '2,7p' "$0"; exit 2; }
cd "$(dirname "$0")/.."
peers="$(mktemp -d)"
cp -r "$1"/. "$peers"
port=8002
(
  cd "$peers/fastapi"
  python3 -m venv .venv && .venv/bin/pip install --quiet -r requirements.txt
  PEER_ARGON2=2,19456,1 ./serve.sh 2 "$port" >/dev/null
)
trap 'kill "$(cat "$peers/fastapi/uvicorn-w2.pid")" 2>/dev/null || true; rm -rf "$peers"' EXIT
SCENARIOS="${2:-S1,S2,S3,S4}" "$peers/load/run.sh" "http://127.0.0.1:$port" "$peers/out"
mkdir -p bench/results
cp "$peers/out/results.json" "bench/results/peer-$(date -u +%Y-%m-%d).json"
