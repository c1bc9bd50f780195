"""Timestamps inside a real ``conveyor worker`` for ``bench/w3_breakdown.py`` (bench only).

Imported by the worker with ``--import peers.latency_hooks`` (after the store module is
loaded, before the worker starts): it wraps ``SQLiteStore``/``PostgresStore`` methods to note,
in microseconds since the epoch, when each wait for work returned, when each claim began and
ended (with the integer its job was given: W3's enqueue time), and when a WAL checkpoint was
asked for. At exit the notes go to ``$BENCH_HOOKS_DIR/<pid>.json``. Importing it in the
submitting process too notes that process's checkpoints.
"""

from __future__ import annotations

import atexit
import json
import os
import time
from typing import Any

NOTES: list[tuple[str, int, Any]] = []


def _us() -> int:
    return time.time_ns() // 1000


def _wrap_store(cls: Any) -> None:
    wait = cls.wait_for_jobs
    claim = cls.job_claim

    def wait_for_jobs(self: Any, timeout: float) -> bool:
        woken = wait(self, timeout)
        NOTES.append(("woke", _us(), None))
        return bool(woken)

    def job_claim(self: Any, req: Any, now: Any) -> Any:
        began = _us()
        jobs = claim(self, req, now)
        ended = _us()
        for job in jobs:
            args = (job.payload or {}).get("args") if isinstance(job.payload, dict) else None
            NOTES.append(("claim", began, [ended, args[0] if args else None]))
        return jobs

    cls.wait_for_jobs = wait_for_jobs
    cls.job_claim = job_claim
    soon = getattr(cls, "_checkpoint_soon", None)
    if soon is not None:

        def checkpoint_soon(self: Any) -> None:
            NOTES.append(("checkpoint", _us(), None))
            soon(self)

        cls._checkpoint_soon = checkpoint_soon


def dump() -> None:
    folder = os.environ.get("BENCH_HOOKS_DIR")
    if folder:
        with open(os.path.join(folder, f"{os.getpid()}.json"), "w") as f:
            json.dump(NOTES, f)


from conveyor.store.sqlite import SQLiteStore  # noqa: E402

_wrap_store(SQLiteStore)
try:
    from conveyor.store.postgres import PostgresStore

    _wrap_store(PostgresStore)
except ImportError:  # psycopg not installed: SQLite only
    pass
atexit.register(dump)
