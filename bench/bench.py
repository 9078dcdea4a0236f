#!/usr/bin/env python3
"""Runs Portcullis's benchmark scenarios against a release binary with wrk.

Usage: bench.py BINARY BACKEND OUTDIR   (BACKEND: sqlite or postgres)
Environment: BENCH_DURATION (s per scenario, default 15), BENCH_LOGIN_DURATION
(default 30), BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres),
BENCH_PG_SSLMODE (default disable: loopback; require measures TLS's cost),
BENCH_SMOKE=1 (a few seconds each, for CI), BENCH_ARGON2_BIN (the argon2_verify
example: S1 at 16 then runs in BENCH_LOGIN_SEGMENTS slices, default 6, with the
login limit timed before the first and after each, so the limit follows the
machine's drift), BENCH_REPEAT (healthz, S2 and S5 at 64 alternate this many times, and so
do S2 at 32 and S3; default 3; the run with the median p99 of each is reported).
Writes OUTDIR/<backend>.json; report.py turns the JSON files into Markdown.
Standard library only.
"""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
PASSWORD = "BenchPass123!"
SMOKE = os.environ.get("BENCH_SMOKE") == "1"
DURATION = 2 if SMOKE else int(os.environ.get("BENCH_DURATION", "15"))
LOGIN_DURATION = 3 if SMOKE else int(os.environ.get("BENCH_LOGIN_DURATION", "30"))
USERS = 40 if SMOKE else 128
KEYS = 8 if SMOKE else 32
REPEAT = 1 if SMOKE else int(os.environ.get("BENCH_REPEAT", "3"))
# F0, F1 and E alternate this many times: their ratio is the noisiest figure.
FLOOD_REPEAT = 1 if SMOKE else int(os.environ.get("BENCH_FLOOD_REPEAT", "5"))
LOGIN_SEGMENTS = 1 if SMOKE else max(1, int(os.environ.get("BENCH_LOGIN_SEGMENTS", "6")))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, method, path, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None


class WalWatch:
    """The largest size SQLite's -wal file reaches, sampled every 200 ms."""

    def __init__(self, path):
        self.path, self.peak, self.done = path, 0, threading.Event()
        self.thread = threading.Thread(target=self.watch, daemon=True)
        self.thread.start()

    def size(self):
        try:
            return os.path.getsize(self.path)
        except OSError:
            return 0

    def watch(self):
        while not self.done.wait(0.2):
            self.peak = max(self.peak, self.size())

    def stop(self):
        self.done.set()
        self.thread.join()


class Server:
    """The binary on a free port with a fresh database (or `database_url`,
    kept when the server stops), rate limits off unless `limits`
    (AUTH_RATE_LIMITS) says otherwise."""

    def __init__(self, binary, backend, workdir, limits="off", extra_env=None, wrapper=None, database_url=None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {
            "PATH": os.environ.get("PATH", ""),
            "AUTH_BIND": f"127.0.0.1:{self.port}",
            "AUTH_RATE_LIMITS": limits,
            # ES256, as a new deployment signs (BENCH_JWT_ALGORITHM=HS256 for the old way).
            "AUTH_JWT_ALGORITHM": os.environ.get("BENCH_JWT_ALGORITHM", "ES256"),
            "AUTH_KEY_ENCRYPTION_KEY": "bench-key-encryption-key-bench-key-encryption",
            "RUST_LOG": os.environ.get("BENCH_RUST_LOG", "warn"),
        }
        if env["AUTH_JWT_ALGORITHM"] == "HS256":
            env["AUTH_JWT_SECRET"] = "bench-secret-bench-secret-bench-secret-bench"
        env.update(extra_env or {})
        self.database = None
        if database_url:
            env["DATABASE_URL"] = database_url
        elif backend == "postgres":
            admin_url = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
            self.database = f"portcullis_bench_{uuid.uuid4().hex[:12]}"
            psql(admin_url, f"CREATE DATABASE {self.database}")
            self.admin_url = admin_url
            # Loopback: TLS would only add CPU on both ends (the server's own
            # default, prefer, would turn it on against a server with ssl=on).
            # BENCH_PG_SSLMODE=require measures what it costs.
            sslmode = os.environ.get("BENCH_PG_SSLMODE", "disable")
            env["DATABASE_URL"] = admin_url.rsplit("/", 1)[0] + "/" + self.database + f"?sslmode={sslmode}"
        else:
            env["DATABASE_URL"] = f"sqlite://{workdir}/bench.db"
        self.wal = WalWatch(os.path.join(workdir, "bench.db-wal")) if backend == "sqlite" and not database_url else None
        self.env = env
        self.binary = binary
        self.log = open(os.path.join(workdir, f"server-{backend}.log"), "w")
        started = time.perf_counter()
        self.process = subprocess.Popen((wrapper or []) + [binary], env=env, cwd=workdir, stdout=self.log,
                                        stderr=self.log)
        self.startup_ms = wait_ready(self.base, started, 180 if wrapper else 30)

    def peak_rss_kib(self):
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return None

    def rss_kib(self):
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return None

    def cpu_seconds(self):
        return process_cpu_seconds(self.process.pid)

    def stop(self):
        if self.wal:
            self.wal.stop()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()
        if self.database:
            psql(self.admin_url, f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)")


def psql(url, statement):
    subprocess.run(["psql", url, "-q", "-c", statement], check=True, capture_output=True)


def wait_ready(base, started, limit_s=30):
    while time.perf_counter() - started < limit_s:
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=1) as response:
                if response.status == 200:
                    return (time.perf_counter() - started) * 1000
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.002)
    raise SystemExit(f"the server did not become ready in {limit_s} s")


def startup_times(binary, backend, workdir, runs=5):
    """Exec to the first 200 on /readyz, each on a fresh database."""
    times = []
    for i in range(runs):
        folder = tempfile.mkdtemp(dir=workdir)
        server = Server(binary, backend, folder)
        times.append(server.startup_ms)
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return sorted(times)


def seed(base, folder, run, forwarded=False):
    """USERS users with a token each, KEYS API keys, and tokens for refresh.
    With `forwarded`, each call says it comes from a client of its own (for
    a server with limits on, behind a trusted proxy)."""
    def via(i, what):
        return {"X-Forwarded-For": f"10.{what}.{i // 256}.{i % 256}"} if forwarded else {}

    def register(i):
        email = f"bench-{run}-{i}@example.com"
        status, _ = call(base, "POST", "/v1/auth/register", {"email": email, "password": PASSWORD}, via(i, 1))
        assert status == 201, f"register {email}: {status}"
        status, body = call(base, "POST", "/v1/auth/login-json", {"username": email, "password": PASSWORD},
                            via(i, 2))
        assert status == 200, f"login {email}: {status}"
        return email, body["access_token"]

    with ThreadPoolExecutor(8) as pool:
        seeded = list(pool.map(register, range(USERS)))
    emails = [e for e, _ in seeded]
    tokens = [t for _, t in seeded]
    keys = []
    for token in tokens[:KEYS]:
        status, body = call(base, "POST", "/v1/api-keys", {"name": "bench"}, {"Authorization": f"Bearer {token}"})
        assert status == 201, status
        keys.append(body["api_key"])
    # Separate tokens for refresh (it revokes what it uses).
    with ThreadPoolExecutor(8) as pool:
        refresh = list(pool.map(
            lambda i: call(base, "POST", "/v1/auth/login-json", {"username": emails[i], "password": PASSWORD},
                           via(i, 3))[1]["access_token"],
            range(len(emails))))
    # And refresh tokens of sessions of their own, for rotation (S7).
    with ThreadPoolExecutor(8) as pool:
        rotation = list(pool.map(
            lambda i: call(base, "POST", "/v1/auth/login-json", {"username": emails[i], "password": PASSWORD},
                           via(i, 4))[1]["refresh_token"],
            range(len(emails))))
    for name, lines in (("users.txt", emails), ("tokens.txt", tokens[:64]), ("keys.txt", keys),
                        ("refresh_tokens.txt", refresh), ("rotation_tokens.txt", rotation)):
        with open(os.path.join(folder, name), "w") as f:
            f.write("\n".join(lines) + "\n")
    status, _ = call(base, "GET", "/v1/auth/me", headers={"Authorization": f"Bearer {tokens[0]}"})
    assert status == 200
    status, _ = call(base, "GET", "/v1/database/projects", headers={"X-API-Key": keys[0]})
    assert status == 200


def wrk(base, script, connections, duration, folder, run, path="/", extra_env=None):
    env = dict(os.environ, BENCH_DIR=folder, BENCH_LUA=os.path.join(HERE, "lua"), BENCH_RUN=run,
               BENCH_PASSWORD=PASSWORD, **(extra_env or {}))
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "30s", "--latency",
               "-s", os.path.join(HERE, "lua", script), base + path]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    match = re.search(r"BENCH_JSON (\{.*\})", out)
    if not match:
        raise SystemExit(f"wrk gave no figures:\n{out}")
    figures = json.loads(match.group(1))
    figures["connections"] = connections
    figures["errors"] = sum(figures[k] for k in figures if k.startswith("errors_"))
    return figures


def settle(base):
    """Waits until a login answers fast again (the hashing queue drained)."""
    time.sleep(1)


def measured(server, label, run_scenario):
    cpu_before, started = server.cpu_seconds(), time.perf_counter()
    figures = run_scenario()
    wall = time.perf_counter() - started
    figures["server_cpu_cores"] = round((server.cpu_seconds() - cpu_before) / wall, 2)
    print(f"  {label}: {figures['rps']:.1f}/s p50 {figures['p50_ms']:.2f} ms p99 {figures['p99_ms']:.2f} ms "
          f"errors {figures['errors']} (server {figures['server_cpu_cores']} cores)", flush=True)
    return figures


def argon2_limit(rounds):
    """One core's argon2id verification time, from the argon2_verify example."""
    binary = os.environ.get("BENCH_ARGON2_BIN")
    if not binary:
        return None
    out = subprocess.run([binary, str(3 if SMOKE else rounds)], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def quiet(server, limit_s=5):
    """Waits until the server is idle: wrk stops counting at its deadline, but
    logins it left in flight may still be hashing, and a timing taken beside
    them would be slow."""
    deadline = time.perf_counter() + limit_s
    while time.perf_counter() < deadline:
        before = server.cpu_seconds()
        time.sleep(0.2)
        if server.cpu_seconds() - before < 0.02:
            return


def process_cpu_seconds(pid):
    """CPU seconds (user and system) process `pid` has used."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_times():
    """(busy, iowait, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle, iowait = fields[3], fields[4]
    total = sum(fields[:8])
    return total - idle - iowait, iowait, total


def idle_cpu_seconds():
    """Seconds every core together spent idle (or waiting on I/O) since boot."""
    busy, _, total = cpu_times()
    return (total - busy) / os.sysconf("SC_CLK_TCK")


def database_cpu_seconds():
    """CPU seconds used by the machine's PostgreSQL processes (0 without any)."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/comm") as comm:
                if not comm.read().startswith("postgres"):
                    continue
            total += process_cpu_seconds(pid)
        except OSError:
            continue  # the process ended meanwhile
    return total


def with_machine_share(server, label, run_scenario):
    """`measured`, plus what the cores did beside the server: how much of
    them PostgreSQL's processes used and how much stayed idle (in cores)."""
    db_before, idle_before, started = database_cpu_seconds(), idle_cpu_seconds(), time.perf_counter()
    figures = measured(server, label, run_scenario)
    wall = time.perf_counter() - started
    figures["database_cpu_cores"] = round((database_cpu_seconds() - db_before) / wall, 3)
    figures["idle_cores"] = round((idle_cpu_seconds() - idle_before) / wall, 3)
    return figures


def login_against_limit(server, workdir, run):
    """S1 at 16 in slices, with the login limit timed before the first slice and
    after each one (the server idle meanwhile). One core's argon2 time drifts
    by 10-30 % within a minute on a shared machine; each slice is judged
    against the mean of the two timings either side of it, and the whole
    against the mean of those limits (the slices are equally long)."""
    quiet(server)
    duration = max(1, LOGIN_DURATION // LOGIN_SEGMENTS)
    timings = [argon2_limit(20)]
    slices = []
    for _ in range(LOGIN_SEGMENTS):
        slices.append(with_machine_share(server, f"S1 login c16 ({duration} s slice)",
                                         lambda: wrk(server.base, "login.lua", 16, duration, workdir, run)))
        quiet(server)
        timings.append(argon2_limit(20))
    figures = {
        "rps": round(sum(f["rps"] for f in slices) / len(slices), 2),
        "p50_ms": median_run(slices, "p50_ms")["p50_ms"],
        "p99_ms": max(f["p99_ms"] for f in slices),
        "max_ms": max(f["max_ms"] for f in slices),
        "errors": sum(f["errors"] for f in slices),
        "connections": 16,
        "server_cpu_cores": round(sum(f["server_cpu_cores"] for f in slices) / len(slices), 2),
        # Information: the cores the server did not get (the database's
        # processes, and idle time), the mean of the slices.
        "database_cpu_cores": round(sum(f["database_cpu_cores"] for f in slices) / len(slices), 3),
        "idle_cores": round(sum(f["idle_cores"] for f in slices) / len(slices), 3),
        "slices": slices,
    }
    if None in timings:
        return figures, None
    cores = timings[0]["cores"]
    limits = [cores * 1000 / ((a["verify_ms_median"] + b["verify_ms_median"]) / 2)
              for a, b in zip(timings, timings[1:])]
    limit = dict(timings[-1])
    limit["limit_per_s"] = round(sum(limits) / len(limits), 2)
    # The one verification time that gives that limit, for the report.
    limit["verify_ms_median"] = round(cores * 1000 / limit["limit_per_s"], 3)
    if all("all_cores_per_s" in t for t in timings):
        limit["all_cores_per_s"] = round(sum(t["all_cores_per_s"] for t in timings) / len(timings), 2)
    limit["timings"] = timings
    limit["slice_limits_per_s"] = [round(x, 2) for x in limits]
    for piece, piece_limit in zip(slices, limits):
        piece["ratio_to_limit"] = round(piece["rps"] / piece_limit, 3)
    return figures, limit


def median_run(runs, key):
    """The run whose `key` is the median of all runs (the lower middle for an even count)."""
    return sorted(runs, key=lambda r: r[key])[(len(runs) - 1) // 2]


def fast_trio(server, workdir, run):
    """healthz, S2 and S5 at 64 connections, one after the other. Their p99s sit
    near the scheduler's 4 ms tick and one 15-second p99 moves by 2 ms from one
    minute to the next, so main() runs the trio BENCH_REPEAT times, alternating,
    and judges the run with the median p99 of each (all are in the JSON)."""
    base = server.base
    return (measured(server, "healthz c64", lambda: wrk(base, "healthz.lua", 64, DURATION, workdir, run, "/healthz")),
            measured(server, "S2 me c64", lambda: wrk(base, "me.lua", 64, DURATION, workdir, run)),
            measured(server, "S5 projects by key c64", lambda: wrk(base, "projects.lua", 64, DURATION, workdir, run)))


def storm_pair(server, workdir, run):
    """S2 at 32 connections, then the same while S1 runs at 32 (the login
    storm), then S3's control (see busy_control)."""
    base = server.base
    calm = measured(server, "S2 me c32", lambda: wrk(base, "me.lua", 32, DURATION, workdir, run))
    storm = {}
    thread = threading.Thread(target=lambda: storm.update(
        wrk(base, "login.lua", 32, DURATION + 4, workdir, run)))
    thread.start()
    time.sleep(2)
    me = measured(server, "S3 me c32 during login storm c32",
                  lambda: wrk(base, "me.lua", 32, DURATION, workdir, run))
    thread.join()
    settle(base)
    return calm, me, storm, busy_control(server, workdir, run)


def busy_control(server, workdir, run):
    """S2 at 32 with both cores kept busy by two CPU burners in the idle
    scheduling class, the class the hashing threads run in, and no login at
    all: what a login storm's hashing costs /me's tail through the kernel
    alone (a core never goes idle, so a request thread queued behind another
    waits for the periodic balance instead of moving to the idle core). The
    control of S3; None without chrt."""
    if not shutil.which("chrt"):
        return None
    burners = [subprocess.Popen(["chrt", "--idle", "0", "sha256sum", "/dev/zero"], stdout=subprocess.DEVNULL)
               for _ in range(os.cpu_count() or 2)]
    try:
        time.sleep(1)
        return measured(server, "S3 control: me c32 with every core busy at idle priority",
                        lambda: wrk(server.base, "me.lua", 32, DURATION, workdir, run))
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


# The login limit as deployed (20 a minute: a one-hit key lives 3 s), the
# register and per-principal limits out of the way of seeding and of /me.
FLOOD_LIMITS = "register=1000000/60,authenticated=1000000000/60"
# The worst case for memory: a key lives an hour (20 a client an hour), so
# every address of the flood is still held when RSS is read.
WORST_LIMITS = "login=20/3600"
FLOOD_ADDRESSES = 20_000 if SMOKE else 1_000_000
FORGOT_REQUESTS = 5 if SMOKE else 30


class Flood:
    """wrk runs of flood.lua that never repeat an address: each starts past
    every address the runs before it could have sent."""

    def __init__(self, server, workdir, run):
        self.server, self.workdir, self.run, self.sent = server, workdir, run, 0
        self.next_start = 0

    def go(self, duration, connections=32):
        # Enough requests formatted in advance for the run (see flood.lua).
        pool = str(min(duration * 70_000, 2_000_000))
        figures = wrk(self.server.base, "flood.lua", connections, duration, self.workdir, self.run,
                      extra_env={"BENCH_FLOOD_START": str(self.next_start), "BENCH_FLOOD_POOL": pool})
        self.sent += figures["requests"]
        # Requests in flight when wrk stopped took addresses too.
        self.next_start += figures["requests"] + 100_000
        return figures


def forgot_timings(base, email):
    """FORGOT_REQUESTS forgot-password requests each for a registered and an
    unknown email, alternating; milliseconds of each, as the client saw them."""
    times = {"registered": [], "unknown": []}
    for i in range(FORGOT_REQUESTS):
        for kind, address in (("registered", email), ("unknown", f"nobody-{i}@example.com")):
            started = time.perf_counter()
            status, _ = call(base, "POST", "/v1/auth/forgot-password", {"email": address},
                             {"X-Forwarded-For": f"10.9.{i}.{1 if kind == 'registered' else 2}"})
            times[kind].append((time.perf_counter() - started) * 1000)
            assert status == 202, status
    return {kind: {"median_ms": round(sorted(t)[len(t) // 2], 3), "all_ms": [round(x, 3) for x in t]}
            for kind, t in times.items()}


def flood_scenarios(binary, backend, workdir, run):
    """With limits on behind a trusted proxy: forgot-password timed for a
    registered and an unknown email; /me at 32 alone (F0), then during a
    flood of logins from ever new forwarded addresses (F1), then during an
    equal load of /me (E, the baseline: what any second load leaves /me on
    two shared cores), alternating REPEAT times; then the flood alone (F2)
    until FLOOD_ADDRESSES distinct addresses were sent, and the server's RSS
    after it."""
    folder = tempfile.mkdtemp(dir=workdir)
    server = Server(binary, backend, folder, FLOOD_LIMITS, {"AUTH_TRUSTED_PROXIES": "127.0.0.1"})
    try:
        seed(server.base, folder, run, forwarded=True)
        with open(os.path.join(folder, "users.txt")) as f:
            email = f.readline().strip()
        out = {"forgot": forgot_timings(server.base, email)}
        print(f"  forgot-password medians: registered {out['forgot']['registered']['median_ms']} ms, "
              f"unknown {out['forgot']['unknown']['median_ms']} ms", flush=True)
        flood = Flood(server, folder, run)
        pairs = []
        for _ in range(FLOOD_REPEAT):
            alone = measured(server, "F0 me c32", lambda: wrk(server.base, "me.lua", 32, DURATION, folder, run))
            flooding = {}
            thread = threading.Thread(target=lambda: flooding.update(flood.go(DURATION + 6)))
            thread.start()
            # wrk formats the flood's requests first (a second or two), then floods.
            time.sleep(4)
            during = measured(server, "F1 me c32 during address flood c32",
                              lambda: wrk(server.base, "me.lua", 32, DURATION, folder, run))
            thread.join()
            # The same with an equal load of /me instead of the flood: what two
            # loads sharing the cores (and wrk's share of them) leave /me anyway.
            equal_load = {}
            thread = threading.Thread(target=lambda: equal_load.update(
                wrk(server.base, "me.lua", 32, DURATION + 6, folder, run)))
            thread.start()
            time.sleep(4)
            equal = measured(server, "E me c32 during an equal /me load c32",
                             lambda: wrk(server.base, "me.lua", 32, DURATION, folder, run))
            thread.join()
            pairs.append((alone, during, flooding, equal))
        out["repetitions"] = {"F0_me_32": [p[0] for p in pairs], "F1_me_32_in_flood": [p[1] for p in pairs],
                              "F1_flood_32": [p[2] for p in pairs], "E_me_32_in_equal_load": [p[3] for p in pairs]}
        out["F0_me_32"] = median_run([p[0] for p in pairs], "p99_ms")
        out["F1_me_32_in_flood"] = median_run([p[1] for p in pairs], "p99_ms")
        out["E_me_32_in_equal_load"] = median_run([p[3] for p in pairs], "p99_ms")
        rounds = []
        # At least one round alone, whatever F1's floods sent already.
        while not rounds or flood.sent < FLOOD_ADDRESSES:
            rounds.append(measured(server, f"F2 flood c32 ({flood.sent} addresses so far)",
                                   lambda: flood.go(DURATION)))
        out["F2_flood_32"] = {
            "rps": round(sum(r["rps"] for r in rounds) / max(len(rounds), 1), 1),
            "p50_ms": median_run(rounds, "p50_ms")["p50_ms"] if rounds else 0,
            "p99_ms": max((r["p99_ms"] for r in rounds), default=0),
            "max_ms": max((r["max_ms"] for r in rounds), default=0),
            "errors": sum(r["errors"] for r in rounds),
            "connections": 32,
            "server_cpu_cores": round(sum(r["server_cpu_cores"] for r in rounds) / max(len(rounds), 1), 2),
        }
        out["flood_addresses"] = flood.sent
        out["rss_kib_after_flood"] = server.rss_kib()
        print(f"  RSS after {flood.sent} flood addresses: {out['rss_kib_after_flood'] / 1024:.1f} MiB", flush=True)
    finally:
        server.stop()
    out.update(worst_case_memory(binary, backend, workdir, run))
    instructions = instruction_counts(binary, backend, workdir, run)
    if instructions:
        out["instructions"] = instructions
    return out


INSTRUCTION_REQUESTS = 200 if SMOKE else 2000


def dumped_total(folder, before):
    """The instruction total of the one callgrind dump written since `before`."""
    for _ in range(300):
        for name in sorted(set(os.listdir(folder)) - before):
            with open(os.path.join(folder, name)) as f:
                for line in f:
                    if line.startswith(("summary:", "totals:")):
                        return int(line.split()[1])
        time.sleep(0.1)
    raise SystemExit("callgrind wrote no dump")


def instruction_counts(binary, backend, workdir, run):
    """Instructions the server runs for one /me and for one request of the
    flood, counted by callgrind over INSTRUCTION_REQUESTS requests of each on
    one keep-alive connection, twice in turn (the lower of the two is kept).
    Seconds on two shared cores drift from one run to the next; instruction
    counts repeat whatever else the machine does, so this says what a flood
    request costs the server next to /me without the machine's noise (cache
    misses aside). None when valgrind is not installed."""
    if not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        print("  valgrind is not installed: no instruction counts", flush=True)
        return None
    folder = tempfile.mkdtemp(dir=workdir)
    dumps = os.path.join(folder, "callgrind.out")
    server = Server(binary, backend, folder, FLOOD_LIMITS, {"AUTH_TRUSTED_PROXIES": "127.0.0.1"},
                    wrapper=["valgrind", "--tool=callgrind", f"--callgrind-out-file={dumps}"])
    try:
        email = f"instructions-{run}@example.com"
        status, _ = call(server.base, "POST", "/v1/auth/register", {"email": email, "password": PASSWORD},
                         {"X-Forwarded-For": "10.8.0.1"})
        assert status == 201, status
        status, body = call(server.base, "POST", "/v1/auth/login-json", {"username": email, "password": PASSWORD},
                            {"X-Forwarded-For": "10.8.0.2"})
        assert status == 200, status
        me = ("GET", "/v1/auth/me", None, {"Authorization": f"Bearer {body['access_token']}"})
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        sent = [0]

        def send(method, path, payload, headers, expected):
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            response.read()
            assert response.status == expected, (path, response.status)

        def one_me():
            send(*me, 200)

        def one_flood():
            # As flood.lua: a new address each time, IPv4 and IPv6 /64s in turn.
            sent[0] += 1
            i = sent[0]
            address = (f"2001:db8:{i // 65536:x}:{i % 65536:x}::1" if i % 2
                       else f"100.{64 + i // 65536}.{(i // 256) % 256}.{i % 256}")
            send("POST", "/v1/auth/login-json", '{"username": "flood@example.com"}',
                 {"Content-Type": "application/json", "X-Forwarded-For": address}, 422)

        for _ in range(300):
            one_me()
            one_flood()
        counts = {"me": [], "flood": []}
        for kind, one in (("me", one_me), ("flood", one_flood)) * 2:
            before = set(os.listdir(folder))
            subprocess.run(["callgrind_control", "--zero", str(server.process.pid)], check=True, capture_output=True)
            for _ in range(INSTRUCTION_REQUESTS):
                one()
            subprocess.run(["callgrind_control", f"--dump={kind}", str(server.process.pid)], check=True,
                           capture_output=True)
            counts[kind].append(dumped_total(folder, before) / INSTRUCTION_REQUESTS)
        connection.close()
        out = {kind: round(min(each)) for kind, each in counts.items()}
        out["requests"] = INSTRUCTION_REQUESTS
        print(f"  instructions per request: /me {out['me']}, flood {out['flood']} "
              f"(flood/me {out['flood'] / out['me']:.2f})", flush=True)
        return out
    finally:
        server.stop()


def worst_case_memory(binary, backend, workdir, run):
    """A fresh server whose flood keys live an hour: RSS after FLOOD_ADDRESSES
    distinct addresses, every one still held (up to the limiter's bound)."""
    folder = tempfile.mkdtemp(dir=workdir)
    server = Server(binary, backend, folder, WORST_LIMITS, {"AUTH_TRUSTED_PROXIES": "127.0.0.1"})
    try:
        idle = server.rss_kib()
        flood = Flood(server, folder, run)
        while flood.sent < FLOOD_ADDRESSES:
            flood.go(DURATION)
        rss = server.rss_kib()
        print(f"  worst case: RSS after {flood.sent} addresses held an hour: {rss / 1024:.1f} MiB "
              f"(idle {idle / 1024:.1f} MiB)", flush=True)
        return {"worst_case": {"flood_addresses": flood.sent, "rss_kib": rss, "idle_rss_kib": idle}}
    finally:
        server.stop()


def main():
    binary, backend, outdir = os.path.abspath(sys.argv[1]), sys.argv[2], sys.argv[3]
    os.makedirs(outdir, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix=f"portcullis-bench-{backend}-")
    run = uuid.uuid4().hex[:8]
    results = {"backend": backend, "smoke": SMOKE, "duration_s": DURATION, "login_duration_s": LOGIN_DURATION}
    try:
        print(f"[{backend}] start-up", flush=True)
        results["startup_ms"] = startup_times(binary, backend, workdir, 2 if SMOKE else 5)
        server = Server(binary, backend, workdir)
        results["idle_rss_kib"] = server.rss_kib()
        print(f"[{backend}] seeding {USERS} users", flush=True)
        seed(server.base, workdir, run)
        base, s = server.base, {}
        trios = [fast_trio(server, workdir, run) for _ in range(REPEAT)]
        for i, name in enumerate(("healthz_64", "S2_64", "S5_64")):
            results.setdefault("repetitions", {})[name] = [t[i] for t in trios]
            s[name] = median_run([t[i] for t in trios], "p99_ms")
        s["S1_16"], results["argon2"] = login_against_limit(server, workdir, run)
        print(f"  S1 login c16: {s['S1_16']['rps']:.1f}/s over {LOGIN_SEGMENTS} slices, limit "
              f"{(results['argon2'] or {}).get('limit_per_s')}/s", flush=True)
        settle(base)
        s["S1_64"] = measured(server, "S1 login c64", lambda: wrk(base, "login.lua", 64, LOGIN_DURATION, workdir, run))
        results["peak_rss_kib_after_S1_64"] = server.peak_rss_kib()
        settle(base)
        pairs = [storm_pair(server, workdir, run) for _ in range(REPEAT)]
        results["repetitions"].update({"S2_32": [p[0] for p in pairs], "S3_me_32_in_storm": [p[1] for p in pairs],
                                       "S3_storm_login_32": [p[2] for p in pairs]})
        s["S2_32"] = median_run([p[0] for p in pairs], "p99_ms")
        s["S3_me_32_in_storm"] = median_run([p[1] for p in pairs], "p99_ms")
        s["S3_storm_login_32"] = median_run([p[2] for p in pairs], "rps")
        if all(p[3] for p in pairs):
            results["repetitions"]["S3_control_me_32_busy_cores"] = [p[3] for p in pairs]
            s["S3_control_me_32_busy_cores"] = median_run([p[3] for p in pairs], "p99_ms")
        s["S4_16"] = measured(server, "S4 register c16", lambda: wrk(base, "register.lua", 16, DURATION, workdir, run))
        settle(base)
        s["S6_16"] = measured(server, "S6 refresh c16", lambda: wrk(base, "refresh.lua", 16, DURATION, workdir, run))
        s["S7_16"] = measured(server, "S7 refresh-token rotation c16",
                              lambda: wrk(base, "rotate.lua", 16, DURATION, workdir, run))
        results["peak_rss_kib"] = server.peak_rss_kib()
        if server.wal:
            results["sqlite_wal_bytes"] = {"peak": server.wal.peak, "at_end": server.wal.size()}
        server.stop()
        print(f"[{backend}] limits on: forgot-password timing and the address flood", flush=True)
        flood = flood_scenarios(binary, backend, workdir, run)
        for name in ("F0_me_32", "F1_me_32_in_flood", "E_me_32_in_equal_load", "F2_flood_32"):
            s[name] = flood.pop(name)
        results["repetitions"].update(flood.pop("repetitions"))
        results["flood"] = flood
        results["scenarios"] = s
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    with open(os.path.join(outdir, f"{backend}.json"), "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
