#!/usr/bin/env python3
"""Peer side of the Conveyor benchmark. Run by hand inside bench/.venv-peers:

    bash bench/setup_peers.sh
    bench/.venv-peers/bin/python bench/run_peers.py --jobs 20000 --json bench/results/peers.json

Every (system, workload) pair runs in its own child process, started in a new
process group; its worker subprocesses inherit that group, and the parent
SIGKILLs the whole group once the pair is finished or over its time budget,
so no worker outlives its workload and a hung peer is reported, not awaited.

Workloads (see bench/README.md for the exact definitions):
  W1  enqueue N jobs one call at a time, then (if the library has an official
      bulk API) in batches of --bulk-size; no worker running.
  W2  pre-queue N jobs, start workers for --concurrency cores, rate from first
      to last completion (completions counted in Redis, see peers/common.py).
  W3  idle workers, --samples jobs at --rate jobs/s, enqueue->start latency.

With --rounds N, everything runs N times (in a round, workload by workload, each round
starting at the next system), and
the end prints the medians and the core issue's targets judged round by round (met in
k of N, with each round's figures): on this noisy 2-core machine one run decides
nothing. ``report.py --verdict FILE...`` does the same for saved result files.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from peers import DEFAULT_PEERS, REGISTRY  # noqa: E402

WORKLOADS = ("W1", "W2", "W3")
ROW_PREFIX = "BENCHROW "

# metrics each workload is expected to produce (so a crash/timeout still yields rows)
EXPECTED = {
    "W1": [("enqueue_one_rate", "jobs/s"), ("enqueue_bulk_rate", "jobs/s")],
    "W2": [("drain_rate", "jobs/s")],
    "W3": [("latency_p50", "ms"), ("latency_p95", "ms"), ("latency_p99", "ms")],
}


# ---------------------------------------------------------------------------
# child side: one (peer, workload)
# ---------------------------------------------------------------------------
class Child:
    def __init__(self, peer, args) -> None:
        self.peer = peer
        self.args = args
        self.version = ""

    def emit(self, workload, metric, value, unit, notes="") -> None:
        row = {
            "system": self.peer.name,
            "backend": self.peer.backend,
            "workload": workload,
            "metric": metric,
            "value": value,
            "unit": unit,
            "notes": notes,
            "version": self.version,
            "jobs": self.args.jobs,
        }
        print(ROW_PREFIX + json.dumps(row), flush=True)

    def log(self, msg: str) -> None:
        print(f"[{self.peer.name}] {msg}", file=sys.stderr, flush=True)

    def _enqueue_all(self, ns, bulk: bool, deadline: float) -> int:
        done = 0
        if bulk:
            b = self.args.bulk_size
            for i in range(0, len(ns), b):
                if time.monotonic() > deadline:
                    break
                self.peer.enqueue_bulk(ns[i : i + b])
                done += len(ns[i : i + b])
        else:
            for n in ns:
                if done % 100 == 0 and time.monotonic() > deadline:
                    break
                self.peer.enqueue_one(n)
                done += 1
        return done

    def _depth_note(self, expected: int) -> str:
        try:
            depth = self.peer.queue_depth()
        except Exception as exc:
            return f"queue depth check failed: {exc!r}"
        if depth is None:
            return ""
        return "" if depth == expected else f"WARNING queue depth {depth} != {expected}"

    # W1 ------------------------------------------------------------------
    def w1(self) -> None:
        N = self.args.jobs
        ns = list(range(N))
        budget_end = time.monotonic() + self.args.budget
        phases = [("enqueue_one_rate", False)]
        if self.peer.bulk_api:
            phases.append(("enqueue_bulk_rate", True))
        else:
            self.emit("W1", "enqueue_bulk_rate", None, "jobs/s", "n/a: no official bulk-enqueue API")
        for i, (metric, bulk) in enumerate(phases):
            self.peer.flush()
            # leave room for the phases still to come
            deadline = time.monotonic() + (budget_end - time.monotonic()) / (len(phases) - i)
            t0 = time.perf_counter()
            done = self._enqueue_all(ns, bulk, deadline)
            dt = time.perf_counter() - t0
            notes = []
            if bulk:
                notes.append(f"{self.peer.bulk_api}; batches of {self.args.bulk_size}")
            if done < N:
                notes.insert(0, f"timeout: partial, {done}/{N} jobs in {dt:.1f}s")
            else:
                depth = self._depth_note(N)
                if depth:
                    notes.append(depth)
            self.emit("W1", metric, done / dt if dt > 0 else None, "jobs/s", "; ".join(notes))
            self.log(f"W1 {metric}: {done} jobs in {dt:.2f}s = {done / dt:,.0f}/s")
        self.peer.flush()

    # W2 ------------------------------------------------------------------
    def w2(self) -> None:
        from peers import common

        N = self.args.jobs
        deadline = time.monotonic() + self.args.budget
        self.peer.flush()
        t0 = time.perf_counter()
        done = self._enqueue_all(list(range(N)), bool(self.peer.bulk_api), deadline)
        if done < N:
            raise RuntimeError(f"pre-queue timed out: {done}/{N}")
        self.log(f"W2 pre-queued {N} in {time.perf_counter() - t0:.1f}s {self._depth_note(N)}")
        common.reset_counters()
        t_spawn = time.time()
        self.peer.start_workers(self.args.concurrency, target=N)
        r = common.counter_redis()
        try:
            self.peer.drain_wait(N, deadline)
        except Exception as exc:
            from peers.base import Timeout

            if not isinstance(exc, Timeout):
                raise
            partial = exc.args[0]
            first, _ = common.first_last()
            rate = None
            if first and partial > 1:
                rate = (partial - 1) / (time.time() - first)
            self.emit(
                "W2",
                "drain_rate",
                rate,
                "jobs/s",
                f"timeout: partial, {partial}/{N} completed within {self.args.budget:.0f}s budget; "
                f"{self.peer.worker_layout}",
            )
            return
        last_deadline = time.monotonic() + 5
        while common.first_last()[1] is None and time.monotonic() < last_deadline:
            time.sleep(0.01)
        first, last = common.first_last()
        time.sleep(0.5)
        extra = int(r.get(common.CNT_KEY)) - N
        rate = (N - 1) / (last - first)
        notes = [
            self.peer.worker_layout,
            f"counter {os.environ.get('BENCH_COUNTER', self.peer.counter_mode)}",
            f"first->last completion {last - first:.2f}s; spawn->last {last - t_spawn:.2f}s",
        ]
        if extra:
            notes.append(f"WARNING {extra} extra executions")
        depth = self._depth_note(0)
        if depth:
            notes.append(depth)
        self.emit("W2", "drain_rate", rate, "jobs/s", "; ".join(notes))
        self.emit("W2", "drain_wall", last - t_spawn, "s", "worker spawn -> last completion (incl. startup)")
        self.log(
            f"W2 drain {N} first->last {last - first:.2f}s = {rate:,.0f}/s (spawn->last {last - t_spawn:.2f}s)"
        )

    # W3 ------------------------------------------------------------------
    def w3(self) -> None:
        from peers import common
        from peers.base import Timeout

        S, rate = self.args.samples, self.args.rate
        deadline = time.monotonic() + self.args.budget
        self.peer.flush()
        self.peer.start_workers(self.args.concurrency, target=0)
        r = common.counter_redis()
        warm = 4 * self.args.concurrency
        for i in range(warm):
            self.peer.enqueue_one(i)
        self.peer.drain_wait(warm, min(deadline, time.monotonic() + 60))
        time.sleep(1.0)  # let the workers go idle (and any poll backoff settle)
        common.reset_counters()
        t0 = time.time()
        lag_max = 0.0
        for i in range(S):
            target = t0 + i / rate
            now = time.time()
            if target > now:
                time.sleep(target - now)
            else:
                lag_max = max(lag_max, now - target)
            self.peer.enqueue_one(int(time.time() * 1_000_000))
            if time.monotonic() > deadline:
                break
        sent = i + 1
        t_last_enqueue = time.monotonic()
        try:
            self.peer.drain_wait(sent, deadline, poll=0.01)
        except Timeout as exc:
            for m, unit in EXPECTED["W3"]:
                self.emit("W3", m, None, unit, f"timeout: {exc.args[0]}/{sent} samples started")
            return
        lats = sorted(
            (int(s) - int(e)) / 1000.0
            for e, s in (x.split() for x in (v.decode() for v in r.lrange(common.LAT_KEY, 0, -1)))
        )
        tail = time.monotonic() - t_last_enqueue
        note = f"{len(lats)} samples at {rate:g} jobs/s; {self.peer.worker_layout}"
        if tail > 1.0:
            note += f"; WARNING workers could not keep up: last sample completed {tail:.1f}s after the last enqueue"
        if lag_max > 0.005:
            note += f"; enqueue loop fell behind by up to {lag_max * 1000:.0f} ms"
        for p in (50, 95, 99):
            v = lats[max(0, math.ceil(p / 100 * len(lats)) - 1)]
            self.emit("W3", f"latency_p{p}", v, "ms", note)
        self.emit("W3", "latency_max", lats[-1], "ms", note)
        self.log(f"W3 p50 {lats[len(lats) // 2]:.2f} ms, max {lats[-1]:.2f} ms")


def child_main(args) -> int:
    from peers import load

    peer = load(args.child_peer)
    c = Child(peer, args)
    wl = args.child_workload
    try:
        c.version = peer.version()
        peer.setup()
        if wl != "W1" and not peer.has_worker:
            for m, unit in EXPECTED[wl]:
                c.emit(wl, m, None, unit, "n/a: storage baseline, no worker")
            return 0
        if wl not in peer.workloads:
            for m, unit in EXPECTED[wl]:
                c.emit(wl, m, None, unit, f"n/a: {peer.name} measures only {', '.join(peer.workloads)}")
            return 0
        {"W1": c.w1, "W2": c.w2, "W3": c.w3}[wl]()
        return 0
    finally:
        try:
            peer.stop_workers()
        finally:
            try:
                peer.flush()
            except Exception as exc:
                c.log(f"final flush failed: {exc!r}")
            peer.close()


# ---------------------------------------------------------------------------
# parent side
# ---------------------------------------------------------------------------
def run_pair(peer: str, wl: str, args) -> list[dict]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--_child",
        peer,
        wl,
        "--jobs",
        str(args.jobs),
        "--bulk-size",
        str(args.bulk_size),
        "--concurrency",
        str(args.concurrency),
        "--samples",
        str(args.samples),
        "--rate",
        str(args.rate),
        "--budget",
        str(args.budget),
    ]
    hard_timeout = args.budget + 60
    print(
        f"== {peer} {wl} (budget {args.budget:.0f}s, hard limit {hard_timeout:.0f}s)",
        file=sys.stderr,
        flush=True,
    )
    load_start = os.getloadavg()[0]
    if load_start > 1.5:
        print(
            f"   WARNING: 1-min load average is {load_start:.2f} on {os.cpu_count()} cores: "
            "other processes compete with this run",
            file=sys.stderr,
            flush=True,
        )
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, start_new_session=True, cwd=BENCH_DIR)
    failure = ""
    try:
        out, _ = proc.communicate(timeout=hard_timeout)
        if proc.returncode != 0:
            failure = f"error: child exited {proc.returncode} (see stderr above)"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        failure = f"timeout: hung, killed after {hard_timeout:.0f}s"
    finally:
        # sweep the whole process group: the child and every worker it started
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    rows = [json.loads(line[len(ROW_PREFIX) :]) for line in out.splitlines() if line.startswith(ROW_PREFIX)]
    have = {r["metric"] for r in rows}
    info = {"system": peer, "backend": "?", "version": ""}
    if rows:
        info = {k: rows[0][k] for k in ("system", "backend", "version")}
    else:
        try:
            from peers import peer_class  # backend name for the failure rows

            info["backend"] = peer_class(peer).backend
        except Exception:
            pass
    for metric, unit in EXPECTED[wl]:
        if metric not in have:
            rows.append(
                info
                | {
                    "workload": wl,
                    "metric": metric,
                    "value": None,
                    "unit": unit,
                    "notes": failure or "error: no result",
                    "jobs": args.jobs,
                }
            )
    load = [round(load_start, 2), round(os.getloadavg()[0], 2)]
    for r in rows:
        r["loadavg_1m"] = load
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--peers",
        default=",".join(DEFAULT_PEERS),
        help=f"comma list from: {','.join(REGISTRY)} (default: all)",
    )
    ap.add_argument("--workloads", default="W1,W2,W3")
    ap.add_argument("--jobs", type=int, default=20000, help="N for W1 and W2 (default 20000)")
    ap.add_argument("--bulk-size", type=int, default=1000, help="batch size of bulk enqueue calls")
    ap.add_argument(
        "--concurrency",
        type=int,
        default=os.cpu_count() or 2,
        help="cores given to workers in W2/W3 (default: cpu count)",
    )
    ap.add_argument("--samples", type=int, default=500, help="W3 samples")
    ap.add_argument("--rate", type=float, default=50.0, help="W3 enqueue rate (jobs/s)")
    ap.add_argument("--budget", type=float, default=180.0, help="seconds per (system, workload)")
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run everything this many times, each round starting at the next system (the"
        " order rotates); prints the medians and the core issue's targets round by round",
    )
    ap.add_argument("--json", help="write results here")
    ap.add_argument("--_child", nargs=2, metavar=("PEER", "WORKLOAD"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args._child:
        args.child_peer, args.child_workload = args._child
        return child_main(args)

    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    workloads = [w.strip().upper() for w in args.workloads.split(",") if w.strip()]
    bad = [p for p in peers if p not in REGISTRY] + [w for w in workloads if w not in WORKLOADS]
    if bad:
        ap.error(f"unknown peer/workload: {bad}")

    started = datetime.now(UTC)
    rows: list[dict] = []
    for rnd in range(args.rounds):
        order = peers[rnd % len(peers) :] + peers[: rnd % len(peers)]
        if args.rounds > 1:
            print(f"==== round {rnd + 1} of {args.rounds}: {', '.join(order)}", file=sys.stderr, flush=True)
        # workload by workload: the systems a target compares run minutes apart at most
        for wl in workloads:
            for peer in order:
                rows.extend(r | {"round": rnd} for r in run_pair(peer, wl, args))

    from report import SCHEMA, median_rows, table, verdict

    doc = {
        "schema": SCHEMA,
        "generated_at": started.isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "host": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "params": {
            "jobs": args.jobs,
            "bulk_size": args.bulk_size,
            "concurrency": args.concurrency,
            "samples": args.samples,
            "rate": args.rate,
            "budget_s": args.budget,
            "rounds": args.rounds,
        },
        "rows": rows,
    }
    print()
    if args.rounds > 1:
        print(f"medians of {args.rounds} rounds:")
    print(table(median_rows(rows) if args.rounds > 1 else rows, markdown=False))
    print()
    print("\n".join(verdict(rows)))
    print()
    for r in rows:
        if (
            r["value"] is None
            or (r.get("notes") or "").startswith(("timeout", "error", "WARNING"))
            or "WARNING" in (r.get("notes") or "")
        ):
            print(f"  note {r['system']}/{r['workload']}/{r['metric']}: {r['notes']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
