"""PostgreSQL backend, for many servers and workers on many machines.

Claims lock rows with ``FOR UPDATE SKIP LOCKED``; exactly-once decisions are compare-and-set
updates and unique indexes; idle workers sleep on ``LISTEN conveyor_jobs`` and are woken by
the ``NOTIFY`` sent in the same transaction that made jobs runnable.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import json
import math
import os
import re
import select
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, NamedTuple, NoReturn

import psycopg
from psycopg import pq
from psycopg.rows import dict_row, tuple_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from conveyor import errors
from conveyor.model import (
    ClaimRequest,
    DefinitionSpec,
    Finish,
    Inserted,
    InsertResult,
    Job,
    NewJob,
    OutcomeKind,
    spec_from_dict,
)
from conveyor.store import wakeup
from conveyor.store.base import Row, Tx, plus, read_json
from conveyor.store.lifecycle import (
    _START_JOBS,
    _STATES,
    CLAIMED,
    RUNNABLE_NOW,
    JobLike,
    LifecycleOps,
    _plain,
    start_set_params,
)
from conveyor.store.ops import StoreOps

CHANNEL = "conveyor_jobs"
# The worker's hot statements (_CLAIM_FAST, _FINISH_AND_CLAIM), run again and again on its
# LISTEN connection, are prepared (psycopg, after a few runs) but PostgreSQL's plan cache
# chose a custom plan for every run: planning one took ~0.45 ms of the server's CPU, twice
# what running it took for one job. Their generic plans (planned once) find the jobs by id
# through the primary key and the next ones in line through jobs_claim, whatever the
# parameters (bench/claim_plan.py shows them with 1,000,000 queued), so that connection
# uses generic plans only.
_GENERIC = "SET plan_cache_mode = force_generic_plan"
# Those generic plans are costed as if the jobs by id ("id = ANY(...)", an array of unknown
# length: 10 rows, read from disk at random_page_cost) were dearer than reading every row of
# a table of a few thousand: on a small table (a new database, a quiet one) the claim and
# the finish read them all (a new database, 1,500 jobs: the claim went from 1.29 to 2.06 ms;
# 5,100 jobs before its first ANALYZE: 3.40 ms; W3's claim p50 1.34 -> 1.09 ms, p99 2.89 ->
# 2.17). Every statement of the worker reaches jobs through an index (bench/claim_plan.py,
# tests/integration/test_pg_worker_plans.py); this makes the planner take that for granted. JIT
# off: those plans carry disable_cost where a table has no index to take (queues), above
# jit_above_cost, and compiling them took 1.5 s a statement; no statement of the worker's is
# long enough to gain from JIT anyway.
_INDEXED = ("SET enable_seqscan = off", "SET jit = off")
# A worker's transactions (claims, finishes, lease renewals) read the active jobs through
# jobs_state_id's STARTING/RUNNING range (a limited environment's capacity sum, the lease
# renewal). Every job that ever ran left an entry there, dead once it ended, until a vacuum.
# A plain index scan marks the dead entries it meets (the next scans skip them, and the
# page can be cleaned instead of split); a bitmap scan, which the planner picks once its
# estimate of active jobs is a few hundred, marks none and visits each one's heap page at
# every scan: after a 60,000-job drain with no vacuum, the capacity sum read 4,400 pages
# (12.7 ms a claim) and a limited environment drained at 2,900 jobs/s instead of 7,800.
# (An entry can be marked once no transaction of the cluster is older than the job's end:
# while a long one holds an id, anywhere, the entries wait for the vacuum.)
_PLAIN_SCANS = b"; SET LOCAL enable_bitmapscan = off"
# listeners name themselves, so that each can count those ahead of it (connected earlier)
_LISTENER_NAME = "conveyor listener"
# ordered by connection start, then pid: a listener that connects while another is ranking
# itself ranks after it (by pid alone, two connecting at once could both count none lower).
# Two whose start-ups overlap can still both rank 0 (a backend is listed once its start-up is
# done) until a wait times out and re-ranks: one extra claim per wake-up meanwhile
_LISTENER_RANK = (
    "SELECT count(*) FROM pg_stat_activity a, pg_stat_activity me"
    " WHERE me.pid = pg_backend_pid() AND a.datname = me.datname"
    f" AND a.application_name = '{_LISTENER_NAME}'"
    " AND (a.backend_start, a.pid) < (me.backend_start, me.pid)"
)
_RANK_EVERY = 5.0  # seconds between rank updates, read when a wait times out


class PostgresDialect:
    name = "postgres"
    skip_locked = " FOR UPDATE SKIP LOCKED"
    for_update = " FOR UPDATE"
    for_key_share = " FOR KEY SHARE"
    due_index = ""

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
        # or the JSON text that was sent (read as read_json reads it: the same values)
        return read_json(stored if isinstance(stored, str) else json.dumps(stored.obj))

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


class _Prepared(NamedTuple):
    """A statement for ``PostgresStore._statement``: the name it is prepared under on a
    connection (from its text: a name found prepared already has the same text), its text with
    $n placeholders, and the same for psycopg (``_pg``)."""

    name: bytes
    text: bytes
    pg: str


class _PgLean(NamedTuple):
    """``PostgresStore.job_template``: a plain job runnable at once, as INSERT_ONE_WAKE takes it
    apart from the payload and the time: its _TEMPLATE_COLUMNS values and their text form
    (None: not plain, see ``_text_params``), its event's data (JSON text) and the text form of
    that and the queue, and its spec as read back."""

    nj: NewJob
    template: tuple[Any, ...]
    head: list[bytes | None] | None
    event: str
    tail: list[bytes | None] | None
    job: JobLike


def _prepared(sql: str) -> _Prepared:
    """``sql`` (with ``?`` placeholders, and no ``?`` anywhere else) as a ``_Prepared``."""
    numbers = itertools.count(1)
    text = re.sub(r"\?", lambda _: f"${next(numbers)}", sql).encode()
    return _Prepared(b"conveyor_" + hashlib.sha1(text).hexdigest()[:16].encode(), text, _pg(sql))


def _text_params(params: Sequence[Any]) -> list[bytes | None] | None:
    """``params`` in PostgreSQL's text form (UTF-8), or None when one is not a plain str, int,
    float or datetime, or is a str holding a NUL (libpq would cut it there, where psycopg's
    cursor refuses it): for those the cursor's adaptation decides."""
    out: list[bytes | None] = []
    append = out.append
    stamp: Any = None
    stamp_text = b""
    for v in params:
        t = type(v)
        if t is str:
            if "\x00" in v:
                return None
            append(v.encode())
        elif v is None:
            append(None)
        elif t is datetime:
            if v is not stamp:  # the time, given several times over
                stamp, stamp_text = v, v.isoformat().encode()
            append(stamp_text)
        elif t is int or t is float:
            append(repr(v).encode())
        else:
            return None
    return out


def _failure(pgconn: Any, res: Any) -> psycopg.Error:
    """The error of a failed libpq result, as psycopg's cursor would raise it: the server's
    error by its SQLSTATE, or OperationalError when the connection is lost."""
    exc = psycopg.errors.error_from_result(res)
    if pgconn.status == pq.ConnStatus.BAD:
        lost = psycopg.OperationalError(str(exc).strip() or "the connection was lost")
        lost.__cause__ = exc
        return lost
    return exc


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

    def tuples(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        """The rows of ``sql`` as plain tuples: a dict per row cost a claim ~1 µs a column."""
        cur: Any = self.cur
        cur.row_factory = tuple_row
        try:
            cur.execute(_pg(sql), params)
            rows: list[Sequence[Any]] = cur.fetchall()
        finally:
            cur.row_factory = dict_row
        return rows

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.cur.executemany(_pg(sql), rows)


def _listener_rank(conn: psycopg.Connection[Any]) -> int:
    """How many listeners of this database connected before ``conn`` (ties: lower pid) (asked on
    the listening connection itself: notifications arriving meanwhile are kept for ``notifies``)."""
    row = conn.execute(_LISTENER_RANK).fetchone()
    return int(row[0]) if row is not None else 0


def _any_runnable(conn: psycopg.Connection[Any]) -> bool:
    """``wakeup.ANY_RUNNABLE`` on a listening connection."""
    row = conn.execute(wakeup.ANY_RUNNABLE).fetchone()
    return row is None or bool(row[0])


_SEVERITY = pq.DiagnosticField.SEVERITY_NONLOCALIZED


def _closed_by_server(conn: psycopg.Connection[Any]) -> bool:
    """Whether the server has closed this idle connection meanwhile (a restart, an idle
    timeout, ``pg_terminate_backend``): the backend says why and hangs up, so the socket is
    readable though nothing was asked, and reading it finds the end. One ``poll`` with no
    wait (~1 µs), no round trip. A connection cut without a word (a network partition)
    passes, and its statement fails as before."""
    pgconn = conn.pgconn
    if pgconn.status != pq.ConnStatus.OK:
        return True
    last_words: list[bytes | None] = []
    try:
        poll = select.poll()
        poll.register(pgconn.socket, select.POLLIN)
        if not poll.poll(0):
            return False
        # what an idle connection receives goes to its notice handler: a notice, or the
        # backend's last words (a FATAL error), which may come a moment before its hang-up
        # (the backend leaves pg_stat_activity between the two)
        saved = pgconn.notice_handler
        pgconn.notice_handler = lambda res: last_words.append(res.error_field(_SEVERITY))
        try:
            for _ in range(4):
                pgconn.consume_input()  # at the hang-up: fails
                pgconn.is_busy()  # parses what was read: a notice reaches the handler
                if not poll.poll(0):
                    break
        finally:
            pgconn.notice_handler = saved
    except (OSError, psycopg.Error):
        return True
    return pgconn.status != pq.ConnStatus.OK or any(w in (b"FATAL", b"PANIC") for w in last_words)


def _names_a_database(url: str) -> None:
    """Refuse a URL that names no database: libpq would pick one by its defaults (the user's
    name) and Conveyor would create its tables there."""
    try:
        dbname = psycopg.conninfo.conninfo_to_dict(url).get("dbname")
    except psycopg.ProgrammingError as exc:
        raise errors.ValidationError(
            "database",
            f"{redact(url)!r} is not a PostgreSQL URL: {str(exc).strip()}",
            "postgresql://user@host:5432/dbname",
        ) from None
    if not dbname and not os.environ.get("PGDATABASE"):
        raise errors.ValidationError(
            "database", f"{redact(url)!r} names no database", "postgresql://user@host:5432/dbname"
        )


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
    # each template's event data, built once (per row it was ~1.5 µs of the server's ~12)
    " t AS (SELECT t.*, jsonb_build_object('to', t.state, 'reason', t.status_reason, 'queue', t.queue) AS ev"
    " FROM jsonb_to_recordset(?::jsonb) AS t("
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
    " SELECT p.now, 'job', v.id::text, 'job.state', t.ev FROM v JOIN t USING (k), p ORDER BY v.ord)"
)
INSERT_PLAIN_JOBS = (
    _PLAIN_CTES + f", n AS (SELECT count(pg_notify('{CHANNEL}', q)) AS n"
    " FROM (SELECT DISTINCT queue FROM t WHERE state = 'RUNNABLE') AS w(q))"
    " SELECT v.id FROM v, n ORDER BY v.ord"
)
# the same inside a caller's transaction: no NOTIFY (the caller sends it); the ids come back
# as one array (a row each cost the client 0.4 µs, the array 0.1)
INSERT_PLAIN_JOBS_TX = _PLAIN_CTES + " SELECT array_agg(v.id ORDER BY v.ord) AS ids FROM v"
# INSERT_PLAIN_JOBS_TX for a batch of one template (a bulk submission of one task, the usual
# case): its columns are plain parameters, so no recordset, no template numbers and no joins
# (~10% of the server's time per job). Parameters: the payloads (as above), the template's
# _TEMPLATE_COLUMNS, the time (created, updated, event) and the event's data (JSON text).
INSERT_ONE_TEMPLATE_TX = (
    "WITH v AS (SELECT nextval('jobs_id_seq') AS id, NULLIF(x.payload, 'null') AS payload, x.ord"
    " FROM jsonb_array_elements(?::jsonb) WITH ORDINALITY AS x(payload, ord)),"
    f" j AS (INSERT INTO jobs (id, {', '.join(c for c, _ in _TEMPLATE_COLUMNS)}, payload, created_at, updated_at)"
    f" SELECT v.id, {', '.join(f'?::{t}' for _, t in _TEMPLATE_COLUMNS)}, v.payload, ?::timestamptz, ?::timestamptz"
    " FROM v),"
    " e AS (INSERT INTO events (at, entity, entity_id, type, data)"
    " SELECT ?::timestamptz, 'job', v.id::text, 'job.state', ?::jsonb FROM v ORDER BY v.ord)"
    " SELECT array_agg(v.id ORDER BY v.ord) AS ids FROM v"
)

# One plain job (a single submission): the same rows as INSERT_PLAIN_JOBS from a plan with
# a few nodes instead of a dozen, whose set-up cost more than the rows. Parameters: the
# _TEMPLATE_COLUMNS, the payload, the time (created, updated, event), the event's data (JSON
# text: the client has it at hand; RETURNING the columns to build it took the server ~15%
# longer); _WAKE adds the queue to notify (a NOTIFY in the output list, not a lateral
# function scan).
_INSERT_ONE = (
    f"WITH j AS (INSERT INTO jobs ({', '.join(c for c, _ in _TEMPLATE_COLUMNS)}, payload, created_at, updated_at)"
    f" VALUES ({', '.join(f'?::{t}' for _, t in _TEMPLATE_COLUMNS)}, ?::jsonb, ?::timestamptz, ?::timestamptz)"
    " RETURNING id),"
    " e AS (INSERT INTO events (at, entity, entity_id, type, data)"
    " SELECT ?::timestamptz, 'job', id::text, 'job.state', ?::jsonb FROM j)"
)
INSERT_ONE = _INSERT_ONE + " SELECT j.id FROM j"
INSERT_ONE_WAKE = _INSERT_ONE + f" SELECT j.id, pg_notify('{CHANNEL}', ?) FROM j"
_INSERT_ONE_P, _INSERT_ONE_WAKE_P = _prepared(INSERT_ONE), _prepared(INSERT_ONE_WAKE)
_INSERT_PLAIN_JOBS_TX_PG, _INSERT_ONE_TEMPLATE_TX_PG = _pg(INSERT_PLAIN_JOBS_TX), _pg(INSERT_ONE_TEMPLATE_TX)
# Notify the workers of several queues (parameters: the channel, the queues as an array)
_NOTIFY_QUEUES = "SELECT count(pg_notify(%s, q)) FROM unnest(%s::text[]) AS q"

# lifecycle.CLAIMED of the started jobs ``c`` (the spec as text: parsed once per distinct spec,
# see core._spec)
_C_CLAIMED = ", ".join("c.spec::text" if col == "spec" else f"c.{col}" for col in CLAIMED.split(", "))
# the events of the jobs ``c`` started, in claim order; parameters: event time, worker
_START_EVENTS_CTE = (
    " e AS (INSERT INTO events (at, entity, entity_id, type, data)"
    " SELECT ?::timestamptz, 'job', id::text, 'job.state', jsonb_build_object('from', 'RUNNABLE', 'to', state,"
    " 'attempt', attempt, 'worker', ?::text) FROM c ORDER BY c.priority DESC, c.id)"
)

# lifecycle._START_JOBS with its state check written so that no index serves it ("state || ''"):
# the jobs are found by id ({which} is always "id = ANY(...)") through the primary key. The
# worker's statements run with generic plans (``_GENERIC``), planned once per connection
# instead of at every run; with "state = 'RUNNABLE'" a generic plan could read the jobs
# through jobs_state_id's or jobs_claim's RUNNABLE range, every queued job, and filter them
_START_BY_ID = _START_JOBS.replace(" AND state = 'RUNNABLE'", " AND state || '' = 'RUNNABLE'")
assert _START_BY_ID != _START_JOBS

# Start the RUNNABLE jobs matching {which} and record their events: one statement; returns
# lifecycle.CLAIMED (_C_CLAIMED).
# Parameters: those of lifecycle._START_JOBS, then event time, worker (events). The attempts'
# rows are written when they end.
START_JOBS = (
    "WITH c AS ("
    + _START_BY_ID
    + " RETURNING *),"
    + _START_EVENTS_CTE
    + " SELECT "
    + _C_CLAIMED
    + " FROM c ORDER BY c.priority DESC, c.id"
)

# An idle worker's claim (``_claim_fast``): START_JOBS for the jobs of one line of queues,
# guarded, in one statement run in autocommit (no BEGIN, no configuration read, no COMMIT:
# four round trips become one). The guard: the configuration fingerprint (_CLAIM_CFG_FP)
# is the one the line was computed from, and no SUBMITTED job is due (the general path
# would promote it first); when it fails nothing is claimed and the caller takes the
# general path. Parameters: environment (fingerprint), time (due), then START_JOBS's
# (the {which}: the queues, fingerprint, limit). Returns the fingerprint, whether a job is
# due, the earliest delayed job's run_at (NULL: none), then lifecycle.CLAIMED (one row of
# NULLs when nothing was claimed).
_CLAIM_CFG_FP = (
    "SELECT md5(row(e.name, e.max_vcpus, e.max_memory_mb, e.enabled)::text || COALESCE((SELECT"
    " string_agg(row(q.name, q.priority, q.enabled, q.environments)::text, ';' ORDER BY q.name) FROM queues q), ''))"
    " FROM compute_environments e WHERE e.name = ?"
)
_CLAIM_FAST = (
    f"WITH g AS (SELECT ({_CLAIM_CFG_FP}) AS fp, n.next_due, COALESCE(n.next_due <= ?::timestamptz, false) AS due"
    " FROM (SELECT (SELECT run_at FROM jobs WHERE state = 'SUBMITTED' ORDER BY run_at LIMIT 1) AS next_due) AS n),"
    " c AS ("
    + _START_BY_ID.replace(
        "{which}",
        "id = ANY(ARRAY(SELECT id FROM jobs WHERE queue IN ({names}) AND state = 'RUNNABLE'"
        " AND (SELECT g.fp = ? AND NOT g.due FROM g) ORDER BY priority DESC, id LIMIT ? FOR UPDATE SKIP LOCKED))",
    )
    + " RETURNING *),"
    + _START_EVENTS_CTE
    + " SELECT g.fp, g.due, g.next_due, "
    + _C_CLAIMED
    + " FROM g LEFT JOIN c ON TRUE ORDER BY c.priority DESC, c.id"
)
# The start of a worker's successes (SUCCEED_JOBS, _FINISH_AND_CLAIM): the batch as rows
# (v; parameters: ids, attempts, results as arrays) and the UPDATE of its jobs (f; updated,
# finished, the ids again, worker), up to its WHERE clause's end, which each continues
_SUCCEED_HEAD = (
    "WITH v AS (SELECT * FROM unnest(?::bigint[], ?::int[], ?::jsonb[]) WITH ORDINALITY AS v(id, attempt, result, ord)),"
    " f AS (UPDATE jobs SET state = 'SUCCEEDED', status_reason = 'succeeded', updated_at = ?, finished_at = ?,"
    " lease_expires_at = NULL, result = COALESCE(v.result, jobs.result) FROM v"
    " WHERE jobs.id = ANY(?::bigint[]) AND jobs.id = v.id AND jobs.attempt = v.attempt AND jobs.worker_id = ? AND jobs.state || '' = 'RUNNING'"
    " AND NOT jobs.terminate_requested"
)
# One worker's successful attempts: job SUCCEEDED (with its result), event recorded: one
# statement; the job's row holds the attempt (lifecycle._CURRENT_ATTEMPT). Parameters: ids,
# attempts, results (arrays), updated, finished, ids again, worker; event time. The ids are
# given twice: joined with
# ``v`` alone, the planner (on a table without fresh statistics) may find the jobs through
# jobs_state_id's RUNNING range instead, where every job ever started left an entry until a
# vacuum: a finish then read thousands of index entries and heap pages (server time per job
# 160-200 -> 120-150 µs).
SUCCEED_JOBS = (
    _SUCCEED_HEAD + " RETURNING jobs.id, jobs.attempt, jobs.unique_key, jobs.unique_ttl,"
    " jobs.has_dependants, jobs.array_parent_id, v.ord),"
    " e AS (INSERT INTO events (at, entity, entity_id, type, data)"
    " SELECT ?::timestamptz, 'job', f.id::text, 'job.state',"
    " jsonb_build_object('from', 'RUNNING', 'to', 'SUCCEEDED', 'attempt', f.attempt) FROM f ORDER BY f.ord)"
    " SELECT f.id, f.attempt, f.unique_key, f.unique_ttl, f.has_dependants, f.array_parent_id FROM f"
)


# A worker's batch of successes and its claim as one statement, committed on its own (no
# BEGIN/COMMIT: five round trips became one, with the config read two). Like SUCCEED_JOBS,
# but only jobs with nothing to settle (no unique key, dependants or array parent) and no
# terminate request: the caller hands the others to the transactional path. The claim is
# START_JOBS on the first jobs in line of queues of one priority; its rows are RUNNABLE, the
# finished ones RUNNING, so the two updates never meet. The events, in one INSERT, keep the
# order of the transactional path (finishes, then starts in line order). set_config makes the
# commit asynchronous like ``_worker_write``'s SET LOCAL. The queues come from the caller's
# claim plan (``lifecycle._claim_line``): the claim happens only if the configuration's
# fingerprint (``_CLAIM_CFG_FP``) is still the plan's and no SUBMITTED job is due (``_claim``
# would promote it first), both seen in the statement's snapshot (where ``_claim`` would
# read them); so it needs no promotion timer (it waited for ``_maybe_promote``'s: one batch
# in ~20 took the transactional path, 8 round trips, to find nothing due).
# Parameters: ids, attempts, results (arrays), updated, finished, ids, worker; environment,
# fingerprint, time (due); _START_SET's; the queues, limit;
# event time, worker (events); whether to commit asynchronously. Returns the ids finished,
# whether the fingerprint held, whether a job is due, the set_config's value, then
# lifecycle.CLAIMED of each claimed job (one row of NULLs when none).
_FINISH_AND_CLAIM = (
    _SUCCEED_HEAD + " AND jobs.unique_key IS NULL AND NOT jobs.has_dependants"
    " AND jobs.array_parent_id IS NULL RETURNING jobs.id, jobs.attempt, v.ord),"
    f" g AS (SELECT ({_CLAIM_CFG_FP}) IS NOT DISTINCT FROM ?::text AS ok,"
    " EXISTS (SELECT 1 FROM jobs WHERE state = 'SUBMITTED' AND run_at <= ?::timestamptz) AS due),"
    " c AS ("
    # "queue IN (?, ...)", not "= ANY(array)": one queue becomes "queue = ?", which the index
    # jobs_claim gives in line order (with an array, every runnable job was read and sorted)
    + _START_BY_ID.replace(
        "{which}",
        "id = ANY(ARRAY(SELECT id FROM jobs WHERE queue IN ({queues})"
        " AND state = 'RUNNABLE' AND (SELECT ok AND NOT due FROM g) ORDER BY priority DESC, id LIMIT ? FOR UPDATE SKIP LOCKED))",
    )
    + " RETURNING *),"
    " e AS (INSERT INTO events (at, entity, entity_id, type, data)"
    " SELECT ?::timestamptz, 'job', x.id::text, 'job.state', x.data FROM ("
    " SELECT 0 AS g, f.ord AS o, 0 AS p, f.id, jsonb_build_object('from', 'RUNNING', 'to', 'SUCCEEDED',"
    " 'attempt', f.attempt) AS data FROM f UNION ALL SELECT 1, -c.priority, c.id, c.id,"
    " jsonb_build_object('from', 'RUNNABLE', 'to', c.state, 'attempt', c.attempt, 'worker', ?::text) FROM c"
    " ) AS x ORDER BY x.g, x.o, x.p)"
    " SELECT ARRAY(SELECT f.id FROM f), g.ok, g.due, s.sync, "
    + _C_CLAIMED
    + " FROM (SELECT set_config('synchronous_commit', CASE WHEN ? THEN 'off'"
    " ELSE current_setting('synchronous_commit') END, true) AS sync) AS s"
    " CROSS JOIN g LEFT JOIN c ON TRUE ORDER BY c.priority DESC, c.id"
)


def _template_values(nj: NewJob, spec_text: str, state: str, reason: str) -> tuple[Any, ...]:
    """A job's values of ``_TEMPLATE_COLUMNS``, in order (``spec_text``: its stored spec)."""
    spec = nj.spec
    return (
        nj.queue,
        nj.name,
        nj.definition,
        nj.definition_revision,
        spec.kind,
        spec_text,
        state,
        reason,
        int(nj.priority),
        nj.run_at,
        float(spec.vcpus),
        int(spec.memory_mb),
        nj.payload_ref,
        json.dumps(list(nj.tags)) if nj.tags else None,
        nj.parent_id,
    )


def _succeed_rows(finishes: Sequence[Finish]) -> tuple[str, str, list[Jsonb | None] | None]:
    """``_SUCCEED_HEAD``'s batch parameters: ids and attempts as array literals (psycopg's list
    dumper, in Python, cost ~15% of a worker's batch call) and the results, NULL when there is
    none (unnest pads the missing array with NULLs)."""
    ids = "{" + ",".join([str(f.job_id) for f in finishes]) + "}"
    attempts = "{" + ",".join([str(f.attempt) for f in finishes]) + "}"
    if all(f.result is None for f in finishes):
        return ids, attempts, None
    return ids, attempts, [Jsonb(f.result) if f.result is not None else None for f in finishes]


@functools.lru_cache(maxsize=64)
def _finish_and_claim(queues: int) -> str:
    """``_FINISH_AND_CLAIM`` for a number of queues (ready for psycopg)."""
    return _pg(_FINISH_AND_CLAIM.replace("{queues}", ", ".join("?" * max(1, queues))))


def _succeed_params(finishes: Sequence[Finish], worker_id: str, now: datetime) -> tuple[Any, ...]:
    """The parameters of ``_SUCCEED_HEAD``, which SUCCEED_JOBS and ``_FINISH_AND_CLAIM`` begin with."""
    ids, attempts, results = _succeed_rows(finishes)
    return (ids, attempts, results, now, now, ids, worker_id)


def _finish_and_claim_call(
    finishes: Sequence[Finish],
    req: ClaimRequest,
    fingerprint: str,
    names: Sequence[str],
    now: datetime,
    async_commit: bool,
) -> tuple[str, tuple[Any, ...]]:
    """``_FINISH_AND_CLAIM`` (for psycopg) and its parameters: ``finishes`` (successes of
    ``req``'s worker) and the claim of ``req`` from the line ``names`` of queues, planned
    under ``fingerprint``."""
    return _finish_and_claim(len(names)), (
        *_succeed_params(finishes, req.worker_id, now),
        req.environment,
        fingerprint,
        now,
        *start_set_params(req, req.environment, now, plus(now, req.lease_seconds)),
        *names,
        req.limit,
        now,
        req.worker_id,
        async_commit,
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
        wait_for_server: bool = False,
        async_commit: bool = True,
    ) -> None:
        """``connect_timeout``: how long to wait for the first connection. A failed attempt
        (connection refused, unknown database, bad password, server starting up) fails at once,
        unless ``wait_for_server``: then attempts go on for the whole ``connect_timeout``, for
        processes that start beside their database (workers, the server, the scheduler)."""
        super().__init__()
        _names_a_database(url)
        self.url = url
        self.async_commit = async_commit
        self.d = PostgresDialect()
        connected = threading.Event()

        def configure(conn: psycopg.Connection[Any]) -> None:
            _configure(conn)
            connected.set()

        self._pool: ConnectionPool[psycopg.Connection[dict[str, Any]]] = ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            kwargs={"row_factory": dict_row, "autocommit": True},
            configure=configure,
            open=False,
            name="conveyor",
        )
        self._pool.open(wait=False)
        deadline = time.monotonic() + connect_timeout
        # (the pool tries in its own thread; a failed attempt shows in its statistics)
        while not connected.wait(0.01):
            failed = bool(self._pool.get_stats().get("connections_errors"))
            if (failed and not wait_for_server) or time.monotonic() >= deadline:
                self._pool.close()
                detail = ""
                try:
                    psycopg.connect(url, connect_timeout=3).close()
                except psycopg.Error as inner:
                    detail = f": {str(inner).strip().splitlines()[0]}"
                raise errors.StoreUnavailable(f"cannot reach PostgreSQL at {redact(url)}{detail}")
        self._local = threading.local()
        # _statement's connection and the names of the statements prepared on it, kept out of the
        # pool (None: not taken yet); a pool of one connection keeps no lane
        self._lane: tuple[psycopg.Connection[Any], set[bytes]] | None = None
        self._lane_lock = threading.Lock()
        self._use_lane = max_size > 1
        # INSERT_ONE's event data (JSON text) by (state, reason, queue) of a runnable job
        self._events_data: dict[tuple[str, str, str], str] = {}
        # _insert_one's templates (_template_values) in text form (_text_params; (): not plain)
        self._template_texts: dict[tuple[Any, ...], Sequence[bytes | None]] = {}
        self._listeners: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _tx(self, mode: str = "", plain_scans: bool = False) -> Iterator[Tx]:
        """A transaction. The pool's connections are in autocommit mode. ``mode``: "" BEGIN ...
        COMMIT; "async": the same with ``SET LOCAL synchronous_commit = off``; "statement": one
        statement, atomic on its own, with no BEGIN/COMMIT at all. ``plain_scans``: no bitmap
        scans (``_PLAIN_SCANS``).

        (Pipeline mode would save the BEGIN round trip, but psycopg's pipeline loop holds the
        GIL while it waits: a worker's job threads starved and drained ~25% slower.)"""
        try:
            with self._connection() as conn:
                if mode == "statement":
                    with conn.cursor() as cur:
                        yield _PgTx(cur)
                    return
                with conn.cursor() as cur:
                    begin = b"BEGIN; SET LOCAL synchronous_commit = off" if mode == "async" else b"BEGIN"
                    cur.execute(begin + _PLAIN_SCANS if plain_scans else begin)
                    try:
                        yield _PgTx(cur)
                    except BaseException:
                        with contextlib.suppress(psycopg.Error):
                            cur.execute(b"ROLLBACK")
                        raise
                    cur.execute(b"COMMIT")
        except psycopg.Error as exc:
            self._reraise(exc)

    def _live_getconn(self) -> psycopg.Connection[dict[str, Any]]:
        """A connection from the pool that the server has not closed while it sat there
        (``_closed_by_server``): after a database restart, the pool's idle connections are all
        closed, and each would have failed one call. Those are given back (the pool replaces
        them) and another taken, at once."""
        pool = self._pool
        for _ in range(pool.max_size):
            conn = pool.getconn()
            if not _closed_by_server(conn):
                return conn
            self._discard(conn)
        return pool.getconn()  # the pool's new connections: a failure now is the server's

    def _discard(self, conn: psycopg.Connection[Any]) -> None:
        """Give the pool back a connection the server closed, closed: the pool replaces it (its
        own check sees a connection closed only once the hang-up has arrived)."""
        with contextlib.suppress(psycopg.Error):
            conn.close()
        self._pool.putconn(conn)

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        """``pool.connection()`` with ``_live_getconn``."""
        conn = self._live_getconn()
        try:
            yield conn
        finally:
            self._pool.putconn(conn)

    def is_database_error(self, exc: BaseException) -> bool:
        return isinstance(exc, psycopg.Error | PoolTimeout)

    def _reraise(self, exc: psycopg.Error) -> NoReturn:
        """Raise the Conveyor error for a psycopg error (from it), or ``exc`` itself."""
        if isinstance(exc, psycopg.errors.UniqueViolation):
            raise errors.Conflict(f"the store refused a duplicate: {exc.diag.message_detail or exc}") from exc
        if isinstance(exc, psycopg.errors.UndefinedTable):
            raise errors.StoreUnavailable(
                "the PostgreSQL database has no Conveyor schema; run `conveyor migrate`"
            ) from exc
        if isinstance(exc, (psycopg.OperationalError, PoolTimeout)):
            raise errors.StoreUnavailable(
                f"PostgreSQL at {redact(self.url)} is not available: {exc}"
            ) from exc
        raise exc

    def _statement(self, st: _Prepared, params: Sequence[Any], values: list[bytes | None] | None) -> int:
        """The first value of the first row of one statement, atomic on its own (autocommit: no
        BEGIN/COMMIT). The single-job submission's path: ``_tx("statement")`` costs a pool
        checkout and return, a cursor, dict rows and the context managers of the pool and the
        connection on every call. Here the statement runs on the store's "lane": a connection
        taken from the pool once and kept, where it is prepared once and then run through
        libpq directly (``PGconn.exec_prepared``, which lets go of the GIL while it waits),
        with its parameters in text form: psycopg's cursor (adapting, its generator loop,
        result parsing) cost the client ~35 µs of the ~100 it spent per statement. A thread
        that finds the lane busy, and parameters that are not plain (``_text_params``), take
        a pooled connection and psycopg's cursor instead. ``values``: ``params`` in text form
        (``_text_params``; None: they are not plain)."""
        lock = self._lane_lock
        if values is None or not (self._use_lane and lock.acquire(blocking=False)):
            return self._statement_pooled(st, params)
        try:
            lane = self._lane
            if lane is not None and _closed_by_server(lane[0]):
                self._discard(lane[0])
                self._lane = lane = None
            if lane is None:
                conn = self._live_getconn()
                if conn.info.encoding != "utf-8":  # the text parameters are UTF-8
                    self._use_lane = False
                    self._pool.putconn(conn)
                    return self._statement_pooled(st, params)
                lane = self._lane = (conn, set())
            conn, prepared = lane
            try:
                res = self._run_prepared(conn.pgconn, prepared, st, values)
            except psycopg.Error:
                if conn.closed or conn.broken:
                    self._lane = None
                    self._pool.putconn(conn)  # the pool replaces a broken connection
                raise
        except psycopg.Error as exc:
            self._reraise(exc)
        finally:
            lock.release()
        return int(res.get_value(0, 0) or 0)

    @staticmethod
    def _run_prepared(pgconn: Any, prepared: set[bytes], st: _Prepared, values: list[bytes | None]) -> Any:
        """``st`` run on ``pgconn``, prepared there first unless ``prepared`` (the names prepared on
        it) has it; its result (one row), or its error raised. A statement the server no longer
        knows (``DEALLOCATE``) is prepared again, once."""
        for again in (False, True):
            if st.name not in prepared:
                res = pgconn.prepare(st.name, st.text)
                if res.status != pq.ExecStatus.COMMAND_OK:
                    exc = _failure(pgconn, res)
                    if not isinstance(exc, psycopg.errors.DuplicatePreparedStatement):  # the same text
                        raise exc
                prepared.add(st.name)
            res = pgconn.exec_prepared(st.name, values)
            if res.status == pq.ExecStatus.TUPLES_OK and res.ntuples:
                return res
            exc = _failure(pgconn, res)
            if again or not isinstance(exc, psycopg.errors.InvalidSqlStatementName):  # nothing ran
                raise exc
            prepared.discard(st.name)
        raise AssertionError("unreachable")

    def _statement_pooled(self, st: _Prepared, params: Sequence[Any]) -> int:
        """``_statement`` through psycopg's cursor on a connection checked out of the pool."""
        pool = self._pool
        try:
            with pool.connection() as conn, conn.cursor(row_factory=tuple_row) as cur:
                cur.execute(st.pg, params)
                row = cur.fetchone()
        except psycopg.Error as exc:
            self._reraise(exc)
        assert row is not None
        return int(row[0])

    def _write(self) -> contextlib.AbstractContextManager[Tx]:
        return self._tx()

    def _read(self) -> contextlib.AbstractContextManager[Tx]:
        return self._tx()

    def _worker_write(self) -> contextlib.AbstractContextManager[Tx]:
        return self._tx("async" if self.async_commit else "", plain_scans=True)

    # -- fast paths (see the statements above) -------------------------------------------------
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
        template_echoes: list[DefinitionSpec] = []
        # (the loop of _plain_each, inlined: a spec's stored form is looked up per template, not
        # per job, and a job without run_at is runnable without a call)
        for nj in jobs:
            state_reason = RUNNABLE_NOW if nj.run_at is None else self._plain_state(nj, now)
            state, reason = state_reason
            if state == "RUNNABLE":
                woken.add(nj.queue)
            states.append(state_reason)
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
                if echo:
                    stored, spec_echo = self._spec_forms(nj.spec)
                    template_echoes.append(spec_echo)
                else:
                    stored = self._spec_stored(nj.spec)
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
            if echo:
                echoes.append(template_echoes[k])
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

    def _plain_tx_statement(
        self, jobs: Sequence[NewJob], now: datetime, woken: set[str]
    ) -> tuple[str, tuple[Any, ...], list[tuple[str, str]]]:
        """The statement inserting plain ``jobs`` inside a transaction (INSERT_ONE_TEMPLATE_TX
        when they share one template, else INSERT_PLAIN_JOBS_TX), its parameters and each
        job's (state, reason)."""
        params, states, _, _ = self._plain_params(jobs, now, woken, echo=False)
        if params[3] != "[]":  # template numbers: several templates
            return _INSERT_PLAIN_JOBS_TX_PG, params, states
        nj = jobs[0]  # every job's template columns are this job's
        spec = nj.spec
        entry = self._spec_entry(spec)
        if entry[3] is None:
            entry[3] = json.dumps(entry[1].obj)
        state, reason = states[0]
        return (
            _INSERT_ONE_TEMPLATE_TX_PG,
            (
                params[2],
                *_template_values(nj, entry[3], state, reason),
                now,
                now,
                now,
                json.dumps({"to": state, "reason": reason, "queue": nj.queue}),
            ),
            states,
        )

    def job_insert_brief(self, jobs: Sequence[NewJob], now: datetime) -> list[Inserted]:
        """Plain jobs: ``job_insert_chunks`` of one chunk, which waits for the server once
        (100-job batches: ~3% less CPU, ~7% less time than BEGIN, insert, NOTIFY, COMMIT)."""
        if jobs and all(_plain(nj) for nj in jobs):
            return self.job_insert_chunks((jobs,), now)
        return super().job_insert_brief(jobs, now)

    def job_insert_chunks(self, chunks: Iterable[Sequence[NewJob]], now: datetime) -> list[Inserted]:
        """Plain chunks go out in pipeline mode: each statement is sent without waiting for
        the one before, so the server inserts a chunk while the caller builds the next. A chunk
        with keys, dependencies or arrays waits for the chunks before it and is inserted on its
        own (``_insert_ids``); then pipelining resumes. One transaction: BEGIN goes out with the
        first chunk, the wake-up and COMMIT with the last, so a bulk submission of plain jobs
        waits for the server once (``_waking`` waited four times: BEGIN, the chunks, NOTIFY,
        COMMIT, each a wake-up of the server and of this process on a busy machine)."""
        out: list[Inserted] = []
        it = iter(chunks)
        woken: set[str] = set()
        try:
            with self._connection() as conn:
                tx = _PgTx(conn.cursor())
                try:
                    odd: Sequence[NewJob] | None = ()
                    first = True
                    while odd is not None:
                        odd = None
                        sent: list[tuple[psycopg.Cursor[dict[str, Any]], list[tuple[str, str]]]] = []
                        with conn.pipeline():
                            if first:
                                conn.execute(b"BEGIN")
                                first = False
                            for chunk in it:
                                if not all(_plain(nj) for nj in chunk):
                                    odd = chunk
                                    break
                                if chunk:
                                    sql, params, states = self._plain_tx_statement(chunk, now, woken)
                                    cur = conn.cursor()
                                    cur.execute(sql, params)
                                    sent.append((cur, states))
                            if odd is None:  # the last chunk is out: wake-up, then commit
                                if woken:
                                    conn.execute(_NOTIFY_QUEUES, (CHANNEL, sorted(woken)))
                                conn.execute(b"COMMIT")
                        for cur, states in sent:
                            row = cur.fetchone()
                            assert row is not None
                            out.extend(
                                Inserted(job_id, _STATES[state])
                                for job_id, (state, _) in zip(row["ids"], states, strict=True)
                            )
                        if odd is not None:
                            out.extend(self._insert_ids(tx, odd, now, woken))
                except BaseException:
                    with contextlib.suppress(psycopg.Error):
                        conn.execute(b"ROLLBACK")
                    raise
        except psycopg.Error as exc:
            self._reraise(exc)
        if woken:
            self.wake()
        return out

    def _insert_plain_tx(
        self, tx: Tx, jobs: Sequence[NewJob], now: datetime, woken: set[str]
    ) -> list[tuple[int, str]]:
        sql, params, states = self._plain_tx_statement(jobs, now, woken)
        cur: Any = tx.cur  # type: ignore[attr-defined]
        cur.execute(sql, params)
        row = cur.fetchone()
        assert row is not None
        return [(job_id, state) for job_id, (state, _) in zip(row["ids"], states, strict=True)]

    def _insert_plain(self, jobs: Sequence[NewJob], now: datetime) -> list[InsertResult] | None:
        d = self.d
        stamp = d.dt(now)
        assert stamp is not None
        if len(jobs) == 1:
            return [self._insert_one(jobs[0], now, stamp)]
        woken: set[str] = set()
        params, states, echoes, payloads = self._plain_params(jobs, now, woken, echo=True)
        with self._tx("statement") as tx:
            got = tx.q(INSERT_PLAIN_JOBS, params)
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

    def job_template(self, nj: NewJob) -> Any:
        if not _plain(nj) or nj.run_at is not None or nj.payload_ref is not None:
            return nj
        entry = self._spec_entry(nj.spec)
        if entry[2] is None:
            entry[2] = spec_from_dict(self.d.echo_js(entry[1]))
        if entry[3] is None:
            entry[3] = json.dumps(entry[1].obj)
        state, reason = RUNNABLE_NOW
        template = _template_values(nj, entry[3], state, reason)
        event = json.dumps({"to": state, "reason": reason, "queue": nj.queue})
        proto = self._new_job(0, nj, state, reason, datetime.now(UTC), entry[2], None)
        return _PgLean(
            nj, template, _text_params(template), event, _text_params((event, nj.queue)), JobLike(proto)
        )

    def job_insert_like(
        self, template: Any, payload: Any, payload_json: str | None, now: datetime
    ) -> InsertResult:
        """``_insert_one`` of a runnable job from its template (``job_template``): the row's
        text is the template's, the payload's and the time's."""
        if type(template) is not _PgLean:
            return super().job_insert_like(template, payload, payload_json, now)
        nj, params, head, event, tail, like = template
        values = None
        if head is not None and tail is not None:
            stamp_text = now.isoformat().encode()
            values = [
                *head,
                None if payload_json is None else payload_json.encode(),
                stamp_text,
                stamp_text,
                stamp_text,
                *tail,
            ]
        job_id = self._statement(
            _INSERT_ONE_WAKE_P, (*params, payload_json, now, now, now, event, nj.queue), values
        )
        self.wake()  # this process's waiting workers (the others heard the NOTIFY at commit)
        payload = None if payload_json is None else read_json(payload_json)
        return InsertResult(like.make(job_id, now.astimezone(UTC), payload))

    def _insert_one(self, nj: NewJob, now: datetime, stamp: datetime) -> InsertResult:
        """One plain job (a single submission): INSERT_ONE on ``_statement``'s path."""
        state, reason = self._plain_state(nj, now)
        spec = nj.spec
        entry = self._spec_entry(spec)
        if entry[2] is None:
            entry[2] = spec_from_dict(self.d.echo_js(entry[1]))
        if entry[3] is None:
            entry[3] = json.dumps(entry[1].obj)
        payload = nj.payload_json
        if payload is None and nj.payload is not None:
            payload = json.dumps(nj.payload)
        runnable = state == "RUNNABLE"
        event = self._events_data.get((state, reason, nj.queue))
        if event is None:
            if len(self._events_data) >= 256:
                self._events_data.clear()
            event = json.dumps({"to": state, "reason": reason, "queue": nj.queue})
            if runnable:
                self._events_data[(state, reason, nj.queue)] = event
        template = _template_values(nj, entry[3], state, reason)
        # the template's text form, kept: a task submitted again and again repeats it (encoding
        # it cost the client ~5 µs a job); () when it is not plain
        texts = self._template_texts
        head = texts.get(template)
        if head is None:
            if len(texts) >= 256:
                texts.clear()
            head = texts[template] = _text_params(template) or ()
        tail = (payload, now, now, now, event, nj.queue) if runnable else (payload, now, now, now, event)
        params = (*template, *tail)
        tail_text = _text_params(tail)
        values = [*head, *tail_text] if head and tail_text is not None else None
        if runnable:
            job_id = self._statement(_INSERT_ONE_WAKE_P, params, values)
            self.wake()  # this process's waiting workers (the others heard the NOTIFY at commit)
        else:
            job_id = self._statement(_INSERT_ONE_P, params, values)
        job = self._new_job(job_id, nj, state, reason, stamp, entry[2], payload)
        return InsertResult(job)

    def _start_jobs(
        self,
        tx: Tx,
        which: str,
        params: Sequence[Any],
        req: ClaimRequest,
        env_name: str,
        now: datetime,
    ) -> list[Sequence[Any]]:
        assert isinstance(tx, _PgTx)
        return tx.tuples(
            START_JOBS.format(which=which),
            (
                *start_set_params(req, env_name, now, plus(now, req.lease_seconds)),
                *params,
                now,
                req.worker_id,
            ),
        )

    _CLAIM_PLAN = (
        f"SELECT ({_CLAIM_CFG_FP}) AS fp, e.name, e.max_vcpus, e.max_memory_mb, e.enabled, q.name AS q_name,"
        " q.priority AS q_priority, q.enabled AS q_enabled, q.environments AS q_environments"
        " FROM compute_environments e LEFT JOIN queues q ON TRUE WHERE e.name = ?"
    )

    def _live_listener(self) -> psycopg.Connection[Any] | None:
        """This thread's ``LISTEN`` connection (``wait_for_jobs``), if it has an open one."""
        conn: psycopg.Connection[Any] | None = getattr(self._local, "listener", None)
        return conn if conn is not None and not conn.closed else None

    def _forget_broken_listener(self) -> None:
        """After an error on it: drop this thread's ``LISTEN`` connection if it is lost (the
        next wait opens another)."""
        conn: psycopg.Connection[Any] | None = getattr(self._local, "listener", None)
        if conn is not None and (conn.closed or conn.broken):
            self._local.listener = None

    @contextlib.contextmanager
    def _hot_connection(self) -> Iterator[psycopg.Connection[Any]]:
        """The connection for a worker loop's one-statement finish and claim: the thread's
        ``LISTEN`` connection when it has one (no pool checkout, generic plans: ``_GENERIC``),
        else one from the pool."""
        conn = self._live_listener()
        if conn is not None:
            yield conn
            return
        with self._connection() as pooled:
            yield pooled

    def _claim_fast(self, req: ClaimRequest, now: datetime) -> list[Job] | None:
        """One statement (``_CLAIM_FAST``) when the worker's queues form one line in an environment
        without limits that is the first of each of them — what ``_claim`` would then do in
        four round trips. On the thread's ``LISTEN`` connection when it has one (the worker's
        loop, just woken: no pool checkout), which commits asynchronously (``async_commit``),
        set once for the session; elsewhere in an ``async`` transaction."""
        if req.limit <= 0:
            return None
        fp, names = self._claim_line(req)
        if not names or fp is None:
            return None
        sql = _CLAIM_FAST.replace("{names}", ", ".join("?" * len(names)))
        params = (
            req.environment,
            now,
            *start_set_params(req, req.environment, now, plus(now, req.lease_seconds)),
            *names,
            fp,
            req.limit,
            now,
            req.worker_id,
        )
        seq = self._due_seq
        conn = self._live_listener()
        if conn is not None:
            try:
                rows = conn.execute(_pg(sql), params).fetchall()
            except psycopg.Error as exc:
                self._forget_broken_listener()
                self._reraise(exc)
        else:
            with self._worker_write() as tx:
                assert isinstance(tx, _PgTx)
                rows = tx.tuples(sql, params)
        if not rows or rows[0][0] != fp:
            self._claim_stale(req)  # the configuration changed
            return None
        if rows[0][1]:
            return None  # a job is due: the general path promotes it first
        self._read_next_due(rows[0][2], seq)
        if rows[0][3] is None:
            return []
        return self._claimed_jobs([r[3:] for r in rows], req, req.environment, now)

    def _succeed_jobs(self, tx: Tx, worker_id: str, group: Sequence[Finish], now: datetime) -> list[Row]:
        return tx.q(SUCCEED_JOBS, (*_succeed_params(group, worker_id, now), now))

    def job_finish_and_claim(
        self, finishes: Sequence[Finish], req: ClaimRequest, now: datetime
    ) -> tuple[list[bool], list[Job]]:
        """A worker's batch of successes and a plain claim in one statement
        (``_FINISH_AND_CLAIM``); what it leaves (other outcomes, jobs with something to
        settle, a claim ``_claim`` must decide, a promotion due) takes the transactional path."""
        if (
            req.limit <= 0
            or not finishes
            or any(f.kind is not OutcomeKind.SUCCEEDED or f.worker_id != req.worker_id for f in finishes)
        ):
            return LifecycleOps.job_finish_and_claim(self, finishes, req, now)
        fingerprint, names = self._claim_line(req)
        if not names or fingerprint is None:
            return LifecycleOps.job_finish_and_claim(self, finishes, req, now)
        sql, params = _finish_and_claim_call(finishes, req, fingerprint, names, now, self.async_commit)
        try:
            with self._hot_connection() as conn, conn.cursor(row_factory=tuple_row) as cur:
                cur.execute(sql, params)
                rows = cur.fetchall()
        except psycopg.Error as exc:
            self._forget_broken_listener()
            self._reraise(exc)
        done = set(rows[0][0])
        claimed = [r[4:] for r in rows if r[4] is not None]
        jobs = self._claimed_jobs(claimed, req, req.environment, now)
        if not rows[0][1]:
            # the configuration changed since the plan was made: plan again next time, and
            # claim through _claim now (with whatever is left to finish)
            self._claim_stale(req)
        elif rows[0][2]:
            self._due_at(now)  # a job is due: _claim promotes it now, then claims
        elif len(done) == len(finishes):
            return [True] * len(finishes), jobs
        # the rest (something to settle, a terminate request, not ours): one by one, with a
        # claim for the slots they free (a dependant they release is claimed at once)
        rest = [f for f in finishes if f.job_id not in done]
        more = replace(req, limit=req.limit - len(jobs))
        applied, extra = LifecycleOps.job_finish_and_claim(self, rest, more, now)
        got = dict(zip((f.job_id for f in rest), applied, strict=True))
        # one line: in its order, as one claim after the finishes gives it (a released
        # dependant can be ahead of the jobs the statement took)
        claimed_all = (
            sorted(jobs + extra, key=lambda j: (-j.priority, j.id)) if jobs and extra else jobs + extra
        )
        return [got.get(f.job_id, True) for f in finishes], claimed_all

    def _lock_migrations(self, tx: Tx) -> None:
        tx.q("SELECT pg_advisory_xact_lock(7220417)")

    def wait_for_jobs(self, timeout: float) -> bool:
        """Wait on this thread's ``LISTEN`` connection and its ``waker`` in one poll.

        Every listener hears a NOTIFY. Like SQLite's ranked wake-ups (``wakeup.py``), only the
        first listener (the earliest connected) returns at once; the others wait up to
        ``wakeup.STAGGER`` more (an interrupt ends that early), so that one submission does not
        send every idle worker to claim it at the same moment, and then return only if a job
        is still runnable (``wakeup.ANY_RUNNABLE``)."""
        local = self._local
        conn: psycopg.Connection[Any] | None = getattr(local, "listener", None)
        try:
            if conn is None or conn.closed:
                # bounded: the worker's loop waits here, and must still hear a stop request
                conn = psycopg.connect(
                    self.url,
                    autocommit=True,
                    connect_timeout=max(2, math.ceil(timeout)),
                    application_name=_LISTENER_NAME,
                )
                # the worker's loop claims and finishes on it too (_claim_fast, _finish_claim_on):
                # the pool's time zone, the worker's asynchronous commits, generic plans
                # (_GENERIC) through indexes (_INDEXED), set once
                conn.execute("SET TIME ZONE 'UTC'")
                if self.async_commit:
                    conn.execute("SET synchronous_commit = off")
                conn.execute(_GENERIC)
                for setting in _INDEXED:
                    conn.execute(setting)
                conn.execute(f"LISTEN {CHANNEL}")
                local.listener = conn
                local.ranked_at = time.monotonic()
                local.rank = _listener_rank(conn)
                with self._lock:
                    self._listeners.append(conn)
            intr = self._interrupt()
            deadline = time.monotonic() + timeout
            poll = select.poll()
            poll.register(conn.fileno(), select.POLLIN)
            poll.register(intr.fd, select.POLLIN)
            while True:
                # notifications already read, or readable now (timeout=0 still reads once);
                # all of them: a generator left early drops the rest of a packet
                got = False
                for _ in conn.notifies(timeout=0):
                    got = True
                if got:
                    if local.rank:
                        end = time.monotonic() + wakeup.STAGGER
                        while not intr.pending and (left := end - time.monotonic()) > 0:
                            poll.poll(math.ceil(left * 1000))
                            for _ in conn.notifies(timeout=0):
                                pass
                        # waited out the stagger: the first listener has likely taken the work.
                        # What was committed before the look is seen by it; a NOTIFY of a later
                        # commit arrives after it began, and is kept for the next round
                        if not intr.consume() and not _any_runnable(conn):
                            continue
                    return True
                if intr.pending:
                    intr.consume()
                    return True
                left = deadline - time.monotonic()
                if left <= 0 or not poll.poll(math.ceil(left * 1000)):
                    if time.monotonic() - local.ranked_at >= _RANK_EVERY:
                        local.ranked_at = time.monotonic()
                        local.rank = _listener_rank(conn)
                    return False
        except psycopg.Error:
            local.listener = None
            return super().wait_for_jobs(min(timeout, 1.0))

    def close(self) -> None:
        with self._lock:
            for conn in self._listeners:
                with contextlib.suppress(psycopg.Error):
                    conn.close()
            self._listeners.clear()
        with self._lane_lock:
            if self._lane is not None:
                self._pool.putconn(self._lane[0])
                self._lane = None
        self._pool.close()
