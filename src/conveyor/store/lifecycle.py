"""Store operations on jobs: every transition is one transaction with its event rows.

Exactly-once decisions are compare-and-set updates (``WHERE id = ? AND state IN ...``) or
unique constraints; nothing here trusts a leader. See docs/states.md for the diagram.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from typing import Any

from conveyor import errors, retry
from conveyor.model import (
    Attempt,
    ClaimRequest,
    ComputeEnvironment,
    DefinitionSpec,
    DependencyType,
    Finish,
    Inserted,
    InsertResult,
    Job,
    JobState,
    NewJob,
    OutcomeKind,
    Queue,
    spec_from_dict,
    spec_to_stored,
)
from conveyor.store.base import Row, Tx, plus
from conveyor.store.catalog import WORKER_LIVENESS, CatalogOps
from conveyor.store.core import _req, _spec, chunks

ACTIVE = "('STARTING', 'RUNNING')"
WAITING = "('SUBMITTED', 'PENDING', 'RUNNABLE')"
# a FAILED or CANCELLED job run again with fresh attempts; parameters: the reason, the time,
# False (terminate_requested), then the WHERE clause's. It looks like a fresh submission until
# it starts: no start (the claim sets started_at only when NULL), no run time (it may run now:
# a run_at left from a retry delay or a cancelled delayed submission told nothing true, and
# claim order is priority then id, never run_at), no worker, lease or environment, and no
# running attempt on the row. The runs before stay in ``attempts`` (each failed or cancelled
# attempt's row was written when it ended) and in the events.
_RERUN = (
    "UPDATE jobs SET state = 'RUNNABLE', status_reason = ?, attempts_counted = 0, finished_at = NULL,"
    " updated_at = ?, terminate_requested = ?, deps_pending = 0, started_at = NULL, run_at = NULL,"
    " worker_id = NULL, lease_expires_at = NULL, compute_environment = NULL, attempt_host = NULL,"
    " attempt_pid = NULL, attempt_started_at = NULL WHERE "
)
# a FAILED or CANCELLED job run again once its unfinished dependencies succeed (as _RERUN:
# released, it is RUNNABLE at once, not SUBMITTED until an old run_at); parameters: the
# reason, deps_pending, the time, False (terminate_requested), the id
_REWAIT = (
    "UPDATE jobs SET state = 'PENDING', status_reason = ?, deps_pending = ?, attempts_counted = 0,"
    " finished_at = NULL, updated_at = ?, terminate_requested = ?, started_at = NULL, run_at = NULL,"
    " worker_id = NULL, lease_expires_at = NULL, compute_environment = NULL, attempt_host = NULL,"
    " attempt_pid = NULL, attempt_started_at = NULL WHERE id = ?"
)
# the status reason of an array job being cancelled while children still run (its
# terminate_requested marks it: an array job never runs itself); it ends CANCELLED with the
# rest of the reason once they have ended
_CANCELLING = "cancel requested: "
TERMINAL = "('SUCCEEDED', 'FAILED', 'CANCELLED')"
PROMOTE_BATCH = 1000

_JOB_COLUMNS = (
    "id, queue, name, definition, definition_revision, kind, spec, state, status_reason, priority,"
    " created_at, updated_at, run_at, attempt, attempts_counted, vcpus, memory_mb, payload, payload_ref,"
    " tags, unique_key, unique_ttl, idempotency_key, parent_id, array_size, array_index, array_parent_id,"
    " depends_on, deps_pending, finished_at"
)
_INSERT_JOB = f"INSERT INTO jobs ({_JOB_COLUMNS}) VALUES ({', '.join('?' * 30)})"
# starts jobs; parameters: reason, worker, lease, started, updated, environment,
# terminate_requested, host, pid, started (the attempt's: its attempts row is written when
# it ends, see ``ATTEMPT_END``)
_START_SET = (
    "UPDATE jobs SET state = CASE WHEN kind = 'function' THEN 'RUNNING' ELSE 'STARTING' END,"
    " status_reason = ?, worker_id = ?, lease_expires_at = ?, attempt = attempt + 1,"
    " attempts_counted = attempts_counted + 1, started_at = COALESCE(started_at, ?),"
    " updated_at = ?, compute_environment = ?, terminate_requested = ?, attempt_host = ?,"
    " attempt_pid = ?, attempt_started_at = ?"
)


def start_set_params(req: ClaimRequest, environment: str, at: Any, lease_until: Any) -> tuple[Any, ...]:
    """``_START_SET``'s parameters, in its order; ``at`` and ``lease_until`` as the backend
    binds times (the claim's time and its lease's end)."""
    return (
        f"started on worker {req.worker_id}",
        req.worker_id,
        lease_until,
        at,
        at,
        environment,
        False,
        req.host,
        req.pid,
        at,
    )


# What an attempts row is written with when the attempt ends; an attempt opened before
# migration 0008 already has a row, which this completes instead.
ATTEMPT_COLUMNS = "job_id, number, worker_id, host, pid, started_at, compute_environment, stopped_at, exit_code, reason, counted"
ATTEMPT_UPSERT = (
    " ON CONFLICT (job_id, number) DO UPDATE SET stopped_at = excluded.stopped_at,"
    " exit_code = excluded.exit_code, reason = excluded.reason, counted = excluded.counted"
)
# The attempt that made a job SUCCEEDED has no row in ``attempts``: the job's row holds its
# worker, host, pid, start (attempt_*), environment and stop (finished_at), and a SUCCEEDED job
# never runs again (only FAILED and CANCELLED jobs can be retried). Writing the row cost every
# job of a drain a heap tuple and an index entry (PostgreSQL server time per job -10 to -28%
# in three of four drain_cpu.py pairs; SQLite -3.1% instructions per job).
# A job's current attempt as an ``attempts`` row (``job_attempts``): running, or the one that
# succeeded; parameters: the job id
_CURRENT_ATTEMPT = (
    "SELECT id AS job_id, attempt AS number, worker_id, attempt_host AS host, attempt_pid AS pid,"
    " COALESCE(attempt_started_at, finished_at) AS started_at,"
    " CASE WHEN state = 'SUCCEEDED' THEN finished_at END AS stopped_at,"
    " CASE WHEN state = 'SUCCEEDED' THEN 0 END AS exit_code,"
    " CASE WHEN state = 'SUCCEEDED' THEN 'succeeded' ELSE '' END AS reason,"
    " compute_environment, TRUE AS counted FROM jobs WHERE id = ? AND (state = 'SUCCEEDED' AND worker_id IS NOT NULL"
    f" AND attempt > 0 OR state IN {ACTIVE} AND attempt_started_at IS NOT NULL)"
)
# the row of an attempt that ends; parameters: ATTEMPT_COLUMNS
_ATTEMPT_END = f"INSERT INTO attempts ({ATTEMPT_COLUMNS}) VALUES ({', '.join('?' * 11)})" + ATTEMPT_UPSERT
# starts the RUNNABLE jobs matching {which}: _START_SET's parameters, then those of {which}
_START_JOBS = _START_SET + " WHERE {which} AND state = 'RUNNABLE'"
# what ``_start_jobs`` returns of each job, in this order (the rest the claim itself set);
# ``_claimed_jobs`` builds the jobs from it after the commit
CLAIMED = (
    "id, queue, name, definition, definition_revision, kind, spec, priority, created_at, run_at,"
    " started_at, finished_at, attempt, attempts_counted, payload, payload_ref, result, tags,"
    " unique_key, idempotency_key, parent_id, array_size, array_index, array_parent_id, depends_on"
)
PROMOTE_EVERY = timedelta(seconds=0.1)
# the earliest run time of a delayed job; format: due_index (the Dialect's)
# (ORDER BY ... LIMIT 1, not MIN: a planner expecting few rows aggregates over all of them)
NEXT_DUE = "SELECT run_at AS m FROM jobs{due_index} WHERE state = 'SUBMITTED' ORDER BY run_at LIMIT 1"
# the delayed jobs due at a time, earliest first; parameters: time, limit; format: due_index
DUE_JOBS = "SELECT id FROM jobs{due_index} WHERE state = 'SUBMITTED' AND run_at <= ? ORDER BY run_at LIMIT ?"


@dataclass(frozen=True, slots=True)
class LeaseStatus:
    attempts: Mapping[int, int]  # the jobs this worker still holds: the attempt each is at
    terminate: frozenset[int]  # of those, the ones a user asked to terminate

    @property
    def owned(self) -> frozenset[int]:
        return frozenset(self.attempts)


@dataclass(slots=True)
class _Done:
    """A job that just reached a terminal state; what follows from it is settled in the same tx."""

    id: int
    state: str
    unique_key: str | None
    unique_ttl: float | None
    has_dependants: bool
    array_parent_id: int | None


def _done(r: Row, state: str | None = None) -> _Done:
    return _Done(
        id=int(r["id"]),
        state=state or r["state"],
        unique_key=r["unique_key"],
        unique_ttl=r["unique_ttl"],
        has_dependants=bool(r["has_dependants"]),
        array_parent_id=r["array_parent_id"],
    )


_JOB_FIELDS = tuple(f.name for f in fields(Job))
assert _JOB_FIELDS[:1] == ("id",) and _JOB_FIELDS[9:11] == ("created_at", "updated_at")
assert _JOB_FIELDS[16] == "payload"


class JobLike:
    """Jobs like ``proto`` but for their id, time (created and updated) and payload, built
    from its other fields kept in order (``make``: ~1 µs less than ``_new_job``'s 31)."""

    __slots__ = ("_after_id", "_after_payload", "_after_times")

    def __init__(self, proto: Job) -> None:
        values = [getattr(proto, name) for name in _JOB_FIELDS]
        self._after_id = tuple(values[1:9])
        self._after_times = tuple(values[11:16])
        self._after_payload = tuple(values[17:])

    def make(self, job_id: int, stamp: datetime, payload: Any) -> Job:
        return Job(job_id, *self._after_id, stamp, stamp, *self._after_times, payload, *self._after_payload)  # type: ignore[call-arg]


class LifecycleOps(CatalogOps):
    _specs: dict[int, list[Any]]

    # -- submission -------------------------------------------------------------------------
    def job_insert_many(self, jobs: Sequence[NewJob], now: datetime) -> list[InsertResult]:
        """Insert submissions atomically: all or none. Keys that match return the existing job."""
        if _plain(jobs[0]) if len(jobs) == 1 else jobs and all(_plain(nj) for nj in jobs):
            done = self._insert_plain(jobs, now)
            if done is not None:
                return done
        with self._waking() as (tx, woken):
            return self._insert(tx, jobs, now, woken)

    def job_template(self, nj: NewJob) -> Any:
        """A reusable form of ``nj`` for ``job_insert_like``: of a plain job with no time and its
        payload inline, what inserting another like it needs apart from the payload (a backend
        may prepare its row's text). Opaque to the caller."""
        return nj

    def job_insert_like(
        self, template: Any, payload: Any, payload_json: str | None, now: datetime
    ) -> InsertResult:
        """Insert the job ``template`` (``job_template``) stands for, with this payload (its
        compact JSON text ``payload_json``, None for no payload): what ``job_insert_many`` of
        that job with this payload would do."""
        nj = replace(template, payload=payload, payload_json=payload_json)
        return self.job_insert_many((nj,), now)[0]

    def job_insert_brief(self, jobs: Sequence[NewJob], now: datetime) -> list[Inserted]:
        """``job_insert_many`` for callers that need only ids and states: plain jobs are not
        built back into ``Job`` objects."""
        with self._waking() as (tx, woken):
            return self._insert_ids(tx, jobs, now, woken)

    def job_insert_chunks(self, chunks: Iterable[Sequence[NewJob]], now: datetime) -> list[Inserted]:
        """``job_insert_brief`` of the jobs of ``chunks``, in order, in one transaction. A backend
        that can may insert a chunk while the caller builds the next one (the iterable may
        raise: then nothing is inserted). Here: every chunk is built first, then inserted."""
        return self.job_insert_brief([nj for chunk in chunks for nj in chunk], now)

    def _insert_plain(self, jobs: Sequence[NewJob], now: datetime) -> list[InsertResult] | None:
        """A backend's fast path for jobs without keys, dependencies or arrays; None: none here."""
        return None

    def _insert_plain_tx(
        self, tx: Tx, jobs: Sequence[NewJob], now: datetime, woken: set[str]
    ) -> list[tuple[int, str]]:
        """Plain jobs (see ``_plain``) inserted with their events inside ``tx``: (id, state) of
        each, in order. Queues that got runnable jobs are added to ``woken`` (the caller notifies)."""
        return [(r.job.id, r.job.state.value) for r in self._insert(tx, jobs, now, woken)]

    def _insert_ids(self, tx: Tx, jobs: Sequence[NewJob], now: datetime, woken: set[str]) -> list[Inserted]:
        """Each submission's outcome, inserted inside ``tx``, for callers that need no ``Job``
        back (bulk submissions, the scheduler). When every job is plain the backend's
        one-statement path takes them; otherwise ``_insert`` does, so that ids always follow
        the submission order (the claim order within a priority)."""
        if jobs and all(_plain(nj) for nj in jobs):
            return [
                Inserted(job_id, _STATES[state])
                for job_id, state in self._insert_plain_tx(tx, jobs, now, woken)
            ]
        return [
            Inserted(r.job.id, r.job.state, r.existing, r.reason) for r in self._insert(tx, jobs, now, woken)
        ]

    def _spec_stored(self, spec: DefinitionSpec) -> Any:
        """The stored form of a spec, for callers that need no read-back form (a bulk submission
        repeats one spec object; a scheduler burst makes one per job, which pass through)."""
        return self._spec_entry(spec)[1]

    def _spec_forms(self, spec: DefinitionSpec) -> tuple[Any, DefinitionSpec]:
        """(stored form, spec as read back) of a job spec, cached: the engine hands the same
        spec object for every submission of the same ad-hoc command, function or definition."""
        entry = self._spec_entry(spec)
        if entry[2] is None:
            entry[2] = spec_from_dict(self.d.echo_js(entry[1]))
        return entry[1], entry[2]

    def _spec_entry(self, spec: DefinitionSpec) -> list[Any]:
        """The cache entry [spec, stored form, read-back form or None, JSON text or None (filled
        by a backend that sends one)] of a spec object. The entry keeps the spec alive, so its
        ``id`` cannot be reused while it is cached."""
        cache = getattr(self, "_specs", None)
        if cache is None:
            cache = self._specs = {}
        entry = cache.get(id(spec))
        if entry is None or entry[0] is not spec:
            if len(cache) >= 512:
                cache.clear()
            entry = cache[id(spec)] = [spec, self.d.js(spec_to_stored(spec)), None, None]
        return entry

    def _plain_each(
        self, jobs: Sequence[NewJob], now: datetime, woken: set[str], echo: bool
    ) -> Iterator[tuple[NewJob, str, str, Any, DefinitionSpec | None]]:
        """What a backend's plain insert needs of each job: (job, state, reason, stored spec,
        spec as read back when ``echo``). Queues that get runnable jobs go into ``woken``."""
        for nj in jobs:
            state, reason = self._plain_state(nj, now)
            if state == "RUNNABLE":
                woken.add(nj.queue)
            if echo:
                stored, spec = self._spec_forms(nj.spec)
                yield nj, state, reason, stored, spec
            else:
                yield nj, state, reason, self._spec_stored(nj.spec), None

    def _plain_state(self, nj: NewJob, now: datetime) -> tuple[str, str]:
        """(state, reason) of a new job without dependencies or array (see ``_initial_state``)."""
        if nj.run_at is not None and nj.run_at > now:
            self._due_at(nj.run_at)
            return "SUBMITTED", f"scheduled for {nj.run_at.isoformat()}"
        return RUNNABLE_NOW

    def _insert(self, tx: Tx, jobs: Sequence[NewJob], now: datetime, woken: set[str]) -> list[InsertResult]:
        d = self.d
        ts = d.ts(now)
        out: list[InsertResult | None] = [None] * len(jobs)
        # dependencies of the whole batch, read (and locked) once
        dep_ids = sorted({dep.job_id for nj in jobs for dep in nj.depends_on})
        deps = self._locked_jobs(tx, dep_ids, "id, state, array_size")
        for dep_id in dep_ids:
            if dep_id not in deps:
                raise errors.ValidationError(
                    "depends_on", f"job {dep_id} does not exist", "ids of existing jobs"
                )

        seen_idem: dict[str, int] = {}
        seen_unique: dict[str, int] = {}
        plain_rows: list[tuple[Any, ...]] = []
        plain_events: list[tuple[str, str, str, dict[str, Any]]] = []
        plain_index: list[tuple[int, int]] = []  # (position in jobs, id)
        dep_rows: list[tuple[int, int]] = []
        ids = d.alloc_job_ids(tx, len(jobs))
        spec_cache: dict[int, Any] = {}
        echo_specs: dict[int, DefinitionSpec] = {}
        built: dict[int, Job] = {}
        stamp = _req(d.dt(ts))  # ``now`` exactly as the store gives it back

        for pos, nj in enumerate(jobs):
            # idempotency and unique keys: an earlier job with the key wins
            if nj.idempotency_key is not None:
                if nj.idempotency_key in seen_idem:
                    out[pos] = InsertResult(
                        self._job_by_id(tx, seen_idem[nj.idempotency_key]), True, "idempotency key matched"
                    )
                    continue
                row = tx.one("SELECT * FROM jobs WHERE idempotency_key = ?", (nj.idempotency_key,))
                if row is not None:
                    out[pos] = InsertResult(
                        self._job(row),
                        True,
                        f"idempotency key {nj.idempotency_key!r} matched job {row['id']}",
                    )
                    continue
            if nj.unique_key is not None:
                if nj.unique_key in seen_unique:
                    out[pos] = InsertResult(
                        self._job_by_id(tx, seen_unique[nj.unique_key]),
                        True,
                        "unique key held in the same batch",
                    )
                    continue
                holder = self._unique_holder(tx, nj.unique_key, now)
                if holder is not None:
                    out[pos] = InsertResult(holder, True, _held(nj.unique_key, holder))
                    continue

            job_id = ids[pos]
            state, reason, pending = self._initial_state(nj, deps, now)
            if nj.unique_key is not None and state not in ("FAILED",):
                got = tx.one(
                    "INSERT INTO unique_keys (key, job_id, expires_at) VALUES (?, ?, NULL)"
                    " ON CONFLICT (key) DO NOTHING RETURNING key",
                    (nj.unique_key, job_id),
                )
                if got is None:  # a concurrent submission won the key between our read and insert
                    holder = self._unique_holder(tx, nj.unique_key, now)
                    if holder is None:
                        raise errors.Conflict(
                            f"unique key {nj.unique_key!r} is being released; retry the submission"
                        )
                    out[pos] = InsertResult(holder, True, _held(nj.unique_key, holder))
                    continue
                seen_unique[nj.unique_key] = job_id
            spec_json = spec_cache.get(id(nj.spec))
            if spec_json is None:
                spec_json = spec_cache[id(nj.spec)] = d.js(spec_to_stored(nj.spec))
            row_values = (
                job_id,
                nj.queue,
                nj.name,
                nj.definition,
                nj.definition_revision,
                nj.spec.kind,
                spec_json,
                state,
                reason,
                nj.priority,
                ts,
                ts,
                d.ts(nj.run_at),
                0,
                0,
                nj.spec.vcpus,
                nj.spec.memory_mb,
                d.js(nj.payload) if nj.payload is not None else None,
                nj.payload_ref,
                d.js(list(nj.tags)) if nj.tags else None,
                nj.unique_key,
                nj.unique_ttl_seconds,
                nj.idempotency_key,
                nj.parent_id,
                nj.array_size,
                None,
                None,
                d.js([dep.job_id for dep in nj.depends_on]) if nj.depends_on else None,
                0 if nj.array_size else len(pending),
                ts if state == "FAILED" else None,
            )
            event = ("job", str(job_id), "job.state", {"to": state, "reason": reason, "queue": nj.queue})
            if not nj.array_size:
                spec_echo = echo_specs.get(id(nj.spec))
                if spec_echo is None:
                    spec_echo = echo_specs[id(nj.spec)] = spec_from_dict(d.echo_js(spec_json))
                built[job_id] = self._new_job(job_id, nj, state, reason, stamp, spec_echo, row_values[17])
            if state == "SUBMITTED" and nj.run_at is not None:
                self._due_at(nj.run_at)
            if nj.idempotency_key is not None:
                got = tx.one(
                    _INSERT_JOB
                    + " ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
                    " RETURNING id",
                    row_values,
                )
                if got is None:
                    row = tx.one("SELECT * FROM jobs WHERE idempotency_key = ?", (nj.idempotency_key,))
                    assert row is not None
                    out[pos] = InsertResult(self._job(row), True, f"idempotency key matched job {row['id']}")
                    continue
                seen_idem[nj.idempotency_key] = job_id
                self._events(tx, [event], now)
                out[pos] = InsertResult(self._placeholder(job_id))
            elif nj.array_size:
                tx.x(_INSERT_JOB, row_values)
                self._events(tx, [event], now)
                out[pos] = InsertResult(self._placeholder(job_id))
            else:
                plain_rows.append(row_values)
                plain_events.append(event)
                plain_index.append((pos, job_id))
            if state == "RUNNABLE":
                woken.add(nj.queue)
            if nj.array_size and state != "FAILED":
                self._insert_children(tx, job_id, nj, deps, now, woken)
            elif not nj.array_size:
                dep_rows.extend((job_id, dep_id) for dep_id in pending)

        if plain_rows:
            tx.many(_INSERT_JOB, plain_rows)
            self._events(tx, plain_events, now)
            for pos, job_id in plain_index:
                out[pos] = InsertResult(self._placeholder(job_id))
        if dep_rows:
            self._add_dependencies(tx, dep_rows)
        # Jobs are built from the values inserted (reading them back cost ~30% of a bulk
        # insert). Array parents are read back: counting failed children may change them.
        fresh: dict[int, Job] = {}
        back = [res.job.id for res in out if res is not None and not res.existing and res.job.id not in built]
        for part in chunks(back, 500):
            for got_row in tx.q("SELECT * FROM jobs WHERE " + d.id_in("id"), (d.ids(part),)):
                fresh[int(got_row["id"])] = self._job(got_row)
        fresh.update(built)
        final: list[InsertResult] = []
        for res in out:
            assert res is not None
            if not res.existing:
                res = InsertResult(fresh[res.job.id], False, "")
            elif isinstance(res.job, _Stub):  # matched a job inserted earlier in this batch
                res = InsertResult(fresh[res.job.id], True, res.reason)
            final.append(res)
        return final

    def _new_job(
        self,
        job_id: int,
        nj: NewJob,
        state: str,
        reason: str,
        stamp: datetime,
        spec: DefinitionSpec,
        payload_stored: Any,
    ) -> Job:
        """The job just inserted, as reading its row back would give it."""
        d = self.d
        # positional, in Job's field order (the names are the comments): matching 31 keywords
        # was ~2 µs of each single submission
        return Job(
            job_id,  # id
            nj.queue,
            nj.name,
            nj.definition,
            nj.definition_revision,
            spec,
            _STATES[state],
            reason,  # status_reason
            int(nj.priority),
            stamp,  # created_at
            stamp,  # updated_at
            None if nj.run_at is None else d.dt(d.ts(nj.run_at)),
            None,  # started_at
            stamp if state == "FAILED" else None,  # finished_at
            0,  # attempt
            0,  # attempts_counted
            None if payload_stored is None else d.echo_js(payload_stored),
            nj.payload_ref,
            None,  # result
            tuple(nj.tags),
            nj.unique_key,
            nj.idempotency_key,
            nj.parent_id,
            nj.array_size,
            None,  # array_index
            None,  # array_parent_id
            tuple(dep.job_id for dep in nj.depends_on) if nj.depends_on else (),
            None,  # worker_id
            None,  # lease_expires_at
            None,  # compute_environment
            False,  # terminate_requested
        )

    @staticmethod
    def _placeholder(job_id: int) -> Job:
        return _Stub(job_id)  # type: ignore[return-value]

    def _initial_state(self, nj: NewJob, deps: dict[int, Row], now: datetime) -> tuple[str, str, list[int]]:
        """(state, reason, unfinished dependency ids) of a new job (or array parent)."""
        pending: list[int] = []
        for dep in nj.depends_on:
            r = deps[dep.job_id]
            if dep.type is DependencyType.N_TO_N and (not nj.array_size or r["array_size"] != nj.array_size):
                raise errors.ValidationError(
                    "depends_on",
                    f"an N_TO_N dependency needs two array jobs of the same size; job {dep.job_id} has"
                    f" size {r['array_size'] or 'none'}, this job {nj.array_size or 'none'}",
                )
            if r["state"] in ("FAILED", "CANCELLED"):
                return "FAILED", f"dependency job {dep.job_id} ended {r['state']}", []
            if r["state"] != "SUCCEEDED" and dep.type is DependencyType.STANDARD:
                pending.append(dep.job_id)
        if nj.array_size:
            return "PENDING", f"array job: 0 of {nj.array_size} children finished", pending
        if pending:
            return "PENDING", _waiting_for(pending), pending
        if nj.run_at is not None and nj.run_at > now:
            return "SUBMITTED", f"scheduled for {nj.run_at.isoformat()}", []
        return "RUNNABLE", "waiting for a worker", []

    def _insert_children(
        self, tx: Tx, parent_id: int, nj: NewJob, deps: dict[int, Row], now: datetime, woken: set[str]
    ) -> None:
        d = self.d
        size = nj.array_size
        assert size is not None
        ts = d.ts(now)
        ids = d.alloc_job_ids(tx, size)
        spec_json = d.js(spec_to_stored(nj.spec))
        standard = [
            dep.job_id
            for dep in nj.depends_on
            if dep.type is DependencyType.STANDARD and deps[dep.job_id]["state"] != "SUCCEEDED"
        ]
        n_to_n: dict[int, dict[int, tuple[int, str]]] = {}
        for dep in nj.depends_on:
            if dep.type is DependencyType.N_TO_N:
                n_to_n[dep.job_id] = {
                    int(r["array_index"]): (int(r["id"]), r["state"])
                    for r in tx.q(
                        "SELECT id, array_index, state FROM jobs WHERE array_parent_id = ?" + d.for_update,
                        (dep.job_id,),
                    )
                }
        rows: list[tuple[Any, ...]] = []
        events: list[tuple[str, str, str, dict[str, Any]]] = []
        dep_rows: list[tuple[int, int]] = []
        failed = 0
        previous_failed = False
        for index in range(size):
            child_id = ids[index]
            pending = list(standard)
            # every dependency that had not succeeded, even one that failed the child at once:
            # a retry of the array job finds them in job_dependencies (``_retry_waits``)
            ended: list[int] = []
            failed_by: str | None = None
            for other in n_to_n.values():
                other_id, other_state = other[index]
                if other_state in ("FAILED", "CANCELLED"):
                    failed_by = f"dependency job {other_id} ended {other_state}"
                    ended.append(other_id)
                elif other_state != "SUCCEEDED":
                    pending.append(other_id)
            if nj.array_sequential and index > 0:
                if previous_failed:
                    failed_by = failed_by or f"dependency job {ids[index - 1]} ended FAILED"
                    ended.append(ids[index - 1])
                else:
                    pending.append(ids[index - 1])
            dep_rows.extend((child_id, dep_id) for dep_id in pending + ended)
            if failed_by:
                state, reason = "FAILED", failed_by
                failed += 1
                pending = []
            elif pending:
                state, reason = "PENDING", _waiting_for(pending)
            elif nj.run_at is not None and nj.run_at > now:
                state, reason = "SUBMITTED", f"scheduled for {nj.run_at.isoformat()}"
                self._due_at(nj.run_at)
            else:
                state, reason = "RUNNABLE", "waiting for a worker"
                woken.add(nj.queue)
            previous_failed = state == "FAILED"
            rows.append(
                (
                    child_id,
                    nj.queue,
                    nj.name,
                    nj.definition,
                    nj.definition_revision,
                    nj.spec.kind,
                    spec_json,
                    state,
                    reason,
                    nj.priority,
                    ts,
                    ts,
                    d.ts(nj.run_at),
                    0,
                    0,
                    nj.spec.vcpus,
                    nj.spec.memory_mb,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    nj.parent_id,
                    None,
                    index,
                    parent_id,
                    None,
                    len(pending),
                    ts if state == "FAILED" else None,
                )
            )
            events.append(
                ("job", str(child_id), "job.state", {"to": state, "reason": reason, "queue": nj.queue})
            )
        tx.many(_INSERT_JOB, rows)
        self._events(tx, events, now)
        if dep_rows:
            self._add_dependencies(tx, dep_rows)
        if failed:
            self._count_children(tx, parent_id, failed, failed, now, woken)

    def _add_dependencies(self, tx: Tx, dep_rows: list[tuple[int, int]]) -> None:
        tx.many(
            "INSERT INTO job_dependencies (job_id, depends_on_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
            dep_rows,
        )
        targets = sorted({dep for _, dep in dep_rows})
        for part in chunks(targets, 500):
            tx.x(
                "UPDATE jobs SET has_dependants = ? WHERE " + self.d.id_in("id") + " AND has_dependants = ?",
                (True, self.d.ids(part), False),
            )

    def _unique_holder(self, tx: Tx, key: str, now: datetime) -> Job | None:
        """The job holding ``key`` now, or None (a stale entry is removed)."""
        row = tx.one("SELECT job_id, expires_at FROM unique_keys WHERE key = ?" + self.d.for_update, (key,))
        if row is None:
            return None
        job_row = tx.one("SELECT * FROM jobs WHERE id = ?", (row["job_id"],))
        expires = self.d.dt(row["expires_at"])
        if job_row is not None:
            terminal = job_row["state"] in ("SUCCEEDED", "FAILED", "CANCELLED")
            if not terminal or (expires is not None and expires > now):
                return self._job(job_row)
        tx.x("DELETE FROM unique_keys WHERE key = ? AND job_id = ?", (key, row["job_id"]))
        return None

    def _job_by_id(self, tx: Tx, job_id: int) -> Job:
        row = tx.one("SELECT * FROM jobs WHERE id = ?", (job_id,))
        if row is None:
            return _Stub(job_id)  # type: ignore[return-value]
        return self._job(row)

    # -- reading --------------------------------------------------------------------------
    def job_get(self, job_id: int) -> Job | None:
        with self._read() as tx:
            row = tx.one("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return self._job(row) if row else None

    def job_list(
        self,
        *,
        states: Sequence[JobState] = (),
        queue: str | None = None,
        tag: str | None = None,
        array_parent_id: int | None = None,
        include_children: bool = False,
        only_children: bool = False,
        before_id: int | None = None,
        from_id: int | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int = 100,
    ) -> list[Job]:
        """Jobs, newest first; ``before_id`` pages on, ``from_id``: ids from it on. Array
        children only with ``array_parent_id`` (that array's), ``include_children`` (with the
        other jobs) or ``only_children`` (theirs alone: ``limit=1`` tells cheaply whether a
        listing without them left some out)."""
        where, params = self._list_where(
            states,
            queue,
            tag,
            array_parent_id,
            include_children,
            before_id,
            created_after,
            created_before,
            only_children=only_children,
            from_id=from_id,
        )
        with self._read() as tx:
            return [
                self._job(r)
                for r in tx.q(f"SELECT * FROM jobs{where} ORDER BY id DESC LIMIT ?", [*params, limit])
            ]

    def job_queues(self, job_ids: Sequence[int]) -> dict[int, str]:
        """The queue of each of ``job_ids`` (in 1..2**62) that names a job."""
        if not job_ids:
            return {}
        sql = f"SELECT id, queue FROM jobs WHERE {self.d.id_in('id')}"
        with self._read() as tx:
            return {int(r["id"]): r["queue"] for r in tx.q(sql, (self.d.ids(job_ids),))}

    def job_ids(
        self,
        *,
        states: Sequence[JobState] = (),
        queue: str | None = None,
        tag: str | None = None,
        array_parent_id: int | None = None,
        before_id: int | None = None,
        from_id: int | None = None,
        limit: int | None = 100,
    ) -> list[int]:
        """The ids ``job_list`` would list with the same filters (array children only with
        ``array_parent_id``; ``from_id``: ids from it on), newest first; ``limit`` None: all."""
        where, params = self._list_where(states, queue, tag, array_parent_id, False, before_id, None, None)
        if from_id is not None:
            where += " AND id >= ?"
            params.append(from_id)
        sql = f"SELECT id FROM jobs{where} ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self._read() as tx:
            return [int(r["id"]) for r in tx.q(sql, params)]

    def job_id_range(self) -> tuple[int, int] | None:
        """The smallest and the largest job id, None without jobs."""
        with self._read() as tx:
            row = tx.one("SELECT min(id) AS lo, max(id) AS hi FROM jobs")
        if row is None or row["lo"] is None:
            return None
        return int(row["lo"]), int(row["hi"])

    def _list_where(
        self,
        states: Sequence[JobState],
        queue: str | None,
        tag: str | None,
        array_parent_id: int | None,
        include_children: bool,
        before_id: int | None,
        created_after: datetime | None,
        created_before: datetime | None,
        *,
        only_children: bool = False,
        from_id: int | None = None,
    ) -> tuple[str, list[Any]]:
        sql = " WHERE 1 = 1"
        params: list[Any] = []
        if states:
            sql += f" AND state IN ({', '.join('?' * len(states))})"
            params.extend(s.value for s in states)
        if queue is not None:
            sql += " AND queue = ?"
            params.append(queue)
        if array_parent_id is not None:
            sql += " AND array_parent_id = ?"
            params.append(array_parent_id)
        elif only_children:
            sql += " AND array_parent_id IS NOT NULL"
        elif not include_children:
            sql += " AND array_parent_id IS NULL"
        if before_id is not None:
            sql += " AND id < ?"
            params.append(before_id)
        if from_id is not None:
            sql += " AND id >= ?"
            params.append(from_id)
        if created_after is not None:
            sql += " AND created_at >= ?"
            params.append(self.d.ts(created_after))
        if created_before is not None:
            sql += " AND created_at < ?"
            params.append(self.d.ts(created_before))
        if tag is not None:
            sql += " AND CAST(tags AS TEXT) LIKE ?"
            params.append(f'%"{tag}"%')
        return sql, params

    def job_dependency_states(self, job_id: int) -> list[tuple[int, JobState]]:
        with self._read() as tx:
            rows = tx.q(
                "SELECT j.id, j.state FROM job_dependencies d JOIN jobs j ON j.id = d.depends_on_id"
                " WHERE d.job_id = ? ORDER BY j.id",
                (job_id,),
            )
        return [(int(r["id"]), JobState(r["state"])) for r in rows]

    def job_attempts(self, job_id: int) -> list[Attempt]:
        """A job's attempts. The job's row holds its current attempt: a running one (its row in
        ``attempts`` is written when it ends) and the one that succeeded (whose row is never
        written: ``_CURRENT_ATTEMPT``); either is read from the job."""
        with self._read() as tx:
            rows = tx.q("SELECT * FROM attempts WHERE job_id = ? ORDER BY number", (job_id,))
            job = tx.one(_CURRENT_ATTEMPT, (job_id,))
        if job is not None:
            number = int(job["number"])
            same = next((r for r in rows if int(r["number"]) == number), None)
            if same is None:
                rows = [*rows, job]
            elif job["stopped_at"] is not None and same["stopped_at"] is None:
                # it succeeded, and its row was opened before migration 0008 (which kept the
                # running attempt's host, pid and start there, not on the job): that row, ended
                done = dict(same)
                done.update(stopped_at=job["stopped_at"], exit_code=job["exit_code"], reason=job["reason"])
                rows = [done if r is same else r for r in rows]
            # else the row is this attempt's own (an earlier version wrote one at every success)
        out = []
        for r in rows:
            started = self.d.dt(r["started_at"])
            assert started is not None
            out.append(
                Attempt(
                    job_id=int(r["job_id"]),
                    number=int(r["number"]),
                    worker_id=r["worker_id"],
                    host=r["host"] or "",
                    pid=r["pid"],
                    started_at=started,
                    stopped_at=self.d.dt(r["stopped_at"]),
                    exit_code=r["exit_code"],
                    reason=r["reason"],
                    compute_environment=r["compute_environment"],
                    counted=bool(r["counted"]),
                )
            )
        return out

    def job_queue_position(self, job: Job) -> int:
        """How many runnable jobs of the same queue are ahead of ``job``."""
        with self._read() as tx:
            row = tx.one(
                "SELECT COUNT(*) AS n FROM jobs WHERE queue = ? AND state = 'RUNNABLE'"
                " AND (priority > ? OR (priority = ? AND id < ?))",
                (job.queue, job.priority, job.priority, job.id),
            )
        return int(row["n"]) if row else 0

    def job_count_runnable(self, queues: Sequence[str]) -> int:
        """How many jobs of ``queues`` are runnable (those of higher priority than a waiting
        job's queue are ahead of it too)."""
        if not queues:
            return 0
        with self._read() as tx:
            row = tx.one(
                "SELECT COUNT(*) AS n FROM jobs WHERE state = 'RUNNABLE'"
                f" AND queue IN ({', '.join('?' for _ in queues)})",
                tuple(queues),
            )
        return int(row["n"]) if row else 0

    # -- claiming ---------------------------------------------------------------------------
    def job_claim(self, req: ClaimRequest, now: datetime) -> list[Job]:
        """Claim up to ``req.limit`` runnable jobs that fit, with a lease; promote due jobs first."""
        fast = self._claim_fast(req, now)
        if fast is not None:
            return fast
        woken: set[str] = set()
        with self._worker_write() as tx:
            rows = self._claim(tx, req, now, woken)
        if woken:
            self.wake()
        return self._claimed_jobs(rows, req, req.environment, now)

    def _claim_fast(self, req: ClaimRequest, now: datetime) -> list[Job] | None:
        """``job_claim`` in fewer statements where a backend can (an idle worker's claim after a
        wake-up, on its latency path): the jobs, or None to take the general path."""
        return None

    # the configuration ``_claim_line`` and ``_claim`` read, with its fingerprint (one
    # statement, one snapshot): fingerprint, name, max_vcpus, max_memory_mb, enabled, then per
    # queue (NULLs when there is none) name, priority, enabled, environments; parameters:
    # environment twice
    _CLAIM_PLAN = ""

    def _claim_line(self, req: ClaimRequest) -> tuple[Any, tuple[str, ...]]:
        """The configuration's fingerprint (``_CLAIM_PLAN``) and, when ``req``'s queues form one
        line (one priority, ``req``'s environment the first of each) in an enabled environment
        without limits — where ``_claim`` takes the first jobs in line with one statement and
        no capacity checks — their names (else none). Cached by request until the fingerprint
        a fast claim sees differs; a plan without a line is read again every few seconds, and
        by every claim that takes the general path (``_claim`` reads the same rows)."""
        key = (req.environment, req.queues)
        plan = self._claim_plans.get(key)
        if plan is not None and (plan[1] or time.monotonic() - plan[2] < 5.0):
            return plan[0], plan[1]
        with self._read() as tx:
            rows = tx.q(self._CLAIM_PLAN, (req.environment, req.environment))
        return self._plan(req, rows)

    def _plan(self, req: ClaimRequest, rows: list[Row]) -> tuple[Any, tuple[str, ...]]:
        """``_claim_line``'s plan from the rows of ``_CLAIM_PLAN``, cached."""
        names: tuple[str, ...] = ()
        fp = rows[0]["fp"] if rows else None
        if (
            rows
            and bool(rows[0]["enabled"])
            and rows[0]["max_vcpus"] is None
            and rows[0]["max_memory_mb"] is None
        ):
            line = [
                (r["q_name"], int(r["q_priority"]), self.d.unjs(r["q_environments"]))
                for r in rows
                if r["q_name"] is not None
                and bool(r["q_enabled"])
                and (req.queues is None or r["q_name"] in req.queues)
            ]
            line = [q for q in line if req.environment in q[2]]
            if (
                line
                and len({p for _, p, _ in line}) == 1
                and all(envs[0] == req.environment for *_, envs in line)
            ):
                names = tuple(sorted(n for n, _, _ in line))
        self._claim_plans[(req.environment, req.queues)] = (fp, names, time.monotonic())
        return fp, names

    def _claim_stale(self, req: ClaimRequest) -> None:
        """A fast claim saw another fingerprint: plan again next time."""
        self._claim_plans.pop((req.environment, req.queues), None)

    def job_finish_and_claim(
        self, finishes: Sequence[Finish], req: ClaimRequest, now: datetime
    ) -> tuple[list[bool], list[Job]]:
        """``job_finish_many`` then ``job_claim``, in one transaction (a worker's batch: one commit).

        The claimed jobs are built after the commit: on SQLite the write lock of every process
        is held for the transaction, so Python work inside it serialises the workers."""
        with self._waking(worker=True) as (tx, woken):
            applied = self._finish_many(tx, finishes, now, woken)
            rows = self._claim(tx, req, now, woken)
        return applied, self._claimed_jobs(rows, req, req.environment, now)

    def _claim(self, tx: Tx, req: ClaimRequest, now: datetime, woken: set[str]) -> list[Sequence[Any]]:
        """Start what the request may take; the jobs' ``CLAIMED`` rows, in line order."""
        d = self.d
        self._maybe_promote(tx, now, woken)
        if req.limit <= 0:
            return []
        # the environment and every queue in one read
        # (the rows of a claim plan: a claim that came here because the plan had no line
        # brings it up to date, e.g. once a disabled queue is enabled)
        cfg = tx.q(self._CLAIM_PLAN, (req.environment, req.environment))
        self._plan(req, cfg)
        if not cfg or not bool(cfg[0]["enabled"]):
            return []
        env = self._env(cfg[0])
        limited = env.max_vcpus is not None or env.max_memory_mb is not None
        if limited and d.for_update:
            # capacity is checked against running jobs: claimers of a limited environment
            # take turns (an unlimited one needs no lock, so its workers never wait)
            env_row = tx.one(
                "SELECT * FROM compute_environments WHERE name = ?" + d.for_update, (req.environment,)
            )
            if env_row is None or not bool(env_row["enabled"]):
                return []
            env = self._env(env_row)
            limited = env.max_vcpus is not None or env.max_memory_mb is not None
        queues = [
            q
            for q in (
                Queue(
                    name=r["q_name"],
                    priority=int(r["q_priority"]),
                    enabled=bool(r["q_enabled"]),
                    environments=tuple(d.unjs(r["q_environments"])),
                )
                for r in cfg
                if r["q_name"] is not None
            )
            if q.enabled and env.name in q.environments and (req.queues is None or q.name in req.queues)
        ]
        if not queues:
            return []
        queues.sort(key=lambda q: (-q.priority, q.name))
        free_v, free_m = float("inf"), float("inf")
        if limited:
            used = tx.one(
                "SELECT COALESCE(SUM(vcpus), 0) AS v, COALESCE(SUM(memory_mb), 0) AS m FROM jobs"
                f" WHERE compute_environment = ? AND state IN {ACTIVE}",
                (env.name,),
            )
            assert used is not None
            if env.max_vcpus is not None:
                free_v = _vcpus(env.max_vcpus - float(used["v"]))
            if env.max_memory_mb is not None:
                free_m = env.max_memory_mb - float(used["m"])
        earlier = self._earlier_capacity(tx, queues, env.name, now)
        jobs: list[Sequence[Any]] = []
        remaining = req.limit
        # queues of equal priority form one line: job priority, then FIFO, across all of them
        groups: dict[int, list[str]] = {}
        for q in queues:
            groups.setdefault(q.priority, []).append(q.name)
        held = False  # a job waits here for capacity to free: nothing of lower priority starts
        for names in groups.values():
            if remaining <= 0 or held:
                break
            in_queues = f"queue IN ({', '.join('?' * len(names))}) AND state = 'RUNNABLE'"
            if not limited and not any(n in earlier for n in names):
                # nothing to filter: the first ``remaining`` jobs in line, in one statement
                got = self._start_jobs(
                    tx,
                    d.in_subquery(
                        "id",
                        f"SELECT id FROM jobs WHERE {in_queues} ORDER BY priority DESC, id LIMIT ?"
                        + d.skip_locked,
                    ),
                    (*names, remaining),
                    req,
                    env.name,
                    now,
                )
                jobs.extend(got)
                remaining -= len(got)
                continue
            # jobs bigger than what is free are filtered in SQL, so that any number of them
            # queued ahead cannot hide a smaller job that fits
            fits, fit_params = "", []
            if free_v != float("inf"):
                fits += " AND vcpus <= ?"
                fit_params.append(free_v)
            if free_m != float("inf"):
                fits += " AND memory_mb <= ?"
                fit_params.append(free_m)
            hold = self._held_for(
                tx, env, [n for n in names if not earlier.get(n)], free_v, free_m, remaining
            )
            if hold is not None:
                # a job near the head of the line that only this environment takes is too big
                # for what is free now: what frees is kept for it, not taken by jobs of lower
                # priority (job priority here, queue priority after); equal priority still fits in
                fits += " AND priority >= ?"
                fit_params.append(hold)
                held = True
            picked: list[int] = []
            after: tuple[int, int] | None = None  # (priority, id) of the last row read
            # pages on while jobs left to an earlier environment fill them: those queued ahead
            # cannot hide a job only this environment takes (a few pages; what is still
            # hidden waits for the next claim, when the earlier environment has taken some)
            for _ in range(_CLAIM_PAGES):
                page = remaining * 4 + 16
                beyond: str = ""
                beyond_params: tuple[int, ...] = ()
                if after is not None:
                    beyond = " AND (priority < ? OR (priority = ? AND id > ?))"
                    beyond_params = (after[0], after[0], after[1])
                rows = tx.q(
                    f"SELECT id, queue, priority, vcpus, memory_mb FROM jobs WHERE {in_queues}{fits}{beyond}"
                    " ORDER BY priority DESC, id LIMIT ?" + d.skip_locked,
                    (*names, *fit_params, *beyond_params, page),
                )
                left = False  # a job of this page was left to an earlier environment
                for r in rows:
                    v, m = float(r["vcpus"]), int(r["memory_mb"])
                    if v > free_v or m > free_m:
                        continue
                    if any(fv >= v and fm >= m for fv, fm in earlier.get(r["queue"], ())):
                        left = True
                        continue  # an earlier environment of this queue has room: leave it there
                    picked.append(int(r["id"]))
                    free_v = _vcpus(free_v - v)
                    free_m -= m
                    remaining -= 1
                    if remaining <= 0:
                        break
                if remaining <= 0 or len(rows) < page or not left:
                    break
                after = (int(rows[-1]["priority"]), int(rows[-1]["id"]))
            if picked:
                jobs.extend(self._start_jobs(tx, d.id_in("id"), (d.ids(picked),), req, env.name, now))
        return jobs

    def _start_jobs(
        self,
        tx: Tx,
        which: str,
        params: Sequence[Any],
        req: ClaimRequest,
        env_name: str,
        now: datetime,
    ) -> list[Sequence[Any]]:
        """Start the RUNNABLE jobs selected by the SQL condition ``which`` (``_START_JOBS``):
        lease, the attempt's host/pid/start on the job row (its attempts row is written when it
        ends), event. Returns their ``CLAIMED`` rows in line order (priority,
        then id), for ``_claimed_jobs``. Each backend does it in as few statements as it can."""
        raise NotImplementedError

    def _claimed_jobs(
        self, rows: Sequence[Sequence[Any]], req: ClaimRequest, env_name: str, now: datetime
    ) -> list[Job]:
        """The jobs ``_start_jobs`` started, as ``_job`` would read them back: what the claim
        set comes from the request, the rest from the ``CLAIMED`` rows."""
        d = self.d
        ts = d.ts(now)
        stamp = _req(d.dt(ts))
        lease = d.dt(d.ts(plus(now, req.lease_seconds)))
        reason = f"started on worker {req.worker_id}"
        dt, unjs = d.dt, d.unjs
        seen_raw: Any = None
        seen_dt: datetime | None = None
        jobs: list[Job] = []
        for (
            job_id,
            queue,
            name,
            definition,
            revision,
            kind,
            spec,
            priority,
            created_raw,
            run_at,
            started_raw,
            finished_at,
            attempt,
            counted,
            payload,
            payload_ref,
            result,
            tags,
            unique_key,
            idempotency_key,
            parent_id,
            array_size,
            array_index,
            array_parent_id,
            depends_on,
        ) in rows:
            # a batch submitted together shares its creation time: convert it once
            if created_raw != seen_raw or seen_dt is None:
                seen_raw, seen_dt = created_raw, _req(dt(created_raw))
            # positionally: 31 keyword arguments cost ~2 µs a job to match by name
            jobs.append(
                Job(
                    job_id,  # id (the drivers give ints)
                    queue,
                    name,
                    definition,
                    revision,  # definition_revision
                    _spec(spec, d),  # spec
                    JobState.RUNNING if kind == "function" else JobState.STARTING,  # state
                    reason,  # status_reason
                    priority,
                    seen_dt,  # created_at
                    stamp,  # updated_at
                    None if run_at is None else dt(run_at),  # run_at
                    stamp if started_raw == ts else dt(started_raw),  # started_at
                    None if finished_at is None else dt(finished_at),  # finished_at
                    attempt,
                    counted,  # attempts_counted
                    None if payload is None else unjs(payload),  # payload
                    payload_ref,
                    None if result is None else unjs(result),  # result
                    tuple(unjs(tags) or ()) if tags is not None else (),  # tags
                    unique_key,
                    idempotency_key,
                    parent_id,
                    array_size,
                    array_index,
                    array_parent_id,
                    tuple(unjs(depends_on) or ()) if depends_on is not None else (),  # depends_on
                    req.worker_id,  # worker_id
                    lease,  # lease_expires_at
                    env_name,  # compute_environment
                    False,  # terminate_requested
                )
            )
        return jobs

    def _held_for(
        self, tx: Tx, env: ComputeEnvironment, names: list[str], free_v: float, free_m: float, remaining: int
    ) -> int | None:
        """The job priority of the first job among the next few in line of queues ``names``
        that fits environment ``env`` but not its free capacity (None: none does). Only the
        head of the line is read (the jobs a claim looks at), so the cost stays flat however
        many are queued."""
        if not names or (free_v == float("inf") and free_m == float("inf")):
            return None
        cap_v = 1e18 if env.max_vcpus is None else env.max_vcpus
        cap_m = 2**62 if env.max_memory_mb is None else env.max_memory_mb
        row = tx.one(
            "SELECT h.priority FROM (SELECT priority, id, vcpus, memory_mb FROM jobs"
            f" WHERE queue IN ({', '.join('?' * len(names))}) AND state = 'RUNNABLE'"
            " ORDER BY priority DESC, id LIMIT ?) AS h"
            " WHERE (h.vcpus > ? OR h.memory_mb > ?) AND h.vcpus <= ? AND h.memory_mb <= ?"
            " ORDER BY h.priority DESC, h.id LIMIT 1",
            (*names, remaining * 4 + 16, min(free_v, 1e18), min(free_m, 2**62), cap_v, cap_m),
        )
        return None if row is None else int(row["priority"])

    def _earlier_capacity(
        self, tx: Tx, queues: list[Any], env_name: str, now: datetime
    ) -> dict[str, list[tuple[float, float]]]:
        """For queues where ``env_name`` is a fallback: free (vcpus, memory) of each earlier
        environment that can take the queue's jobs now: enabled, with a live worker that
        serves the queue, and with a worker slot free (its workers' concurrency is not all
        taken). A job that fits one of them is left there; otherwise it falls back here."""
        need: dict[str, list[str]] = {}
        for q in queues:
            position = q.environments.index(env_name)
            if position > 0:
                need[q.name] = list(q.environments[:position])
        if not need:
            return {}
        envs = {r["name"]: self._env(r) for r in tx.q("SELECT * FROM compute_environments")}
        serving: dict[str, list[tuple[str, ...]]] = {}  # environment: the queues of each live worker
        slots: dict[str, int] = {}  # environment: its live workers' concurrency
        for r in tx.q(
            "SELECT environment, queues, concurrency FROM workers WHERE stopped_at IS NULL AND heartbeat_at > ?",
            (self.d.ts(now - WORKER_LIVENESS),),
        ):
            serving.setdefault(r["environment"], []).append(tuple(self.d.unjs(r["queues"])))
            slots[r["environment"]] = slots.get(r["environment"], 0) + int(r["concurrency"])
        used = {
            r["compute_environment"]: (float(r["v"] or 0), float(r["m"] or 0), int(r["n"]))
            for r in tx.q(
                "SELECT compute_environment, SUM(vcpus) AS v, SUM(memory_mb) AS m, COUNT(*) AS n FROM jobs"
                f" WHERE state IN {ACTIVE} GROUP BY compute_environment"
            )
        }
        out: dict[str, list[tuple[float, float]]] = {}
        for qname, names in need.items():
            caps = []
            for name in names:
                e = envs.get(name)
                if e is None or not e.enabled:
                    continue
                # a worker serves the queue when it names it or serves every queue (no --queues)
                if not any(not served or qname in served for served in serving.get(name, ())):
                    continue
                uv, um, running = used.get(name, (0.0, 0.0, 0))
                if running >= slots.get(name, 0):
                    continue  # every slot of its workers is taken: capacity left there waits for nobody
                fv = float("inf") if e.max_vcpus is None else _vcpus(e.max_vcpus - uv)
                fm = float("inf") if e.max_memory_mb is None else e.max_memory_mb - um
                caps.append((fv, fm))
            out[qname] = caps
        return out

    def _maybe_promote(self, tx: Tx, now: datetime, woken: set[str]) -> None:
        """Promote due jobs, unless that ran less than PROMOTE_EVERY ago and nothing known is due.

        Every claim used to run it: a write on the hottest path. Jobs made SUBMITTED through
        this store object lower the hint at once; ones from other processes wait at most
        PROMOTE_EVERY longer (store clock, so tests that move a FrozenClock see no change).
        """
        last, hint, seq = self._promoted_at, self._due_hint, self._due_seq
        if last is not None and last <= now < last + PROMOTE_EVERY and (hint is None or now < hint):
            return
        moved = self._promote_due(tx, now, woken)
        if moved >= PROMOTE_BATCH:
            nxt: datetime | None = now  # more are due: promote again next time
        else:
            row = tx.one(NEXT_DUE.format(due_index=self.d.due_index))
            nxt = self.d.dt(row["m"]) if row else None
        self._read_next_due(nxt, seq)
        self._promoted_at = now

    def _promote_due(self, tx: Tx, now: datetime, woken: set[str]) -> int:
        d = self.d
        rows = tx.q(
            "UPDATE jobs SET state = 'RUNNABLE', status_reason = 'waiting for a worker', updated_at = ?"
            " WHERE id IN ("
            + DUE_JOBS.format(due_index=d.due_index)
            + d.skip_locked
            + ") AND state = 'SUBMITTED' RETURNING id, queue",
            (d.ts(now), d.ts(now), PROMOTE_BATCH),
        )
        if rows:
            self._events(
                tx,
                [
                    (
                        "job",
                        str(r["id"]),
                        "job.state",
                        {"from": "SUBMITTED", "to": "RUNNABLE", "reason": "run time reached"},
                    )
                    for r in rows
                ],
                now,
            )
            woken.update(r["queue"] for r in rows)
        return len(rows)

    def job_mark_running(self, items: Sequence[tuple[int, int, int | None]], now: datetime) -> None:
        """Child processes started: (job_id, attempt, pid) move STARTING -> RUNNING."""
        if not items:
            return
        ts = self.d.ts(now)
        with self._write() as tx:
            moved = []
            for job_id, attempt, pid in items:
                if tx.x(
                    "UPDATE jobs SET state = 'RUNNING', updated_at = ?, attempt_pid = ? WHERE id = ? AND attempt = ?"
                    " AND state = 'STARTING'",
                    (ts, pid, job_id, attempt),
                ):
                    moved.append((job_id, attempt, pid))
            tx.many(  # an attempt opened before migration 0008 has its row already
                "UPDATE attempts SET pid = ? WHERE job_id = ? AND number = ?",
                [(p, j, a) for j, a, p in moved],
            )
            self._events(
                tx,
                [
                    (
                        "job",
                        str(j),
                        "job.state",
                        {"from": "STARTING", "to": "RUNNING", "attempt": a, "pid": p},
                    )
                    for j, a, p in moved
                ],
                now,
            )

    # -- leases -----------------------------------------------------------------------------
    def lease_renew(self, worker_id: str, lease_seconds: float, now: datetime) -> LeaseStatus:
        """Extend every lease the worker holds; also its heartbeat. Says which jobs to terminate."""
        d = self.d
        with self._worker_write() as tx:
            tx.x("UPDATE workers SET heartbeat_at = ? WHERE id = ?", (d.ts(now), worker_id))
            rows = tx.q(
                f"UPDATE jobs SET lease_expires_at = ? WHERE worker_id = ? AND state IN {ACTIVE}"
                " RETURNING id, attempt, terminate_requested",
                (d.ts(plus(now, lease_seconds)), worker_id),
            )
        return LeaseStatus(
            attempts={int(r["id"]): int(r["attempt"]) for r in rows},
            terminate=frozenset(int(r["id"]) for r in rows if r["terminate_requested"]),
        )

    def job_rescue_expired(self, now: datetime, limit: int = 500) -> list[int]:
        """Fail the attempts whose lease expired ("worker lost"); the retry strategy decides what follows."""
        d = self.d
        woken: set[str] = set()
        with self._write() as tx:
            rows = tx.q(
                f"SELECT id, attempt, worker_id, terminate_requested, lease_expires_at FROM jobs WHERE state IN {ACTIVE}"
                " AND lease_expires_at < ? ORDER BY lease_expires_at LIMIT ?" + d.skip_locked,
                (d.ts(now), limit),
            )
            finishes = [
                Finish(
                    job_id=int(r["id"]),
                    attempt=int(r["attempt"]),
                    worker_id=r["worker_id"],
                    kind=OutcomeKind.TERMINATED if r["terminate_requested"] else OutcomeKind.FAILED,
                    reason="terminated (worker lost)" if r["terminate_requested"] else "worker lost",
                )
                for r in rows
            ]
            done = [f.job_id for f in finishes if self._finish_one(tx, f, now, woken)]
            if woken:
                d.notify_jobs(tx, woken)
        if woken:
            self.wake()
        return done

    # -- finishing --------------------------------------------------------------------------
    def job_finish_many(self, finishes: Sequence[Finish], now: datetime) -> list[bool]:
        """Record attempt outcomes; each is applied only if the worker still holds that attempt."""
        with self._waking(worker=True) as (tx, woken):
            return self._finish_many(tx, finishes, now, woken)

    def _finish_many(self, tx: Tx, finishes: Sequence[Finish], now: datetime, woken: set[str]) -> list[bool]:
        applied: dict[int, bool] = {}
        fast: dict[str, list[Finish]] = {}
        slow: list[Finish] = []
        for f in finishes:
            if f.kind is OutcomeKind.SUCCEEDED:
                fast.setdefault(f.worker_id, []).append(f)
            else:
                slow.append(f)
        for worker_id, group in fast.items():
            rows = self._succeed_jobs(tx, worker_id, group, now)
            got = {int(r["id"]) for r in rows}
            follow = [
                _done(r, "SUCCEEDED")
                for r in rows
                if r["unique_key"] or r["has_dependants"] or r["array_parent_id"]
            ]
            if follow:
                self._settle(tx, follow, now, woken)
            for f in group:
                if f.job_id in got:
                    applied[f.job_id] = True
                else:
                    slow.append(f)  # STARTING, terminate requested, or not ours any more: one by one
        for f in slow:
            if f.job_id not in applied:
                applied[f.job_id] = self._finish_one(tx, f, now, woken)
        return [applied.get(f.job_id, False) for f in finishes]

    def _succeed_jobs(self, tx: Tx, worker_id: str, group: Sequence[Finish], now: datetime) -> list[Row]:
        """Move the RUNNING attempts of ``group`` (one worker's successes) to SUCCEEDED, with results,
        attempts and events. Returns the rows moved: id, attempt and what ``_done`` needs.
        Each backend does it in as few statements as it can."""
        raise NotImplementedError

    def _finish_one(self, tx: Tx, f: Finish, now: datetime, woken: set[str]) -> bool:
        d = self.d
        row = tx.one(
            f"SELECT * FROM jobs WHERE id = ? AND attempt = ? AND worker_id = ? AND state IN {ACTIVE}"
            + d.for_update,
            (f.job_id, f.attempt, f.worker_id),
        )
        if row is None:
            return False
        job = self._job(row)
        kind = f.kind
        reason = f.reason
        if job.terminate_requested:
            # a user asked to terminate: whatever the attempt reports (even success), it ends there
            kind = OutcomeKind.TERMINATED
        if job.terminate_requested and kind is OutcomeKind.TERMINATED and not reason.startswith("terminated"):
            reason = "terminated" + (f" ({reason})" if reason else "")
        counted = True
        run_at = None
        if kind is OutcomeKind.SUCCEEDED:
            state, status = "SUCCEEDED", "succeeded"
        elif kind is OutcomeKind.CANCEL:
            state, status = "CANCELLED", reason or "cancelled by the job"
        elif kind is OutcomeKind.TERMINATED:
            state, status = "FAILED", reason or "terminated"
        elif kind is OutcomeKind.SNOOZE:
            counted = False
            delay = f.delay_seconds or 0.0
            run_at = plus(now, delay)
            state, status = ("SUBMITTED" if delay > 0 else "RUNNABLE"), reason or f"snoozed for {delay:g} s"
        else:
            decision = retry.decide(
                job.spec.retry,
                job.attempts_counted,
                f.exit_code,
                reason,
                requested_delay=f.delay_seconds if kind is OutcomeKind.RETRY else None,
                seed=str(job.id),
            )
            if decision.retry:
                run_at = plus(now, decision.delay_seconds)
                state = "SUBMITTED" if decision.delay_seconds > 0 else "RUNNABLE"
                status = f"attempt {job.attempt} failed: {reason}; {decision.why}" + (
                    f" in {decision.delay_seconds:.1f} s" if decision.delay_seconds > 0 else ""
                )
            else:
                state = "FAILED"
                status = reason if job.spec.retry.attempts <= 1 else f"{reason} ({decision.why})"
        terminal = state in ("SUCCEEDED", "FAILED", "CANCELLED")
        if state == "SUBMITTED" and run_at is not None:
            self._due_at(run_at)
        ts = d.ts(now)
        tx.x(
            "UPDATE jobs SET state = ?, status_reason = ?, updated_at = ?, finished_at = ?, run_at = COALESCE(?, run_at),"
            " attempts_counted = attempts_counted - ?, lease_expires_at = NULL, terminate_requested = ?,"
            " result = COALESCE(?, result) WHERE id = ?",
            (
                state,
                status,
                ts,
                ts if terminal else None,
                d.ts(run_at),
                0 if counted else 1,
                False,
                d.js(f.result) if f.result is not None else None,
                job.id,
            ),
        )
        if state != "SUCCEEDED":  # the job's row holds it (_CURRENT_ATTEMPT)
            _end_attempt(
                tx, job.id, f.attempt, f.worker_id, row, ts, f.exit_code, reason or state.lower(), counted
            )
        self._events(
            tx,
            [
                (
                    "job",
                    str(job.id),
                    "job.state",
                    {
                        "from": job.state.value,
                        "to": state,
                        "reason": status,
                        "attempt": f.attempt,
                        "exit_code": f.exit_code,
                    },
                )
            ],
            now,
        )
        if state == "RUNNABLE":
            woken.add(job.queue)
        if terminal:
            self._settle(tx, [_done(row, state)], now, woken)
        return True

    # -- what follows a terminal state ------------------------------------------------------
    def _settle(self, tx: Tx, items: list[_Done], now: datetime, woken: set[str]) -> None:
        """Release unique keys, release or fail dependants, count array children; cascades."""
        d = self.d
        ts = d.ts(now)
        work = deque(items)
        while work:
            it = work.popleft()
            if it.unique_key:
                if it.state == "SUCCEEDED" and it.unique_ttl:
                    tx.x(
                        "UPDATE unique_keys SET expires_at = ? WHERE key = ? AND job_id = ?",
                        (d.ts(plus(now, it.unique_ttl)), it.unique_key, it.id),
                    )
                else:
                    tx.x("DELETE FROM unique_keys WHERE key = ? AND job_id = ?", (it.unique_key, it.id))
            if it.has_dependants:
                if it.state == "SUCCEEDED":
                    rows = tx.q(
                        "UPDATE jobs SET deps_pending = deps_pending - 1, updated_at = ? WHERE state = 'PENDING'"
                        " AND id IN (SELECT job_id FROM job_dependencies WHERE depends_on_id = ?)"
                        " RETURNING id, deps_pending, run_at, queue",
                        (ts, it.id),
                    )
                    ready = [r for r in rows if int(r["deps_pending"]) <= 0]
                    released: list[tuple[str, str, str, dict[str, Any]]] = []
                    for r in ready:
                        run_at = d.dt(r["run_at"])
                        later = run_at is not None and run_at > now
                        state = "SUBMITTED" if later else "RUNNABLE"
                        reason = (
                            f"scheduled for {run_at.isoformat()}"
                            if later and run_at
                            else "waiting for a worker"
                        )
                        tx.x(
                            "UPDATE jobs SET state = ?, status_reason = ? WHERE id = ? AND state = 'PENDING'",
                            (state, reason, r["id"]),
                        )
                        if not later:
                            woken.add(r["queue"])
                        elif run_at is not None:
                            self._due_at(run_at)
                        released.append(
                            (
                                "job",
                                str(r["id"]),
                                "job.state",
                                {
                                    "from": "PENDING",
                                    "to": state,
                                    "reason": f"dependency job {it.id} succeeded",
                                },
                            )
                        )
                    self._events(tx, released, now)
                else:
                    reason = f"dependency job {it.id} ended {it.state}"
                    rows = tx.q(
                        "UPDATE jobs SET state = 'FAILED', status_reason = ?, updated_at = ?, finished_at = ?"
                        " WHERE state = 'PENDING' AND array_size IS NULL"
                        " AND id IN (SELECT job_id FROM job_dependencies WHERE depends_on_id = ?)"
                        " RETURNING id, unique_key, unique_ttl, has_dependants, array_parent_id",
                        (reason, ts, ts, it.id),
                    )
                    self._events(
                        tx,
                        [
                            (
                                "job",
                                str(r["id"]),
                                "job.state",
                                {"from": "PENDING", "to": "FAILED", "reason": reason},
                            )
                            for r in rows
                        ],
                        now,
                    )
                    work.extend(_done(r, "FAILED") for r in rows)
            if it.array_parent_id:
                parent = self._count_children(
                    tx, it.array_parent_id, 1, 0 if it.state == "SUCCEEDED" else 1, now, woken
                )
                if parent is not None:
                    work.append(parent)

    def _count_children(
        self, tx: Tx, parent_id: int, done: int, failed: int, now: datetime, woken: set[str]
    ) -> _Done | None:
        """Count finished children of an array job; the last one settles the parent."""
        d = self.d
        ts = d.ts(now)
        row = tx.one(
            "UPDATE jobs SET array_done = array_done + ?, array_failed = array_failed + ?, updated_at = ?,"
            " status_reason = CASE WHEN terminate_requested THEN status_reason ELSE 'array job: '"
            " || CAST(array_done + ? AS TEXT) || ' of ' || CAST(array_size AS TEXT) || ' children finished' END"
            " WHERE id = ? AND state = 'PENDING'"
            " RETURNING id, array_done, array_failed, array_size, unique_key, unique_ttl, has_dependants,"
            " array_parent_id, terminate_requested, status_reason",
            (done, failed, ts, done, parent_id),
        )
        if row is None or int(row["array_done"]) < int(row["array_size"]):
            return None
        nfailed = int(row["array_failed"])
        if row["terminate_requested"]:  # cancelled (``_stop_in``): it ends as asked
            state, reason = "CANCELLED", str(row["status_reason"]).removeprefix(_CANCELLING)
        elif nfailed == 0:
            state, reason = "SUCCEEDED", "all children succeeded"
        else:
            state, reason = "FAILED", f"{nfailed} of {row['array_size']} children did not succeed"
        tx.x(
            "UPDATE jobs SET state = ?, status_reason = ?, finished_at = ?, terminate_requested = ?"
            " WHERE id = ? AND state = 'PENDING'",
            (state, reason, ts, False, parent_id),
        )
        self._events(
            tx,
            [("job", str(parent_id), "job.state", {"from": "PENDING", "to": state, "reason": reason})],
            now,
        )
        return _done(row, state)

    # -- user actions -----------------------------------------------------------------------
    def job_cancel(self, job_id: int, reason: str, now: datetime) -> tuple[Job, bool]:
        """Cancel a job that has not started (an array job: its waiting children). Idempotent."""
        return self._stop(job_id, reason or "cancelled by user", now, terminate=False)

    def job_terminate(self, job_id: int, reason: str, now: datetime) -> tuple[Job, bool]:
        """Terminate: a running job's process group is killed by its worker; a waiting job fails."""
        return self._stop(job_id, reason or "terminated by user", now, terminate=True)

    def _stop(self, job_id: int, reason: str, now: datetime, terminate: bool) -> tuple[Job, bool]:
        woken: set[str] = set()
        with self._write() as tx:
            job, changed = self._stop_in(tx, job_id, reason, now, terminate, woken)
            if woken:
                self.d.notify_jobs(tx, woken)
        if woken:
            self.wake()
        return job, changed

    def job_stop_many(
        self, job_ids: Sequence[int], reason: str, now: datetime, terminate: bool, dry_run: bool = False
    ) -> list[tuple[int, bool, str]]:
        """``job_cancel`` (with ``terminate``: ``job_terminate``) of each of ``job_ids`` (in
        1..2**62) in one transaction. Per job, in the order given: (id, whether it changed, ""
        or why it was left alone: what ``job_cancel`` would have raised, the job unknown or
        running). A job left alone is not written at all. Jobs that are not array jobs are
        changed by one statement for all (one job at a time cost PostgreSQL ~1 ms each).
        ``dry_run``: the same answer from the same statements, the transaction rolled back."""
        d = self.d
        reason = reason or ("terminated by user" if terminate else "cancelled by user")
        done: dict[int, tuple[bool, str]] = {}
        woken: set[str] = set()
        with _rolled_back(dry_run), self._write() as tx:
            stopped = self._stop_where(tx, d.id_in("id"), d.ids(job_ids), reason, now, terminate, woken)
            done.update((i, (True, "")) for i in stopped)
            # the others one by one, as the single action: array jobs, running jobs (cancel
            # refuses them), finished and unknown ones
            for job_id in job_ids:
                if job_id in done:
                    continue
                try:
                    _, changed = self._stop_in(tx, job_id, reason, now, terminate, woken)
                except (errors.NotFound, errors.Conflict) as exc:
                    done[job_id] = (False, str(exc))
                else:
                    done[job_id] = (changed, "")
            if dry_run:
                raise _RollBack
            if woken:
                d.notify_jobs(tx, woken)
        if woken and not dry_run:
            self.wake()
        return [(job_id, *done[job_id]) for job_id in job_ids]

    def _stop_in(
        self, tx: Tx, job_id: int, reason: str, now: datetime, terminate: bool, woken: set[str]
    ) -> tuple[Job, bool]:
        """``_stop`` inside ``tx``: the job after, and whether it changed; the queues of the
        dependants it made runnable are added to ``woken``. Raises ``UnknownJob`` or
        ``Conflict`` before it writes anything."""
        row = tx.one("SELECT * FROM jobs WHERE id = ?" + self.d.for_update, (job_id,))
        if row is None:
            raise errors.UnknownJob(job_id)
        job = self._job(row)
        if job.state.terminal:
            return job, False
        if job.state.active and not terminate:
            raise errors.Conflict(f"job {job_id} is {job.state.value}; use terminate to stop a running job")
        marked = bool(job.array_size) and not terminate and self._mark_cancelling(tx, job.id, reason, now)
        # an array job: its children
        where = "array_parent_id = ?" if job.array_size else "id = ?"
        changed = bool(self._stop_where(tx, where, job.id, reason, now, terminate, woken)) or marked
        fresh = tx.one("SELECT * FROM jobs WHERE id = ?", (job_id,))
        assert fresh is not None
        return self._job(fresh), changed

    def _stop_where(
        self, tx: Tx, where: str, param: Any, reason: str, now: datetime, terminate: bool, woken: set[str]
    ) -> list[int]:
        """Cancel (``terminate``: fail) the waiting jobs ``where`` selects (one parameter), and
        with ``terminate`` ask its running ones to stop; their events, their dependants and
        unique keys settled (queues to wake added to ``woken``). The ids it changed, sorted."""
        ts = self.d.ts(now)
        target = "FAILED" if terminate else "CANCELLED"
        status = f"terminated: {reason}" if terminate and not reason.startswith("terminated") else reason
        # the states they leave, for their events (RETURNING gives the new one): read and
        # locked first, in id order; one that became waiting in between (PostgreSQL) has none
        was = {
            int(r["id"]): r["state"]
            for r in tx.q(
                f"SELECT id, state FROM jobs WHERE {where} AND state IN {WAITING} AND array_size IS NULL"
                " ORDER BY id" + self.d.for_update,
                (param,),
            )
        }
        rows = tx.q(
            f"UPDATE jobs SET state = ?, status_reason = ?, updated_at = ?, finished_at = ? WHERE {where}"
            f" AND state IN {WAITING} AND array_size IS NULL"
            " RETURNING id, unique_key, unique_ttl, has_dependants, array_parent_id, state",
            (target, status, ts, ts, param),
        )
        rows.sort(key=lambda r: int(r["id"]))
        self._events(
            tx,
            [
                (
                    "job",
                    str(r["id"]),
                    "job.state",
                    {"from": was.get(int(r["id"])), "to": target, "reason": status},
                )
                for r in rows
            ],
            now,
        )
        self._settle(tx, [_done(r, target) for r in rows], now, woken)
        changed = [int(r["id"]) for r in rows]
        if terminate:
            changed = sorted(changed + self._flag_terminate(tx, where, param, reason, now))
        return changed

    def _mark_cancelling(self, tx: Tx, array_id: int, reason: str, now: datetime) -> bool:
        """Mark the array job ``array_id`` cancelled: it ends CANCELLED with ``reason`` once no
        child runs (``_count_children``). Whether it was marked now."""
        return bool(
            tx.x(
                "UPDATE jobs SET terminate_requested = ?, status_reason = ?, updated_at = ?"
                " WHERE id = ? AND state = 'PENDING' AND terminate_requested = ?",
                (True, _CANCELLING + reason, self.d.ts(now), array_id, False),
            )
        )

    def _flag_terminate(self, tx: Tx, where: str, param: Any, reason: str, now: datetime) -> list[int]:
        """Ask the running jobs ``where`` selects (one parameter) to stop, with their events;
        the ids flagged now, sorted."""
        flagged = sorted(
            int(r["id"])
            for r in tx.q(
                f"UPDATE jobs SET terminate_requested = ?, status_reason = ?, updated_at = ? WHERE {where}"
                f" AND state IN {ACTIVE} AND terminate_requested = ? RETURNING id",
                (True, f"terminate requested: {reason}", self.d.ts(now), param, False),
            )
        )
        self._events(
            tx, [("job", str(i), "job.terminate_requested", {"reason": reason}) for i in flagged], now
        )
        return flagged

    def _locked_jobs(self, tx: Tx, ids: Sequence[int], columns: str) -> dict[int, Row]:
        """``columns`` (with ``id``) of the jobs ``ids`` (sorted), read and locked in id order,
        500 at a time: how a submission reads its dependencies, and a retry a job's."""
        d = self.d
        out: dict[int, Row] = {}
        for part in chunks(ids, 500):
            for r in tx.q(
                f"SELECT {columns} FROM jobs WHERE " + d.id_in("id") + " ORDER BY id" + d.for_update,
                (d.ids(part),),
            ):
                out[int(r["id"])] = r
        return out

    def job_retry(self, job_id: int, now: datetime) -> Job:
        """Run a FAILED or CANCELLED job again with a fresh set of attempts (an array job: its failed children)."""
        with self._write() as tx:
            job = self._retry_in(tx, job_id, now)
            self.d.notify_jobs(tx, {job.queue})
        self.wake()
        return job

    def job_retry_many(
        self, job_ids: Sequence[int], now: datetime, dry_run: bool = False, retried: Collection[int] = ()
    ) -> list[tuple[int, bool, str]]:
        """``job_retry`` of each of ``job_ids`` (in 1..2**62) in one transaction. Per job, in the
        order given: (id, whether it was retried, "" or why it was left alone: what
        ``job_retry`` would have raised). A job left alone is not written at all. Jobs
        without a unique key or dependencies that are not arrays are changed by one
        statement for all; the others one by one, oldest first: a dependency retried in the
        same call is then waiting again when its dependant is taken, which then waits for it.
        ``dry_run``: the same answer from the same statements, the transaction rolled back;
        ``retried``: jobs an earlier dry-run page would have retried (waited for, not refused)."""
        d = self.d
        ts = d.ts(now)
        reason = "retried by user"
        done: dict[int, tuple[bool, str]] = {}
        woken: set[str] = set()
        with _rolled_back(dry_run), self._write() as tx:
            plain = tx.q(
                f"SELECT id, state, queue FROM jobs WHERE {d.id_in('id')} AND state IN ('FAILED', 'CANCELLED')"
                " AND array_size IS NULL AND array_parent_id IS NULL AND unique_key IS NULL"
                " AND depends_on IS NULL" + d.for_update,
                (d.ids(job_ids),),
            )
            live = {name for name in sorted({r["queue"] for r in plain}) if self._lock_queue(tx, name)}
            plain = [r for r in plain if r["queue"] in live]  # the others are refused one by one
            if plain:
                plain.sort(key=lambda r: int(r["id"]))
                ids = [int(r["id"]) for r in plain]
                tx.x(_RERUN + d.id_in("id"), (reason, ts, False, d.ids(ids)))
                self._events(
                    tx,
                    [
                        (
                            "job",
                            str(r["id"]),
                            "job.state",
                            {"from": r["state"], "to": "RUNNABLE", "reason": reason},
                        )
                        for r in plain
                    ],
                    now,
                )
                woken.update(r["queue"] for r in plain)
                done.update((i, (True, "")) for i in ids)
            for job_id in sorted(set(job_ids)):  # the others one by one, as the single action
                if job_id in done:
                    continue
                try:
                    job = self._retry_in(tx, job_id, now, retried)
                except (errors.NotFound, errors.Conflict) as exc:
                    done[job_id] = (False, str(exc))
                else:
                    woken.add(job.queue)
                    done[job_id] = (True, "")
            if dry_run:
                raise _RollBack
            if woken:
                d.notify_jobs(tx, woken)
        if woken and not dry_run:
            self.wake()
        return [(job_id, *done[job_id]) for job_id in job_ids]

    def _retry_in(self, tx: Tx, job_id: int, now: datetime, retried: Collection[int] = ()) -> Job:
        """``job_retry`` inside ``tx`` (its queue not yet notified): the job after. Raises
        ``UnknownJob`` or ``Conflict`` before it writes anything. ``retried``: as in
        ``job_retry_many``."""
        d = self.d
        ts = d.ts(now)
        row = tx.one("SELECT * FROM jobs WHERE id = ?" + d.for_update, (job_id,))
        if row is None:
            raise errors.UnknownJob(job_id)
        job = self._job(row)
        if job.state not in (JobState.FAILED, JobState.CANCELLED):
            raise errors.Conflict(
                f"job {job_id} is {job.state.value}; only FAILED or CANCELLED jobs can be retried"
            )
        if job.array_parent_id is not None:
            raise errors.Conflict(
                f"job {job_id} is a child of array job {job.array_parent_id}; retry the array job"
            )
        if (
            job.array_size
            and tx.one("SELECT id FROM jobs WHERE array_parent_id = ? LIMIT 1", (job.id,)) is None
        ):
            # it failed at submission (a dependency had failed) before any child existed
            raise errors.Conflict(
                f"array job {job_id} failed before its children were created ({job.status_reason});"
                " submit it again"
            )
        if not self._lock_queue(tx, job.queue):
            raise errors.Conflict(
                f"queue {job.queue!r} of job {job_id} no longer exists; create it again to retry the job"
            )
        was: dict[int, str] = {}  # the children that run again, with the state they leave
        if job.array_size:  # the children that run again, and what each waits for
            was = {
                int(r["id"]): r["state"]
                for r in tx.q(
                    "SELECT id, state FROM jobs WHERE array_parent_id = ? AND state IN ('FAILED', 'CANCELLED')"
                    " ORDER BY id" + d.for_update,
                    (job.id,),
                )
            }
            waits = self._retry_waits(tx, job, {i: () for i in was}, retried)
        else:
            waits = self._retry_waits(tx, job, {job.id: job.depends_on}, retried)
        if job.unique_key:
            holder = self._unique_holder(tx, job.unique_key, now)
            if holder is not None and holder.id != job.id:
                raise errors.Conflict(_held(job.unique_key, holder))
            tx.x(
                "INSERT INTO unique_keys (key, job_id, expires_at) VALUES (?, ?, NULL) ON CONFLICT (key) DO NOTHING",
                (job.unique_key, job.id),
            )
        reason = "retried by user"
        ready = [i for i, pending in waits.items() if not pending]
        waiting = {i: pending for i, pending in waits.items() if pending}
        if ready:
            tx.x(_RERUN + d.id_in("id"), (reason, ts, False, d.ids(ready)))
        if waiting:
            self._add_dependencies(tx, [(i, dep) for i, pending in waiting.items() for dep in pending])
            tx.many(
                _REWAIT,
                [(_waiting_for(pending), len(pending), ts, False, i) for i, pending in waiting.items()],
            )
        if job.array_size:
            n = len(waits)
            tx.x(
                "UPDATE jobs SET state = 'PENDING', status_reason = ?, finished_at = NULL, run_at = NULL, updated_at = ?,"
                " array_done = array_done - ?, array_failed = 0, terminate_requested = ? WHERE id = ?",
                (f"array job: {n} children retried", ts, n, False, job.id),
            )
            self._events(
                tx,
                [
                    (
                        "job",
                        str(i),
                        "job.state",
                        {"from": was[i], "to": "PENDING" if i in waiting else "RUNNABLE", "reason": reason},
                    )
                    for i in sorted(waits)
                ],
                now,
            )
        self._events(
            tx,
            [
                (
                    "job",
                    str(job.id),
                    "job.state",
                    {
                        "from": job.state.value,
                        "to": "PENDING" if job.array_size or waiting else "RUNNABLE",
                        "reason": reason,
                    },
                )
            ],
            now,
        )
        fresh = tx.one("SELECT * FROM jobs WHERE id = ?", (job_id,))
        assert fresh is not None
        return self._job(fresh)

    def _retry_waits(
        self, tx: Tx, job: Job, declared: Mapping[int, Sequence[int]], retried: Collection[int] = ()
    ) -> dict[int, list[int]]:
        """For each job about to run again (the keys of ``declared``: ``job`` itself, or its
        children), the dependencies it must wait for: its declared ones and those in
        job_dependencies (every one that had not succeeded when it was created) that have not
        succeeded, the jobs run again here among them. Raises ``Conflict`` naming a dependency
        that ended FAILED or CANCELLED: retry that one first, or both in one call
        (``job_retry_many`` takes dependencies first).

        A dependency pruned since (only jobs long finished are) had succeeded if the job ever
        ran: a job starts only once all it depends on has succeeded, and a succeeded job never
        changes again. A job that never ran (failed or cancelled while it waited) may have
        been failed by that very dependency: its retry is refused, the end being unknown."""
        d = self.d
        rerun = set(declared)
        edges = {i: list(dict.fromkeys(declared[i])) for i in declared}
        for part in chunks(sorted(rerun), 500):
            for r in tx.q(
                "SELECT job_id, depends_on_id FROM job_dependencies WHERE "
                + d.id_in("job_id")
                + " ORDER BY job_id, depends_on_id",
                (d.ids(part),),
            ):
                got = edges[int(r["job_id"])]
                if int(r["depends_on_id"]) not in got:
                    got.append(int(r["depends_on_id"]))
        # read and locked, as a submission does: one that ends meanwhile is seen ended
        targets = sorted({dep for deps in edges.values() for dep in deps} - rerun)
        found = self._locked_jobs(tx, targets, "id, state, array_parent_id, array_index")
        ran: dict[int, bool] | None = None  # whether each job run again here has run before
        waits: dict[int, list[int]] = {}
        for i in sorted(edges):
            pending: list[int] = []
            for dep in edges[i]:
                row = found.get(dep)
                if row is None and dep not in rerun and dep not in retried:  # pruned since
                    if ran is None:
                        ran = {}
                        for part in chunks(sorted(rerun), 500):
                            ran.update(
                                (int(r["id"]), int(r["attempt"]) > 0)
                                for r in tx.q(
                                    f"SELECT id, attempt FROM jobs WHERE {d.id_in('id')}", (d.ids(part),)
                                )
                            )
                    if not ran.get(i):
                        raise errors.Conflict(
                            f"job {i} depends on job {dep}, which has been pruned since; whether it succeeded"
                            f" is no longer known, and job {i} never ran: submit it again"
                        )
                    continue  # it had succeeded
                if (
                    dep in rerun
                    or dep in retried
                    or (row is not None and row["state"] not in ("SUCCEEDED", "FAILED", "CANCELLED"))
                    # a failed child of an array job an earlier dry-run page would have retried
                    or (row is not None and row["state"] != "SUCCEEDED" and row["array_parent_id"] in retried)
                ):
                    pending.append(dep)
                elif row is not None and row["state"] != "SUCCEEDED":
                    parent = row["array_parent_id"]
                    what = (
                        f"job {dep}"
                        if parent is None
                        else f"job {dep} (child {row['array_index']} of array job {parent})"
                    )
                    raise errors.Conflict(
                        f"{'array job' if job.array_size else 'job'} {job.id} depends on {what}, which ended"
                        f" {row['state']}; retry job {dep if parent is None else parent} first, or both together"
                    )
            waits[i] = pending
        return waits

    def job_release(
        self, worker_id: str, jobs: Sequence[tuple[int, int]], reason: str, now: datetime
    ) -> list[int]:
        """Give jobs back (worker shutting down): RUNNABLE again, the attempt does not count."""
        d = self.d
        ts = d.ts(now)
        released: list[int] = []
        woken: set[str] = set()
        with self._write() as tx:
            for job_id, attempt in jobs:
                # the state it leaves (STARTING or RUNNING), for its event: RETURNING gives the new one
                was = tx.one(
                    "SELECT state FROM jobs WHERE id = ? AND attempt = ? AND worker_id = ?" + d.for_update,
                    (job_id, attempt, worker_id),
                )
                row = tx.one(
                    "UPDATE jobs SET state = 'RUNNABLE', status_reason = ?, updated_at = ?, lease_expires_at = NULL,"
                    f" attempts_counted = attempts_counted - 1 WHERE id = ? AND attempt = ? AND worker_id = ? AND state IN {ACTIVE}"
                    " AND terminate_requested = ?"
                    " RETURNING id, queue, attempt_host, attempt_pid, attempt_started_at, compute_environment",
                    (f"requeued: {reason}", ts, job_id, attempt, worker_id, False),
                )
                if row is None:
                    # a job a user asked to terminate is not requeued: it ends as terminated
                    stop = Finish(
                        job_id, attempt, worker_id, OutcomeKind.TERMINATED, f"terminated ({reason})"
                    )
                    self._finish_one(tx, stop, now, woken)
                    continue
                released.append(job_id)
                _end_attempt(tx, job_id, attempt, worker_id, row, ts, None, f"requeued: {reason}", False)
                self._events(
                    tx,
                    [
                        (
                            "job",
                            str(job_id),
                            "job.state",
                            {
                                "from": None if was is None else was["state"],
                                "to": "RUNNABLE",
                                "reason": f"requeued: {reason}",
                            },
                        )
                    ],
                    now,
                )
            if released:
                d.notify_jobs(tx, {"*"})
            if woken:
                d.notify_jobs(tx, woken)
        if released or woken:
            self.wake()
        return released

    # -- retention --------------------------------------------------------------------------
    def prune(self, before: datetime, now: datetime, batch: int = 1000) -> dict[str, int]:
        """Delete finished jobs (with attempts, logs, dependencies) and events older than ``before``."""
        d = self.d
        counts = {"jobs": 0, "events": 0}
        cutoff = d.ts(before)
        while True:
            with self._write() as tx:
                # a job whose unique key is still held after its success (unique_ttl) stays
                # until the key expires: with it gone, the key was released early
                rows = tx.q(
                    f"SELECT id FROM jobs WHERE finished_at < ? AND state IN {TERMINAL}"
                    " AND (array_parent_id IS NULL OR array_parent_id NOT IN"
                    f" (SELECT id FROM jobs WHERE state NOT IN {TERMINAL}))"
                    " AND id NOT IN (SELECT job_id FROM unique_keys WHERE expires_at >= ?) LIMIT ?",
                    (cutoff, d.ts(now), batch),
                )
                ids = [int(r["id"]) for r in rows]
                if ids:
                    p = d.ids(ids)
                    tx.x("DELETE FROM attempts WHERE " + d.id_in("job_id"), (p,))
                    tx.x("DELETE FROM job_logs WHERE " + d.id_in("job_id"), (p,))
                    tx.x("DELETE FROM job_dependencies WHERE " + d.id_in("job_id"), (p,))
                    tx.x(
                        "DELETE FROM unique_keys WHERE " + d.id_in("job_id") + " AND expires_at < ?",
                        (p, d.ts(now)),
                    )
                    tx.x("DELETE FROM jobs WHERE " + d.id_in("id"), (p,))
                    counts["jobs"] += len(ids)
            if len(ids) < batch:
                break
        with self._write() as tx:
            # ids follow time: the first event at or after the cutoff bounds the old ones (found
            # by walking the primary key from the oldest, as far as the rows being deleted)
            counts["events"] = tx.x(
                "DELETE FROM events WHERE id < COALESCE((SELECT id FROM events WHERE at >= ? ORDER BY id LIMIT 1),"
                " (SELECT MAX(id) + 1 FROM events))",
                (cutoff,),
            )
            tx.x("DELETE FROM workers WHERE stopped_at < ?", (cutoff,))
        return counts


_STATES = {s.value: s for s in JobState}
# pages a claim in a fallback environment reads past jobs left to an earlier one (``_claim``)
_CLAIM_PAGES = 8


def _vcpus(free: float) -> float:
    """Free vCPUs, rounded to a millionth: 0.3 - 0.1 - 0.1 is 0.09999999999999998, which would
    not fit a job of 0.1 (vCPUs are given with at most a few decimals)."""
    return round(free, 6)


class _RollBack(Exception):
    """Ends a dry run's transaction: everything it wrote is rolled back."""


@contextlib.contextmanager
def _rolled_back(dry_run: bool) -> Iterator[None]:
    """Around a write transaction: with ``dry_run``, the ``_RollBack`` raised at its end to
    roll it back is swallowed (the caller returns what the transaction found)."""
    try:
        yield
    except _RollBack:
        if not dry_run:
            raise


def _end_attempt(
    tx: Tx,
    job_id: int,
    attempt: int,
    worker_id: str,
    job: Row,
    ts: Any,
    exit_code: int | None,
    reason: str,
    counted: bool,
) -> None:
    """Write the row of an attempt that ends (``_ATTEMPT_END``); ``job`` holds the job's
    attempt_host, attempt_pid, attempt_started_at and compute_environment."""
    started = job["attempt_started_at"]
    tx.x(
        _ATTEMPT_END,
        (
            job_id,
            attempt,
            worker_id,
            job["attempt_host"] or "",
            job["attempt_pid"],
            ts if started is None else started,
            job["compute_environment"],
            ts,
            exit_code,
            reason,
            counted,
        ),
    )


# (state, reason) of a new job that can run at once
RUNNABLE_NOW = ("RUNNABLE", "waiting for a worker")


def _plain(nj: NewJob) -> bool:
    """No keys, dependencies or array: inserting it reads nothing and can touch no other row."""
    return nj.idempotency_key is None and nj.unique_key is None and not nj.depends_on and not nj.array_size


class _Stub:
    """An id-only stand-in while a batch is being inserted (replaced before returning)."""

    def __init__(self, job_id: int) -> None:
        self.id = job_id


def _waiting_for(pending: list[int]) -> str:
    if len(pending) == 1:
        return f"waiting for job {pending[0]}"
    shown = ", ".join(str(p) for p in pending[:5]) + (", ..." if len(pending) > 5 else "")
    return f"waiting for {len(pending)} jobs ({shown})"


def _held(key: str, holder: Job) -> str:
    if holder.state.terminal:
        return f"unique key {key!r} is kept by job {holder.id} ({holder.state.value}) until its TTL ends"
    return f"unique key {key!r} is held by job {holder.id} ({holder.state.value})"
