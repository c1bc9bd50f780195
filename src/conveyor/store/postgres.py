"""PostgreSQL backend, for many servers and workers on many machines.

Claims lock rows with ``FOR UPDATE SKIP LOCKED``; exactly-once decisions are compare-and-set
updates and unique indexes; idle workers sleep on ``LISTEN conveyor_jobs`` and are woken by
the ``NOTIFY`` sent in the same transaction that made jobs runnable.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from conveyor import errors
from conveyor.model import (
    ClaimRequest,
    DefinitionSpec,
    Finish,
    Inserted,
    InsertResult,
    NewJob,
)
from conveyor.store.base import Row, Tx, plus
from conveyor.store.lifecycle import _START_JOBS, _STATES, CLAIMED, _plain
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

    def echo_js(self, stored: Any) -> Any:
        # jsonb comes back through json.loads, like a JSON round trip; ``stored``: a Jsonb,
        # or the JSON text that was sent
        return json.loads(stored if isinstance(stored, str) else json.dumps(stored.obj))

    def id_in(self, column: str) -> str:
        return f"{column} = ANY(?::bigint[])"

    def in_subquery(self, column: str, subquery: str) -> str:
        # ARRAY(...) is an InitPlan, run once; as "IN (...)" the planner may rescan it and
        # a rescan of a SKIP LOCKED ... LIMIT subquery returns further rows
        return f"{column} = ANY(ARRAY({subquery}))"

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

    def _run(self, sql: str, params: Sequence[Any]) -> None:
        self.cur.execute(_pg(sql), params)

    def q(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        self._run(sql, params)
        if not self.cur.description:
            return []
        rows: list[Row] = list(self.cur.fetchall())
        return rows

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        self._run(sql, params)
        return self.cur.fetchone() if self.cur.description else None

    def x(self, sql: str, params: Sequence[Any] = ()) -> int:
        self._run(sql, params)
        return self.cur.rowcount

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.cur.executemany(_pg(sql), rows)


def redact(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SET TIME ZONE 'UTC'")


# -- one-statement fast paths (each saves several round trips and, with autocommit, BEGIN) --

# Insert jobs without keys, dependencies or arrays, with their events, and wake listeners:
# one statement. What a batch repeats travels once: each distinct "template" (every column
# but the payload; a bulk submission of one task has one) in a jsonb array of objects, then
# the payloads as one JSON array (the engine's JSON texts, joined) and each job's template
# number (an empty array: all 0). The server parsed each job's spec and the client encoded
# it, 1000 times per batch, when every row carried its own. Parameters: the time,
# templates, payloads, template numbers. Queues with new runnable jobs are notified.
# Returns the new ids in input order.
_TEMPLATE_COLUMNS = (
    ("queue", "text"),
    ("name", "text"),
    ("definition", "text"),
    ("definition_revision", "int"),
    ("kind", "text"),
    ("spec", "jsonb"),
    ("state", "text"),
    ("status_reason", "text"),
    ("priority", "int"),
    ("run_at", "timestamptz"),
    ("vcpus", "float8"),
    ("memory_mb", "int"),
    ("payload_ref", "text"),
    ("tags", "jsonb"),
    ("parent_id", "bigint"),
)
_T_COLS = ", ".join(f"t.{c}" for c, _ in _TEMPLATE_COLUMNS)
_PLAIN_CTES = (
    "WITH p AS (SELECT ?::timestamptz AS now),"
    " t AS (SELECT * FROM jsonb_to_recordset(?::jsonb) AS t("
    + ", ".join(f"{c} {t}" for c, t in _TEMPLATE_COLUMNS)
    + ", k int)),"
    # one narrow row per job, ids drawn in input order; the template columns (the spec is
    # most of a row) are joined in only where they are written
    " v AS (SELECT nextval('jobs_id_seq') AS id, NULLIF(x.payload, 'null') AS payload,"
    " COALESCE(x.k::int, 0) AS k, x.ord"
    " FROM ROWS FROM (jsonb_array_elements(?::jsonb), jsonb_array_elements(?::jsonb))"
    " WITH ORDINALITY AS x(payload, k, ord)),"
    f" j AS (INSERT INTO jobs (id, {', '.join(c for c, _ in _TEMPLATE_COLUMNS)}, payload, created_at, updated_at)"
    f" SELECT v.id, {_T_COLS}, v.payload, p.now, p.now FROM v JOIN t USING (k), p),"
    " e AS (INSERT INTO events (at, entity, entity_id, type, data)"
    " SELECT p.now, 'job', v.id::text, 'job.state',"
    " jsonb_build_object('to', t.state, 'reason', t.status_reason, 'queue', t.queue)"
    " FROM v JOIN t USING (k), p ORDER BY v.ord)"
)
INSERT_PLAIN_JOBS = (
    _PLAIN_CTES + f", n AS (SELECT count(pg_notify('{CHANNEL}', q)) AS n"
    " FROM (SELECT DISTINCT queue FROM t WHERE state = 'RUNNABLE') AS w(q))"
    " SELECT v.id FROM v, n ORDER BY v.ord"
)
# the same inside a caller's transaction: no NOTIFY (the caller sends it); the ids come back
# as one array (a row each cost the client 0.4 µs, the array 0.1)
INSERT_PLAIN_JOBS_TX = _PLAIN_CTES + " SELECT array_agg(v.id ORDER BY v.ord) AS ids FROM v"

# One plain job (a single submission): the same rows as INSERT_PLAIN_JOBS from a plan with
# a few nodes instead of a dozen, whose set-up cost more than the rows. Parameters: the
# _ONE_COLUMNS, the time (created, updated, event); _WAKE adds the NOTIFY.
_ONE_COLUMNS = "queue, name, definition, definition_revision, kind, spec, state, status_reason, priority,"
_ONE_COLUMNS += " run_at, vcpus, memory_mb, payload, payload_ref, tags, parent_id"
_INSERT_ONE = (
    f"WITH j AS (INSERT INTO jobs ({_ONE_COLUMNS}, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?::jsonb,"
    " ?, ?, ?, ?, ?, ?, ?::jsonb, ?, ?::jsonb, ?, ?::timestamptz, ?::timestamptz)"
    " RETURNING id, queue, state, status_reason),"
    " e AS (INSERT INTO events (at, entity, entity_id, type, data) SELECT ?::timestamptz, 'job', id::text,"
    " 'job.state', jsonb_build_object('to', state, 'reason', status_reason, 'queue', queue) FROM j)"
)
INSERT_ONE = _INSERT_ONE + " SELECT j.id FROM j"
INSERT_ONE_WAKE = _INSERT_ONE + f" SELECT j.id FROM j CROSS JOIN LATERAL pg_notify('{CHANNEL}', j.queue) AS n"

# Start the RUNNABLE jobs matching {which}, open their attempts and record their events:
# one statement; returns lifecycle.CLAIMED (the spec as text: parsed once per distinct spec,
# see core._spec). Parameters: those of lifecycle._START_JOBS, then worker, host, pid, started,
# environment (attempts), event time, worker (events).
START_JOBS = (
    "WITH c AS (" + _START_JOBS + " RETURNING *),"
    " a AS (INSERT INTO attempts (job_id, number, worker_id, host, pid, started_at, compute_environment)"
    " SELECT id, attempt, ?::text, ?::text, ?::int, ?::timestamptz, ?::text FROM c),"
    " e AS (INSERT INTO events (at, entity, entity_id, type, data)"
    " SELECT ?::timestamptz, 'job', id::text, 'job.state', jsonb_build_object('from', 'RUNNABLE', 'to', state,"
    " 'attempt', attempt, 'worker', ?::text) FROM c ORDER BY c.priority DESC, c.id)"
    " SELECT "
    + ", ".join("c.spec::text" if col == "spec" else f"c.{col}" for col in CLAIMED.split(", "))
    + " FROM c ORDER BY c.priority DESC, c.id"
)

# One worker's successful attempts: job SUCCEEDED (with its result), attempt stopped, event
# recorded: one statement. Parameters: ids, attempts, results (arrays), updated, finished,
# worker; stopped (attempts); event time.
SUCCEED_JOBS = (
    "WITH v AS (SELECT * FROM unnest(?::bigint[], ?::int[], ?::jsonb[]) WITH ORDINALITY AS v(id, attempt, result, ord)),"
    " f AS (UPDATE jobs SET state = 'SUCCEEDED', status_reason = 'succeeded', updated_at = ?, finished_at = ?,"
    " lease_expires_at = NULL, result = COALESCE(v.result, jobs.result) FROM v"
    " WHERE jobs.id = v.id AND jobs.attempt = v.attempt AND jobs.worker_id = ? AND jobs.state = 'RUNNING'"
    " AND NOT jobs.terminate_requested RETURNING jobs.id, jobs.attempt, jobs.unique_key, jobs.unique_ttl,"
    " jobs.has_dependants, jobs.array_parent_id, v.ord),"
    " a AS (UPDATE attempts SET stopped_at = ?, exit_code = 0, reason = 'succeeded' FROM f"
    " WHERE attempts.job_id = f.id AND attempts.number = f.attempt),"
    " e AS (INSERT INTO events (at, entity, entity_id, type, data)"
    " SELECT ?::timestamptz, 'job', f.id::text, 'job.state',"
    " jsonb_build_object('from', 'RUNNING', 'to', 'SUCCEEDED', 'attempt', f.attempt) FROM f ORDER BY f.ord)"
    " SELECT * FROM f"
)


class PostgresStore(StoreOps):
    """The PostgreSQL store.

    ``async_commit`` (default True): a worker's claim, finish and lease-renewal transactions
    commit with ``synchronous_commit = off`` — they do not wait for the WAL flush. If the
    database server crashes, the last of those (well under a second) can be lost: the
    jobs concerned run again once their lease expires, so at-least-once holds. Submissions,
    schedule fires and user actions always wait for the flush.
    """

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 8,
        connect_timeout: float = 10.0,
        async_commit: bool = True,
    ) -> None:
        super().__init__()
        self.url = url
        self.async_commit = async_commit
        self.d = PostgresDialect()
        self._pool: ConnectionPool[psycopg.Connection[dict[str, Any]]] = ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            kwargs={"row_factory": dict_row, "autocommit": True},
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
    def _tx(self, mode: str = "") -> Iterator[Tx]:
        """A transaction. The pool's connections are in autocommit mode. ``mode``: "" BEGIN ...
        COMMIT; "async": the same with ``SET LOCAL synchronous_commit = off``; "statement": one
        statement, atomic on its own, with no BEGIN/COMMIT at all.

        (Pipeline mode would save the BEGIN round trip, but psycopg's pipeline loop holds the
        GIL while it waits: a worker's job threads starved and drained ~25% slower.)"""
        try:
            with self._pool.connection() as conn:
                if mode == "statement":
                    with conn.cursor() as cur:
                        yield _PgTx(cur)
                    return
                with conn.cursor() as cur:
                    cur.execute(b"BEGIN; SET LOCAL synchronous_commit = off" if mode == "async" else b"BEGIN")
                    try:
                        yield _PgTx(cur)
                    except BaseException:
                        with contextlib.suppress(psycopg.Error):
                            cur.execute(b"ROLLBACK")
                        raise
                    cur.execute(b"COMMIT")
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

    def _worker_write(self) -> contextlib.AbstractContextManager[Tx]:
        return self._tx("async" if self.async_commit else "")

    # -- fast paths (see the statements above) -------------------------------------------------
    def _spec_text(self, spec: DefinitionSpec) -> str:
        """The stored form of ``spec`` as JSON text, cached with it."""
        entry = self._spec_entry(spec)
        if entry[3] is None:
            entry[3] = json.dumps(entry[1].obj)
        text: str = entry[3]
        return text

    def _plain_params(
        self, jobs: Sequence[NewJob], now: datetime, woken: set[str], echo: bool
    ) -> tuple[tuple[Any, ...], list[tuple[str, str]], list[DefinitionSpec], list[str]]:
        """INSERT_PLAIN_JOBS's parameters for ``jobs``, each job's (state, reason), the specs
        as read back (``echo``) and each payload's JSON text ("null": none)."""
        templates: dict[tuple[Any, ...], int] = {}
        rows: list[dict[str, Any]] = []
        ks: list[int] = []
        payloads: list[str] = []
        states: list[tuple[str, str]] = []
        echoes: list[DefinitionSpec] = []
        for nj, state, reason, stored, spec in self._plain_each(jobs, now, woken, echo):
            states.append((state, reason))
            if spec is not None:
                echoes.append(spec)
            key = (
                nj.queue,
                nj.name,
                nj.definition,
                nj.definition_revision,
                id(nj.spec),  # the jobs keep their specs alive: ids are not reused meanwhile
                state,
                reason,
                nj.priority,
                nj.run_at,
                nj.payload_ref,
                nj.tags,
                nj.parent_id,
            )
            k = templates.get(key)
            if k is None:
                k = templates[key] = len(rows)
                row: dict[str, Any] = {
                    "k": k,
                    "queue": nj.queue,
                    "kind": nj.spec.kind,
                    "spec": stored.obj,
                    "state": state,
                    "status_reason": reason,
                    "priority": int(nj.priority),
                    "vcpus": float(nj.spec.vcpus),
                    "memory_mb": int(nj.spec.memory_mb),
                }
                # absent keys are NULL: only what is set travels
                if nj.name is not None:
                    row["name"] = nj.name
                if nj.definition is not None:
                    row["definition"] = nj.definition
                    row["definition_revision"] = nj.definition_revision
                if nj.run_at is not None:
                    row["run_at"] = nj.run_at.isoformat()
                if nj.payload_ref is not None:
                    row["payload_ref"] = nj.payload_ref
                if nj.tags:
                    row["tags"] = list(nj.tags)
                if nj.parent_id is not None:
                    row["parent_id"] = nj.parent_id
                rows.append(row)
            ks.append(k)
            payloads.append(
                nj.payload_json
                if nj.payload_json is not None
                else "null"
                if nj.payload is None
                else json.dumps(nj.payload)
            )
        params = (
            now,
            json.dumps(rows),
            "[" + ",".join(payloads) + "]",
            "[]" if len(rows) == 1 else json.dumps(ks),
        )
        return params, states, echoes, payloads

    def job_insert_chunks(self, chunks: Iterable[Sequence[NewJob]], now: datetime) -> list[Inserted]:
        """Plain chunks go out in pipeline mode: each statement is sent without waiting for
        the one before, so the server inserts a chunk while the caller builds the next. A chunk
        with keys, dependencies or arrays waits for the chunks before it and is inserted on its
        own (``_insert_ids``); then pipelining resumes. One transaction, committed (and
        flushed) after the last chunk."""
        out: list[Inserted] = []
        it = iter(chunks)
        with self._waking() as (tx, woken):
            conn = tx.cur.connection  # type: ignore[attr-defined]
            odd: Sequence[NewJob] | None = ()
            while odd is not None:
                odd = None
                sent: list[tuple[psycopg.Cursor[dict[str, Any]], list[tuple[str, str]]]] = []
                with conn.pipeline():
                    for chunk in it:
                        if not all(_plain(nj) for nj in chunk):
                            odd = chunk
                            break
                        if chunk:
                            params, states, _, _ = self._plain_params(chunk, now, woken, echo=False)
                            cur = conn.cursor()
                            cur.execute(_pg(INSERT_PLAIN_JOBS_TX), params)
                            sent.append((cur, states))
                for cur, states in sent:
                    row = cur.fetchone()
                    assert row is not None
                    out.extend(
                        Inserted(job_id, _STATES[state])
                        for job_id, (state, _) in zip(row["ids"], states, strict=True)
                    )
                if odd is not None:
                    out.extend(self._insert_ids(tx, odd, now, woken))
        return out

    def _insert_plain_tx(
        self, tx: Tx, jobs: Sequence[NewJob], now: datetime, woken: set[str]
    ) -> list[tuple[int, str]]:
        params, states, _, _ = self._plain_params(jobs, now, woken, echo=False)
        row = tx.one(INSERT_PLAIN_JOBS_TX, params)
        assert row is not None
        return [(job_id, state) for job_id, (state, _) in zip(row["ids"], states, strict=True)]

    def _insert_plain(self, jobs: Sequence[NewJob], now: datetime) -> list[InsertResult] | None:
        d = self.d
        woken: set[str] = set()
        if len(jobs) == 1:
            [(nj, state, reason, _, spec)] = self._plain_each(jobs, now, woken, echo=True)
            assert spec is not None
            payload = (
                nj.payload_json
                if nj.payload_json is not None
                else None
                if nj.payload is None
                else json.dumps(nj.payload)
            )
            one = (
                nj.queue,
                nj.name,
                nj.definition,
                nj.definition_revision,
                nj.spec.kind,
                self._spec_text(nj.spec),
                state,
                reason,
                int(nj.priority),
                nj.run_at,
                float(nj.spec.vcpus),
                int(nj.spec.memory_mb),
                payload,
                nj.payload_ref,
                json.dumps(list(nj.tags)) if nj.tags else None,
                nj.parent_id,
                now,
                now,
                now,
            )
            with self._tx("statement") as tx:
                got = tx.q(INSERT_ONE_WAKE if woken else INSERT_ONE, one)
            states, echoes, payloads = [(state, reason)], [spec], [payload or "null"]
        else:
            params, states, echoes, payloads = self._plain_params(jobs, now, woken, echo=True)
            with self._tx("statement") as tx:
                got = tx.q(INSERT_PLAIN_JOBS, params)
        stamp = d.dt(now)
        assert stamp is not None
        out = [
            InsertResult(
                self._new_job(
                    int(r["id"]),
                    nj,
                    state,
                    reason,
                    stamp,
                    echo,
                    None if payload == "null" else payload,
                )
            )
            for r, nj, (state, reason), echo, payload in zip(got, jobs, states, echoes, payloads, strict=True)
        ]
        if woken:
            self.wake()
        return out

    def _start_jobs(
        self,
        tx: Tx,
        which: str,
        params: Sequence[Any],
        req: ClaimRequest,
        env_name: str,
        now: datetime,
    ) -> list[Sequence[Any]]:
        rows = tx.q(
            START_JOBS.format(which=which),
            (
                f"started on worker {req.worker_id}",
                req.worker_id,
                plus(now, req.lease_seconds),
                now,
                now,
                env_name,
                False,
                *params,
                req.worker_id,
                req.host,
                req.pid,
                now,
                env_name,
                now,
                req.worker_id,
            ),
        )
        return [tuple(r.values()) for r in rows]

    def _succeed_jobs(self, tx: Tx, worker_id: str, group: Sequence[Finish], now: datetime) -> list[Row]:
        return tx.q(
            SUCCEED_JOBS,
            (
                [f.job_id for f in group],
                [f.attempt for f in group],
                [Jsonb(f.result) if f.result is not None else None for f in group],
                now,
                now,
                worker_id,
                now,
                now,
            ),
        )

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
