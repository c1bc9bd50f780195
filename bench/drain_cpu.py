#!/usr/bin/env python3
"""W2 drain with CPU per job (run by hand in bench/.venv-peers, not by pytest).

    PYTHONPATH=src:bench bench/.venv-peers/bin/python bench/drain_cpu.py --backend postgres --jobs 20000

Pre-queues ``--jobs`` no-op function jobs exactly as run_peers.py's W2 (bulk batches of 1000,
through peers/conveyor_peer.py, so the same env variables name the databases) into a
*disabled* queue, starts the same 2 ``conveyor worker`` processes, waits until they are
idle, takes a CPU snapshot (/proc/<pid>/stat utime+stime of the workers; on PostgreSQL of
the server backends connected to the benchmark database, from pg_stat_activity), enables
the queue, waits for the drain and takes the second snapshot. Prints one JSON line: rate
(first -> last completion, as W2), worker and server CPU in µs per job, load average.
The workers inherit PYTHONPATH: whatever ``src`` it names is what is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import common
from peers.conveyor_peer import ConveyorPostgresPeer, ConveyorSQLitePeer

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    return sum(cpu_split(pid))


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0, 0.0
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def switches(pid: int) -> int:
    """Context switches (voluntary + involuntary) of all threads of a process."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.endswith("ctxt_switches:\t" + line.split("\t")[-1]) and "ctxt_switches" in line:
                        total += int(line.split()[-1])
    except FileNotFoundError:
        pass
    return total


def backend_pids(url: str) -> list[int]:
    import psycopg

    dbname = url.rsplit("/", 1)[1]
    with psycopg.connect(common.PG_ADMIN_DSN, autocommit=True) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (dbname,)
            )
        ]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", choices=("sqlite", "postgres"), required=True)
    ap.add_argument("--jobs", type=int, default=20000)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--label", default="")
    ap.add_argument(
        "--max-vcpus",
        type=float,
        default=None,
        help="give the default environment this limit (a claim then takes the path of a limited "
        "environment: it filters by what fits and looks for a job held at the head of the line)",
    )
    args = ap.parse_args()
    peer = ConveyorSQLitePeer() if args.backend == "sqlite" else ConveyorPostgresPeer()
    n = args.jobs
    peer.setup()
    peer.flush()
    app = peer.app
    app.catalog.update_queue("default", enabled=False)
    if args.max_vcpus is not None:
        app.catalog.update_environment("default", max_vcpus=args.max_vcpus)
    ns = list(range(n))
    for i in range(0, n, 1000):
        peer.enqueue_bulk(ns[i : i + 1000])
    common.reset_counters()
    peer.start_workers(args.procs, target=n)
    try:
        time.sleep(2.5)
        wpids = [p.pid for p in peer._procs]
        w0 = {pid: cpu_split(pid) for pid in wpids}
        s0 = sum(switches(pid) for pid in wpids)
        b0: dict[int, float] = {}
        if args.backend == "postgres":
            b0 = {pid: cpu_seconds(pid) for pid in backend_pids(peer.url)}
        app.catalog.update_queue("default", enabled=True)
        app.store.wake()
        peer.drain_wait(n, time.monotonic() + 300)
        w1 = {pid: cpu_split(pid) for pid in wpids}
        s1 = sum(switches(pid) for pid in wpids)
        b1: dict[int, float] = {}
        if args.backend == "postgres":
            b1 = {pid: cpu_seconds(pid) for pid in backend_pids(peer.url)}
        deadline = time.monotonic() + 5
        while common.first_last()[1] is None and time.monotonic() < deadline:
            time.sleep(0.01)
        first, last = common.first_last()
        assert first is not None and last is not None
        time.sleep(0.3)
        extra = int(common.counter_redis().get(common.CNT_KEY)) - n
    finally:
        peer.stop_workers()
        peer.close()
    worker_user = sum(w1[p][0] - w0[p][0] for p in wpids)
    worker_sys = sum(w1[p][1] - w0[p][1] for p in wpids)
    worker_cpu = worker_user + worker_sys
    server_cpu = sum(v - b0.get(p, 0.0) for p, v in b1.items())
    out = {
        "label": args.label,
        "max_vcpus": args.max_vcpus,
        "backend": args.backend,
        "jobs": n,
        "rate": round((n - 1) / (last - first)),
        "worker_us_per_job": round(worker_cpu / n * 1e6, 1),
        "worker_sys_us_per_job": round(worker_sys / n * 1e6, 1),
        "switches_per_job": round((s1 - s0) / n, 2),
        "server_us_per_job": round(server_cpu / n * 1e6, 1) if args.backend == "postgres" else None,
        "extra": extra,
        "load": os.getloadavg()[0],
    }
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
