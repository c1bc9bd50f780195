"""The small interface every peer module implements (see bench/README.md)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import common

BENCH_DIR = Path(__file__).resolve().parent.parent
BIN_DIR = Path(sys.executable).parent
LOG_DIR = BENCH_DIR / "results" / "logs.tmp"


class Timeout(Exception):
    pass


class Peer:
    name = "?"
    backend = "?"
    #: None when the library has no official bulk-enqueue API (W1 bulk -> "n/a")
    bulk_api: str | None = None
    #: human description of the worker layout used for W2/W3 on 2 cores
    worker_layout = "?"
    #: whether the peer runs a worker at all (baselines do not)
    has_worker = True
    #: the workloads that mean something for this peer
    workloads: tuple[str, ...] = ("W1", "W2", "W3")
    #: how the task body counts completions (common.py); BENCH_COUNTER in the environment wins
    counter_mode = "batched"

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen] = []

    # -- to implement -------------------------------------------------
    def version(self) -> str:
        raise NotImplementedError

    def setup(self) -> None:
        """Connect / create schema. Called once per workload process."""

    def flush(self) -> None:
        """Empty this peer's queue(s) and reset the completion counters."""
        raise NotImplementedError

    def enqueue_one(self, n: int) -> None:
        raise NotImplementedError

    def enqueue_bulk(self, ns: list[int]) -> None:
        raise NotImplementedError(f"{self.name} has no bulk enqueue API")

    def queue_depth(self) -> int | None:
        return None

    def worker_commands(self, concurrency: int) -> list[list[str]]:
        """argv lists of the worker processes to start for `concurrency` cores."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    # -- shared machinery ----------------------------------------------
    def start_workers(self, concurrency: int, target: int) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = str(BENCH_DIR) + os.pathsep + env.get("PYTHONPATH", "")
        env["BENCH_TARGET"] = str(target)
        env.setdefault("BENCH_COUNTER", self.counter_mode)
        env["PYTHONUNBUFFERED"] = "1"
        for i, argv in enumerate(self.worker_commands(concurrency)):
            log = open(LOG_DIR / f"{self.name}-worker{i}.log", "ab")  # noqa: SIM115
            # Same process group as this (per-workload) process: the parent
            # run_peers.py sweeps the whole group with SIGKILL afterwards.
            p = subprocess.Popen(argv, cwd=BENCH_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
            log.close()
            self._procs.append(p)

    def workers_alive(self) -> bool:
        return all(p.poll() is None for p in self._procs)

    def stop_workers(self, grace: float = 10.0) -> None:
        for p in self._procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for p in self._procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        self._procs.clear()

    def drain_wait(self, count: int, deadline: float, poll: float = 0.05) -> int:
        """Wait until `count` jobs completed (Redis counter) or `deadline` (monotonic).

        Returns the number completed; raises Timeout with the partial count.
        """
        r = common.counter_redis()
        while True:
            done = int(r.get(common.CNT_KEY) or 0)
            if done >= count:
                return done
            if time.monotonic() > deadline:
                raise Timeout(done)
            if self._procs and not self.workers_alive():
                raise RuntimeError(f"{self.name}: a worker process exited early (see {LOG_DIR})")
            time.sleep(poll)
