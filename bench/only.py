"""Reruns chosen scenarios of bench/bench.py alone, on a fresh server and
database, for a quick look after a change (the full run stays the reference):

    python3 bench/only.py target/release/portcullis sqlite S7_16 S6_16 S2_64

S1_16 is the login run against the argon2 limit, timed around each slice as
the full run does (it needs the argon2_verify example built beside the binary).

Prints each scenario's figures and writes them to stdout as one JSON line.
"""

import json
import os
import shutil
import sys
import tempfile
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

# Scenario name -> (wrk script, connections, path).
SCENARIOS = {
    "healthz_64": ("healthz.lua", 64, "/healthz"),
    "S2_64": ("me.lua", 64, "/"),
    "S5_64": ("projects.lua", 64, "/"),
    "S6_16": ("refresh.lua", 16, "/"),
    "S7_16": ("rotate.lua", 16, "/"),
}


def main():
    binary, backend, names = os.path.abspath(sys.argv[1]), sys.argv[2], sys.argv[3:]
    unknown = [n for n in names if n not in SCENARIOS and n != "S1_16"]
    if unknown or not names:
        raise SystemExit(f"scenarios: S1_16, {', '.join(SCENARIOS)} (unknown: {unknown})")
    workdir = tempfile.mkdtemp(prefix=f"portcullis-only-{backend}-")
    run = uuid.uuid4().hex[:8]
    server = bench.Server(binary, backend, workdir)
    try:
        bench.seed(server.base, workdir, run)
        results = {}
        for name in names:
            if name == "S1_16":
                os.environ.setdefault("BENCH_ARGON2_BIN", os.path.join(
                    os.path.dirname(binary), "examples", "argon2_verify"))
                results[name], limit = bench.login_against_limit(server, workdir, run)
                if limit:
                    results[name]["ratio_to_limit"] = round(results[name]["rps"] / limit["limit_per_s"], 3)
                    results[name]["limit_per_s"] = limit["limit_per_s"]
                    results[name]["all_cores_per_s"] = limit.get("all_cores_per_s")
                print(f"  S1_16: ratio to limit {results[name].get('ratio_to_limit')}", flush=True)
                continue
            script, connections, path = SCENARIOS[name]
            results[name] = bench.measured(server, f"{name} ({backend})", lambda: bench.wrk(
                server.base, script, connections, bench.DURATION, workdir, run, path))
        print(json.dumps({"backend": backend, "scenarios": results}))
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
