"""PostgreSQL backend, for many servers and workers on many machines.

Claims lock rows with ``FOR UPDATE SKIP LOCKED``; exactly-once decisions are compare-and-set
updates and unique indexes; idle workers sleep on ``LISTEN conveyor_jobs`` and are woken by
the ``NOTIFY`` sent in the same transaction that made jobs runnable.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from conveyor import errors
from conveyor.store.base import Row, Tx
from conveyor.store.ops import StoreOps

CHANNEL = "conveyor_jobs"


class PostgresDialect:
    name = "postgres"
    skip_locked = " FOR UPDATE SKIP LOCKED"
    for_update = " FOR UPDATE"

    def ts(self, value: datetime | None) -> Any:
        return value

    def dt(self, value: Any) -> datetime | None:
        return None if value is None else value.astimezone(UTC)

    def js(self, value: Any) -> Any:
        return Jsonb(value)

    def unjs(self, value: Any) -> Any:
        return value

    def id_in(self, column: str) -> str:
        return f"{column} = ANY(?::bigint[])"

    def ids(self, values: Sequence[int]) -> Any:
        return list(values)

    def pair_in(self, a: str, b: str) -> str:
        return (
            f"({a}, {b}) IN (SELECT (e->>0)::bigint, (e->>1)::int FROM jsonb_array_elements(?::jsonb) AS e)"
        )

    def pairs(self, values: Sequence[tuple[int, int]]) -> Any:
        return Jsonb([list(v) for v in values])

    def alloc_job_ids(self, tx: Tx, n: int) -> list[int]:
        if n <= 0:
            return []
        return [
            int(r["id"]) for r in tx.q("SELECT nextval('jobs_id_seq') AS id FROM generate_series(1, ?)", (n,))
        ]

    def notify_jobs(self, tx: Tx, queues: set[str]) -> None:
        for queue in sorted(queues):
            tx.q("SELECT pg_notify(?, ?)", (CHANNEL, queue))


_SQL_CACHE: dict[str, str] = {}


def _pg(sql: str) -> str:
    out = _SQL_CACHE.get(sql)
    if out is None:
        out = sql.replace("%", "%%").replace("?", "%s")
        if len(_SQL_CACHE) < 2000:
            _SQL_CACHE[sql] = out
    return out


class _PgTx:
    __slots__ = ("cur",)

    def __init__(self, cur: psycopg.Cursor[dict[str, Any]]) -> None:
        self.cur = cur

    def q(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        self.cur.execute(_pg(sql), params)
        if not self.cur.description:
            return []
        rows: list[Row] = list(self.cur.fetchall())
        return rows

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        self.cur.execute(_pg(sql), params)
        return self.cur.fetchone() if self.cur.description else None

    def x(self, sql: str, params: Sequence[Any] = ()) -> int:
        self.cur.execute(_pg(sql), params)
        return self.cur.rowcount

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.cur.executemany(_pg(sql), rows)


def redact(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SET TIME ZONE 'UTC'")
    conn.commit()


class PostgresStore(StoreOps):
    def __init__(
        self, url: str, *, min_size: int = 1, max_size: int = 8, connect_timeout: float = 10.0
    ) -> None:
        super().__init__()
        self.url = url
        self.d = PostgresDialect()
        self._pool: ConnectionPool[psycopg.Connection[dict[str, Any]]] = ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            kwargs={"row_factory": dict_row, "autocommit": False},
            configure=_configure,
            open=False,
            name="conveyor",
        )
        try:
            self._pool.open(wait=True, timeout=connect_timeout)
        except PoolTimeout as exc:
            self._pool.close()
            detail = ""
            try:
                psycopg.connect(url, connect_timeout=3).close()
            except psycopg.Error as inner:
                detail = f": {str(inner).strip().splitlines()[0]}"
            raise errors.StoreUnavailable(f"cannot reach PostgreSQL at {redact(url)}{detail}") from exc
        self._local = threading.local()
        self._listeners: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Tx]:
        try:
            with self._pool.connection() as conn, conn.cursor() as cur:
                yield _PgTx(cur)
        except psycopg.errors.UniqueViolation as exc:
            raise errors.Conflict(f"the store refused a duplicate: {exc.diag.message_detail or exc}") from exc
        except psycopg.errors.UndefinedTable as exc:
            raise errors.StoreUnavailable(
                "the PostgreSQL database has no Conveyor schema; run `conveyor migrate`"
            ) from exc
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise errors.StoreUnavailable(
                f"PostgreSQL at {redact(self.url)} is not available: {exc}"
            ) from exc

    def _write(self) -> contextlib.AbstractContextManager[Tx]:
        return self._tx()

    def _read(self) -> contextlib.AbstractContextManager[Tx]:
        return self._tx()

    def _lock_migrations(self, tx: Tx) -> None:
        tx.q("SELECT pg_advisory_xact_lock(7220417)")

    def wait_for_jobs(self, timeout: float) -> bool:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "listener", None)
        try:
            if conn is None or conn.closed:
                conn = psycopg.connect(self.url, autocommit=True)
                conn.execute(f"LISTEN {CHANNEL}")
                self._local.listener = conn
                with self._lock:
                    self._listeners.append(conn)
            got = False
            for _ in conn.notifies(timeout=timeout, stop_after=1):
                got = True
            return got
        except psycopg.Error:
            self._local.listener = None
            return super().wait_for_jobs(min(timeout, 1.0))

    def close(self) -> None:
        with self._lock:
            for conn in self._listeners:
                with contextlib.suppress(psycopg.Error):
                    conn.close()
            self._listeners.clear()
        self._pool.close()
