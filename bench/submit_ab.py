#!/usr/bin/env python3
"""CPU time per submitted job, A/B against other source trees, interleaved in short slices.

On a shared machine throughput figures swing by 2x with other people's load; CPU time per
job swings less, and slices of a few hundred jobs run alternately (A, B, B, A, ...) see the
same load. Each source tree gets a child process with its own fresh database; per slice
the child reports, per job: its own CPU time (client), its PostgreSQL backends' CPU time
(server, from /proc/<pid>/schedstat: the server must run on this host) and wall time.

    bench/.venv-peers/bin/python bench/submit_ab.py one 400 24 /path/a/src /path/b/src psycopg
    bench/.venv-peers/bin/python bench/submit_ab.py --sqlite one 400 24 /path/a/src /path/b/src sqlite

``one``: ``JobService.submit`` per job (W1 single); ``bulk``: ``submit_many_brief`` of 1000
(W1 bulk). A tree ``psycopg`` is the bare autocommit INSERT (the psycopg-baseline peer).
Figures: medians over slices and the median of per-slice ratios against the first tree.
Databases: ``$BENCH_AB_DSN`` + ``_<n>`` (default postgresql://postgres@127.0.0.1:5432/bench_submit_ab).

``--sqlite``: the same on SQLite, a fresh file per tree in ``$BENCH_AB_SQLITE_DIR`` (default
bench/results); SQLite runs in the client, so the client's CPU is all of it (server 0). A tree
``sqlite`` is the bare ``BEGIN; INSERT; COMMIT`` per row in WAL mode, ``synchronous=NORMAL``
(the sqlite-baseline peer).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

DSN = os.environ.get("BENCH_AB_DSN", "postgresql://postgres@127.0.0.1:5432/bench_submit_ab")
ADMIN = os.environ.get("BENCH_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
SQLITE_DIR = os.environ.get("BENCH_AB_SQLITE_DIR", os.path.join(BENCH_DIR, "results"))


def sqlite_child(index: int, tree: str) -> None:
    import sqlite3

    path = os.path.join(SQLITE_DIR, f"submit-ab-{index}.db.tmp")
    for suffix in ("", "-wal", "-shm", "-lock"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)
    if tree == "sqlite":
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE bench_baseline (n INTEGER)")

        def one(n: int) -> None:
            conn.execute("BEGIN")
            conn.execute("INSERT INTO bench_baseline (n) VALUES (?)", (n,))
            conn.execute("COMMIT")

        def bulk(ns: range) -> None:
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO bench_baseline (n) VALUES (?)", [(n,) for n in ns])
            conn.execute("COMMIT")

    else:
        one, bulk = _conveyor(tree, f"sqlite:///{path}")
    serve(one, bulk, lambda: 0.0)


def _conveyor(tree: str, url: str) -> tuple[Callable[[int], None], Callable[[range], None]]:
    import conveyor
    from conveyor.app import App
    from conveyor.engine.jobs import SubmitRequest

    assert conveyor.__file__.startswith(tree), (conveyor.__file__, tree)
    app = App.open(url)

    def one(n: int) -> None:
        app.jobs.submit(SubmitRequest(function="peers.conveyor_peer:noop", payload={"args": [n]}))

    def bulk(ns: range) -> None:
        app.jobs.submit_many_brief(
            [SubmitRequest(function="peers.conveyor_peer:noop", payload={"args": [n]}) for n in ns]
        )

    return one, bulk


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
        one, bulk = _conveyor(tree, dsn)
    pids: list[int] = []

    def server_cpu() -> float:
        if not pids:  # the backends, once warm-up has opened them
            pids.extend(
                r[0]
                for r in monitor.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> %s", (name, monitor_pid)
                )
            )
        # schedstat's time on CPU is in ns; stat's utime + stime come in 10 ms ticks (2.5 µs a
        # job of a 4,000-job slice) and are sampled, which a backend busy in short bursts skews
        total = 0
        for pid in pids:
            with open(f"/proc/{pid}/schedstat") as f:
                total += int(f.read().split()[0])
        return total / 1e9

    serve(one, bulk, server_cpu)


def serve(one: Callable[[int], None], bulk: Callable[[range], None], server_cpu: Callable[[], float]) -> None:
    """Warm up, then run the slices the parent asks for, reporting µs per job."""
    for n in range(100):
        one(n)
    bulk(range(1000))
    server_cpu()
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
        (sqlite_child if sys.argv[4] == "sqlite" else child)(int(sys.argv[2]), sys.argv[3])
        return
    args = sys.argv[1:]
    backend = "postgresql"
    if args[0] == "--sqlite":
        backend, args = "sqlite", args[1:]
    mode, per_slice, slices, trees = args[0], int(args[1]), int(args[2]), args[3:]
    kids = []
    for i, tree in enumerate(trees):
        path = BENCH_DIR if tree in ("psycopg", "sqlite") else f"{tree}:{BENCH_DIR}"
        kids.append(
            subprocess.Popen(
                [sys.executable, __file__, "--child", str(i), tree, backend],
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
    print(f"backend={backend} mode={mode} jobs/slice={per_slice} slices={slices} load={os.getloadavg()}")
    for tree, res in zip(trees, results, strict=True):
        med = [statistics.median(x[k] for x in res) for k in range(3)]
        print(
            f"{tree:28s} median µs/job: client {med[0]:6.1f} server {med[1]:6.1f} wall {med[2]:6.1f}"
            f" ({1e6 / med[2]:,.0f} jobs/s)"
        )
    for j in range(1, len(trees)):
        per_slice = [
            [results[j][s][k] / results[0][s][k] for s in range(slices) if results[0][s][k]] or [0.0]
            for k in range(3)
        ]
        ratios = [statistics.median(r) for r in per_slice]
        client = sorted(per_slice[0])
        print(
            f"{trees[j]} / {trees[0]}: median per-slice ratio client {ratios[0]:.3f}"
            f" (quartiles {client[len(client) // 4]:.3f}..{client[(3 * len(client)) // 4]:.3f})"
            f" server {ratios[1]:.3f} wall {ratios[2]:.3f}"
        )


if __name__ == "__main__":
    main()
