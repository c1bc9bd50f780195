#!/usr/bin/env python3
"""Worker benchmarks (run by hand in the project venv, not by pytest).

    .venv/bin/python bench/bench_worker.py                       # all parts, both backends (~8 min)
    .venv/bin/python bench/bench_worker.py --parts drain --backends sqlite --reps 1

To measure one commit while ``src/`` is being edited, run it against a snapshot (the
workers inherit ``PYTHONPATH``; the JSON's ``code`` says which source was measured):

    rm -rf /tmp/conveyor-head && mkdir /tmp/conveyor-head && git rev-parse HEAD > /tmp/conveyor-head/SNAPSHOT
    git archive HEAD src | tar -x -C /tmp/conveyor-head
    PYTHONPATH=/tmp/conveyor-head/src .venv/bin/python bench/bench_worker.py

Parts, each on a fresh store per backend (SQLite file in a temporary folder; PostgreSQL
scratch database created through ``--pg-admin`` and dropped afterwards):

1. ``drain``: ``--jobs`` (1,000) ``["true"]`` command jobs, pre-queued with one
   ``submit_many``, drained by ``--procs`` ``conveyor worker --burst --concurrency N``
   subprocesses for every N in ``--concurrency``. Rate = (n-1)/(last - first finish), as
   W2 of the peer harness; the wall time (spawn -> every worker exited) is given too.
   Target >= 200 jobs/s.
2. ``idle``: one ``conveyor worker`` (default concurrency) on an empty store: CPU over
   ``--idle-seconds`` (60) from /proc/<pid>/stat utime+stime (target < 1 % of a core) and
   VmRSS (target < 80 MB). Then ``--inline-jobs`` (20,000) ``noop_jobs:noop`` function
   jobs are submitted to the same worker (started with cwd=bench, ``--import noop_jobs``);
   VmRSS/VmHWM after it has drained them, and its idle CPU for ``--post-idle-seconds`` after.
   On PostgreSQL the CPU of the server backends serving the scratch database is measured too.
3. ``latency``: W3-style, process executor. One idle, warmed-up ``conveyor worker``;
   ``--samples`` (200) jobs ``sh -c 'date +%s%N > FILE'`` enqueued one call each at
   ``--rate`` (20/s) on a fixed schedule. Latency = the child's ``date`` - the wall clock
   taken right before the submit call; p50/p95/p99/max (nearest rank).

Every measurement records the load average ([start, end] of the 1-minute figure) and the
``uptime`` line, because the machine is shared. Worker subprocesses run in their own
process group; they are stopped (SIGTERM, SIGKILL after 10 s) when their part ends or the
bench is interrupted. Worker logs: ``bench/results/logs.tmp/worker-*.log``.
Output: ``--json`` (bench/results/worker.json), the schema of bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import platform
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from conveyor.app import App
from conveyor.engine.jobs import SubmitRequest

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
LOGS = BENCH / "results" / "logs.tmp"
SCHEMA = "conveyor-bench/1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
_started: list[subprocess.Popen[bytes]] = []


# -- machine --------------------------------------------------------------------------------


def load1() -> float:
    return round(os.getloadavg()[0], 2)


def uptime_line() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


@dataclass
class Load:
    """The load average around one measurement."""

    start: float = field(default_factory=load1)
    start_line: str = field(default_factory=uptime_line)
    end: float | None = None
    end_line: str = ""

    def close(self) -> Load:
        self.end, self.end_line = load1(), uptime_line()
        return self

    def note(self) -> str:
        return f"load 1m {self.start}->{self.end}"


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process (all its threads), in clock ticks."""
    with open(f"/proc/{pid}/stat") as fh:
        rest = fh.read().rpartition(")")[2].split()
    return int(rest[11]) + int(rest[12])


def status_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def mb(kb: int) -> float:
    return round(kb / 1024, 1)


def pct(values: list[float], p: float) -> float:
    """Nearest rank, as the peer harness."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


# -- stores ---------------------------------------------------------------------------------


class Backend:
    """Fresh stores for one backend, each cleaned up when its part ends."""

    def __init__(self, name: str, pg_admin: str, tmp: Path) -> None:
        self.name, self.pg_admin, self.tmp = name, pg_admin, tmp

    @contextlib.contextmanager
    def fresh(self, tag: str) -> Iterator[str]:
        if self.name == "sqlite":
            folder = self.tmp / f"{tag}-{uuid.uuid4().hex[:6]}"
            folder.mkdir()
            try:
                yield f"sqlite:///{folder / 'conveyor.db'}"
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            return
        db = f"conveyor_bench_worker_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        with psycopg.connect(self.pg_admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{db}"')
        try:
            yield self.pg_admin.rpartition("/")[0] + "/" + db
        finally:
            with psycopg.connect(self.pg_admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


class Probe:
    """Reads job states and timestamps straight from the database (a separate connection)."""

    def __init__(self, url: str) -> None:
        self.pg = url.startswith("postgresql://")
        if self.pg:
            self.conn: Any = psycopg.connect(url, autocommit=True)
        else:
            self.conn = sqlite3.connect(url[len("sqlite:///") :], timeout=30, isolation_level=None)

    def _epoch(self, col: str) -> str:
        return f"extract(epoch from {col})::float8" if self.pg else col

    def counts(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall()
        return {str(s): int(n) for s, n in rows}

    def finish_span(self) -> tuple[int, float, float]:
        e = self._epoch
        n, first, last = self.conn.execute(
            f"SELECT count(*), min({e('finished_at')}), max({e('finished_at')}) FROM jobs"
            " WHERE state = 'SUCCEEDED'"
        ).fetchone()
        return int(n), float(first or 0), float(last or 0)

    def claimed_at(self) -> dict[int, float]:
        """``jobs.started_at``: the first claim (STARTING) in the current store code."""
        rows = self.conn.execute(f"SELECT id, {self._epoch('started_at')} FROM jobs").fetchall()
        return {int(i): float(t) for i, t in rows if t is not None}

    def server_pids(self) -> list[int]:
        if not self.pg:
            return []
        rows = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
        return [int(r[0]) for r in rows]

    def close(self) -> None:
        self.conn.close()


def wait_done(probe: Probe, n: int, budget: float, procs: list[subprocess.Popen[bytes]]) -> bool:
    """Until ``n`` jobs are terminal (True) or the budget is spent / every worker died (False)."""
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline:
        c = probe.counts()
        if sum(c.get(s, 0) for s in ("SUCCEEDED", "FAILED", "CANCELLED")) >= n:
            return True
        if procs and all(p.poll() is not None for p in procs):
            return False
        time.sleep(0.05)
    return False


# -- workers --------------------------------------------------------------------------------


def conveyor_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "conveyor"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "conveyor"]


def start_worker(
    url: str, tag: str, tmp: Path, *args: str, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env["CONVEYOR_BLOB_DIR"] = str(tmp / "blobs")
    env["PYTHONUNBUFFERED"] = "1"
    LOGS.mkdir(parents=True, exist_ok=True)
    cmd = [*conveyor_cmd(), "worker", "--database", url, "--log-level", "WARNING", *args]
    with open(LOGS / f"worker-{tag}.log", "ab") as logf:
        logf.write(f"\n# {datetime.now(UTC).isoformat()} {' '.join(cmd)}\n".encode())
        logf.flush()
        proc = subprocess.Popen(
            cmd,
            cwd=cwd or tmp,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _started.append(proc)
    return proc


def stop_workers(procs: list[subprocess.Popen[bytes]], grace: float = 10.0) -> None:
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(5)
    for p in procs:
        if p in _started:
            _started.remove(p)


def wait_registered(url: str, proc: subprocess.Popen[bytes], budget: float = 30.0) -> None:
    """Until the worker row exists (start-up done: imports, migration check, registration)."""
    probe = Probe(url)
    try:
        deadline = time.monotonic() + budget
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited with {proc.returncode} during start-up")
            with contextlib.suppress(Exception):
                if probe.conn.execute("SELECT count(*) FROM workers").fetchone()[0]:
                    return
            time.sleep(0.05)
        raise RuntimeError("worker did not register in time")
    finally:
        probe.close()


# -- results --------------------------------------------------------------------------------


class Results:
    def __init__(self, path: Path, params: dict[str, Any]) -> None:
        self.path = path
        self.doc: dict[str, Any] = {
            "schema": SCHEMA,
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "host": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "sqlite": sqlite3.sqlite_version,
            },
            "code": code_state(),
            "params": params,
            "rows": [],
        }

    def add(
        self,
        backend: str,
        workload: str,
        metric: str,
        value: float | None,
        unit: str,
        notes: str,
        load: Load,
        **extra: Any,
    ) -> None:
        row = {
            "system": "conveyor",
            "backend": backend,
            "workload": workload,
            "metric": metric,
            "value": value,
            "unit": unit,
            "notes": notes,
            "loadavg_1m": [load.start, load.end],
            "uptime": [load.start_line, load.end_line],
            **extra,
        }
        self.doc["rows"].append(row)
        shown = "null" if value is None else f"{value:g}"
        print(f"  {backend:10} {workload:18} {metric:18} {shown:>10} {unit:8} {notes}", flush=True)
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.doc, indent=2) + "\n")
        tmp.replace(self.path)


def code_state() -> dict[str, Any]:
    """Which code was measured: the store and the worker may be changing while this runs.

    ``src`` is where ``conveyor`` was imported from (the workers get the same ``PYTHONPATH``);
    git's view is given only when that is this checkout's ``src``.
    """
    import conveyor

    src = Path(conveyor.__file__).resolve().parent
    out: dict[str, Any] = {"src": str(src)}
    if src == ROOT / "src" / "conveyor":
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out["commit"] = subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
            ).stdout.strip()
            out["dirty"] = subprocess.run(
                ["git", "status", "--short", "src"], cwd=ROOT, capture_output=True, text=True, timeout=10
            ).stdout.splitlines()
    else:
        marker = src.parent.parent / "SNAPSHOT"
        out["snapshot"] = marker.read_text().strip() if marker.exists() else "unknown"
    digest = hashlib.sha256()
    for path in sorted(src.rglob("*.py")):
        if path.parent.name in ("store", "worker"):
            digest.update(path.read_bytes())
    out["store_worker_sha256"] = digest.hexdigest()[:16]
    return out


# -- part 1: drain process jobs ------------------------------------------------------------------


def submit_all(app: App, reqs: list[SubmitRequest], batch: int = 5000) -> float:
    started = time.perf_counter()
    for i in range(0, len(reqs), batch):
        app.jobs.submit_many(reqs[i : i + batch])
    return time.perf_counter() - started


def drain_once(be: Backend, args: argparse.Namespace, procs: int, conc: int, rep: int) -> dict[str, Any]:
    tag = f"drain-{be.name}-p{procs}c{conc}-r{rep}"
    with be.fresh(tag) as url:
        with App.open(url, blob_dir=be.tmp / "blobs") as app:
            submit_all(app, [SubmitRequest(command=["true"]) for _ in range(args.jobs)])
        probe = Probe(url)
        load = Load()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        workers = [
            start_worker(url, tag, be.tmp, "--burst", "--concurrency", str(conc)) for _ in range(procs)
        ]
        deadline = time.monotonic() + args.budget
        try:
            while time.monotonic() < deadline and any(p.poll() is None for p in workers):
                time.sleep(0.02)
            wall = time.perf_counter() - t0
            timed_out = any(p.poll() is None for p in workers)
        finally:
            stop_workers(workers)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        load.close()
        n, first, last = probe.finish_span()
        counts = probe.counts()
        probe.close()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    rate = (n - 1) / (last - first) if n > 1 and last > first else None
    return {
        "procs": procs,
        "conc": conc,
        "rep": rep,
        "succeeded": n,
        "counts": counts,
        "rate": rate,
        "wall": wall,
        "wall_rate": n / wall,
        "cpu_ms_per_job": 1000 * cpu / max(1, n),
        "timed_out": timed_out,
        "exit": [p.returncode for p in workers],
        "load": load,
    }


def part_drain(be: Backend, args: argparse.Namespace, res: Results) -> None:
    print(f"[drain] {be.name}: {args.jobs} `true` jobs, procs {args.procs}, concurrency {args.concurrency}")
    best: dict[str, Any] | None = None
    for procs in args.procs:
        for conc in args.concurrency:
            runs = [drain_once(be, args, procs, conc, rep) for rep in range(args.reps)]
            for r in runs:
                print(
                    f"    p{procs} c{conc} rep{r['rep']}: {r['succeeded']}/{args.jobs} ok,"
                    f" {r['rate'] or 0:.0f} jobs/s first->last, wall {r['wall']:.2f} s"
                    f" ({r['wall_rate']:.0f}/s), {r['cpu_ms_per_job']:.2f} ms CPU/job (workers+children),"
                    f" {r['load'].note()}",
                    flush=True,
                )
            top = max(runs, key=lambda r: r["rate"] or 0)
            ok = all(r["succeeded"] == args.jobs and not r["timed_out"] for r in runs)
            reps = ", ".join(f"{r['rate'] or 0:.0f}" for r in runs)
            notes = (
                f"{'' if ok else 'timeout: partial, '}{procs} x `conveyor worker --burst --concurrency {conc}`;"
                f" best of {args.reps} ({reps} jobs/s); {top['succeeded']}/{args.jobs} succeeded;"
                f" wall {top['wall']:.2f} s spawn->exit ({top['wall_rate']:.0f} jobs/s);"
                f" {top['cpu_ms_per_job']:.2f} ms CPU/job; {top['load'].note()}"
            )
            res.add(
                be.name,
                f"W2-process/p{procs}c{conc}",
                "drain_rate",
                round(top["rate"], 1) if top["rate"] else None,
                "jobs/s",
                notes if top["rate"] else f"error: no rate; {notes}",
                top["load"],
                jobs=args.jobs,
                procs=procs,
                concurrency=conc,
                reps=[round(r["rate"] or 0, 1) for r in runs],
                walls=[round(r["wall"], 3) for r in runs],
            )
            if ok and (best is None or (top["rate"] or 0) > (best["rate"] or 0)):
                best = top
    if best is None:
        return
    setting = f"{best['procs']} x `conveyor worker --burst --concurrency {best['conc']}`"
    res.add(
        be.name,
        "W2-process",
        "drain_rate",
        round(best["rate"], 1),
        "jobs/s",
        f"best setting: {setting}; first->last finish; target >= 200; {best['load'].note()}",
        best["load"],
        jobs=args.jobs,
    )
    res.add(
        be.name,
        "W2-process",
        "drain_wall",
        round(best["wall"], 3),
        "s",
        f"{setting}: spawn -> every worker exited ({best['wall_rate']:.0f} jobs/s incl. start-up)",
        best["load"],
        jobs=args.jobs,
    )


# -- part 2: idle cost, RSS after 20,000 inline jobs --------------------------------------------------


def measure_cpu(
    pid: int, seconds: float, server: Callable[[], list[int]]
) -> tuple[float, float | None, Load]:
    """(worker % of a core, server backends % of a core or None, load) over ``seconds``."""
    load = Load()
    spids = server()
    s0 = {}
    for sp in spids:
        with contextlib.suppress(OSError):
            s0[sp] = cpu_ticks(sp)
    t0, c0 = time.monotonic(), cpu_ticks(pid)
    time.sleep(seconds)
    t1, c1 = time.monotonic(), cpu_ticks(pid)
    s1 = 0
    for sp, before in s0.items():
        with contextlib.suppress(OSError):
            s1 += cpu_ticks(sp) - before
    load.close()
    worker = 100 * (c1 - c0) / CLK_TCK / (t1 - t0)
    return worker, (100 * s1 / CLK_TCK / (t1 - t0) if spids else None), load


def part_idle(be: Backend, args: argparse.Namespace, res: Results) -> None:
    print(f"[idle] {be.name}: {args.idle_seconds:g} s idle, then {args.inline_jobs} inline no-op jobs")
    tag = f"idle-{be.name}"
    with be.fresh(tag) as url:
        App.open(url, blob_dir=be.tmp / "blobs").close()  # migrate before the worker starts
        probe = Probe(url)
        conc = [] if args.idle_concurrency is None else ["--concurrency", str(args.idle_concurrency)]
        setting = (
            "default concurrency"
            if args.idle_concurrency is None
            else f"--concurrency {args.idle_concurrency}"
        )
        worker = start_worker(url, tag, be.tmp, "--import", "noop_jobs", *conc, cwd=BENCH)
        try:
            wait_registered(url, worker)
            time.sleep(args.settle)
            threads = status_kb(worker.pid, "Threads")
            cpu, server, load = measure_cpu(worker.pid, args.idle_seconds, probe.server_pids)
            rss_idle = status_kb(worker.pid, "VmRSS")
            extra = (
                "" if server is None else f"; PostgreSQL backends of the scratch db: {server:.2f} % of a core"
            )
            res.add(
                be.name,
                "idle",
                "idle_cpu",
                round(cpu, 3),
                "% of a core",
                f"`conveyor worker` ({setting}, {threads} threads) on an empty store,"
                f" utime+stime over {args.idle_seconds:g} s after {args.settle:g} s settle; target < 1{extra};"
                f" {load.note()}",
                load,
                server_cpu=None if server is None else round(server, 3),
            )
            res.add(
                be.name,
                "idle",
                "idle_rss",
                mb(rss_idle),
                "MB",
                f"VmRSS after {args.idle_seconds:g} s idle (MiB); target < 80; {load.note()}",
                load,
            )
            load = Load()
            reqs = [SubmitRequest(function="noop_jobs:noop", payload=i) for i in range(args.inline_jobs)]
            with App.open(url, blob_dir=be.tmp / "blobs") as app:
                enq = submit_all(app, reqs)
            t0 = time.monotonic()
            done = wait_done(probe, args.inline_jobs, args.inline_budget, [worker])
            drained_in = time.monotonic() - t0
            time.sleep(2.0)  # the last finish batch and log flushes
            rss = status_kb(worker.pid, "VmRSS")
            hwm = status_kb(worker.pid, "VmHWM")
            load.close()
            n, first, last = probe.finish_span()
            counts = probe.counts()
            partial = "" if done and n == args.inline_jobs else "timeout: partial, "
            res.add(
                be.name,
                "idle",
                "rss_after_drain",
                mb(rss),
                "MB",
                f"{partial}VmRSS (MiB) of the same worker after draining {n}/{args.inline_jobs} inline"
                f" `noop_jobs:noop` jobs ({counts}); VmHWM {mb(hwm)} MB; idle RSS was {mb(rss_idle)} MB;"
                f" target < 80; {load.note()}",
                load,
                vm_hwm_mb=mb(hwm),
                jobs=args.inline_jobs,
            )
            rate = (n - 1) / (last - first) if n > 1 and last > first else None
            res.add(
                be.name,
                "W2-inline",
                "drain_rate",
                None if rate is None else round(rate, 1),
                "jobs/s",
                f"{partial}the same worker ({setting}, inline executor), {n} no-op function jobs"
                f" submitted while it idled (submit_many, batches of 5000, {enq:.1f} s);"
                f" first->last finish; submit->all done {drained_in:.1f} s; {load.note()}",
                load,
                jobs=args.inline_jobs,
            )
            if args.post_idle_seconds > 0:
                cpu, server, load = measure_cpu(worker.pid, args.post_idle_seconds, probe.server_pids)
                extra = "" if server is None else f"; PostgreSQL backends: {server:.2f} % of a core"
                res.add(
                    be.name,
                    "idle",
                    "idle_cpu_after_drain",
                    round(cpu, 3),
                    "% of a core",
                    f"the same worker idle for {args.post_idle_seconds:g} s after the drain{extra}; {load.note()}",
                    load,
                    server_cpu=None if server is None else round(server, 3),
                )
        finally:
            stop_workers([worker])
            probe.close()


# -- part 3: W3-style latency of the process executor ------------------------------------------------


def part_latency(be: Backend, args: argparse.Namespace, res: Results) -> None:
    print(f"[latency] {be.name}: {args.samples} `sh -c date` jobs at {args.rate:g}/s")
    tag = f"latency-{be.name}"
    out = be.tmp / f"lat-{be.name}"
    out.mkdir()
    with be.fresh(tag) as url, App.open(url, blob_dir=be.tmp / "blobs") as app:
        probe = Probe(url)
        conc = [] if args.latency_concurrency is None else ["--concurrency", str(args.latency_concurrency)]
        worker = start_worker(url, tag, be.tmp, *conc)
        try:
            wait_registered(url, worker)
            warm = 4
            app.jobs.submit_many([SubmitRequest(command=["true"]) for _ in range(warm)])
            if not wait_done(probe, warm, 30, [worker]):
                raise RuntimeError("warm-up jobs did not finish")
            time.sleep(args.settle)  # idle: the loop's back-off is at its maximum again
            load = Load()
            enq: dict[int, int] = {}
            ids: dict[int, int] = {}
            submit_s: list[float] = []
            behind = 0
            start = time.monotonic() + 0.1
            for i in range(args.samples):
                due = start + i / args.rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                else:
                    behind += 1
                req = SubmitRequest(command=["sh", "-c", f"date +%s%N > {out}/{i}"])
                s = time.perf_counter()
                enq[i] = time.time_ns()
                ids[i] = app.jobs.submit(req).job.id
                submit_s.append(time.perf_counter() - s)
            done = wait_done(probe, warm + args.samples, 60, [worker])
            load.close()
            claimed = probe.claimed_at()
            counts = probe.counts()
        finally:
            stop_workers([worker])
            probe.close()
    lat, to_claim = [], []
    for i, t in enq.items():
        f = out / str(i)
        with contextlib.suppress(OSError, ValueError):
            lat.append((int(f.read_text().strip()) - t) / 1e6)
            if ids[i] in claimed:
                to_claim.append(claimed[ids[i]] * 1000 - t / 1e6)
    shutil.rmtree(out, ignore_errors=True)
    partial = "" if done and len(lat) == args.samples else "timeout: partial, "
    setting = (
        "default concurrency"
        if args.latency_concurrency is None
        else f"--concurrency {args.latency_concurrency}"
    )
    claim_note = (
        f"enqueue->claim (jobs.started_at) p50 {pct(to_claim, 50):.1f} / p99 {pct(to_claim, 99):.1f} ms"
        if to_claim
        else "claim times unavailable"
    )
    notes = (
        f"{partial}{len(lat)}/{args.samples} samples at {args.rate:g}/s, 1 idle warmed-up `conveyor worker`"
        f" ({setting}); latency = child `date +%s%N` - time.time_ns() before submit();"
        f" {claim_note}; submit() call p50 {pct(submit_s, 50) * 1000:.1f} ms; {counts};"
        f" {behind} sends late; {load.note()}"
    )
    if not lat:
        res.add(be.name, "W3-process", "latency_p50", None, "ms", "error: no samples; " + notes, load)
        return
    for metric, value in (
        ("latency_p50", pct(lat, 50)),
        ("latency_p95", pct(lat, 95)),
        ("latency_p99", pct(lat, 99)),
        ("latency_max", max(lat)),
    ):
        res.add(be.name, "W3-process", metric, round(value, 2), "ms", notes, load, jobs=args.samples)


# -- main -----------------------------------------------------------------------------------


def csv_ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", default="sqlite,postgresql", help="sqlite,postgresql")
    ap.add_argument("--parts", default="drain,idle,latency", help="drain,idle,latency")
    ap.add_argument(
        "--pg-admin", default="postgresql://127.0.0.1:5432/test", help="creates scratch databases"
    )
    ap.add_argument("--json", default=str(BENCH / "results" / "worker.json"))
    ap.add_argument("--jobs", type=int, default=1000, help="drain: `true` jobs")
    ap.add_argument("--procs", type=csv_ints, default=[1, 2], help="drain: worker processes (list)")
    ap.add_argument("--concurrency", type=csv_ints, default=[4, 8, 16], help="drain: per worker (list)")
    ap.add_argument("--reps", type=int, default=2, help="drain: repetitions per setting (best is kept)")
    ap.add_argument("--budget", type=float, default=120.0, help="drain: seconds per run")
    ap.add_argument("--idle-seconds", type=float, default=60.0)
    ap.add_argument("--post-idle-seconds", type=float, default=20.0)
    ap.add_argument("--settle", type=float, default=3.0, help="seconds after start-up / warm-up")
    ap.add_argument("--idle-concurrency", type=int, default=None, help="idle: worker --concurrency")
    ap.add_argument("--inline-jobs", type=int, default=20000)
    ap.add_argument("--inline-budget", type=float, default=300.0)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--latency-concurrency", type=int, default=None)
    args = ap.parse_args(argv)
    backends = [b for b in args.backends.split(",") if b]
    parts = [p for p in args.parts.split(",") if p]
    for b in backends:
        if b not in ("sqlite", "postgresql"):
            ap.error(f"unknown backend {b!r}")
    for p in parts:
        if p not in ("drain", "idle", "latency"):
            ap.error(f"unknown part {p!r}")

    def on_signal(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    params = {k: v for k, v in vars(args).items() if k not in ("json", "pg_admin")}
    res = Results(Path(args.json), params)
    print(f"code: {res.doc['code']}\nstart: {uptime_line()}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="conveyor-bench-worker-"))
    runners = {"drain": part_drain, "idle": part_idle, "latency": part_latency}
    try:
        for part in parts:
            for b in backends:
                try:
                    runners[part](Backend(b, args.pg_admin, tmp), args, res)
                except (RuntimeError, OSError, psycopg.Error, sqlite3.Error) as exc:
                    print(f"  {part}/{b} failed: {type(exc).__name__}: {exc}", flush=True)
                    res.add(b, part, "error", None, "", f"error: {type(exc).__name__}: {exc}", Load().close())
    finally:
        stop_workers(list(_started), grace=5.0)
        shutil.rmtree(tmp, ignore_errors=True)
        res.doc["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        res.save()
    print(f"end: {uptime_line()}\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
