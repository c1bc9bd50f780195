#!/usr/bin/env python3
"""Chaos run: jobs keep arriving while workers are killed and the database is cut off.

    .venv/bin/python bench/chaos.py --backend sqlite --seconds 120
    .venv/bin/python bench/chaos.py --backend postgres --seconds 120 --restart-server

Run by hand (not by pytest: it takes minutes and, with ``--restart-server``, restarts the
machine's PostgreSQL). What it does:

- a fresh database (SQLite: a file in a scratch folder; PostgreSQL: a scratch database on
  ``--pg-admin``'s server, dropped at the end);
- ``--workers`` real ``conveyor worker`` processes (``--concurrency`` each, a short lease);
- a submitter thread in this process: single inline jobs (some fail their first attempt),
  bulk batches, command jobs (a shell, its own process group), pairs where the second
  depends on the first, and cancellations of earlier jobs. Every submission carries an
  idempotency key; one that raises is retried with the same key until it is accepted, as a
  careful client would;
- meanwhile, every 1-4 s, one of: SIGKILL a worker (and start another), SIGTERM a worker
  (and start another), cut every connection of the database (PostgreSQL:
  ``pg_terminate_backend``), restart the server (``--restart-server``);
- then the chaos stops, the surviving workers drain what is left, and are stopped.

Each attempt of each job appends ``start`` / ``done`` / ``raise`` lines to a log
(``chaos_jobs.py``). What is checked, from the store and that log:

- every accepted submission is one job (its key), and every job ends terminal;
- a SUCCEEDED job's last attempt wrote ``done``; no attempt ran past the one after it
  began (attempts of a job never overlap); attempt numbers in the log never exceed the job's;
- a FAILED job says why, and its retries were spent (or the failure is not retryable);
- a dependant started only after its dependency wrote ``done``;
- each job's last event names its final state;
- every worker stopped with SIGTERM exited 0;
- with ``--max-vcpus V`` (the default environment limited to V vCPUs, jobs of 0.5, 1 or 2
  vCPUs): the vCPUs of the jobs the store holds STARTING or RUNNING there, read every 20 ms
  throughout, never exceed V (claims of several workers race for the same capacity).

Prints a JSON summary; exits 1 if any check failed (the offending jobs are listed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import chaos_jobs  # noqa: E402

from conveyor import errors  # noqa: E402
from conveyor.app import App  # noqa: E402
from conveyor.engine.jobs import SubmitRequest  # noqa: E402
from conveyor.model import JobState  # noqa: E402

TERMINAL = {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}
PG_DB = "conveyor_chaos"


class Workers:
    """The worker processes: started, killed, replaced; exit codes of those stopped with SIGTERM."""

    def __init__(self, url: str, scratch: Path, args: argparse.Namespace, env: dict[str, str]) -> None:
        self.url, self.scratch, self.args, self.env = url, scratch, args, env
        self.live: list[subprocess.Popen[bytes]] = []
        self.terminated: list[tuple[subprocess.Popen[bytes], float]] = []
        self.started = 0

    def start(self) -> None:
        self.started += 1
        log = (self.scratch / f"worker-{self.started}.log").open("wb")
        self.live.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "conveyor",
                    "worker",
                    "--database",
                    self.url,
                    "--import",
                    "chaos_jobs",
                    "--concurrency",
                    str(self.args.concurrency),
                    "--lease-seconds",
                    str(self.args.lease),
                    "--grace",
                    str(self.args.grace),
                    "--log-level",
                    "INFO",
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

    def replace_dead(self) -> int:
        dead = [p for p in self.live if p.poll() is not None]
        for p in dead:
            self.live.remove(p)
            self.start()
        return len(dead)

    def kill(self, rng: random.Random) -> int:
        p = rng.choice(self.live)
        p.send_signal(signal.SIGKILL)  # the worker only: a command job's shell lives on
        p.wait()
        self.live.remove(p)
        self.start()
        return p.pid

    def term(self, rng: random.Random) -> int:
        p = rng.choice(self.live)
        p.send_signal(signal.SIGTERM)
        self.live.remove(p)
        self.terminated.append((p, time.monotonic()))
        self.start()
        return p.pid

    def stop_all(self) -> None:
        for p in self.live:
            p.send_signal(signal.SIGTERM)
            self.terminated.append((p, time.monotonic()))
        self.live = []

    def exit_codes(self, timeout: float) -> list[tuple[int, int | None]]:
        out = []
        for p, _ in self.terminated:
            try:
                out.append((p.pid, p.wait(timeout)))
            except subprocess.TimeoutExpired:
                p.kill()
                out.append((p.pid, None))
        return out


class Submitter(threading.Thread):
    """Submits at about ``rate`` submissions a second until stopped; records what was accepted."""

    def __init__(self, app: App, rng: random.Random, rate: float, sized: bool = False) -> None:
        super().__init__(daemon=True)
        self.app, self.rng, self.rate = app, rng, rate
        self.sized = sized  # jobs of 0.5, 1 or 2 vCPUs (else the default, 1)
        self.stop = threading.Event()
        self.accepted: dict[str, int] = {}  # idempotency key -> job id
        self.kinds: dict[int, str] = {}
        self.deps: dict[int, int] = {}  # dependant -> dependency
        self.cancels: list[int] = []
        self.errors: Counter[str] = Counter()
        self.retried = 0
        self.cancel_refused = 0
        self.n = 0

    def _key(self) -> str:
        self.n += 1
        return f"k{self.n}"

    def _vcpus(self) -> dict[str, Any]:
        return {"vcpus": self.rng.choice((0.5, 1.0, 2.0))} if self.sized else {}

    def _inline(self, key: str, **over: Any) -> SubmitRequest:
        rng = self.rng
        payload = {
            "args": [self.n],
            "kwargs": {"ms": rng.choice((0, 0, 5, 20, 100)), "fail_first": rng.random() < 0.1},
        }
        return SubmitRequest(
            function="chaos_jobs:work", payload=payload, retry=3, idempotency_key=key, **self._vcpus(), **over
        )

    def _command(self, key: str) -> SubmitRequest:
        seconds = self.rng.choice(("0.05", "0.2", "1"))
        return SubmitRequest(
            command=("sh", "-c", chaos_jobs.SHELL.replace("{seconds}", seconds)),
            retry=3,
            idempotency_key=key,
            **self._vcpus(),
        )

    def _until_accepted(self, what: str, call: Any) -> Any:
        """``call()`` until it returns: a submission that raised may or may not have been stored
        (its answer lost); the same idempotency keys make the retry safe."""
        deadline = time.monotonic() + 120
        while True:
            try:
                return call()
            except (errors.ValidationError, errors.Conflict):
                raise
            except Exception as exc:  # StoreUnavailable, a cut connection
                self.errors[f"{what}: {type(exc).__name__}"] += 1
                self.retried += 1
                if time.monotonic() > deadline:
                    raise
                time.sleep(self.rng.uniform(0.05, 0.3))

    def _one(self, req: SubmitRequest, kind: str) -> int:
        key = req.idempotency_key
        assert key is not None
        job_id: int = self._until_accepted("submit", lambda: self.app.jobs.submit(req)).job.id
        self.accepted[key] = job_id
        self.kinds[job_id] = kind
        return job_id

    def run(self) -> None:
        rng = self.rng
        while not self.stop.is_set():
            roll = rng.random()
            if roll < 0.55:
                self._one(self._inline(self._key()), "inline")
            elif roll < 0.70:
                reqs = [self._inline(self._key()) for _ in range(20)]
                done = self._until_accepted("bulk", lambda reqs=reqs: self.app.jobs.submit_many_brief(reqs))
                for req, ins in zip(reqs, done, strict=True):
                    assert req.idempotency_key is not None
                    self.accepted[req.idempotency_key] = ins.id
                    self.kinds[ins.id] = "bulk"
            elif roll < 0.82:
                self._one(self._command(self._key()), "command")
            elif roll < 0.94:
                first = self._one(self._inline(self._key()), "inline")
                second = self._one(self._inline(self._key(), depends_on=(first,)), "dependant")
                self.deps[second] = first
            elif self.accepted:
                victim = rng.choice(list(self.accepted.values()))
                try:
                    self._until_accepted(
                        "cancel", lambda victim=victim: self.app.jobs.cancel(victim, "chaos")
                    )
                except errors.Conflict:  # already running or finished: an answer, not a failure
                    self.cancel_refused += 1
                self.cancels.append(victim)
            time.sleep(rng.expovariate(self.rate))


class CapacityWatch(threading.Thread):
    """Reads, every 20 ms, the vCPUs of the jobs the store holds STARTING or RUNNING in the
    default environment (``environment_usage``, what `conveyor environments list` shows),
    and keeps the largest sum seen. A read that fails (the database cut off) is skipped."""

    def __init__(self, app: App) -> None:
        super().__init__(daemon=True)
        self.app = app
        self.stop = threading.Event()
        self.max_seen = 0.0
        self.reads = 0
        self.failed = 0

    def run(self) -> None:
        while not self.stop.wait(0.02):
            try:
                used = self.app.store.environment_usage(datetime.now(UTC))["default"].used_vcpus
            except Exception:  # a cut connection, a restarting server
                self.failed += 1
                continue
            self.reads += 1
            self.max_seen = max(self.max_seen, used)


def cut_connections(admin: str, db: str) -> int:
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (db,),
        ).fetchall()
    return len(rows)


def restart_server() -> float:
    t = time.monotonic()
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        check=True,
        capture_output=True,
    )
    return time.monotonic() - t


def read_log(path: Path) -> dict[int, list[tuple[float, int, str]]]:
    """job id -> [(time, attempt, what)] in time order."""
    out: dict[int, list[tuple[float, int, str]]] = defaultdict(list)
    if path.exists():
        for text in path.read_text().splitlines():
            parts = text.split()
            if len(parts) != 5:
                continue
            out[int(parts[1])].append((float(parts[0]), int(parts[2]), parts[4]))
    for lines in out.values():
        lines.sort()
    return out


def verify(app: App, sub: Submitter, log: dict[int, list[tuple[float, int, str]]]) -> dict[str, Any]:
    problems: list[str] = []
    states: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    ids = set(sub.accepted.values())
    if len(ids) != len(sub.accepted):
        problems.append(f"{len(sub.accepted)} keys accepted but {len(ids)} distinct jobs")
    for key, job_id in sub.accepted.items():
        job = app.store.job_get(job_id)
        if job is None:
            problems.append(f"{key}: job {job_id} was accepted and is gone")
            continue
        if job.idempotency_key != key:
            problems.append(f"job {job_id}: key {job.idempotency_key!r}, accepted as {key!r}")
        states[job.state.value] += 1
        if job.state not in TERMINAL:
            problems.append(f"job {job_id} still {job.state.value}: {job.status_reason}")
            continue
        lines = log.get(job_id, [])
        attempts = app.store.job_attempts(job_id)
        dep = sub.deps.get(job_id)
        if job.state is JobState.FAILED:
            reasons[job.status_reason.split(":")[0][:40]] += 1
            if not job.status_reason:
                problems.append(f"job {job_id} FAILED without a reason")
            if (
                job.attempts_counted < 3
                and not (dep is not None and "dependency" in job.status_reason)
                and ("cancel" not in job.status_reason)
            ):
                problems.append(
                    f"job {job_id} FAILED after {job.attempts_counted} of 3 attempts: {job.status_reason}"
                )
        if job.state is JobState.SUCCEEDED:
            done = [a for _, a, what in lines if what == "done"]
            if job.attempt not in done:
                problems.append(
                    f"job {job_id} SUCCEEDED in attempt {job.attempt} but its log has done for {done}"
                )
        if any(a > job.attempt for _, a, _ in lines):
            problems.append(f"job {job_id}: the log has attempts beyond {job.attempt}: {lines}")
        # attempts never overlap: each attempt's first line comes after every line of earlier ones
        first_of: dict[int, float] = {}
        last_of: dict[int, float] = {}
        for t, a, _ in lines:
            first_of.setdefault(a, t)
            last_of[a] = t
        for a, t in first_of.items():
            late = [b for b, tl in last_of.items() if b < a and tl > t]
            if late:
                problems.append(f"job {job_id}: attempt {a} began while attempt(s) {late} still ran: {lines}")
        if len(attempts) != job.attempt and job.attempt > 0:
            problems.append(f"job {job_id}: attempt {job.attempt} but {len(attempts)} attempt records")
        if dep is not None and lines:
            dep_done = [t for t, _, what in log.get(dep, []) if what == "done"]
            if not dep_done or lines[0][0] < dep_done[0]:
                problems.append(f"job {job_id} started before its dependency {dep} was done")
    events_problems, attempt_reasons = check_tables(app, ids)
    problems.extend(events_problems)
    return {
        "states": dict(states),
        "failed_reasons": dict(reasons),
        "ended_attempts": attempt_reasons,
        "problems": problems,
    }


def check_tables(app: App, ids: set[int]) -> tuple[list[str], dict[str, int]]:
    """Each job's last event names the state it is in, and no job exists that was not accepted
    (read straight from the store's tables: this harness checks them, it is not an edge of the
    product). Also: how the attempts that did not succeed ended (reason, up to its first colon)."""
    store = app.store
    problems = []
    with store._read() as tx:
        last: dict[int, str] = {}
        for r in tx.q(
            "SELECT entity_id, data FROM events WHERE entity = 'job' AND type = 'job.state' ORDER BY id"
        ):
            data = store.d.unjs(r["data"])
            last[int(r["entity_id"])] = data["to"]
        stored = tx.q("SELECT id, state FROM jobs")
        for r in stored:
            if last.get(r["id"]) != r["state"]:
                problems.append(f"job {r['id']} is {r['state']} but its last event says {last.get(r['id'])}")
        extra = sorted({int(r["id"]) for r in stored} - ids)
        if extra:
            problems.append(f"{len(extra)} stored job(s) that no accepted submission names: {extra[:10]}")
        ended: Counter[str] = Counter(
            str(r["reason"]).split(":")[0][:48] for r in tx.q("SELECT reason FROM attempts")
        )
    return problems, dict(ended)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--seconds", type=float, default=60.0, help="how long the chaos lasts")
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--lease", type=float, default=5.0, help="the workers' --lease-seconds")
    ap.add_argument("--grace", type=float, default=2.0, help="the workers' --grace")
    ap.add_argument("--rate", type=float, default=60.0, help="submissions a second")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--restart-server", action="store_true", help="PostgreSQL: also restart the server")
    ap.add_argument(
        "--pg-admin", default=os.environ.get("CONVEYOR_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")
    )
    ap.add_argument(
        "--keep", action="store_true", help="keep the scratch folder (worker logs, the attempt log)"
    )
    ap.add_argument("--json", type=Path, help="also write the summary here")
    ap.add_argument(
        "--max-vcpus",
        type=float,
        default=None,
        help="limit the default environment to this many vCPUs, give jobs 0.5, 1 or 2, and check "
        "that the vCPUs of running jobs never exceed it",
    )
    args = ap.parse_args(argv)
    # the pool's warnings about each connection a restart broke: counted in the summary instead
    logging.disable(logging.WARNING)
    rng = random.Random(args.seed)
    scratch = Path(tempfile.mkdtemp(prefix="conveyor-chaos-"))
    attempt_log = scratch / "attempts.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env["CHAOS_LOG"] = str(attempt_log)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(BENCH), env.get("PYTHONPATH", "")) if p)
    if args.backend == "sqlite":
        url = f"sqlite:///{scratch / 'chaos.db'}"
    else:
        import psycopg

        with psycopg.connect(args.pg_admin, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{PG_DB}"')
        url = args.pg_admin.rsplit("/", 1)[0] + "/" + PG_DB
    app = App.open(url)
    watch: CapacityWatch | None = None
    if args.max_vcpus is not None:
        app.catalog.update_environment("default", max_vcpus=args.max_vcpus)
        watch = CapacityWatch(app)
        watch.start()
    workers = Workers(url, scratch, args, env)
    for _ in range(args.workers):
        workers.start()
    sub = Submitter(app, random.Random(args.seed + 1), args.rate, sized=args.max_vcpus is not None)
    actions: Counter[str] = Counter()
    restarts: list[float] = []
    t0 = time.monotonic()
    sub.start()
    try:
        while time.monotonic() - t0 < args.seconds:
            time.sleep(rng.uniform(1.0, 4.0))
            choices = ["kill", "kill", "term"]
            if args.backend == "postgres":
                choices.append("cut")
                if args.restart_server:
                    choices.append("restart")
            action = rng.choice(choices)
            if action == "kill":
                workers.kill(rng)
            elif action == "term":
                workers.term(rng)
            elif action == "cut":
                cut_connections(args.pg_admin, PG_DB)
            else:
                restarts.append(restart_server())
            actions[action] += 1
            actions["workers died unasked"] += workers.replace_dead()
        sub.stop.set()
        sub.join(150)
        chaos_seconds = time.monotonic() - t0
        # drain: the workers left finish what is there (a killed worker's leases expire first)
        drain_start = time.monotonic()
        unfinished: list[int] = []
        while time.monotonic() - drain_start < 120 + 3 * args.lease:
            workers.replace_dead()
            unfinished = [
                j
                for j in sub.accepted.values()
                if (job := app.store.job_get(j)) is None or job.state not in TERMINAL
            ]
            if not unfinished:
                break
            time.sleep(0.5)
        drain_seconds = time.monotonic() - drain_start
        workers.stop_all()
        codes = workers.exit_codes(timeout=args.grace + 30)
        summary: dict[str, Any] = {
            "backend": args.backend,
            "seed": args.seed,
            "chaos_seconds": round(chaos_seconds, 1),
            "drain_seconds": round(drain_seconds, 1),
            "accepted": len(sub.accepted),
            "cancel_requests": len(sub.cancels),
            "cancel_refused": sub.cancel_refused,
            "submission_retries": sub.retried,
            "submission_errors": dict(sub.errors),
            "actions": dict(actions),
            "server_restart_seconds": [round(s, 1) for s in restarts],
            "workers_started": workers.started,
        }
        summary.update(verify(app, sub, read_log(attempt_log)))
        if watch is not None:
            watch.stop.set()
            watch.join(5)
            summary["capacity"] = {
                "max_vcpus": args.max_vcpus,
                "max_in_use_seen": watch.max_seen,
                "reads": watch.reads,
                "reads_failed": watch.failed,
            }
            if watch.max_seen > args.max_vcpus + 1e-9:
                summary["problems"].append(
                    f"{watch.max_seen} vCPUs in use seen in an environment of {args.max_vcpus}"
                )
        bad_exits = [(pid, code) for pid, code in codes if code != 0]
        if bad_exits:
            summary["problems"].append(f"workers stopped with SIGTERM exited {bad_exits}")
        summary["ok"] = not summary["problems"]
        summary["problems"] = summary["problems"][:50]
        summary["scratch"] = str(scratch) if args.keep or not summary["ok"] else None
    finally:
        sub.stop.set()
        if watch is not None:
            watch.stop.set()
        for p in workers.live:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
        app.close()
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    if args.backend == "postgres":
        import psycopg

        with psycopg.connect(args.pg_admin, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
    if summary["ok"] and not args.keep:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
