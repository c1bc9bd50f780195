"""The abstract SQL store: transactions, events, migrations; backends fill in connections."""

from __future__ import annotations

import abc
import contextlib
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from conveyor import errors
from conveyor.model import (
    ComputeEnvironment,
    DefinitionSpec,
    Job,
    JobState,
    Queue,
    spec_from_dict,
)
from conveyor.store.base import Dialect, Row, Tx, migration_files, split_statements
from conveyor.store.wakeup import Interrupt

DEFAULT_ENVIRONMENT = "default"

# job specs by their stored text: the jobs of one definition or command share it, and a
# worker reads thousands of them a second (specs are frozen, so sharing one is safe)
_SPECS: dict[str, DefinitionSpec] = {}


def _spec(raw: Any, d: Dialect) -> DefinitionSpec:
    if not isinstance(raw, str):
        return spec_from_dict(d.unjs(raw))
    spec = _SPECS.get(raw)
    if spec is None:
        if len(_SPECS) >= 1024:
            _SPECS.clear()
        spec = _SPECS[raw] = spec_from_dict(json.loads(raw))
    return spec


DEFAULT_QUEUE = "default"


class SqlStoreBase(abc.ABC):
    d: Dialect
    url: str

    def __init__(self) -> None:
        # in-process wake-ups: a submit in this process wakes this process's idle workers at once
        self._wake = threading.Condition()
        self._wake_seq = 0
        self._interrupts = threading.local()  # each waiting thread's Interrupt (see waker)
        # due-job promotion runs at most every PROMOTE_EVERY (store clock) unless a job this
        # store object knows of is due: the earliest future run_at seen, and a change counter
        self._due_hint: datetime | None = None
        self._due_seq = 0
        self._promoted_at: datetime | None = None
        # job_claim's plans by (environment, queues): fingerprint, line, when read (lifecycle._claim_line)
        self._claim_plans: dict[tuple[str, tuple[str, ...] | None], tuple[Any, tuple[str, ...], float]] = {}

    # -- backends ---------------------------------------------------------------------
    @abc.abstractmethod
    def _write(self) -> contextlib.AbstractContextManager[Tx]:
        """A write transaction (SQLite: BEGIN IMMEDIATE; PostgreSQL: a pooled connection)."""

    @abc.abstractmethod
    def _read(self) -> contextlib.AbstractContextManager[Tx]:
        """A read-only transaction or snapshot."""

    @contextlib.contextmanager
    def _waking(self, worker: bool = False) -> Iterator[tuple[Tx, set[str]]]:
        """A write transaction (``_worker_write`` with ``worker``) whose body adds to the set the
        queues where it made work runnable: their workers are notified inside the transaction
        (PostgreSQL's NOTIFY, SQLite's nothing) and this process's are woken after the commit."""
        woken: set[str] = set()
        with self._worker_write() if worker else self._write() as tx:
            yield tx, woken
            if woken:
                self.d.notify_jobs(tx, woken)
        if woken:
            self.wake()

    def _worker_write(self) -> contextlib.AbstractContextManager[Tx]:
        """A write transaction for a worker's claim, finish or lease renewal.

        PostgreSQL may commit these without waiting for the WAL flush (``async_commit``):
        a database crash can then forget the last ones, and those jobs run again after
        their lease expires. At-least-once holds either way.
        """
        return self._write()

    def _due_at(self, run_at: datetime) -> None:
        """Remember that a job becomes due at ``run_at`` (promotion must not wait past it)."""
        hint = self._due_hint
        if hint is None or run_at < hint:
            self._due_hint = run_at
        self._due_seq += 1

    def _read_next_due(self, nxt: datetime | None, seq: int) -> None:
        """Take a fresh reading of the earliest delayed job's ``run_at`` (``nxt``; None: there is
        none), read when ``_due_seq`` was ``seq``: a due time noted since (``_due_at``) is kept
        when it is earlier, as the reading may predate it."""
        if self._due_seq != seq:
            noted = self._due_hint
            if noted is not None and (nxt is None or noted < nxt):
                nxt = noted
        self._due_hint = nxt

    def next_due(self) -> datetime | None:
        """When the earliest delayed job (delay, backoff, snooze) that this store object knows
        of falls due, or None: from its own submissions and its last claim, which reads it.
        An idle worker waits no longer than that, so delayed jobs start on time."""
        return self._due_hint

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections."""

    @abc.abstractmethod
    def is_database_error(self, exc: BaseException) -> bool:
        """Whether ``exc`` is the database driver's: raised by a statement (its transaction was
        rolled back, nothing of it stored) or by the connection. Anything else a store call
        raises may come after a commit."""

    def wait_for_jobs(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds or until jobs may have become runnable (or the
        calling thread's ``waker`` is called).

        Returns True when woken by a signal (not by the timeout). The base version only
        hears submissions made in this process; PostgreSQL also listens to NOTIFY.
        """
        interrupted, woken = self._wait_here(timeout)
        return interrupted or woken

    def _wait_here(self, timeout: float) -> tuple[bool, bool]:
        """Wait for a wake-up from this process or the thread's interrupt: (interrupted, woken)."""
        intr = self._interrupt()
        with self._wake:
            seq = self._wake_seq
            self._wake.wait_for(lambda: self._wake_seq != seq or intr.pending, timeout=timeout)
            return intr.consume(), self._wake_seq != seq

    def waker(self) -> Callable[[], None]:
        """A function that ends the calling thread's current or next ``wait_for_jobs`` at once,
        callable from any thread: a worker's loop waits for new jobs and for its own threads
        in one call, with no listener thread handing wake-ups over."""
        return self._interrupt()

    def _interrupt(self) -> Interrupt:
        intr: Interrupt | None = getattr(self._interrupts, "intr", None)
        if intr is None:
            intr = self._interrupts.intr = Interrupt(self._wake)
        return intr

    def wake(self) -> None:
        """Wake this process's idle workers."""
        with self._wake:
            self._wake_seq += 1
            self._wake.notify_all()

    # -- helpers ----------------------------------------------------------------------
    def _events(self, tx: Tx, rows: Sequence[tuple[str, str, str, dict[str, Any]]], now: datetime) -> None:
        if not rows:
            return
        at = self.d.ts(now)
        tx.many(
            "INSERT INTO events (at, entity, entity_id, type, data) VALUES (?, ?, ?, ?, ?)",
            [(at, entity, entity_id, type_, self.d.js(data)) for entity, entity_id, type_, data in rows],
        )

    def _job(self, r: Row) -> Job:
        d = self.d
        return Job(
            id=int(r["id"]),
            queue=r["queue"],
            name=r["name"],
            definition=r["definition"],
            definition_revision=r["definition_revision"],
            spec=_spec(r["spec"], d),
            state=JobState(r["state"]),
            status_reason=r["status_reason"],
            priority=int(r["priority"]),
            created_at=_req(d.dt(r["created_at"])),
            updated_at=_req(d.dt(r["updated_at"])),
            run_at=d.dt(r["run_at"]),
            started_at=d.dt(r["started_at"]),
            finished_at=d.dt(r["finished_at"]),
            attempt=int(r["attempt"]),
            attempts_counted=int(r["attempts_counted"]),
            payload=d.unjs(r["payload"]),
            payload_ref=r["payload_ref"],
            result=d.unjs(r["result"]),
            tags=tuple(d.unjs(r["tags"]) or ()),
            unique_key=r["unique_key"],
            idempotency_key=r["idempotency_key"],
            parent_id=r["parent_id"],
            array_size=r["array_size"],
            array_index=r["array_index"],
            array_parent_id=r["array_parent_id"],
            depends_on=tuple(d.unjs(r["depends_on"]) or ()),
            worker_id=r["worker_id"],
            lease_expires_at=d.dt(r["lease_expires_at"]),
            compute_environment=r["compute_environment"],
            terminate_requested=bool(r["terminate_requested"]),
        )

    def _queue(self, r: Row) -> Queue:
        return Queue(
            name=r["name"],
            priority=int(r["priority"]),
            enabled=bool(r["enabled"]),
            environments=tuple(self.d.unjs(r["environments"])),
        )

    @staticmethod
    def _env(r: Row) -> ComputeEnvironment:
        return ComputeEnvironment(
            name=r["name"],
            max_vcpus=None if r["max_vcpus"] is None else float(r["max_vcpus"]),
            max_memory_mb=r["max_memory_mb"],
            enabled=bool(r["enabled"]),
        )

    # -- migrations -------------------------------------------------------------------
    def _migrations_table(self, tx: Tx) -> None:
        tx.x(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )

    def _lock_migrations(self, tx: Tx) -> None:  # noqa: B027 - a hook, empty on SQLite
        """Serialise concurrent migrators (PostgreSQL takes an advisory lock)."""

    def migrate(self, now: datetime) -> list[str]:
        """Apply pending migrations, each in its own transaction; create the defaults."""
        applied: list[str] = []
        for version, name, sql in migration_files(self.d.name):
            with self._write() as tx:
                self._lock_migrations(tx)
                self._migrations_table(tx)
                if tx.one("SELECT version FROM schema_migrations WHERE version = ?", (version,)):
                    continue
                for statement in split_statements(sql):
                    tx.x(statement)
                tx.x(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (version, name, now.isoformat()),
                )
                applied.append(name)
        with self._write() as tx:
            ts = self.d.ts(now)
            tx.x(
                "INSERT INTO compute_environments (name, max_vcpus, max_memory_mb, enabled, created_at,"
                " updated_at) VALUES (?, NULL, NULL, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
                (DEFAULT_ENVIRONMENT, True, ts, ts),
            )
            tx.x(
                "INSERT INTO queues (name, priority, enabled, environments, created_at, updated_at)"
                " VALUES (?, 0, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
                (DEFAULT_QUEUE, True, self.d.js([DEFAULT_ENVIRONMENT]), ts, ts),
            )
        return applied

    def store_id(self) -> str:
        """This database's random identity (made by migration 0006; see worker/orphans.py)."""
        with self._read() as tx:
            row = tx.one("SELECT value FROM store_info WHERE key = 'store_id'")
        return str(row["value"]) if row else ""

    def schema_status(self) -> tuple[int, int]:
        """(applied version, latest shipped version)."""
        latest = max(v for v, _, _ in migration_files(self.d.name))
        try:
            with self._read() as tx:
                row = tx.one("SELECT MAX(version) AS v FROM schema_migrations")
        except errors.StoreUnavailable:
            raise
        except Exception:
            return (0, latest)
        return (int(row["v"] or 0) if row else 0, latest)


def _req(value: datetime | None) -> datetime:
    assert value is not None
    return value


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
