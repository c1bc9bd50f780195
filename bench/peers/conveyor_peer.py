"""Conveyor itself, on SQLite and on PostgreSQL, measured exactly like the peers.

The task is the same no-op (``common.record``: one Redis INCR per job) run by the inline
executor; workers are real ``conveyor worker`` processes.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import common
from .base import BENCH_DIR, Peer

SQLITE_PATH = Path(
    os.environ.get("BENCH_CONVEYOR_SQLITE_PATH", BENCH_DIR / "results" / "conveyor-bench.db.tmp")
)
CONCURRENCY = int(os.environ.get("BENCH_CONVEYOR_CONCURRENCY", "16"))


def noop(n: int) -> None:
    common.record(n)


class _ConveyorPeer(Peer):
    bulk_api = "JobService.submit_many_brief (one transaction per batch; ids and states back)"
    worker_layout = f"2 `conveyor worker` processes, inline executor, --concurrency {CONCURRENCY} each"
    url = ""

    def __init__(self) -> None:
        super().__init__()
        self.app = None

    def version(self) -> str:
        from importlib.metadata import version

        return f"conveyor {version('conveyor')} (psycopg {version('psycopg')})"

    def _fresh_database(self) -> None:
        raise NotImplementedError

    def setup(self) -> None:
        self._fresh_database()
        self._open()

    def _open(self) -> None:
        from conveyor.app import App

        if self.app is not None:
            self.app.close()
        self.app = App.open(self.url)

    def flush(self) -> None:
        if self.app is not None:
            self.app.close()
            self.app = None
        self._fresh_database()
        self._open()
        common.reset_counters()

    def enqueue_one(self, n: int) -> None:
        from conveyor.engine.jobs import SubmitRequest

        self.app.jobs.submit(SubmitRequest(function="peers.conveyor_peer:noop", payload={"args": [n]}))

    def enqueue_bulk(self, ns: list[int]) -> None:
        from conveyor.engine.jobs import SubmitRequest

        self.app.jobs.submit_many_brief(
            [SubmitRequest(function="peers.conveyor_peer:noop", payload={"args": [n]}) for n in ns]
        )

    def queue_depth(self) -> int | None:
        from conveyor.model import JobState

        counts = self.app.store.queue_counts().get("default", {})
        return sum(
            counts.get(s.value, 0)
            for s in (JobState.RUNNABLE, JobState.STARTING, JobState.RUNNING, JobState.SUBMITTED)
        )

    def worker_commands(self, concurrency: int) -> list[list[str]]:
        import sys

        return [
            [
                sys.executable,
                "-m",
                "conveyor",
                "worker",
                "--database",
                self.url,
                "--concurrency",
                str(CONCURRENCY),
                "--log-level",
                "WARNING",
            ]
            for _ in range(concurrency)
        ]

    def close(self) -> None:
        if self.app is not None:
            self.app.close()


class ConveyorSQLitePeer(_ConveyorPeer):
    name = "conveyor-sqlite"
    backend = "sqlite"
    url = f"sqlite:///{SQLITE_PATH}"

    def _fresh_database(self) -> None:
        SQLITE_PATH.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{SQLITE_PATH}{suffix}").unlink(missing_ok=True)


class ConveyorPostgresPeer(_ConveyorPeer):
    name = "conveyor-postgres"
    backend = "postgresql"
    url = os.environ.get("BENCH_CONVEYOR_PG_DSN", "postgresql://postgres@127.0.0.1:5432/conveyor_bench_cv")

    def _fresh_database(self) -> None:
        import psycopg

        dbname = self.url.rsplit("/", 1)[1]
        with psycopg.connect(common.PG_ADMIN_DSN, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{dbname}"')
