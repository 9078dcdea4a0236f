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

# The fastapi-users comparator from PEERS_DIR (e.g. the workplace's shared peers folder).
bench-peer PEERS_DIR:
    bench/peer.sh {{PEERS_DIR}}

# Failure drills at full length (CI runs them with 3 trials each): one answer
# on every instance, three instances on the local PostgreSQL, through Redis and
# through LISTEN/NOTIFY, 200 trials per kind of change under background load.
drills:
    TEST_DATABASE_URL={{pg_url}} AUTH_REDIS_URL=${AUTH_REDIS_URL:-redis://127.0.0.1:6379} DRILL_TRIALS=200 \
      cargo test --release -p portcullis --test e2e broadcast -- --nocapture --test-threads 1
