#!/usr/bin/env python3
"""Failure drills: Portcullis as several instances behind HAProxy, under load
and under faults.

Each drill starts what it needs itself: a PostgreSQL cluster of its own
(`initdb`/`pg_ctl` from the machine's PostgreSQL, run as the `postgres` user),
a `redis-server` of its own, and `scripts/cluster` (three instances of the
binary behind HAProxy). Everything listens on loopback; every drill is bounded
in requests and time and stops by itself. A component that cannot be started
fails the drill; nothing is skipped.

    python3 tests/drills/drills.py [--short] [--binary PATH] [--only NAME ...]

`--short` is CI's version (seconds per drill, the soak 2 minutes); without it,
the full lengths (`just drills`): 200 trials per revocation, a 30-minute soak.
Standard library only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_SCRIPT = ROOT / "scripts" / "cluster"
PASSWORD = "Drill-pass-1234!"
INSTANCES = 3


class DrillFailed(Exception):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise DrillFailed(message)


def say(message: str) -> None:
    print(message, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(count: int) -> int:
    """The first of `count` consecutive free ports."""
    for _ in range(200):
        base = random.randint(20000, 40000)
        try:
            sockets = []
            for port in range(base, base + count):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise DrillFailed(f"no {count} consecutive free ports on loopback")


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def random_address() -> str:
    return f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


# ---------------------------------------------------------------- HTTP


class Http:
    """One keep-alive connection to one port; a broken connection is reopened
    on the next call and the failed call answers status 0."""

    def __init__(self, port: int, timeout: float = 10.0):
        self.port = port
        self.timeout = timeout
        self.connection: http.client.HTTPConnection | None = None

    def call(self, method: str, path: str, body=None, token: str | None = None,
             key: str | None = None, address: str | None = None, form: bool = False):
        headers = {"X-Forwarded-For": address or random_address()}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if key:
            headers["X-API-Key"] = key
        payload = None
        if body is not None:
            if form:
                payload = urllib.parse.urlencode(body)
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            else:
                payload = json.dumps(body)
                headers["Content-Type"] = "application/json"
        try:
            if self.connection is None:
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            self.connection.request(method, path, payload, headers)
            response = self.connection.getresponse()
            raw = response.read()
            if response.getheader("Connection", "").lower() == "close":
                self.close()
        except (OSError, http.client.HTTPException) as error:
            self.close()
            return 0, {"error": repr(error)}
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = {"raw": raw[:200].decode(errors="replace")}
        return response.status, data

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def register(http: Http, email: str | None = None) -> tuple[int, str, dict | None]:
    email = email or f"drill-{uuid.uuid4().hex[:16]}@drill.test"
    status, body = http.call("POST", "/v1/auth/register", {"email": email, "password": PASSWORD})
    return status, email, body


def login(http: Http, email: str, address: str | None = None) -> tuple[int, dict | None]:
    return http.call("POST", "/v1/auth/login", {"username": email, "password": PASSWORD},
                     address=address, form=True)


def new_user(http: Http) -> tuple[str, str]:
    """A registered user's email and access token."""
    status, email, body = register(http)
    check(status == 201, f"registration answered {status}: {body}")
    return email, body["access_token"]


# ---------------------------------------------------------------- components


def as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


class OwnPostgres:
    """A PostgreSQL cluster of the drill's own, so that it may be stopped."""

    def __init__(self, work: Path):
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        check(bool(bins), "no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb): install postgresql")
        self.bin = bins[-1].parent
        self.dir = work / "pg"
        self.dir.mkdir()
        work.chmod(0o755)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        self.port = free_port()
        self.run([str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync"])
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                       f"unix_socket_directories = '{self.dir}'\nmax_connections = 200\n")
        self.start()

    def run(self, args: list[str]) -> None:
        done = subprocess.run(as_postgres(args), capture_output=True, text=True)
        check(done.returncode == 0, f"{' '.join(args[:2])} failed: {done.stderr.strip()[-500:]}")

    def database(self, name: str) -> str:
        """A new database of that name, and its URL (each drill has its own)."""
        done = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres",
                               "-qc", f'CREATE DATABASE "{name}"'], capture_output=True, text=True)
        check(done.returncode == 0, f"CREATE DATABASE {name} failed: {done.stderr.strip()}")
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def start(self) -> None:
        self.run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-t", "60",
                  "-l", str(self.dir / "log"), "start"])

    def stop(self, mode: str = "fast") -> None:
        self.run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-m", mode, "stop"])

    def close(self) -> None:
        subprocess.run(as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-m", "immediate",
                                    "stop"]), capture_output=True)


class OwnRedis:
    def __init__(self, work: Path):
        self.server = shutil.which("redis-server")
        check(self.server is not None, "redis-server is missing: install redis-server")
        self.port = free_port()
        self.log = work / "redis.log"
        self.process: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=open(self.log, "a"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise DrillFailed(f"redis-server did not start (log: {self.log})")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def close(self) -> None:
        self.stop()


class Cluster:
    """`scripts/cluster` with the drill's settings: three instances and HAProxy."""

    def __init__(self, work: Path, name: str, binary: Path, pg: OwnPostgres, redis: OwnRedis | None,
                 settings: dict[str, str]):
        self.dir = work / f"cluster-{name}"
        self.balancer = free_port()
        self.base = free_ports(INSTANCES)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUTH_") and k != "DATABASE_URL"}
        env.update({
            "PORTCULLIS_BIN": str(binary),
            "CLUSTER_DIR": str(self.dir),
            "CLUSTER_PORT": str(self.balancer),
            "CLUSTER_BASE_PORT": str(self.base),
            "DATABASE_URL": pg.database(f"drill_{name}"),
            "AUTH_REDIS_URL": redis.url if redis else "none",
            "AUTH_REDIS_PREFIX": f"drill:{name}:{uuid.uuid4().hex[:8]}:",
            "RUST_LOG": os.environ.get("RUST_LOG", "warn"),
        })
        env.update(settings)
        self.env = env
        self.script("up", str(INSTANCES))

    def script(self, *args: str) -> None:
        done = subprocess.run([str(CLUSTER_SCRIPT), *args], env=self.env, capture_output=True, text=True)
        check(done.returncode == 0, f"scripts/cluster {' '.join(args)} failed: {done.stderr.strip()[-1500:]}")

    def port(self, i: int) -> int:
        return self.base + i - 1

    def pid(self, i: int) -> int:
        return int((self.dir / f"portcullis-{i}.pid").read_text())

    def create_admin(self, email: str) -> None:
        done = subprocess.run([self.env["PORTCULLIS_BIN"], "create-admin", "--email", email, "--password", PASSWORD],
                              env={**self.env, "AUTH_KEY_ENCRYPTION_KEY_FILE": str(self.dir / "key-encryption-key"),
                                   "AUTH_JWT_SECRET_FILE": str(self.dir / "jwt-secret")},
                              cwd=self.dir / "instance-1",
                              capture_output=True, text=True)
        check(done.returncode == 0, f"create-admin failed: {done.stderr.strip()[-500:]}")

    def down(self) -> None:
        self.script("down")


# ---------------------------------------------------------------- load


class Load:
    """`workers` threads calling `step(worker_state, http)` until stopped;
    every answer is kept as (seconds since start, what, status)."""

    def __init__(self, port: int, workers: int, step, setup=None, pace: float | None = None):
        self.port = port
        self.step = step
        self.setup = setup
        self.pace = pace
        self.stop_event = threading.Event()
        self.started = time.monotonic()
        self.records: list[tuple[float, str, int]] = []
        self.failures: list[str] = []
        self.threads = [threading.Thread(target=self.run, args=(n,), daemon=True) for n in range(workers)]
        for thread in self.threads:
            thread.start()

    def record(self, what: str, status: int) -> None:
        self.records.append((time.monotonic() - self.started, what, status))

    def run(self, n: int) -> None:
        http = Http(self.port)
        try:
            state = self.setup(n, http) if self.setup else {}
            while not self.stop_event.is_set():
                began = time.monotonic()
                self.step(self, state, http)
                if self.pace:
                    time.sleep(max(0.0, self.pace - (time.monotonic() - began)))
        except Exception as error:  # a worker that dies fails the drill, it does not just go quiet
            self.failures.append(f"worker {n}: {error!r}")
        finally:
            http.close()

    def stop(self) -> list[tuple[float, str, int]]:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=30)
        check(not self.failures, f"load workers failed: {self.failures[:3]}")
        return self.records


def me_load(cluster: Cluster, tokens: list[str], workers: int = 3) -> Load:
    def step(load: Load, state, http: Http) -> None:
        status, _ = http.call("GET", "/v1/auth/me", token=random.choice(tokens))
        load.record("me", status)
    return Load(cluster.balancer, workers, step)


def registered(load: Load, http: Http, acknowledged: list[str]) -> None:
    """One registration under load; its email kept when acknowledged (201)."""
    status, email, _ = register(http)
    load.record("register", status)
    if status == 201:
        acknowledged.append(email)


def unable_to_log_in(cluster: Cluster, emails: list[str]) -> list[str]:
    """Of `emails`, those that cannot log in through the balancer."""
    logins = Http(cluster.balancer)
    return [email for email in emails if login(logins, email)[0] != 200]


def statuses(records) -> dict:
    counts: dict = {}
    for _, what, status in records:
        counts[(what, status)] = counts.get((what, status), 0) + 1
    return counts


# ---------------------------------------------------------------- the drills


class Drills:
    def __init__(self, work: Path, binary: Path, short: bool, soak_minutes: int = 30):
        self.work = work
        self.binary = binary
        self.short = short
        self.soak_minutes = soak_minutes
        self.pg: OwnPostgres | None = None
        self.redis: OwnRedis | None = None
        self.clusters: list[Cluster] = []

    def components(self) -> None:
        if self.pg is None:
            self.pg = OwnPostgres(self.work)
        if self.redis is None or self.redis.process is None:
            self.redis = OwnRedis(self.work) if self.redis is None else (self.redis.start() or self.redis)

    def cluster(self, name: str, settings: dict[str, str], with_redis: bool = True) -> Cluster:
        self.components()
        cluster = Cluster(self.work, name, self.binary, self.pg, self.redis if with_redis else None, settings)
        self.clusters.append(cluster)
        return cluster

    def close(self) -> None:
        for cluster in self.clusters:
            try:
                cluster.down()
            except DrillFailed as error:
                say(f"  (stopping {cluster.dir.name}: {error})")
        if self.redis:
            self.redis.close()
        if self.pg:
            self.pg.close()

    # 1 ------------------------------------------------------------------
    def propagation(self) -> None:
        """A credential ended on one instance is refused by the two others
        within 100 ms (p99), for each kind of ending, under background load."""
        trials = 20 if self.short else 200
        cluster = self.cluster("propagation", {"AUTH_CACHE_TTL_MS": "60000", "AUTH_RATE_LIMITS": "off"})
        direct = [Http(cluster.port(i)) for i in range(1, INSTANCES + 1)]
        cluster.create_admin("admin@drill.test")
        status, body = login(direct[0], "admin@drill.test")
        check(status == 200, f"admin login answered {status}: {body}")
        admin = body["access_token"]
        background = me_load(cluster, [new_user(direct[0])[1] for _ in range(4)])

        def accepted(http: Http, kind: str, credential: str) -> int:
            if kind == "api key revoked":
                return http.call("GET", "/v1/database/projects", key=credential)[0]
            return http.call("GET", "/v1/auth/me", token=credential)[0]

        results: dict[str, list[float]] = {}
        try:
            for kind in ("logout", "api key revoked", "user disabled"):
                delays = []
                for trial in range(trials):
                    a = direct[trial % INSTANCES]
                    others = [direct[(trial + k) % INSTANCES] for k in (1, 2)]
                    _, token = new_user(a)
                    credential, end = token, None
                    if kind == "logout":
                        end = lambda: a.call("POST", "/v1/auth/logout", token=token)
                    elif kind == "api key revoked":
                        status, key = a.call("POST", "/v1/api-keys", {"name": f"drill {trial}"}, token=token)
                        check(status == 201, f"key creation answered {status}: {key}")
                        credential = key["api_key"]
                        end = lambda: a.call("DELETE", f"/v1/api-keys/{key['id']}", token=token)
                    else:
                        user_id = a.call("GET", "/v1/auth/me", token=token)[1]["id"]
                        end = lambda: a.call("PATCH", f"/v1/admin/users/{user_id}", {"is_active": False}, token=admin)
                    for http in others:
                        for _ in range(2):
                            got = accepted(http, kind, credential)
                            check(got == 200, f"{kind}: accepted before the change? answered {got}")
                    status, body = end()
                    check(status == 200, f"{kind}: the change answered {status}: {body}")
                    ended = time.monotonic()
                    pending = list(others)
                    while pending:
                        check(time.monotonic() - ended < 5, f"{kind}: still accepted 5 s after the change")
                        pending = [h for h in pending if accepted(h, kind, credential) == 200]
                    delays.append((time.monotonic() - ended) * 1000)
                results[kind] = delays
        finally:
            load = background.stop()
        errors = {k: v for k, v in statuses(load).items() if k[1] != 200}
        for kind, delays in results.items():
            say(f"  {kind}: {len(delays)} trials, refused by both others after p50 "
                f"{sorted(delays)[len(delays) // 2]:.1f} ms, p99 {p99(delays):.1f} ms, max {max(delays):.1f} ms")
        say(f"  background load: {len(load)} /me requests, not 200: {errors or 'none'}")
        check(not errors, f"background requests failed: {errors}")
        for kind, delays in results.items():
            check(p99(delays) <= 100, f"{kind}: p99 {p99(delays):.1f} ms > 100 ms")
        cluster.down()

    # 2 ------------------------------------------------------------------
    def limits(self) -> None:
        """Per-address and per-principal budgets hold within 5 % across the
        three instances (one budget in Redis, requests spread over all)."""
        budget_login, budget_principal = 60, 300
        cluster = self.cluster("limits", {
            "AUTH_RATE_LIMITS": f"login={budget_login}/3600,authenticated={budget_principal}/3600"})
        direct = [Http(cluster.port(i)) for i in range(1, INSTANCES + 1)]
        email, token = new_user(direct[0])
        # Logins from one address to many accounts: one account's own
        # failed-login budget (5 in flight at most) must not be what refuses.
        accounts = [email] + [new_user(direct[0])[0] for _ in range(11)]
        address = random_address()
        counted: dict[str, dict[int, int]] = {"address": {}, "principal": {}}
        lock = threading.Lock()

        def spread(kind: str, requests: int, call) -> None:
            def worker(n: int) -> None:
                mine = [Http(cluster.port(i)) for i in range(1, INSTANCES + 1)]
                for r in range(n, requests, 6):
                    status = call(mine[r % INSTANCES])
                    with lock:
                        counted[kind][status] = counted[kind].get(status, 0) + 1
            threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

        turn = iter(range(10**6))
        spread("address", 2 * budget_login,
               lambda h: login(h, accounts[next(turn) % len(accounts)], address=address)[0])
        spread("principal", budget_principal + budget_principal // 2,
               lambda h: h.call("GET", "/v1/auth/me", token=token)[0])
        cluster.down()
        for kind, budget in (("address", budget_login), ("principal", budget_principal)):
            got = counted[kind]
            allowed = got.get(200, 0)
            say(f"  per-{kind} budget {budget}: {allowed} allowed across {INSTANCES} instances "
                f"({(allowed - budget) / budget:+.1%}), answers {dict(sorted(got.items()))}")
            check(set(got) <= {200, 429}, f"per-{kind}: answers other than 200/429: {got}")
            check(abs(allowed - budget) <= 0.05 * budget, f"per-{kind}: {allowed} allowed, budget {budget}")

    # 3 ------------------------------------------------------------------
    def usage(self) -> None:
        """API-key usage counted on every instance adds up exactly once all
        instances have stopped."""
        requests = 600 if self.short else 6000
        cluster = self.cluster("usage", {"AUTH_RATE_LIMITS": "off"})
        email, token = new_user(Http(cluster.balancer))
        status, key = Http(cluster.balancer).call("POST", "/v1/api-keys", {"name": "usage drill"}, token=token)
        check(status == 201, f"key creation answered {status}")
        ok = [0] * 6

        def worker(n: int) -> None:
            mine = [Http(cluster.port(i)) for i in range(1, INSTANCES + 1)] + [Http(cluster.balancer)]
            for r in range(n, requests, 6):
                if mine[r % len(mine)].call("GET", "/v1/database/projects", key=key["api_key"])[0] == 200:
                    ok[n] += 1
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        served = sum(ok)
        cluster.down()
        cluster.script("up", str(INSTANCES))
        status, body = login(Http(cluster.balancer), email)
        check(status == 200, f"login after the restart answered {status}")
        status, keys = Http(cluster.balancer).call("GET", "/v1/api-keys", token=body["access_token"])
        check(status == 200, f"listing keys answered {status}")
        counted = next(k["usage_count"] for k in keys if k["id"] == key["id"])
        cluster.down()
        say(f"  {requests} requests with one key over {INSTANCES} instances and the balancer: "
            f"{served} answered 200, usage_count {counted} after all stopped")
        check(served == requests, f"only {served} of {requests} requests answered 200")
        check(counted == served, f"usage_count {counted} != {served} requests served")

    # 4 ------------------------------------------------------------------
    def crash(self) -> None:
        """`kill -9` of one instance under a load of registrations: every 201
        can log in afterwards, and the others keep answering."""
        seconds = 8 if self.short else 30
        cluster = self.cluster("crash", {"AUTH_RATE_LIMITS": "off"})
        acknowledged: list[str] = []

        def step(load: Load, state, http: Http) -> None:
            registered(load, http, acknowledged)
        load = Load(cluster.balancer, 6, step)
        survivors = [Http(cluster.port(1)), Http(cluster.port(3))]
        probes: list[int] = []
        killed_at = None
        began = time.monotonic()
        while time.monotonic() - began < seconds:
            if killed_at is None and time.monotonic() - began > seconds / 3:
                killed_at = time.monotonic() - load.started
                cluster.script("kill", "2")
            probes.extend(h.call("GET", "/healthz")[0] for h in survivors)
            time.sleep(0.05)
        records = load.stop()
        failed = [(round(t, 2), s) for t, _, s in records if s != 201]
        cluster.script("start", "2")
        again = Http(cluster.port(2))
        check(register(again)[0] == 201, "the restarted instance does not register")
        lost = unable_to_log_in(cluster, acknowledged)
        cluster.down()
        say(f"  {len(acknowledged)} registrations acknowledged, instance 2 killed at {killed_at:.2f} s; "
            f"not acknowledged: {len(failed)} {failed[:8]}; lost after the crash: {len(lost)}; "
            f"survivors' probes {len(probes)}, failed {sum(1 for p in probes if p != 200)}")
        check(killed_at is not None and len(acknowledged) > 0, "no load before the kill")
        check(not lost, f"acknowledged registrations cannot log in: {lost[:5]}")
        check(all(p == 200 for p in probes), "a surviving instance failed to answer")
        check(len(failed) <= 6, f"{len(failed)} requests failed: more than were in flight on the killed instance")

    # 5 ------------------------------------------------------------------
    def postgres_restart(self) -> None:
        """PostgreSQL stopped and started under load: only 503 while it is
        down, full service within 5 s of its return, nothing acknowledged lost."""
        down_for = 3 if self.short else 10
        cluster = self.cluster("postgres", {"AUTH_RATE_LIMITS": "off"})
        seed = Http(cluster.balancer)
        acknowledged: list[str] = []
        tokens = [new_user(seed)[1] for _ in range(3)]

        def step(load: Load, state, http: Http) -> None:
            if random.random() < 0.3:
                registered(load, http, acknowledged)
            else:
                load.record("me", http.call("GET", "/v1/auth/me", token=random.choice(tokens))[0])
        load = Load(cluster.balancer, 6, step)
        time.sleep(2)
        stopped = time.monotonic() - load.started
        self.pg.stop("immediate")
        time.sleep(down_for)
        self.pg.start()
        back = time.monotonic() - load.started
        time.sleep(8)
        records = load.stop()
        during = statuses([r for r in records if stopped <= r[0] <= back])
        bad = [(round(t, 2), w, s) for t, w, s in records if s not in (200, 201, 503)]
        not_ok_after = [t for t, _, s in records if t > back and s not in (200, 201)]
        full_service = (max(not_ok_after) - back) if not_ok_after else 0.0
        lost = unable_to_log_in(cluster, acknowledged)
        cluster.down()
        say(f"  down {back - stopped:.1f} s: answers meanwhile {during}; full service {full_service:.2f} s "
            f"after its return; {len(acknowledged)} registrations acknowledged, lost {len(lost)}; "
            f"answers other than 200/201/503: {bad[:8] or 'none'}")
        check(not bad, f"answers other than 200/201/503: {bad[:8]}")
        check(full_service <= 5, f"full service only {full_service:.2f} s after PostgreSQL returned")
        check(not lost, f"acknowledged registrations lost: {lost[:5]}")

    # 6 ------------------------------------------------------------------
    def redis_stopped(self) -> None:
        """Redis stopped under load: no 5xx, and each instance limits on its own."""
        seconds = 8 if self.short else 30
        budget = 20
        cluster = self.cluster("redis", {"AUTH_RATE_LIMITS": f"login={budget}/3600,authenticated=off"})
        seed = Http(cluster.balancer)
        users = [new_user(seed) for _ in range(3)]

        def step(load: Load, state, http: Http) -> None:
            email, token = random.choice(users)
            roll = random.random()
            if roll < 0.1:
                load.record("login", login(http, email)[0])
            elif roll < 0.15:
                load.record("register", register(http)[0])
            else:
                load.record("me", http.call("GET", "/v1/auth/me", token=token)[0])
        load = Load(cluster.balancer, 4, step)
        began = time.monotonic()
        time.sleep(seconds / 3)
        self.redis.stop()
        stopped = time.monotonic() - load.started
        time.sleep(max(0.0, seconds - (time.monotonic() - began)))
        records = load.stop()
        after = statuses([r for r in records if r[0] > stopped])
        bad = [(round(t, 2), w, s) for t, w, s in records if s == 0 or s >= 500 or s not in (200, 201, 429)]
        address = random_address()
        direct = [Http(cluster.port(i)) for i in range(1, INSTANCES + 1)]
        answers: dict[int, int] = {}
        for r in range(5 * budget):
            status = login(direct[r % INSTANCES], users[0][0], address=address)[0]
            answers[status] = answers.get(status, 0) + 1
        cluster.down()
        self.redis.start()
        allowed = answers.get(200, 0)
        say(f"  Redis stopped at {stopped:.1f} s: answers after {after}; "
            f"one address against {INSTANCES} instances on their own (budget {budget} each): {answers}")
        check(not bad, f"5xx or refused connections with Redis stopped: {bad[:8]}")
        check(set(answers) <= {200, 429}, f"answers other than 200/429: {answers}")
        check(budget <= allowed <= INSTANCES * budget, f"{allowed} logins allowed from one address")

    # 7 ------------------------------------------------------------------
    def soak(self) -> None:
        """Mixed traffic for 30 minutes (CI: 2): no error, RSS and open files
        flat (the last 5 minutes within 5 % of minutes 5 to 10, open files
        also within the load's connections; in a soak under 15 minutes, the
        last sixth against the second)."""
        seconds = 120 if self.short else 60 * self.soak_minutes
        if seconds >= 900:
            # Minutes 5 to 10 against the last 5.
            early, late = (300, 600), (seconds - 300, seconds)
        else:
            early, late = (seconds / 6, seconds / 3), (seconds * 5 / 6, seconds)
        cluster = self.cluster("soak", {})
        samples: list[tuple[float, int, int, int]] = []  # (t, instance, rss KiB, open files)

        # Ten users per worker, each well within its 600-a-minute budget.
        def setup(n: int, http: Http) -> list[dict]:
            users = []
            for u in range(10):
                email, token = new_user(http)
                status, key = http.call("POST", "/v1/api-keys", {"name": f"soak {n}.{u}"}, token=token)
                check(status == 201, f"key creation answered {status}")
                users.append({"email": email, "token": token, "key": key["api_key"]})
            return users

        def step(load: Load, users, http: Http) -> None:
            state = random.choice(users)
            roll = random.random()
            if roll < 0.55:
                what, status = "me", http.call("GET", "/v1/auth/me", token=state["token"])[0]
            elif roll < 0.80:
                what, status = "api key", http.call("GET", "/v1/database/projects", key=state["key"])[0]
            elif roll < 0.85:
                what, status = "list keys", http.call("GET", "/v1/api-keys", token=state["token"])[0]
            elif roll < 0.89:
                what, status = "project", http.call("POST", "/v1/database/projects",
                                                    {"name": f"p{random.randint(0, 10**9)}"},
                                                    key=state["key"])[0]
            elif roll < 0.93:
                status, body = http.call("POST", "/v1/auth/refresh", token=state["token"])
                what = "refresh"
                if status == 200:
                    state["token"] = body["access_token"]
            elif roll < 0.97:
                status, body = login(http, state["email"])
                what = "login"
                if status == 200:
                    state["token"] = body["access_token"]
            else:
                what, status = "register", register(http)[0]
            load.record(what, status)

        workers = 6
        load = Load(cluster.balancer, workers, step, setup=setup, pace=0.02)
        began = time.monotonic()
        while time.monotonic() - began < seconds:
            now = time.monotonic() - began
            for i in range(1, INSTANCES + 1):
                pid = cluster.pid(i)
                rss = next(int(line.split()[1]) for line in open(f"/proc/{pid}/status")
                           if line.startswith("VmRSS:"))
                samples.append((now, i, rss, len(os.listdir(f"/proc/{pid}/fd"))))
            time.sleep(5 if not self.short else 2)
        records = load.stop()
        cluster.down()
        counts = statuses(records)
        errors = {k: v for k, v in counts.items() if k[1] not in (200, 201)}
        say(f"  {len(records)} requests in {seconds} s: {dict(sorted(counts.items()))}")
        flat = True
        for i in range(1, INSTANCES + 1):
            # The median of each window: a leak moves it, while a sample
            # taken as HAProxy opened a few more connections to the
            # instance (each an open file) does not.
            def window(bounds, field):
                values = sorted(s[field] for s in samples if s[1] == i and bounds[0] <= s[0] < bounds[1])
                return values[len(values) // 2]
            rss_early, rss_late = window(early, 2), window(late, 2)
            fd_early, fd_late = window(early, 3), window(late, 3)
            rss_ok = rss_late <= rss_early * 1.05
            # Each connection HAProxy holds to the instance is an open file,
            # and it holds up to one per worker of the load, opened as the
            # load needs them: a window may see up to that many more without
            # a leak (CI's short soak failed on 30 -> 33). A leak grows past
            # any such number over the soak.
            fd_ok = fd_late <= max(math.ceil(fd_early * 1.05), fd_early + workers)
            flat = flat and rss_ok and fd_ok
            say(f"  instance {i}: RSS {rss_early / 1024:.1f} -> {rss_late / 1024:.1f} MiB "
                f"({rss_late / rss_early - 1:+.1%}), open files {fd_early} -> {fd_late}")
        check(not errors, f"errors during the soak: {errors}")
        check(flat, "RSS grew by more than 5 %, or open files by more than the load's connections, "
                    "between the early and the last window")


ORDER = ["propagation", "limits", "usage", "crash", "postgres_restart", "redis_stopped", "soak"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="CI's lengths: seconds per drill, a 2-minute soak")
    parser.add_argument("--binary", default=str(ROOT / "target" / "release" / "portcullis"))
    parser.add_argument("--only", nargs="*", choices=ORDER, help="run these drills only")
    parser.add_argument("--soak-minutes", type=int, default=30,
                        help="the full soak's length (15 or more compares minutes 5-10 with the last 5)")
    args = parser.parse_args()
    binary = Path(args.binary).resolve()
    if not os.access(binary, os.X_OK):
        say(f"{binary} is not an executable: build it first (cargo build --release)")
        return 1
    work = Path(tempfile.mkdtemp(prefix="portcullis-drills-"))
    drills = Drills(work, binary, args.short, args.soak_minutes)
    failed = []
    try:
        for name in args.only or ORDER:
            say(f"drill {ORDER.index(name) + 1}: {name.replace('_', ' ')}")
            began = time.monotonic()
            try:
                getattr(drills, name)()
                say(f"  passed in {time.monotonic() - began:.0f} s")
            except DrillFailed as error:
                failed.append(name)
                say(f"  FAILED: {error}")
                for cluster in drills.clusters:
                    subprocess.run([str(CLUSTER_SCRIPT), "down"], env=cluster.env, capture_output=True)
    finally:
        drills.close()
    if failed:
        say(f"failed: {', '.join(failed)} (logs under {work})")
        return 1
    shutil.rmtree(work, ignore_errors=True)
    say("every drill passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
