#!/usr/bin/env python3
"""Schedules at scale (run by hand, not by pytest).

    python bench/bench_schedules.py --count 100000            # both backends
    python bench/bench_schedules.py --count 1000000 --backend postgres

Measures, per backend:

1. **bulk create**: ``--count`` schedules (about 1,000 distinct expressions, 5 zones, a
   third with flexible windows) through ``ScheduleService.create_many`` (target < 2 min
   for 1,000,000);
2. **steady state**: a scheduler *child process* runs the real loop (system clock) for
   ``--steady-seconds`` over those schedules: its peak RSS (target < 500 MB) and the fire
   lag, commit time minus due time, p50/p99/max (target p99 < 1 s), leaving out the first
   65 s (catch-up and the first pile after the bulk create). Every fire of one
   ``run_once`` counts as committed when its last batch is, so a minute-boundary pile
   weighs in at its whole duration;
3. **burst**: ``--burst`` schedules all due at the same second, fired by ``--burst-schedulers``
   schedulers (threads, each with its own store) on an injected clock: time until every
   job is inserted (target < 10 s for 100,000).

PostgreSQL: ``--pg-admin`` (default postgresql://127.0.0.1:5432/test) creates and drops
scratch databases. SQLite: files in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from conveyor.app import App
from conveyor.clock import FrozenClock, SystemClock
from conveyor.engine.jobs import SubmitRequest
from conveyor.engine.schedules import Scheduler, SchedulerConfig, ScheduleRequest
from conveyor.store import open_store

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney"]
TARGET = SubmitRequest(queue="default", function="bench.tasks:noop", parameters={"day": "{scheduled_time}"})


def expressions_mix() -> list[str]:
    """About 1,000 distinct expressions: daily, hourly, every-N-minutes, weekly, rate()."""
    out: list[str] = []
    out += [f"{m} {h} * * *" for h in range(24) for m in range(0, 60, 3)]  # 480 daily
    out += [f"{m} * * * *" for m in range(60)]  # 60 hourly
    out += [f"{m} */{k} * * *" for k in (2, 3, 4, 6) for m in range(0, 60, 2)]  # 120
    out += [f"cron({m} {h} ? * MON-FRI *)" for h in range(6, 20) for m in (0, 15, 30, 45)]  # 56 weekdays
    out += [f"{m} {h} * * 0" for h in range(24) for m in (0, 30)]  # 48 weekly
    out += [f"*/{k} * * * *" for k in range(5, 60)]  # 55 every N minutes
    out += [f"rate({k} minutes)" for k in range(10, 190)]  # 180 rates
    return out


def requests(start: int, n: int, exprs: list[str]) -> list[ScheduleRequest]:
    return [
        ScheduleRequest(
            name=f"s{i:07d}",
            expression=exprs[i % len(exprs)],
            timezone=ZONES[(i // len(exprs)) % len(ZONES)],
            window_minutes=[0, 0, 5][i % 3],
            targets=(TARGET,),
        )
        for i in range(start, start + n)
    ]


def fresh_pg(admin: str) -> tuple[str, str]:
    name = f"conveyor_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin.rpartition("/")[0] + "/" + name, name


def drop_pg(admin: str, name: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bulk_create(url: str, count: int, tmp: str) -> dict[str, Any]:
    exprs = expressions_mix()
    chunk = 50_000
    with App.open(url, blob_dir=os.path.join(tmp, "blobs")) as app:
        started = time.perf_counter()
        done = 0
        while done < count:
            n = min(chunk, count - done)
            done += app.schedules.create_many(requests(done, n, exprs))
        elapsed = time.perf_counter() - started
        per_state = app.store.schedule_count()
    return {
        "schedules": done,
        "distinct_expressions": len(exprs),
        "zones": len(ZONES),
        "seconds": round(elapsed, 1),
        "per_second": round(done / elapsed),
        "states": per_state,
    }


def steady_child(url: str, seconds: float, batch: int) -> None:
    """In a child process: run the scheduler loop on the real clock; print RSS and lags."""
    store = open_store(url)
    clock = SystemClock()
    scheduler = Scheduler(store, clock, SchedulerConfig(batch_size=batch))
    lags: list[float] = []
    fires = 0
    # not steady state: the backlog that came due while the process started (catch-up), and
    # the first minute after the bulk create, whose first pile of fires pays for writing
    # back the freshly created database (measured: ~1.8 s on SQLite then, ~0.4 s after)
    warm = time.time() + 65.0
    stop_at = time.monotonic() + seconds
    max_sleep = 0.05
    try:
        while time.monotonic() < stop_at:
            # the loop of `conveyor scheduler`: Scheduler.run_once (at a minute boundary
            # thousands come due together and are fired by parallel batches); every fire of
            # one run_once counts as committed when the last batch has (an upper bound)
            now = clock.now()
            counts = scheduler.run_once(now)
            committed = time.time()
            if counts.schedules:
                fires += counts.fired
                with store._read() as tx:
                    rows = tx.q(
                        "SELECT due_at FROM schedule_fires WHERE fired_at = ? AND outcome = 'FIRED'",
                        (store.d.ts(now),),
                    )
                dues = [store.d.dt(r["due_at"]).timestamp() for r in rows]  # type: ignore[union-attr]
                lags += [committed - due for due in dues if due >= warm]
            upcoming = store.schedule_next_due()
            wait = max_sleep
            if upcoming is not None:
                wait = min(wait, max(0.0, (upcoming - clock.now()).total_seconds()))
            time.sleep(wait)
    finally:
        scheduler.close()
        store.close()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lags.sort()
    out = {
        "seconds": seconds,
        "fires": fires,
        "fires_per_second": round(fires / seconds, 1),
        "peak_rss_mb": round(rss_mb, 1),
        "lag_p50_ms": round(1000 * lags[len(lags) // 2], 1) if lags else None,
        "lag_p99_ms": round(1000 * lags[min(len(lags) - 1, int(len(lags) * 0.99))], 1) if lags else None,
        "lag_max_ms": round(1000 * lags[-1], 1) if lags else None,
        "lag_mean_ms": round(1000 * statistics.fmean(lags), 1) if lags else None,
    }
    sys.stdout.write(json.dumps(out) + "\n")


def steady(url: str, seconds: float) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, __file__, "--steady-child", url, "--steady-seconds", str(seconds)],
        capture_output=True,
        text=True,
        check=True,
    )
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


def burst(url: str, count: int, schedulers: int, tmp: str) -> dict[str, Any]:
    """``count`` schedules due at the same second; time until all their jobs are inserted."""
    t0 = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    clock = FrozenClock(t0)
    with App.open(url, blob_dir=os.path.join(tmp, "blobs"), clock=clock) as app:
        done = 0
        while done < count:
            n = min(50_000, count - done)
            done += app.schedules.create_many(
                [
                    ScheduleRequest(name=f"b{i:07d}", expression="* * * * *", targets=(TARGET,))
                    for i in range(done, done + n)
                ]
            )
        jobs_before = app.store.job_list(limit=1)
    due = t0 + timedelta(minutes=1)
    # separate processes, as separate `conveyor scheduler` processes would be; each one
    # connects first and waits for the go signal, so the timing covers firing only
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    ready = ctx.Barrier(schedulers + 1)
    results = ctx.Queue()
    procs = [ctx.Process(target=_burst_child, args=(url, due, go, ready, results)) for _ in range(schedulers)]
    for proc in procs:
        proc.start()
    ready.wait(60)
    started = time.perf_counter()
    go.set()
    totals = [results.get(timeout=600) for _ in procs]
    elapsed = time.perf_counter() - started
    for proc in procs:
        proc.join()
    assert sum(totals) == count, (sum(totals), count)
    return {
        "schedules": count,
        "schedulers": schedulers,
        "jobs_inserted": sum(totals),
        "seconds": round(elapsed, 2),
        "jobs_per_second": round(sum(totals) / elapsed),
        "jobs_before": len(jobs_before),
    }


def _burst_child(url: str, due: datetime, go: Any, ready: Any, results: Any) -> None:
    store = open_store(url)
    store.schedule_next_due()  # connect before the clock starts
    ready.wait(60)
    go.wait()
    # what `conveyor scheduler` does at a burst: Scheduler.run_once (parallel batches)
    scheduler = Scheduler(store, FrozenClock(due), SchedulerConfig(batch_size=1000))
    jobs = 0
    while True:
        counts = scheduler.run_once(due)
        jobs += counts.jobs
        if counts.schedules == 0:
            break
    store.close()
    results.put(jobs)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--count", type=int, default=100_000)
    p.add_argument("--burst", type=int, default=100_000)
    p.add_argument("--burst-schedulers", type=int, default=4)
    p.add_argument("--steady-seconds", type=float, default=150.0)
    p.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    p.add_argument(
        "--pg-admin", default=os.environ.get("CONVEYOR_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")
    )
    p.add_argument("--skip", action="append", default=[], choices=["create", "steady", "burst"])
    p.add_argument("--steady-child", metavar="URL", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.steady_child:
        steady_child(args.steady_child, args.steady_seconds, 500)
        return 0
    results: dict[str, Any] = {}
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            res: dict[str, Any] = {}
            for phase in ("create", "burst"):
                if phase in args.skip or (
                    phase == "create" and "steady" in args.skip and "create" in args.skip
                ):
                    continue
                if backend == "postgres":
                    url, dbname = fresh_pg(args.pg_admin)
                else:
                    url, dbname = f"sqlite:///{tmp}/{phase}-{uuid.uuid4().hex[:6]}.db", ""
                try:
                    if phase == "create":
                        res["bulk_create"] = bulk_create(url, args.count, tmp)
                        print(backend, "bulk_create", res["bulk_create"], flush=True)
                        if "steady" not in args.skip:
                            res["steady"] = steady(url, args.steady_seconds)
                            print(backend, "steady", res["steady"], flush=True)
                    else:
                        schedulers = args.burst_schedulers if backend == "postgres" else 1
                        res["burst"] = burst(url, args.burst, schedulers, tmp)
                        print(backend, "burst", res["burst"], flush=True)
                finally:
                    if dbname:
                        drop_pg(args.pg_admin, dbname)
            results[backend] = res
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
