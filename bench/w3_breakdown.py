#!/usr/bin/env python3
"""Where W3's enqueue -> start latency goes, step by step (run by hand, not by pytest).

    bench/.venv-peers/bin/python bench/w3_breakdown.py --backend sqlite --samples 1500

Runs W3 as ``run_peers.py`` does (two ``conveyor worker`` processes, idle, one no-op job
every 1/rate s, each carrying its enqueue time), with ``peers.latency_hooks`` imported into
the workers and into this process. For every job it then knows: when ``submit`` returned,
when the worker's wait for work returned (the last one before its claim), when its claim
began and ended, and when the job body ran. Prints p50 / p90 / p99 of each step in ms, the
number of WAL checkpoints asked for (SQLite), and the slowest 1% of the jobs with their
steps and any checkpoint asked for within 20 ms before to 5 ms after their enqueue.
"""

from __future__ import annotations

import argparse
import bisect
import glob
import json
import os
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from peers import common  # noqa: E402
from peers.conveyor_peer import ConveyorPostgresPeer, ConveyorSQLitePeer  # noqa: E402

STEPS = ("total", "submit returned", "worker awake", "awake -> claim", "claim", "claim -> job body")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--samples", type=int, default=1500)
    ap.add_argument("--rate", type=float, default=50.0)
    args = ap.parse_args()
    hooks_dir = tempfile.mkdtemp(prefix="w3-hooks-")
    os.environ["BENCH_HOOKS_DIR"] = hooks_dir
    base = ConveyorSQLitePeer if args.backend == "sqlite" else ConveyorPostgresPeer

    class Peer(base):  # type: ignore[misc, valid-type]
        def worker_commands(self, concurrency: int) -> list[list[str]]:
            return [[*cmd, "--import", "peers.latency_hooks"] for cmd in super().worker_commands(concurrency)]

    from peers import latency_hooks  # this process's checkpoints too

    peer = Peer()
    peer.setup()
    peer.start_workers(2, target=0)
    warm = 8
    for i in range(warm):
        peer.enqueue_one(i)
    peer.drain_wait(warm, time.monotonic() + 60)
    time.sleep(1.0)
    common.reset_counters()
    returned: dict[int, int] = {}
    t0 = time.time()
    for i in range(args.samples):
        target = t0 + i / args.rate
        now = time.time()
        if target > now:
            time.sleep(target - now)
        enqueued = int(time.time() * 1_000_000)
        peer.enqueue_one(enqueued)
        returned[enqueued] = int(time.time() * 1_000_000)
    peer.drain_wait(args.samples, time.monotonic() + 120, poll=0.01)
    started = {}
    for v in common.counter_redis().lrange(common.LAT_KEY, 0, -1):
        e, s = map(int, v.decode().split())
        started[e] = s
    peer.stop_workers()
    peer.close()
    latency_hooks.dump()
    rows, checkpoints = [], []
    for path in glob.glob(os.path.join(hooks_dir, "*.json")):
        with open(path) as f:
            notes = json.load(f)
        checkpoints += [at for kind, at, _ in notes if kind == "checkpoint"]
        woke = sorted(at for kind, at, _ in notes if kind == "woke")
        for kind, began, extra in notes:
            if kind != "claim" or extra[1] not in started:
                continue
            ended, e = extra
            i = bisect.bisect_right(woke, began) - 1
            awake = woke[i] if i >= 0 else began
            s = started[e]
            rows.append((s - e, returned[e] - e, awake - e, began - awake, ended - began, s - ended, e))
    n = len(rows)
    if not n:
        print("no samples matched (were the hooks imported?)")
        return 1
    print(f"{args.backend}: {n} jobs at {args.rate:g}/s, load {os.getloadavg()[0]:.2f}; ms from enqueue")
    print(f"{'step':18s} {'p50':>7s} {'p90':>7s} {'p99':>7s}")
    for j, name in enumerate(STEPS):
        v = sorted(r[j] for r in rows)
        print(f"{name:18s} " + " ".join(f"{v[min(n - 1, int(n * q))] / 1000:7.3f}" for q in (0.5, 0.9, 0.99)))
    print(f"WAL checkpoints asked for: {len(checkpoints)}")
    print("slowest 1%: " + " | ".join(STEPS) + " | checkpoints asked for (ms from enqueue)")
    rows.sort()
    for r in rows[-max(1, n // 100) :]:
        near = [round((c - r[6]) / 1000, 1) for c in checkpoints if -20_000 < c - r[6] < 5_000]
        print("  " + " ".join(f"{x / 1000:6.2f}" for x in r[:6]) + f"  {near}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
