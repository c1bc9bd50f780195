#!/usr/bin/env python3
"""How close can a single submission on PostgreSQL come to a bare INSERT+COMMIT?

The core issue asks for single submissions at >= 80% of a bare psycopg INSERT+COMMIT per
row. This times, with no Conveyor Python in the loop, the statements a submission must run,
each prepared once and run through libpq (``PGconn.exec_prepared``) with the same text
parameters, autocommitted (synchronous commit), interleaved in blocks:

- ``bare``: ``INSERT INTO bench_baseline (n) VALUES ($1)`` (the baseline of bench/README);
- ``job``: the job row alone (Conveyor's INSERT, its three index entries);
- ``job+event``: the job row and its event row in one statement (INSERT_ONE);
- ``job+event+notify``: the same with the NOTIFY that wakes the workers (INSERT_ONE_WAKE,
  what ``conveyor submit`` runs for a runnable job);
- ``... + N us spin``: the same with N µs of client time between calls (``--think-us``, a
  spin, no I/O): the server's CPU per call grows with the client's time between calls (its
  backend sleeps and wakes colder), which is where a Conveyor submission's extra server CPU
  comes from;

and the same submission through Conveyor (``JobService.submit``), and ``psycopg bare``: the
bare insert through psycopg's ``Connection.execute``, as run_peers.py's psycopg-baseline peer
runs it, the baseline the core issue's 80% target names. Prints wall time and the server
backend's CPU per call (medians of the blocks) and each as a share of both baselines'
rates. Run in the project venv:

    python bench/pg_submit_floor.py [--rounds 8] [--block 400]

The database ``conveyor_submit_floor`` on the server of ``CONVEYOR_BENCH_PG_ADMIN`` (default
the test server) is dropped and created.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import pq

import conveyor.store.postgres as pgstore
from conveyor.app import App
from conveyor.engine.jobs import SubmitRequest

ADMIN = os.environ.get("CONVEYOR_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")
DB = "conveyor_submit_floor"
TICK = os.sysconf("SC_CLK_TCK")


def backend_cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--block", type=int, default=400)
    ap.add_argument(
        "--think-us",
        type=float,
        default=80.0,
        help="also run job+event+notify with this much client time (a spin) between calls: "
        "the server's CPU per call grows with the client's time between calls (0: skip)",
    )
    args = ap.parse_args()
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{DB}"')
    url = ADMIN.rsplit("/", 1)[0] + "/" + DB
    app = App.open(url)
    request = SubmitRequest(function="tasks:noop", payload={"args": [1]})
    # the text parameters of a real submission, as the store sends them
    seen: dict[bytes, tuple[Any, list[bytes | None]]] = {}
    statement = pgstore.PostgresStore._statement

    def spy(self: Any, st: Any, params: Any, values: Any) -> int:
        seen.setdefault(st.name, (st, values))
        return statement(self, st, params, values)

    pgstore.PostgresStore._statement = spy  # type: ignore[method-assign]
    app.jobs.submit(request)
    pgstore.PostgresStore._statement = statement  # type: ignore[method-assign]
    ((wake, wake_values),) = seen.values()
    assert wake_values is not None
    one = pgstore._prepared(pgstore.INSERT_ONE)
    job_only = pgstore._prepared(
        pgstore.INSERT_ONE.split(" RETURNING id),")[0].removeprefix("WITH j AS (") + " RETURNING id"
    )
    conn = psycopg.connect(url, autocommit=True)
    conn.execute("CREATE TABLE bench_baseline (n bigint)")
    pg = conn.pgconn
    # the wake statement's parameters end with the queue (NOTIFY), INSERT_ONE's with the
    # event's data; the job's with the payload and the times
    statements: dict[str, tuple[bytes, bytes, list[bytes | None]]] = {
        "bare": (b"floor_bare", b"INSERT INTO bench_baseline (n) VALUES ($1)", [b"1"]),
        "job": (job_only.name, job_only.text, wake_values[:-3]),
        "job+event": (one.name, one.text, wake_values[:-1]),
        "job+event+notify": (wake.name, wake.text, wake_values),
    }
    for name, (st_name, text, _) in statements.items():
        res = pg.prepare(st_name, text)
        if res.status != pq.ExecStatus.COMMAND_OK:
            raise SystemExit(f"{name}: {pg.error_message.decode()}")

    def run_prepared(st_name: bytes, values: list[bytes | None]) -> Callable[[], None]:
        def call() -> None:
            res = pg.exec_prepared(st_name, values)
            if res.status not in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK):
                raise SystemExit(pg.error_message.decode())

        return call

    calls: dict[str, Callable[[], Any]] = {
        name: run_prepared(st_name, values) for name, (st_name, _, values) in statements.items()
    }
    if args.think_us > 0:
        wake_call = calls["job+event+notify"]

        def thinking() -> None:
            wake_call()
            end = time.perf_counter() + args.think_us / 1e6
            while time.perf_counter() < end:
                pass

        calls[f"... + {args.think_us:g} us spin"] = thinking
    calls["conveyor submit"] = lambda: app.jobs.submit(request)
    baseline = psycopg.connect(url, autocommit=True)  # the psycopg-baseline peer's call
    calls["psycopg bare"] = lambda: baseline.execute("INSERT INTO bench_baseline (n) VALUES (%s)", (1,))
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        pids = [
            int(r[0]) for r in admin.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (DB,))
        ]
    results: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in calls}
    for _ in range(args.rounds):
        for name, call in calls.items():
            cpu0, t0 = backend_cpu(pids), time.perf_counter()
            for _ in range(args.block):
                call()
            wall = (time.perf_counter() - t0) / args.block
            results[name][0].append(wall)
            results[name][1].append((backend_cpu(pids) - cpu0) / args.block)
    app.close()
    conn.close()
    baseline.close()
    base = statistics.median(results["bare"][0])
    psy = statistics.median(results["psycopg bare"][0])
    print(f"pg_submit_floor.py: {args.rounds} rounds x {args.block} calls, load {os.getloadavg()[0]:.2f}")
    for name, (walls, cpus) in results.items():
        wall = statistics.median(walls)
        print(
            f"{name:18s} wall {wall * 1e6:6.0f} us  server CPU {statistics.median(cpus) * 1e6:5.0f} us"
            f"  rate {1 / wall:7,.0f}/s = {base / wall:6.1%} of bare, {psy / wall:6.1%} of psycopg bare"
        )


if __name__ == "__main__":
    main()
