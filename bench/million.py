#!/usr/bin/env python3
"""A million client addresses and a million principals in one instance's
in-process limiter and cache: what they cost in memory, and whether /me
notices.

Usage: million.py BINARY BACKEND OUTDIR   (BACKEND: sqlite or postgres)

Two servers run side by side, both with rate limits on behind a trusted proxy,
no Redis (the limiter in process) and the longest cache time (60 s):

- fresh: a new database with the benchmark's 128 users;
- loaded: a database of 1 000 000 users with one API key each, seeded by SQL
  with secrets this script knows, then sent 1 000 000 logins from as many
  client addresses (each a new per-address key, answered 422) and one /me
  with each of the 1 000 000 API keys from an address of its own (each a new
  principal in the per-principal limiter, a cache miss, a usage count and a
  first sighting from an address).

The limits are set so that a key once hit stays in the limiter for an hour
(`login` 1 000 per 3 600 000 s, `authenticated` 1 000 000 per 3 600 000 000 s:
one hit moves a key's time an hour on) while the measuring users never run
out, so the loaded server still holds every key the limiter's bound lets it
hold when /me is measured. Then /me by JWT at 32 connections on each server
in turn, BENCH_REPEAT times; the ratio of the medians of p99 is the figure
(target: at most 1.2), with the loaded server's RSS (target: under 200 MiB,
peak included) and what its /metrics says the limiter and caches hold.

Environment: as bench.py (BENCH_DURATION, BENCH_REPEAT, BENCH_PG_URL), plus
BENCH_MILLION (default 1000000: addresses, users, keys and principals),
BENCH_MILLION_PRINCIPALS (fewer principals than that), BENCH_MILLION_WRAPPER
(see below), BENCH_SERVER_ENV ("NAME=value ..." for both
servers).
BENCH_SMOKE=1: 20 000 of each, seconds per step. Writes OUTDIR/million-<backend>.json.
"""

import hashlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench as b  # noqa: E402
import large  # noqa: E402

N = 20_000 if b.SMOKE else int(os.environ.get("BENCH_MILLION", "1000000"))
# Principals sent (at most N; fewer for a quicker look under a profiler).
PRINCIPALS = min(N, int(os.environ.get("BENCH_MILLION_PRINCIPALS", str(N))))
LIMITS = "login=1000/3600000,authenticated=1000000/3600000000"
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
TARGET_P99_RATIO = 1.2
TARGET_RSS_MIB = 200


def base62(data, digits):
    """`data` as a big-endian number in exactly `digits` base62 digits."""
    number = int.from_bytes(data, "big")
    out = []
    for _ in range(digits):
        number, digit = divmod(number, 62)
        out.append(BASE62[digit])
    return "".join(reversed(out))


def api_key(g):
    """Seeded key `g`, in the service's format: `sk_live_`, 43 base62 digits
    of a 256-bit secret, 6 of the CRC-32 of what precedes them."""
    body = "sk_live_" + base62(hashlib.sha256(f"million-{g}".encode()).digest(), 43)
    return body + base62(zlib.crc32(body.encode()).to_bytes(4, "big"), 6)


def key_rows(p):
    """(key id, owner id, digest, key) of every seeded key."""
    for g in range(1, N + 1):
        key = api_key(g)
        user_ms = p["users_from"] + g * large.USER_STEP_MS
        yield (str(large.v7(user_ms, 2, g)), str(large.user_id(p, g)), hashlib.sha256(key.encode()).digest(), key)


def seed_keys(backend, url, sqlite_path, p, keys_file):
    """One API key per seeded user, with known secrets, written to `keys_file`."""
    with open(keys_file, "w") as out:
        if backend == "sqlite":
            db = sqlite3.connect(sqlite_path, isolation_level=None)
            db.execute("PRAGMA synchronous = OFF")
            db.execute("BEGIN")
            rows = []
            for key_id, user, digest, key in key_rows(p):
                out.write(key + "\n")
                rows.append((key_id, user, digest))
            db.executemany(
                "INSERT INTO api_keys (id, user_id, name, environment, key_digest, created_at, expires_at, "
                "revoked_at, last_used_at, usage_count) VALUES (?, ?, 'million', 'live', ?, "
                "strftime('%Y-%m-%d %H:%M:%S', 'now') || '+00:00', "
                "strftime('%Y-%m-%d %H:%M:%S', 'now', '+365 days') || '+00:00', NULL, NULL, 0)", rows)
            db.execute("COMMIT")
            db.execute("ANALYZE")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            db.close()
            return
        lines = []
        now = time.time()
        created = time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime(now))
        expires = time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime(now + 365 * 86_400))
        for key_id, user, digest, key in key_rows(p):
            out.write(key + "\n")
            lines.append(f"{key_id},{user},million,live,\\x{digest.hex()},{created},{expires},0\n")
    copy = ("\\copy api_keys (id, user_id, name, environment, key_digest, created_at, expires_at, usage_count) "
            "FROM STDIN WITH (FORMAT csv)")
    done = subprocess.run(["psql", url, "-q", "-v", "ON_ERROR_STOP=1", "-c", copy], input="".join(lines),
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"seeding keys failed: {done.stderr[-2000:]}")
    b.psql(url, "ANALYZE api_keys")


class Principals:
    """wrk runs of principals.lua that never repeat a key: each starts where
    the one before it stopped."""

    def __init__(self, server, workdir, run):
        self.server, self.workdir, self.run, self.sent = server, workdir, run, 0

    def go(self, duration, connections=32):
        pool = min(duration * 60_000, PRINCIPALS - self.sent)
        figures = b.wrk(self.server.base, "principals.lua", connections, duration, self.workdir, self.run,
                        extra_env={"BENCH_KEYS_START": str(self.sent), "BENCH_KEYS_POOL": str(pool)})
        self.sent += min(figures["requests"], pool)
        figures["repeated"] = max(0, figures["requests"] - pool)
        return figures


class RssWatch:
    """The server's RSS every half second while a load runs."""

    def __init__(self, server):
        self.server, self.samples, self.stopped = server, [], threading.Event()
        self.thread = threading.Thread(target=self.watch, daemon=True)
        self.thread.start()

    def watch(self):
        while not self.stopped.wait(0.5):
            self.samples.append(self.server.rss_kib())

    def stop(self):
        self.stopped.set()
        self.thread.join()
        return max(self.samples, default=self.server.rss_kib())


def gauges(server):
    """What the server's /metrics says its limiter and caches hold."""
    with urllib.request.urlopen(server.base + "/metrics", timeout=10) as response:
        text = response.read().decode()
    out = {}
    for name in ("portcullis_rate_limiter_keys", "portcullis_cache_entries"):
        for labels, value in re.findall(rf"^{name}(\{{[^}}]*\}})? (\S+)$", text, re.M):
            out[name + labels] = float(value)
    return out


def main():
    binary, backend, outdir = os.path.abspath(sys.argv[1]), sys.argv[2], sys.argv[3]
    os.makedirs(outdir, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix=f"portcullis-million-{backend}-")
    run = uuid.uuid4().hex[:8]
    results = {"backend": backend, "smoke": b.SMOKE, "addresses": N, "principals": PRINCIPALS, "limits": LIMITS}
    p = large.plan(int(time.time() * 1000), users=N, events=0)
    loaded_dir, fresh_dir = os.path.join(workdir, "loaded"), os.path.join(workdir, "fresh")
    os.makedirs(loaded_dir)
    os.makedirs(fresh_dir)
    url, sqlite_path, database = large.new_database(backend, loaded_dir, "million", run)
    env = {"AUTH_TRUSTED_PROXIES": "127.0.0.1", "AUTH_CACHE_TTL_MS": "60000"}
    # BENCH_SERVER_ENV="NAME=value ...": more environment for both servers.
    env.update(item.split("=", 1) for item in os.environ.get("BENCH_SERVER_ENV", "").split())
    servers = []
    try:
        # The schema first (any command that opens the database applies it).
        subprocess.run([binary, "create-admin", "--email", "admin@million.test", "--password", b.PASSWORD],
                       cwd=loaded_dir, check=True, capture_output=True,
                       env={"PATH": os.environ.get("PATH", ""), "DATABASE_URL": url,
                            "AUTH_KEY_ENCRYPTION_KEY": "bench-key-encryption-key-bench-key-encryption"})
        print(f"[{backend}] seeding {N} users and {N} API keys with known secrets", flush=True)
        started = time.perf_counter()
        (large.seed_postgres if backend == "postgres" else large.seed_sqlite)(
            url if backend == "postgres" else sqlite_path, p, keys=False)
        seed_keys(backend, url, sqlite_path, p, os.path.join(loaded_dir, "principals.txt"))
        results["seed_s"] = round(time.perf_counter() - started, 1)
        print(f"  seeded in {results['seed_s']} s", flush=True)

        # BENCH_MILLION_WRAPPER: a command the loaded server runs under (say
        # `heaptrack -o /tmp/million`), to see where its memory goes.
        wrapper = os.environ.get("BENCH_MILLION_WRAPPER", "").split() or None
        loaded = b.Server(binary, backend, loaded_dir, LIMITS, env, database_url=url, wrapper=wrapper)
        servers.append(loaded)
        fresh = b.Server(binary, backend, fresh_dir, LIMITS, env)
        servers.append(fresh)
        b.seed(loaded.base, loaded_dir, run, forwarded=True)
        b.seed(fresh.base, fresh_dir, run, forwarded=True)
        results["rss_kib_before"] = {"loaded": loaded.rss_kib(), "fresh": fresh.rss_kib()}

        print(f"[{backend}] {N} client addresses, then {N} principals, into the loaded server", flush=True)
        watch = RssWatch(loaded)
        flood = b.Flood(loaded, loaded_dir, run)
        rounds = []
        while flood.sent < N:
            rounds.append(flood.go(min(b.DURATION, max(2, (N - flood.sent) // 30_000 + 2))))
        results["addresses_load"] = {"sent": flood.sent, "seconds": round(sum(r["seconds"] for r in rounds), 1),
                                     "errors_other_than_422": sum(r["errors"] - r["errors_status"] for r in rounds)}
        principals = Principals(loaded, loaded_dir, run)
        rounds = []
        while principals.sent < PRINCIPALS:
            rounds.append(principals.go(min(b.DURATION, max(2, (PRINCIPALS - principals.sent) // 20_000 + 2))))
        results["principals_load"] = {
            "sent": principals.sent, "seconds": round(sum(r["seconds"] for r in rounds), 1),
            "rps": round(sum(r["requests"] for r in rounds) / max(sum(r["seconds"] for r in rounds), 0.001)),
            "p99_ms": max(r["p99_ms"] for r in rounds), "errors": sum(r["errors"] for r in rounds),
            "repeated": sum(r["repeated"] for r in rounds)}
        # The first uses from new addresses are written after the requests
        # (as audit events, by the usage flush): wait for that to finish, so
        # that /me is measured beside the structures, not beside the writes.
        started = time.perf_counter()
        b.quiet(loaded, limit_s=300)
        results["background_writes_s"] = round(time.perf_counter() - started, 1)
        results["rss_kib_max_during_load"] = watch.stop()
        results["held_after_load"] = gauges(loaded)
        print(f"  addresses: {results['addresses_load']}", flush=True)
        print(f"  principals: {results['principals_load']}", flush=True)
        print(f"  held: {results['held_after_load']}", flush=True)

        pairs = []
        for _ in range(b.REPEAT):
            pair = {}
            for name, server, folder in (("fresh", fresh, fresh_dir), ("loaded", loaded, loaded_dir)):
                b.quiet(server)
                pair[name] = b.measured(server, f"{name} me c32",
                                        lambda: b.wrk(server.base, "me.lua", 32, b.DURATION, folder, run))
            pairs.append(pair)
        me = {name: b.median_run([pair[name] for pair in pairs], "p99_ms") for name in ("fresh", "loaded")}
        results["me_32"] = me
        results["me_32_repetitions"] = pairs
        results["held_after_me"] = gauges(loaded)
        results["rss_kib_after"] = {"loaded": loaded.rss_kib(), "fresh": fresh.rss_kib()}
        results["peak_rss_kib"] = {"loaded": loaded.peak_rss_kib(), "fresh": fresh.peak_rss_kib()}
        ratio = me["loaded"]["p99_ms"] / me["fresh"]["p99_ms"]
        peak_mib = results["peak_rss_kib"]["loaded"] / 1024
        results["ratios"] = {"me_p99": round(ratio, 3),
                             "me_throughput": round(me["loaded"]["rps"] / me["fresh"]["rps"], 3)}
        results["targets"] = {"me_p99_ratio_at_most": TARGET_P99_RATIO, "peak_rss_mib_below": TARGET_RSS_MIB,
                              "met": ratio <= TARGET_P99_RATIO and peak_mib < TARGET_RSS_MIB
                              and results["principals_load"]["errors"] == 0}
        print(f"[{backend}] /me p99 loaded/fresh {ratio:.3f} (fresh {me['fresh']['p99_ms']} ms, loaded "
              f"{me['loaded']['p99_ms']} ms), throughput {results['ratios']['me_throughput']}; loaded RSS now "
              f"{results['rss_kib_after']['loaded'] / 1024:.1f} MiB, peak {peak_mib:.1f} MiB (fresh peak "
              f"{results['peak_rss_kib']['fresh'] / 1024:.1f} MiB); targets met: {results['targets']['met']}",
              flush=True)
    finally:
        for server in servers:
            server.stop()
        large.drop_database(database)
        subprocess.run(["rm", "-rf", workdir])
    with open(os.path.join(outdir, f"million-{backend}.json"), "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
