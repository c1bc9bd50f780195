"""SQLite backend: the embedded default. WAL mode, short ``BEGIN IMMEDIATE`` write transactions.

Safe for several processes on one machine: SQLite serialises writers, so a claim or a
finish is atomic without row locks. ``synchronous=NORMAL`` in WAL mode survives a crash of
any process; only a power loss can drop the last transactions (use ``?synchronous=full``
in the URL to trade speed for that too).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, NoReturn
from urllib.parse import parse_qs, urlsplit

from conveyor import errors
from conveyor.model import ClaimRequest, DefinitionSpec, Finish, InsertResult, Job, NewJob
from conveyor.store.base import Row, Tx, plus, read_json
from conveyor.store.lifecycle import (
    _START_SET,
    CLAIMED,
    RUNNABLE_NOW,
    JobLike,
    _plain,
    start_set_params,
)
from conveyor.store.ops import StoreOps
from conveyor.store.wakeup import ANY_RUNNABLE, WakeChannel


class SQLiteDialect:
    name = "sqlite"
    skip_locked = ""
    for_update = ""
    for_key_share = ""
    due_index = " INDEXED BY jobs_due"

    def ts(self, value: datetime | None) -> Any:
        return None if value is None else value.timestamp()

    def dt(self, value: Any) -> datetime | None:
        return None if value is None else datetime.fromtimestamp(float(value), UTC)

    def js(self, value: Any) -> Any:
        return json.dumps(value, separators=(",", ":"))

    def unjs(self, value: Any) -> Any:
        # JSON this store wrote (once per claimed job for its payload): see read_json
        return None if value is None else read_json(value)

    def echo_js(self, stored: Any) -> Any:
        # the text is JSON this store just wrote: unjs reads it through the C scanner alone
        return self.unjs(stored)

    def id_in(self, column: str) -> str:
        return f"{column} IN (SELECT value FROM json_each(?))"

    def in_subquery(self, column: str, subquery: str) -> str:
        return f"{column} IN ({subquery})"

    def ids(self, values: Sequence[int]) -> Any:
        return json.dumps(list(values))

    def pair_in(self, a: str, b: str) -> str:
        return f"({a}, {b}) IN (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))"

    def pairs(self, values: Sequence[tuple[int, int]]) -> Any:
        return json.dumps([list(v) for v in values])

    def alloc_job_ids(self, tx: Tx, n: int) -> list[int]:
        if n <= 0:
            return []
        row = tx.one("UPDATE sqlite_sequence SET seq = seq + ? WHERE name = 'jobs' RETURNING seq", (n,))
        if row is None:
            top = tx.one("SELECT COALESCE(MAX(id), 0) AS m FROM jobs")
            last = int(top["m"] if top else 0) + n
            tx.x("INSERT INTO sqlite_sequence (name, seq) VALUES ('jobs', ?)", (last,))
        else:
            last = int(row["seq"])
        return list(range(last - n + 1, last + 1))

    def notify_jobs(self, tx: Tx, queues: set[str]) -> None:
        """Other processes are woken after COMMIT instead (``SQLiteStore.wake``)."""


class _SQLiteTx:
    __slots__ = ("conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def q(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self.conn.execute(sql, params).fetchall()

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        cur = self.conn.execute(sql, params)
        row: Row | None = cur.fetchone()
        if row is not None:
            cur.fetchall()  # finish RETURNING statements completely
        return row

    def x(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self.conn.execute(sql, params).rowcount

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.conn.executemany(sql, rows)


def sqlite_path(url: str) -> tuple[str, dict[str, str]]:
    """``sqlite:///relative.db``, ``sqlite:////abs/path.db`` or a plain path -> (path, options)."""
    if not url.startswith("sqlite:"):
        return url, {}
    parts = urlsplit(url)
    path = parts.path
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :].split("?", 1)[0]
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if not path:
        raise errors.ValidationError("database", f"{url!r} names no file", "sqlite:///path/to/file.db")
    return path, options


# the plain insert path (see SQLiteStore._insert_plain)
_INSERT_PLAIN = (
    "INSERT INTO jobs (queue, name, definition, definition_revision, kind, spec, state, status_reason,"
    " priority, created_at, updated_at, run_at, vcpus, memory_mb, payload, payload_ref, tags, parent_id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_PLAIN_EVENTS = (
    "INSERT INTO events (at, entity, entity_id, type, data) SELECT ?, 'job', CAST(id AS TEXT), 'job.state',"
    " json_object('to', state, 'reason', status_reason, 'queue', queue) FROM jobs WHERE id BETWEEN ? AND ?"
    " ORDER BY id"
)

# _INSERT_PLAIN of the commonest single submission: runnable at once, without name, definition,
# run_at, payload_ref, tags or parent. Those columns keep their NULL default instead of being
# bound: Python's sqlite3 looks for an adapter for each None it binds, through an attribute
# lookup that fails with a formatted AttributeError (~1 µs a None, ~7% of the submission);
# parameters: queue, kind, spec, priority, created (and updated), vcpus, memory_mb, payload
_INSERT_BARE = (
    "INSERT INTO jobs (queue, kind, spec, state, status_reason, priority, created_at, updated_at, vcpus,"
    f" memory_mb, payload) VALUES (?1, ?2, ?3, '{RUNNABLE_NOW[0]}', '{RUNNABLE_NOW[1]}', ?4, ?5, ?5, ?6, ?7, ?8)"
)


def _bare(nj: NewJob) -> bool:
    """Whether ``_INSERT_BARE`` can store the job (runnable at once, nothing else set)."""
    return (
        nj.run_at is None
        and nj.name is None
        and nj.definition is None
        and nj.payload_ref is None
        and not nj.tags
        and nj.parent_id is None
    )


def _job_row(nj: NewJob, bare: bool, state: str, reason: str, stored_spec: Any, ts: float) -> tuple[Any, ...]:
    """The parameters of ``_INSERT_BARE`` (``bare``) or of ``_INSERT_PLAIN`` for one job; the
    stored payload is at ``_PAYLOAD_AT[bare]``."""
    spec = nj.spec
    payload = nj.payload_json
    if payload is None and nj.payload is not None:
        payload = json.dumps(nj.payload, separators=(",", ":"))
    if bare:
        return (
            nj.queue,
            spec.kind,
            stored_spec,
            int(nj.priority),
            ts,
            float(spec.vcpus),
            int(spec.memory_mb),
            payload,
        )
    return (
        nj.queue,
        nj.name,
        nj.definition,
        nj.definition_revision,
        spec.kind,
        stored_spec,
        state,
        reason,
        int(nj.priority),
        ts,
        ts,
        None if nj.run_at is None else nj.run_at.timestamp(),
        float(spec.vcpus),
        int(spec.memory_mb),
        payload,
        nj.payload_ref,
        json.dumps(list(nj.tags), separators=(",", ":")) if nj.tags else None,
        nj.parent_id,
    )


# where _job_row puts the stored payload, bare or not
_PAYLOAD_AT = {True: 7, False: 14}


class _SqliteLean(NamedTuple):
    """``SQLiteStore.job_template``: a plain job runnable at once, its ``_job_row`` (time and
    payload to be filled in) and its spec as read back."""

    nj: NewJob
    bare: bool
    row: tuple[Any, ...]
    job: JobLike


# the event of one plain job, as _PLAIN_EVENTS makes it; parameters: at, id, state, reason, queue
_PLAIN_EVENT = (
    "INSERT INTO events (at, entity, entity_id, type, data) VALUES (?, 'job', ?, 'job.state',"
    " json_object('to', ?, 'reason', ?, 'queue', ?))"
)

# A worker's batch. RETURNING costs SQLite ~5 us a row: the rows are read first (the write
# lock is held, nothing changes them meanwhile), then changed by id. Attempts and events take
# their rows from the ids (and attempts) given as one JSON array, and SQLite builds the
# events' JSON, so that little Python runs while the write lock (shared by every process)
# is held.
_IDS = "(SELECT value FROM json_each(?))"
# CLAIMED as the claim leaves it; parameters: started, then those of {which}
_START_PICK = (
    "SELECT "
    + ", ".join(
        {
            "started_at": "COALESCE(started_at, ?)",
            "attempt": "attempt + 1",
            "attempts_counted": "attempts_counted + 1",
        }.get(col, col)
        for col in CLAIMED.split(", ")
    )
    + " FROM jobs WHERE {which} AND state = 'RUNNABLE'"
)
_START = f"{_START_SET} WHERE id IN {_IDS}"
# The configuration's fingerprint (lifecycle._claim_line): every column of the environment
# and of the queues that a claim reads; parameter: environment (no row: NULL)
_CLAIM_CFG_FP = (
    "SELECT quote(e.name) || ',' || quote(e.max_vcpus) || ',' || quote(e.max_memory_mb) || ',' || quote(e.enabled)"
    " || ';' || COALESCE((SELECT group_concat(quote(q.name) || ',' || quote(q.priority) || ',' || quote(q.enabled)"
    " || ',' || quote(q.environments), ';')"
    " FROM (SELECT name, priority, enabled, environments FROM queues ORDER BY name) AS q), '') AS fp"
    " FROM compute_environments e WHERE e.name = ?"
)
# _claim_fast's jobs: the first in line in the queues {names}, when the fingerprint is the
# plan's; parameters: the queues, environment, fingerprint, limit
_CLAIM_FAST_WHICH = (
    "id IN (SELECT id FROM jobs WHERE queue IN ({names}) AND state = 'RUNNABLE'"
    f" AND ({_CLAIM_CFG_FP}) = ? ORDER BY priority DESC, id LIMIT ?)"
)
# _START_PICK and _START in one statement for _claim_fast: the claimed rows as the claim left
# them (in no order); parameters: those of _START_SET, then the queues, environment,
# fingerprint, limit
_CLAIM_FAST_START = f"{_START_SET} WHERE {_CLAIM_FAST_WHICH} AND state = 'RUNNABLE' RETURNING {CLAIMED}"
# parameters: time, worker, the ids in line order
_START_EVENTS = (
    "INSERT INTO events (at, entity, entity_id, type, data) SELECT ?, 'job', CAST(j.id AS TEXT), 'job.state',"
    " json_object('from', 'RUNNABLE', 'to', j.state, 'attempt', j.attempt, 'worker', ?)"
    " FROM json_each(?) AS v JOIN jobs AS j ON j.id = v.value ORDER BY v.key"
)
# parameters: the ids, worker (the caller checks the attempts)
_SUCCEED_PICK = (
    "SELECT id, attempt, unique_key, unique_ttl, has_dependants, array_parent_id FROM jobs"
    f" WHERE id IN {_IDS} AND worker_id = ? AND +state = 'RUNNING' AND terminate_requested = 0"
)
# parameters: updated, finished, the ids
_SUCCEED = (
    "UPDATE jobs SET state = 'SUCCEEDED', status_reason = 'succeeded', updated_at = ?, finished_at = ?,"
    f" lease_expires_at = NULL WHERE id IN {_IDS}"
)
# parameters: time, [[id, attempt], ...] in order
_SUCCEED_EVENTS = (
    "INSERT INTO events (at, entity, entity_id, type, data) SELECT ?, 'job', CAST(json_extract(value, '$[0]') AS TEXT),"
    " 'job.state', json_object('from', 'RUNNING', 'to', 'SUCCEEDED', 'attempt', json_extract(value, '$[1]'))"
    " FROM json_each(?) ORDER BY key"
)


# WAL checkpoints run in a thread of their own once this store's commits wrote about this many
# pages (SQLite's default threshold; a commit counts ~6 pages plus one per 8 rows changed);
# SQLite's own (in the committing call, with the write lock held) only past a backstop.
_CHECKPOINT_PAGES = 1000
_AUTOCHECKPOINT_PAGES = 10000
# The log starts over (at the next write) only once a checkpoint copied all of it with no
# write meanwhile. Past this many pages, the checkpoint thread makes sure it does: first with
# up to _CATCH_UP more passive passes, each copying what was written during the one before
# (little: the commits of a job at 50 jobs/s land in the middle of a ~10-25 ms first pass,
# rarely in a ~1 ms later one); only when writing never pauses that long does it take the
# write lock and restart the log (RESTART), which held every writer ~10 ms (at 50 jobs/s,
# ~3 times in 10 s: W3's tail)
_RESTART_PAGES = 2000
_CATCH_UP = 4


class SQLiteStore(StoreOps):
    # how often a waiter with a wake-up socket polls ``PRAGMA data_version`` (see wait_for_jobs)
    poll_seconds = 0.25

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.d = SQLiteDialect()
        self.path, options = sqlite_path(url)
        sync = options.get("synchronous", "normal").upper()
        if sync not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise errors.ValidationError(
                "database", f"synchronous={sync.lower()} is not known", "normal, full, extra, off"
            )
        self._synchronous = sync
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        self._write_lock = threading.Lock()
        self._flock_fd: int | None = None
        self._unchecked = 0  # pages (estimated) written by this store's commits since a checkpoint
        self._checkpoint_wanted = threading.Event()
        self._checkpoint_lock = threading.Lock()
        self._checkpointer: threading.Thread | None = None
        self._checkpoint_conn: sqlite3.Connection | None = None
        self._write_count = 0  # commits through this store object that changed rows
        self._channel = WakeChannel(self.path)
        parent = Path(self.path).expanduser().resolve().parent
        if not parent.is_dir():
            raise errors.StoreUnavailable(
                f"cannot open SQLite database {self.path!r}: folder {str(parent)!r} does not exist"
            )
        self._conn()  # fail now, not at first use

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise errors.StoreUnavailable(f"the store for {self.path!r} is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0, check_same_thread=False)
                conn.row_factory = sqlite3.Row
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute(f"PRAGMA synchronous = {self._synchronous}")
                conn.execute("PRAGMA busy_timeout = 30000")
                conn.execute(f"PRAGMA wal_autocheckpoint = {_AUTOCHECKPOINT_PAGES}")
            except sqlite3.Error as exc:
                raise errors.StoreUnavailable(f"cannot open SQLite database {self.path!r}: {exc}") from exc
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def _tx(self, begin: str, write: bool = False) -> Iterator[Tx]:
        """A transaction (``BEGIN`` ... ``COMMIT``) with SQLite's errors translated, in one frame:
        submissions are short, and nested context managers were ~5% of one.

        Writers queue on locks instead of on SQLite's busy handler, which sleeps in growing
        steps (up to 100 ms) and made tail latency spiky: the threads of this process on a
        lock, the processes on ``flock`` of the file ``<database>-lock``, which wakes the next
        writer as soon as the last one commits (two draining workers went ~15% faster).
        Programs that do not take it still meet at SQLite's own lock (busy_timeout).

        WAL checkpoints (writing the log back into the database, with an fsync) are handed to
        a thread of their own every ``_CHECKPOINT_PAGES`` written: SQLite's automatic one
        runs inside the COMMIT that crosses its threshold, so once every few hundred jobs a
        submission or a claim took milliseconds longer, holding the write lock."""
        try:
            with self._write_lock if write else contextlib.nullcontext():
                conn = self._conn()
                fd = self._flock_fd if write else None
                if write:
                    if fd is None:
                        fd = self._flock_fd = self._open_lock_file()
                    fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    changes = conn.total_changes
                    try:
                        conn.execute(begin)
                    except sqlite3.OperationalError as exc:
                        raise errors.StoreUnavailable(
                            f"SQLite database {self.path!r} is not available: {exc}"
                        ) from exc
                    try:
                        yield _SQLiteTx(conn)
                    except BaseException:
                        conn.execute("ROLLBACK")
                        raise
                    try:
                        conn.execute("COMMIT")
                    except sqlite3.Error:
                        conn.execute("ROLLBACK")
                        raise
                    if write and conn.total_changes != changes:  # a commit that wrote (see wait_for_jobs)
                        self._wrote(conn.total_changes - changes)
                finally:
                    if fd is not None:
                        fcntl.flock(fd, fcntl.LOCK_UN)
        except sqlite3.Error as exc:
            self._reraise(exc)

    def _wrote(self, changes: int) -> None:
        """Count a commit that changed ``changes`` rows (for ``wait_for_jobs`` and checkpoints)."""
        self._write_count += 1
        self._unchecked += 6 + changes // 8
        if self._unchecked >= _CHECKPOINT_PAGES:
            self._unchecked = 0
            self._checkpoint_soon()

    def is_database_error(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.Error)

    def _reraise(self, exc: sqlite3.Error) -> NoReturn:
        """Raise what a transaction raises for an SQLite error: a duplicate is a ``Conflict``,
        a missing table a ``StoreUnavailable`` (no schema), from ``exc``; other errors as they are."""
        if isinstance(exc, sqlite3.IntegrityError):
            raise errors.Conflict(f"the store refused a duplicate: {exc}") from exc
        if isinstance(exc, sqlite3.OperationalError) and "no such table" in str(exc):
            raise errors.StoreUnavailable(
                f"SQLite database {self.path!r} has no Conveyor schema; run `conveyor migrate`"
            ) from exc
        raise exc

    def _checkpoint_soon(self) -> None:
        if self._checkpointer is None:
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, name="conveyor-sqlite-checkpoint", daemon=True
            )
            self._checkpointer.start()
        self._checkpoint_wanted.set()

    def _checkpoint_loop(self) -> None:
        """Passive checkpoints on a connection of its own: they take no write lock, so writers
        go on meanwhile. A failure is left to SQLite's automatic checkpoint (the backstop)."""
        fd: int | None = None
        while True:
            self._checkpoint_wanted.wait()
            self._checkpoint_wanted.clear()
            with self._checkpoint_lock:  # close() takes it too
                if self._closed:
                    if fd is not None:
                        os.close(fd)
                    return
                try:
                    conn = self._checkpoint_conn
                    if conn is None:
                        # no busy wait: a checkpoint that meets a reader is retried next time
                        conn = sqlite3.connect(
                            self.path, isolation_level=None, timeout=0.0, check_same_thread=False
                        )
                        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
                        self._checkpoint_conn = conn
                    row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    # (busy, pages in the log, pages copied): a pass copies the log as it was
                    # when it began; once one finds it as long as the pass before it left it,
                    # all of it is copied, and the next write starts it over
                    passes, caught_up = 0, False
                    while row is not None and row[1] >= _RESTART_PAGES and passes < _CATCH_UP:
                        before = row[1]
                        row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                        passes += 1
                        caught_up = row is not None and row[1] == before
                        if caught_up:
                            break
                    if row is not None and row[1] >= _RESTART_PAGES and not caught_up:
                        if fd is None:  # its own: flock then excludes this process's writers too
                            fd = self._open_lock_file()
                        fcntl.flock(fd, fcntl.LOCK_EX)
                        try:
                            row = conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
                        finally:
                            fcntl.flock(fd, fcntl.LOCK_UN)
                    if row is not None and row[1] > 0 and row[1] == row[2] and self._synchronous != "OFF":
                        if fd is None:
                            fd = self._open_lock_file()
                        self._start_log_over(conn, fd)
                except (sqlite3.Error, errors.StoreUnavailable):
                    pass

    @staticmethod
    def _start_log_over(conn: sqlite3.Connection, fd: int) -> None:
        """Start a log that a checkpoint copied entirely over now, with a write of nothing (the
        database's user_version, as it is). The write that starts the log over writes its
        header and syncs it (synchronous NORMAL or more): ~0.25-0.8 ms that the first
        submission or claim after each checkpoint paid, holding the write lock (W3's tail on
        SQLite: ~1.8% of jobs at 50/s took 0.8 ms longer). Only when the write lock is free
        at once (``LOCK_NB``): a writer under way starts the log over itself, as before."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                (version,) = conn.execute("PRAGMA user_version").fetchone()
                conn.execute(f"PRAGMA user_version = {int(version)}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _open_lock_file(self) -> int:
        try:
            return os.open(self.path + "-lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise errors.StoreUnavailable(
                f"cannot open the lock file of SQLite database {self.path!r}: {exc}"
            ) from exc

    def _write(self) -> contextlib.AbstractContextManager[Tx]:
        return self._tx("BEGIN IMMEDIATE", write=True)

    def _read(self) -> contextlib.AbstractContextManager[Tx]:
        return self._tx("BEGIN")

    def _plain_rows(
        self, jobs: Sequence[NewJob], now: datetime, woken: set[str], echo: bool
    ) -> tuple[bool, list[tuple[Any, ...]], list[tuple[str, str]], list[DefinitionSpec]]:
        """(whether the rows are ``_INSERT_BARE``'s: every job is ``_bare``, rows, (state,
        reason) of each job, specs as read back when ``echo``)."""
        ts = now.timestamp()
        bare = all(_bare(nj) for nj in jobs)
        rows: list[tuple[Any, ...]] = []
        states: list[tuple[str, str]] = []
        echoes: list[DefinitionSpec] = []
        if bare and not echo:
            return bare, self._bare_rows(jobs, ts, woken), [RUNNABLE_NOW] * len(jobs), echoes
        for nj, state, reason, stored, spec in self._plain_each(jobs, now, woken, echo):
            states.append((state, reason))
            if spec is not None:
                echoes.append(spec)
            rows.append(_job_row(nj, bare, state, reason, stored, ts))
        return bare, rows, states, echoes

    def _bare_rows(self, jobs: Sequence[NewJob], ts: float, woken: set[str]) -> list[tuple[Any, ...]]:
        """``_job_row``'s rows of ``_bare`` jobs (all runnable at once), in one loop: a spec's
        stored parts are looked up per spec object, not per job (a bulk submission repeats
        one), and no (job, state, reason, ...) tuple is made per job on the way. Fewer objects
        per job is also fewer garbage collections."""
        parts: dict[int, tuple[str, Any, float, int]] = {}  # id(spec): the jobs keep their specs alive
        rows: list[tuple[Any, ...]] = []
        append = rows.append
        last_queue = None
        for nj in jobs:
            spec = nj.spec
            p = parts.get(id(spec))
            if p is None:
                p = parts[id(spec)] = (
                    spec.kind,
                    self._spec_stored(spec),
                    float(spec.vcpus),
                    int(spec.memory_mb),
                )
            queue = nj.queue
            if queue is not last_queue:
                woken.add(queue)
                last_queue = queue
            payload = nj.payload_json
            if payload is None and nj.payload is not None:
                payload = json.dumps(nj.payload, separators=(",", ":"))
            append((queue, p[0], p[1], int(nj.priority), ts, p[2], p[3], payload))
        return rows

    @staticmethod
    def _write_plain(tx: Tx, bare: bool, rows: list[tuple[Any, ...]], ts: float) -> int:
        """Insert the rows (``_INSERT_BARE``'s when ``bare``) and their events; the id of the
        first (the others follow: ids come from AUTOINCREMENT and the write lock is held)."""
        conn = tx.conn  # type: ignore[attr-defined]
        sql = _INSERT_BARE if bare else _INSERT_PLAIN
        if len(rows) == 1:
            # one job (a single submission): no RETURNING (SQLite ~5 us a row) and its event
            # from the values at hand, not read back from the row just written
            row = rows[0]
            job_id: int = conn.execute(sql, row).lastrowid
            state, reason = RUNNABLE_NOW if bare else (row[6], row[7])
            conn.execute(_PLAIN_EVENT, (ts, str(job_id), state, reason, row[0]))
            return job_id
        conn.executemany(sql, rows)
        last = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
        first: int = last - len(rows) + 1
        conn.execute(_PLAIN_EVENTS, (ts, first, last))
        return first

    def _insert_plain(self, jobs: Sequence[NewJob], now: datetime) -> list[InsertResult] | None:
        """Jobs without keys, dependencies or arrays: one INSERT per job and one INSERT ...
        SELECT for all their events."""
        if len(jobs) == 1:
            return [self._insert_one(jobs[0], now)]
        woken: set[str] = set()
        bare, rows, states, echoes = self._plain_rows(jobs, now, woken, echo=True)
        with self._write() as tx:
            first = self._write_plain(tx, bare, rows, now.timestamp())
        if woken:  # before the jobs are built: the waiting workers start meanwhile
            self.wake()
        stamp = datetime.fromtimestamp(now.timestamp(), UTC)
        at = _PAYLOAD_AT[bare]
        return [
            InsertResult(self._new_job(first + i, nj, state, reason, stamp, echo, row[at]))
            for i, (nj, (state, reason), echo, row) in enumerate(zip(jobs, states, echoes, rows, strict=True))
        ]

    def _insert_one(self, nj: NewJob, now: datetime) -> InsertResult:
        """One plain job (a single submission): ``_insert_plain`` without its lists, and the
        job's event from the values at hand (no RETURNING, no read-back)."""
        run_at = nj.run_at
        state, reason = self._plain_state(nj, now) if run_at is not None else RUNNABLE_NOW
        stored_spec, spec_echo = self._spec_forms(nj.spec)
        ts = now.timestamp()
        bare = _bare(nj)
        row = _job_row(nj, bare, state, reason, stored_spec, ts)
        job_id = self._write_one(_INSERT_BARE if bare else _INSERT_PLAIN, row, ts, state, reason, nj.queue)
        if state == "RUNNABLE":  # before the job is built: the waiting worker starts meanwhile
            self.wake()
        payload = row[_PAYLOAD_AT[bare]]
        job = self._new_job(job_id, nj, state, reason, datetime.fromtimestamp(ts, UTC), spec_echo, payload)
        return InsertResult(job)

    def job_template(self, nj: NewJob) -> Any:
        if not _plain(nj) or nj.run_at is not None or nj.payload_ref is not None:
            return nj
        stored_spec, spec_echo = self._spec_forms(nj.spec)
        bare = _bare(nj)
        state, reason = RUNNABLE_NOW
        proto = self._new_job(0, nj, state, reason, datetime.now(UTC), spec_echo, None)
        return _SqliteLean(nj, bare, _job_row(nj, bare, state, reason, stored_spec, 0.0), JobLike(proto))

    def job_insert_like(
        self, template: Any, payload: Any, payload_json: str | None, now: datetime
    ) -> InsertResult:
        """``_insert_one`` of a runnable job from its template (``job_template``): the row is
        the template's with this payload and time."""
        if type(template) is not _SqliteLean:
            return super().job_insert_like(template, payload, payload_json, now)
        nj, bare, row, like = template
        ts = now.timestamp()
        if bare:  # _INSERT_BARE: the time at 4, the payload at 7 (_PAYLOAD_AT)
            row = (*row[:4], ts, *row[5:7], payload_json)
        else:  # _INSERT_PLAIN: the times at 9 and 10, the payload at 14
            row = (*row[:9], ts, ts, *row[11:14], payload_json, *row[15:])
        state, reason = RUNNABLE_NOW
        job_id = self._write_one(_INSERT_BARE if bare else _INSERT_PLAIN, row, ts, state, reason, nj.queue)
        self.wake()
        payload = None if payload_json is None else read_json(payload_json)
        return InsertResult(like.make(job_id, datetime.fromtimestamp(ts, UTC), payload))

    def _write_one(
        self, sql: str, row: tuple[Any, ...], ts: float, state: str, reason: str, queue: str
    ) -> int:
        """Insert one job's ``row`` (``sql``) and its event in a transaction of their own; its id.
        ``_write()``'s transaction, written out: its generator and context managers were ~3% of
        a single submission."""
        try:
            with self._write_lock:
                conn = self._conn()
                # the thread's cursor, kept: making one (it registers with its connection) was
                # ~1 µs of each submission
                cur = getattr(self._local, "cur", None)
                if cur is None or cur.connection is not conn:
                    cur = self._local.cur = conn.cursor()
                fd = self._flock_fd
                if fd is None:
                    fd = self._flock_fd = self._open_lock_file()
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    try:
                        cur.execute("BEGIN IMMEDIATE")
                    except sqlite3.OperationalError as exc:
                        raise errors.StoreUnavailable(
                            f"SQLite database {self.path!r} is not available: {exc}"
                        ) from exc
                    try:
                        job_id: int = cur.execute(sql, row).lastrowid  # type: ignore[assignment]
                        cur.execute(_PLAIN_EVENT, (ts, str(job_id), state, reason, queue))
                        cur.execute("COMMIT")
                    except BaseException:
                        cur.execute("ROLLBACK")
                        raise
                    self._wrote(2)
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
        except sqlite3.Error as exc:
            self._reraise(exc)
        return job_id

    def _insert_plain_tx(
        self, tx: Tx, jobs: Sequence[NewJob], now: datetime, woken: set[str]
    ) -> list[tuple[int, str]]:
        bare, rows, states, _ = self._plain_rows(jobs, now, woken, echo=False)
        first = self._write_plain(tx, bare, rows, now.timestamp())
        return [(first + i, state) for i, (state, _) in enumerate(states)]

    _CLAIM_PLAN = (
        f"SELECT ({_CLAIM_CFG_FP}) AS fp, e.name, e.max_vcpus, e.max_memory_mb, e.enabled, q.name AS q_name,"
        " q.priority AS q_priority, q.enabled AS q_enabled, q.environments AS q_environments"
        " FROM compute_environments e LEFT JOIN queues q ON 1 = 1 WHERE e.name = ?"
    )

    def _claim_fast(self, req: ClaimRequest, now: datetime) -> list[Job] | None:
        """``_claim`` without reading the configuration when the worker's queues form one line
        (``_claim_line``): the jobs are picked only if the fingerprint is still the plan's; when
        none were, a changed fingerprint sends the same transaction down the general path."""
        if req.limit <= 0:
            return None
        fp, names = self._claim_line(req)
        if not names or fp is None:
            return None
        woken: set[str] = set()
        ts = now.timestamp()
        sql = _CLAIM_FAST_START.replace("{names}", ", ".join("?" * len(names)))
        with self._worker_write() as tx:
            self._maybe_promote(tx, now, woken)
            conn = tx.conn  # type: ignore[attr-defined]
            rows = conn.execute(
                sql,
                (
                    *start_set_params(req, req.environment, ts, plus(now, req.lease_seconds).timestamp()),
                    *names,
                    req.environment,
                    fp,
                    req.limit,
                ),
            ).fetchall()
            if rows:
                rows.sort(key=lambda r: (-r[7], r[0]))  # priority, then id
                conn.execute(_START_EVENTS, (ts, req.worker_id, json.dumps([r[0] for r in rows])))
            else:
                row = tx.one(_CLAIM_CFG_FP, (req.environment,))
                if row is None or row["fp"] != fp:
                    self._claim_stale(req)
                    rows = self._claim(tx, req, now, woken)
        if woken:
            self.wake()
        return self._claimed_jobs(rows, req, req.environment, now)

    def job_finish_and_claim(
        self, finishes: Sequence[Finish], req: ClaimRequest, now: datetime
    ) -> tuple[list[bool], list[Job]]:
        """As ``LifecycleOps.job_finish_and_claim``, but a claim with a plan (``_claim_line``:
        the worker's queues form one line) takes the first jobs in line without reading the
        configuration: the pick checks the plan's fingerprint (``_CLAIM_FAST_WHICH``); when
        it picked nothing and the fingerprint changed, ``_claim`` decides in the same
        transaction. Less Python and one statement fewer while every process's write lock is held."""
        fp, names = self._claim_line(req) if req.limit > 0 else (None, ())
        if not names or fp is None:
            return super().job_finish_and_claim(finishes, req, now)
        which = _CLAIM_FAST_WHICH.replace("{names}", ", ".join("?" * len(names)))
        with self._waking(worker=True) as (tx, woken):
            applied = self._finish_many(tx, finishes, now, woken)
            self._maybe_promote(tx, now, woken)
            rows = self._start_jobs(
                tx, which, (*names, req.environment, fp, req.limit), req, req.environment, now
            )
            if not rows:
                row = tx.one(_CLAIM_CFG_FP, (req.environment,))
                if row is None or row["fp"] != fp:
                    self._claim_stale(req)
                    rows = self._claim(tx, req, now, woken)
        return applied, self._claimed_jobs(rows, req, req.environment, now)

    def _start_jobs(
        self,
        tx: Tx,
        which: str,
        params: Sequence[Any],
        req: ClaimRequest,
        env_name: str,
        now: datetime,
    ) -> list[Sequence[Any]]:
        ts = now.timestamp()
        conn = tx.conn  # type: ignore[attr-defined]
        rows = conn.execute(_START_PICK.format(which=which), (ts, *params)).fetchall()
        if not rows:
            return []
        rows.sort(key=lambda r: (-r[7], r[0]))  # priority, then id
        ids = json.dumps([r[0] for r in rows])
        started = conn.execute(
            _START,
            (
                *start_set_params(req, env_name, ts, plus(now, req.lease_seconds).timestamp()),
                ids,
            ),
        ).rowcount
        assert started == len(rows), "jobs changed under the write lock"
        conn.execute(_START_EVENTS, (ts, req.worker_id, ids))
        return rows  # type: ignore[no-any-return]

    def _succeed_jobs(self, tx: Tx, worker_id: str, group: Sequence[Finish], now: datetime) -> list[Row]:
        ts = now.timestamp()
        conn = tx.conn  # type: ignore[attr-defined]
        wanted = {f.job_id: f.attempt for f in group}
        rows: list[Row] = [
            r
            for r in conn.execute(_SUCCEED_PICK, (json.dumps(list(wanted)), worker_id)).fetchall()
            if wanted[r["id"]] == r["attempt"]
        ]
        if not rows:
            return rows
        if len(rows) < len(group):
            got = {int(r["id"]) for r in rows}
            group = [f for f in group if f.job_id in got]
        pairs = json.dumps([[f.job_id, f.attempt] for f in group])
        ids = json.dumps([r["id"] for r in rows])
        conn.execute(_SUCCEED, (ts, ts, ids))  # no attempts row: the job's holds it (_CURRENT_ATTEMPT)
        results = [(self.d.js(f.result), f.job_id) for f in group if f.result is not None]
        if results:
            conn.executemany("UPDATE jobs SET result = ? WHERE id = ?", results)
        conn.execute(_SUCCEED_EVENTS, (ts, pairs))
        return rows

    def wake(self) -> None:
        """Wake the idle workers of this process and, through ``<database>-wake/``, of the others
        (called after COMMIT, where PostgreSQL's NOTIFY would be delivered)."""
        super().wake()
        self._channel.notify()

    def wait_for_jobs(self, timeout: float) -> bool:
        """Wake on a datagram from a process that committed runnable work (``wakeup.py``),
        or on any commit by another process, seen through ``PRAGMA data_version``.

        The calling thread's ``waker`` ends the wait at once.
        The pragma is a few microseconds and needs no transaction. With a socket it is only
        the fallback for writers that send no wake-ups (older versions, other programs),
        polled every ``poll_seconds`` (250 ms). Without one (the folder cannot be written) it
        is polled every 2 ms for 1 s after the last change made by another process (new work
        seen within ~2 ms while busy), then every 100 ms. A change
        that came with a commit of this process (its heartbeat, say) still wakes the caller
        (another process may have written too) but does not start the fast polling: an idle
        worker stays under 1% of a core.
        """
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "watch", None)
        if self._closed:
            return False
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, isolation_level=None, timeout=5.0, check_same_thread=False)
            except sqlite3.Error:
                return super().wait_for_jobs(timeout)
            local.watch = conn
            local.waiter = self._channel.listen()
            local.stale = False
            local.version = conn.execute("PRAGMA data_version").fetchone()[0]
            local.changed_at = time.monotonic()
            local.writes = self._write_count
            with self._lock:
                self._all.append(conn)
        waiter = local.waiter
        intr = self._interrupt()
        deadline = time.monotonic() + timeout
        while True:
            if intr.pending:
                intr.consume()
                return True
            if waiter is not None:
                if local.stale:  # a datagram woke us: the commit it announced is no news
                    local.stale = False
                    try:
                        with self._lock:
                            if self._closed:
                                return False
                            local.version = conn.execute("PRAGMA data_version").fetchone()[0]
                    except sqlite3.Error:
                        return False
                if waiter.wait(min(self.poll_seconds, max(0.0, deadline - time.monotonic())), intr):
                    local.stale = True
                    if not waiter.late or self._any_runnable(conn):
                        return True
                    continue  # the first waiter took it: wait on (new work wakes us again)
            else:
                step = 0.002 if time.monotonic() - local.changed_at < 1.0 else 0.1
                interrupted, woken = self._wait_here(min(step, max(0.0, deadline - time.monotonic())))
                if woken:
                    local.changed_at = time.monotonic()
                if interrupted or woken:
                    return True
            try:
                with self._lock:  # close() takes it too: never a statement on a closing connection
                    if self._closed:
                        return False
                    version = conn.execute("PRAGMA data_version").fetchone()[0]
            except sqlite3.Error:
                return False
            if version != local.version:
                local.version = version
                writes = self._write_count
                if writes == local.writes:  # nobody here wrote: another process did
                    local.changed_at = time.monotonic()
                local.writes = writes
                return True
            if time.monotonic() >= deadline:
                return False

    def _any_runnable(self, conn: sqlite3.Connection) -> bool:
        """``wakeup.ANY_RUNNABLE`` on the waiting thread's connection (True if it fails: then the
        caller claims, as it would have without asking)."""
        try:
            with self._lock:
                if self._closed:
                    return True
                return bool(conn.execute(ANY_RUNNABLE).fetchone()[0])
        except sqlite3.Error:
            return True

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._channel.close()
            for conn in self._all:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._all.clear()
        self._checkpoint_wanted.set()  # its thread ends
        with self._checkpoint_lock:
            if self._checkpoint_conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._checkpoint_conn.close()
                self._checkpoint_conn = None
        self._local = threading.local()
