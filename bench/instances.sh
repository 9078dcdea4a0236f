#!/usr/bin/env bash
# What one more instance buys: /me (64 connections) and login (16) throughput
# and p99 through HAProxy with 1, 2 and 3 instances of the release binary
# (scripts/cluster, on the local PostgreSQL and Redis, rate limits off), wrk
# 10 s each. On one machine the instances, HAProxy, PostgreSQL and wrk share
# the same cores, so this measures the cost of the balancer and of more
# processes, not the gain of more machines.
# Usage: bench/instances.sh [MAX_INSTANCES]   (default 3; needs wrk)
set -euo pipefail
cd "$(dirname "$0")/.."
max="${1:-3}"
export CLUSTER_DIR="${CLUSTER_DIR:-target/bench-cluster}" AUTH_RATE_LIMITS=off RUST_LOG=warn
# A database of its own, new each run: its signing keys are sealed under the
# key-encryption key of this run's cluster folder.
database="portcullis_instances_bench"
psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null 2>&1
psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE $database" >/dev/null
rm -rf "$CLUSTER_DIR"
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$database"
port="${CLUSTER_PORT:-8080}"
lua="$(mktemp -d)"
trap 'scripts/cluster down >/dev/null 2>&1 || true; rm -rf "$lua"
  psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null 2>&1' EXIT
figures() { grep -E 'Requests/sec|^ +99%' | awk '/Requests/ {rps=$2} /99%/ {p99=$2} END {printf "%s/s, p99 %s", rps, p99}'; }
echo "| instances | /me at 64 | login at 16 |"
echo "|---|---|---|"
for n in $(seq 1 "$max"); do
  scripts/cluster up "$n" >/dev/null
  email="instances-$n-$RANDOM$RANDOM@example.com"
  token="$(python3 - "$port" "$email" <<'PY'
import json, sys, urllib.request
request = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/v1/auth/register",
                                 json.dumps({"email": sys.argv[2], "password": "Bench-pass-1234!"}).encode(),
                                 {"Content-Type": "application/json"})
print(json.load(urllib.request.urlopen(request))["access_token"])
PY
)"
  printf 'wrk.headers["Authorization"] = "Bearer %s"\n' "$token" >"$lua/me.lua"
  {
    echo 'wrk.method = "POST"'
    echo 'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"'
    printf 'wrk.body = "username=%s&password=Bench-pass-1234%%21"\n' "${email/@/%40}"
  } >"$lua/login.lua"
  me="$(wrk -t1 -c64 -d10s --latency -s "$lua/me.lua" "http://127.0.0.1:$port/v1/auth/me" | figures)"
  login="$(wrk -t1 -c16 -d10s --latency -s "$lua/login.lua" "http://127.0.0.1:$port/v1/auth/login" | figures)"
  echo "| $n | $me | $login |"
  scripts/cluster down >/dev/null
done
