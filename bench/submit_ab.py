#!/usr/bin/env python3
"""CPU time per submitted job, A/B against other source trees, interleaved in short slices.

On a shared machine throughput figures swing by 2x with other people's load; CPU time per
job swings less, and slices of a few hundred jobs run alternately (A, B, B, A, ...) see the
same load. Each source tree gets a child process with its own fresh database; per slice
the child reports, per job: its own CPU time (client), its PostgreSQL backends' CPU time
(server, from /proc/<pid>/schedstat: the server must run on this host) and wall time.

    bench/.venv-peers/bin/python bench/submit_ab.py one 400 24 /path/a/src /path/b/src psycopg

``one``: ``JobService.submit`` per job (W1 single); ``bulk``: ``submit_many_brief`` of 1000
(W1 bulk). A tree ``psycopg`` is the bare autocommit INSERT (the psycopg-baseline peer).
Figures: medians over slices and the median of per-slice ratios against the first tree.
Databases: ``$BENCH_AB_DSN`` + ``_<n>`` (default postgresql://postgres@127.0.0.1:5432/bench_submit_ab).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

DSN = os.environ.get("BENCH_AB_DSN", "postgresql://postgres@127.0.0.1:5432/bench_submit_ab")
ADMIN = os.environ.get("BENCH_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
BENCH_DIR = os.path.dirname(os.path.abspath(__file__))


def child(index: int, tree: str) -> None:
    import psycopg

    base, name = DSN.rsplit("/", 1)
    name = f"{name}_{index}"
    dsn = f"{base}/{name}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    monitor = psycopg.connect(dsn, autocommit=True)
    monitor_pid = monitor.execute("SELECT pg_backend_pid()").fetchone()[0]
    if tree == "psycopg":
        conn = psycopg.connect(dsn, autocommit=True)
        conn.execute("CREATE TABLE bench_baseline (n bigint)")

        def one(n: int) -> None:
            conn.execute("INSERT INTO bench_baseline (n) VALUES (%s)", (n,))

        def bulk(ns: range) -> None:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany("INSERT INTO bench_baseline (n) VALUES (%s)", [(n,) for n in ns])

    else:
        import conveyor
        from conveyor.app import App
        from conveyor.engine.jobs import SubmitRequest

        assert conveyor.__file__.startswith(tree), (conveyor.__file__, tree)
        app = App.open(dsn)

        def one(n: int) -> None:
            app.jobs.submit(SubmitRequest(function="peers.conveyor_peer:noop", payload={"args": [n]}))

        def bulk(ns: range) -> None:
            app.jobs.submit_many_brief(
                [SubmitRequest(function="peers.conveyor_peer:noop", payload={"args": [n]}) for n in ns]
            )

    for n in range(100):
        one(n)
    bulk(range(1000))
    pids = [
        r[0]
        for r in monitor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> %s", (name, monitor_pid)
        )
    ]

    def server_cpu() -> float:
        # schedstat's time on CPU is in ns; stat's utime + stime come in 10 ms ticks (2.5 µs a
        # job of a 4,000-job slice) and are sampled, which a backend busy in short bursts skews
        total = 0
        for pid in pids:
            with open(f"/proc/{pid}/schedstat") as f:
                total += int(f.read().split()[0])
        return total / 1e9

    print("ready", flush=True)
    k = 0
    for line in sys.stdin:
        mode, count = line.split()
        n = int(count)
        c0, s0, w0 = time.process_time(), server_cpu(), time.perf_counter()
        if mode == "one":
            for i in range(n):
                one(k + i)
        else:
            for start in range(0, n, 1000):
                bulk(range(k + start, k + start + 1000))
        c1, s1, w1 = time.process_time(), server_cpu(), time.perf_counter()
        k += n
        print(f"{1e6 * (c1 - c0) / n:.2f} {1e6 * (s1 - s0) / n:.2f} {1e6 * (w1 - w0) / n:.2f}", flush=True)


def main() -> None:
    if sys.argv[1] == "--child":
        child(int(sys.argv[2]), sys.argv[3])
        return
    mode, per_slice, slices, trees = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
    kids = []
    for i, tree in enumerate(trees):
        path = BENCH_DIR if tree == "psycopg" else f"{tree}:{BENCH_DIR}"
        kids.append(
            subprocess.Popen(
                [sys.executable, __file__, "--child", str(i), tree],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env={**os.environ, "PYTHONPATH": path},
            )
        )
    for kid in kids:
        assert kid.stdout is not None and kid.stdout.readline().strip() == "ready"
    results: list[list[tuple[float, ...]]] = [[] for _ in trees]
    for s in range(slices):
        order = list(range(len(kids)))
        for i in order if s % 2 == 0 else reversed(order):
            kid = kids[i]
            assert kid.stdin is not None and kid.stdout is not None
            kid.stdin.write(f"{mode} {per_slice}\n")
            kid.stdin.flush()
            results[i].append(tuple(map(float, kid.stdout.readline().split())))
    for kid in kids:
        assert kid.stdin is not None
        kid.stdin.close()
        kid.wait()
    print(f"mode={mode} jobs/slice={per_slice} slices={slices} load={os.getloadavg()}")
    for tree, res in zip(trees, results, strict=True):
        med = [statistics.median(x[k] for x in res) for k in range(3)]
        print(
            f"{tree:28s} median µs/job: client {med[0]:6.1f} server {med[1]:6.1f} wall {med[2]:6.1f}"
            f" ({1e6 / med[2]:,.0f} jobs/s)"
        )
    for j in range(1, len(trees)):
        ratios = [
            statistics.median(results[j][s][k] / results[0][s][k] for s in range(slices) if results[0][s][k])
            for k in range(3)
        ]
        print(
            f"{trees[j]} / {trees[0]}: median per-slice ratio client {ratios[0]:.3f}"
            f" server {ratios[1]:.3f} wall {ratios[2]:.3f}"
        )


if __name__ == "__main__":
    main()
