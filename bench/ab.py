#!/usr/bin/env python3
"""Two binaries side by side: healthz, S2 and S5 at 64 connections, alternating.

Usage: ab.py BEFORE_BINARY AFTER_BINARY [BACKEND] [ROUNDS]   (default sqlite, 3)

Both servers start on fresh databases and are seeded as bench.py seeds; then
the trio runs ROUNDS times on each, the order alternating every round, so the
machine's drift falls on both alike. Prints each trio and the medians as JSON.
For "unchanged within noise" checks of a refactor: the full bench judges
targets, this compares two builds in one window.
"""

import json
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def main():
    before, after = sys.argv[1], sys.argv[2]
    backend = sys.argv[3] if len(sys.argv) > 3 else "sqlite"
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    servers = {}
    for name, binary in (("before", before), ("after", after)):
        workdir = tempfile.mkdtemp(prefix=f"ab-{name}-")
        server = bench.Server(binary, backend, workdir)
        bench.seed(server.base, workdir, "ab")
        servers[name] = (server, workdir)
    runs = {"before": [], "after": []}
    try:
        for r in range(rounds):
            for name in (("before", "after") if r % 2 == 0 else ("after", "before")):
                server, workdir = servers[name]
                trio = bench.fast_trio(server, workdir, "ab")
                runs[name].append([{"rps": t["rps"], "p99_ms": t["p99_ms"]} for t in trio])
    finally:
        for server, _ in servers.values():
            server.stop()
    labels = ("healthz_64", "S2_64", "S5_64")
    medians = {name: {label: {"rps": statistics.median(run[i]["rps"] for run in trios),
                              "p99_ms": statistics.median(run[i]["p99_ms"] for run in trios)}
                      for i, label in enumerate(labels)}
               for name, trios in runs.items()}
    print(json.dumps({"backend": backend, "rounds": rounds, "runs": runs, "medians": medians}, indent=1))


if __name__ == "__main__":
    main()
