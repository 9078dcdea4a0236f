# Convenience recipes; each is a plain cargo or shell command underneath.

pg_url := "postgres://postgres@127.0.0.1:5432/test"

# Serve on 127.0.0.1:8000 with the embedded SQLite database.
run:
    cargo run --release

# Every test (PostgreSQL ones are skipped without TEST_DATABASE_URL).
test:
    cargo test --workspace

# Every test, PostgreSQL included, against the local server.
test-pg:
    TEST_DATABASE_URL={{pg_url}} cargo test --workspace

# Formatting and clippy as CI checks them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Licenses, banned crates and sources.
deny:
    cargo deny check licenses bans sources

# What CI runs.
ci:
    bash .ci/run

# Serve on PostgreSQL.
run-pg:
    DATABASE_URL={{pg_url}} cargo run --release

# schemathesis against a running server (installs it from PyPI if missing).
fuzz:
    scripts/fuzz

# The benchmark (needs wrk): SQLite and PostgreSQL, results in bench/results/.
bench:
    bench/run.sh

# The large-data benchmark (needs wrk and psql): 1 000 000 users and API keys and
# 10 000 000 audit events against a fresh database, on SQLite and PostgreSQL,
# results in bench/results/<date>-large/. The whole prune takes about 35 minutes
# a backend; BENCH_LARGE_PRUNE_S=300 watches only its first five.
bench-large:
    cargo build --release -p portcullis
    python3 bench/large.py target/release/portcullis sqlite bench/results/$(date +%F)-large
    python3 bench/large.py target/release/portcullis postgres bench/results/$(date +%F)-large

# A million client addresses and a million principals in one instance's in-process
# limiter and cache (needs wrk): memory, and /me beside a fresh instance, on SQLite and
# PostgreSQL; results in bench/results/<date>-million/.
bench-million:
    cargo build --release -p portcullis
    python3 bench/million.py target/release/portcullis sqlite bench/results/$(date +%F)-million
    python3 bench/million.py target/release/portcullis postgres bench/results/$(date +%F)-million

# The fastapi-users comparator from PEERS_DIR (e.g. the workplace's shared peers folder).
bench-peer PEERS_DIR:
    bench/peer.sh {{PEERS_DIR}}

# N instances on the local PostgreSQL and Redis behind HAProxy on 127.0.0.1:8080
# (instances on 8081...; state and logs in target/cluster). Stop with `just cluster-stop`.
cluster N="3":
    scripts/cluster up {{N}}

cluster-stop:
    scripts/cluster down

# The seven failure drills at full length (release build, about 40 minutes:
# 200 trials per revocation, a 30-minute soak), then the broadcast drill of the
# e2e suite with 200 trials per change. CI runs both short.
drills:
    cargo build --release -p portcullis
    python3 tests/drills/drills.py
    TEST_DATABASE_URL={{pg_url}} AUTH_REDIS_URL=${AUTH_REDIS_URL:-redis://127.0.0.1:6379} DRILL_TRIALS=200 \
      cargo test --release -p portcullis --test e2e broadcast -- --nocapture --test-threads 1
