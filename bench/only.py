"""Reruns chosen scenarios of bench/bench.py alone, on a fresh server and
database, for a quick look after a change (the full run stays the reference):

    python3 bench/only.py target/release/portcullis sqlite S7_16 S6_16 S2_64

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
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown or not names:
        raise SystemExit(f"scenarios: {', '.join(SCENARIOS)} (unknown: {unknown})")
    workdir = tempfile.mkdtemp(prefix=f"portcullis-only-{backend}-")
    run = uuid.uuid4().hex[:8]
    server = bench.Server(binary, backend, workdir)
    try:
        bench.seed(server.base, workdir, run)
        results = {}
        for name in names:
            script, connections, path = SCENARIOS[name]
            results[name] = bench.measured(server, f"{name} ({backend})", lambda: bench.wrk(
                server.base, script, connections, bench.DURATION, workdir, run, path))
        print(json.dumps({"backend": backend, "scenarios": results}))
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
