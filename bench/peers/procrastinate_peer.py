"""Procrastinate, PostgreSQL (database from BENCH_PG_DSN, created if missing)."""

from __future__ import annotations

import procrastinate

from . import common
from .base import BIN_DIR, Peer

app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=common.PG_DSN))


@app.task(name="bench.noop", queue="bench")
def noop(n: int) -> None:
    common.record(n)


class ProcrastinatePeer(Peer):
    name = "procrastinate"
    backend = "postgresql"
    bulk_api = "Task.batch_defer(*kwargs) (one INSERT per batch)"
    worker_layout = "2 `procrastinate worker` processes, --concurrency 4 each (LISTEN/NOTIFY on, default polling, --log-level warning)"

    def version(self) -> str:
        from importlib.metadata import version

        return f"procrastinate {version('procrastinate')} (psycopg {version('psycopg')})"

    def setup(self) -> None:
        import psycopg

        common.ensure_pg_database()
        with psycopg.connect(common.PG_DSN, autocommit=True, connect_timeout=10) as conn:
            exists = conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()[0]
        app.open()
        if exists is None:
            app.schema_manager.apply_schema()

    def flush(self) -> None:
        import psycopg

        with psycopg.connect(common.PG_DSN, autocommit=True, connect_timeout=10) as conn:
            conn.execute("TRUNCATE procrastinate_jobs CASCADE")
            conn.execute("VACUUM ANALYZE procrastinate_jobs")
        common.reset_counters()

    def enqueue_one(self, n: int) -> None:
        noop.defer(n=n)

    def enqueue_bulk(self, ns: list[int]) -> None:
        noop.batch_defer(*({"n": n} for n in ns))

    def queue_depth(self) -> int | None:
        import psycopg

        with psycopg.connect(common.PG_DSN, autocommit=True, connect_timeout=10) as conn:
            return int(
                conn.execute(
                    "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')"
                ).fetchone()[0]
            )

    def worker_commands(self, concurrency: int) -> list[list[str]]:
        return [
            [
                str(BIN_DIR / "procrastinate"),
                "--app",
                "peers.procrastinate_peer.app",
                "--log-level",
                "warning",
                "worker",
                "--concurrency",
                "4",
                "--name",
                f"bench-{i}",
            ]
            for i in range(concurrency)
        ]

    def close(self) -> None:
        app.close()


PEER = ProcrastinatePeer
