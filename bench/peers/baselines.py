"""Storage baselines: the cost of one durable row per job, no queue at all.

* ``psycopg-baseline``: one-column table on the same PostgreSQL server,
  ``INSERT`` with autocommit (= one COMMIT per row). Server defaults
  (synchronous_commit=on, fsync=on).
* ``sqlite-baseline``: ``sqlite3`` file in WAL mode, ``synchronous=NORMAL``,
  ``INSERT`` + ``COMMIT`` per row.

Bulk variants: ``executemany`` of one batch inside ONE transaction.
They have no worker: only W1 applies.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from . import common
from .base import BENCH_DIR, Peer

SQLITE_DIR = Path(BENCH_DIR / "results" / "sqlite-baseline.tmp")


class PsycopgBaseline(Peer):
    name = "psycopg-baseline"
    backend = "postgresql"
    bulk_api = "executemany(batch) in one transaction"
    has_worker = False
    worker_layout = "n/a"

    def version(self) -> str:
        import psycopg

        return f"psycopg {psycopg.__version__}"

    def setup(self) -> None:
        import psycopg

        common.ensure_pg_database()
        self.conn = psycopg.connect(common.PG_DSN, autocommit=True, connect_timeout=10)
        self.conn.execute("CREATE TABLE IF NOT EXISTS bench_baseline (n bigint)")
        self.server = self.conn.execute("SHOW server_version").fetchone()[0]

    def flush(self) -> None:
        self.conn.execute("TRUNCATE bench_baseline")

    def enqueue_one(self, n: int) -> None:
        self.conn.execute("INSERT INTO bench_baseline (n) VALUES (%s)", (n,))

    def enqueue_bulk(self, ns: list[int]) -> None:
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.executemany("INSERT INTO bench_baseline (n) VALUES (%s)", [(n,) for n in ns])

    def close(self) -> None:
        self.conn.execute("DROP TABLE IF EXISTS bench_baseline")
        self.conn.close()


class SqliteBaseline(Peer):
    name = "sqlite-baseline"
    backend = "sqlite"
    bulk_api = "executemany(batch) in one transaction"
    has_worker = False
    worker_layout = "n/a"

    def version(self) -> str:
        return f"sqlite {sqlite3.sqlite_version}"

    def setup(self) -> None:
        SQLITE_DIR.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(SQLITE_DIR / "baseline.db", isolation_level=None)
        assert self.conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS bench_baseline (n INTEGER)")

    def flush(self) -> None:
        self.conn.execute("DELETE FROM bench_baseline")
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def enqueue_one(self, n: int) -> None:
        self.conn.execute("BEGIN")
        self.conn.execute("INSERT INTO bench_baseline (n) VALUES (?)", (n,))
        self.conn.execute("COMMIT")

    def enqueue_bulk(self, ns: list[int]) -> None:
        self.conn.execute("BEGIN")
        self.conn.executemany("INSERT INTO bench_baseline (n) VALUES (?)", [(n,) for n in ns])
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()
        shutil.rmtree(SQLITE_DIR, ignore_errors=True)


BODY_FILE = Path(BENCH_DIR / "results" / "body-baseline.tmp")


class BodyBaseline(Peer):
    """The W2 ceiling: the task body itself, called in a loop by ``--concurrency`` processes
    with no queue at all (each process takes every k-th number). No queue can drain faster
    than this on the same machine; run it with ``--workloads W2``."""

    name = "body-baseline"
    backend = "none"
    bulk_api = "a Python list"
    worker_layout = "2 processes calling common.record(n) in a loop (no queue)"
    workloads = ("W2",)

    def version(self) -> str:
        return "the task body alone"

    def setup(self) -> None:
        self.ns: list[int] = []

    def flush(self) -> None:
        self.ns = []
        common.reset_counters()

    def enqueue_one(self, n: int) -> None:
        self.ns.append(n)

    def enqueue_bulk(self, ns: list[int]) -> None:
        self.ns.extend(ns)

    def worker_commands(self, concurrency: int) -> list[list[str]]:
        import sys

        BODY_FILE.parent.mkdir(parents=True, exist_ok=True)
        BODY_FILE.write_text(" ".join(map(str, self.ns)))
        code = (
            "import sys, time\n"
            "from peers import common\n"
            f"ns = [int(x) for x in open({str(BODY_FILE)!r}).read().split()][int(sys.argv[1])::int(sys.argv[2])]\n"
            "for n in ns:\n"
            "    common.record(n)\n"
            "time.sleep(60)  # stay up: the harness stops workers itself\n"
        )
        return [[sys.executable, "-c", code, str(k), str(concurrency)] for k in range(concurrency)]
