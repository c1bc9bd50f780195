"""Store operations on schedules: create, change, and fire due ones exactly once.

Firing is one transaction per batch: claim due schedules (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, the ``BEGIN IMMEDIATE`` write lock on SQLite), plan each one
(:func:`conveyor.scheduling.plan`, pure), insert the jobs with the same code path as any
submission, write the history rows and advance ``next_due_at``. Any number of schedulers
can run; a row is claimed by one of them, and the unique ``(schedule_id, nominal_at)``
index on the history is the backstop: a duplicate fire aborts its whole transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from conveyor import errors, scheduling
from conveyor.model import NewJob
from conveyor.scheduling import (
    CatchUp,
    FireCounts,
    FireMath,
    FireOutcome,
    LoadGroup,
    Overlap,
    Schedule,
    ScheduleFire,
    ScheduleState,
    ScheduleTarget,
)
from conveyor.store.base import Row, Tx
from conveyor.store.core import chunks
from conveyor.store.lifecycle import TERMINAL, LifecycleOps

_COLUMNS = (
    "name, expression, timezone, anchor_at, start_at, end_at, window_seconds, overlap, catch_up,"
    " deadline_seconds, state, delete_after, description, tags, targets, next_nominal_at, next_due_at,"
    " last_nominal_at, last_fired_at, last_job_ids, created_at, updated_at"
)
_INSERT = f"INSERT INTO schedules ({_COLUMNS}) VALUES ({', '.join('?' * 22)})"
_SELECT = "SELECT id, " + _COLUMNS.replace("targets", "CAST(targets AS TEXT) AS targets") + " FROM schedules"
Event = tuple[str, str, str, dict[str, Any]]
# column types of the rows a fire writes ("json": JSON text, stored as jsonb)
_FIRE_TYPES = (
    "bigint",
    "text",
    "timestamptz",
    "timestamptz",
    "timestamptz",
    "timestamptz",
    "text",
    "text",
    "int",
    "json",
)
_UPDATE_TYPES = ("bigint", "text", "timestamptz", "timestamptz", "timestamptz", "timestamptz", "json")
_EVENT_TYPES = ("timestamptz", "text", "text", "text", "json")
_CREATE_TYPES = (
    *("text",) * 3,
    *("timestamptz",) * 3,
    "float8",
    "text",
    "text",
    "float8",
    "text",
    "boolean",
    "text",
    "json",
    "json",
    *("timestamptz",) * 4,
    "json",
    "timestamptz",
    "timestamptz",
)
_FIRE_SQL = (
    "INSERT INTO schedule_fires (schedule_id, schedule, nominal_at, last_nominal_at, due_at, fired_at,"
    " outcome, reason, count, job_ids) "
)
_EVENT_SQL = "INSERT INTO events (at, entity, entity_id, type, data) "


class ScheduleOps(LifecycleOps):
    _schedule_math_cache: FireMath | None = None
    _targets_cache: dict[str, tuple[ScheduleTarget, ...]] | None = None

    def schedule_math(self) -> FireMath:
        """The fire-time cache shared by every schedule this store object plans."""
        if self._schedule_math_cache is None:
            self._schedule_math_cache = FireMath()
        return self._schedule_math_cache

    # -- changes ----------------------------------------------------------------------------
    def schedule_create(self, s: Schedule, now: datetime) -> Schedule:
        """Store a validated schedule; ``errors.Conflict`` when the name is taken,
        ``errors.UnknownQueue`` when a target's queue is gone (see ``_lock_target_queues``)."""
        with self._write() as tx:
            self._lock_target_queues(tx, (s,))
            row = tx.one(_INSERT + " ON CONFLICT (name) DO NOTHING RETURNING *", self._values(s, now, now))
            if row is None:
                raise errors.Conflict(f"schedule {s.name!r} already exists")
            self._events(tx, [_event(s, "schedule.created", {"expression": s.expression})], now)
        return self._schedule(row)

    def schedule_create_many(self, items: Sequence[Schedule], now: datetime, batch: int = 10_000) -> int:
        """The bulk path: insert many validated schedules, ``batch`` per transaction.

        A name that is taken fails its whole batch with ``errors.Conflict``; earlier batches
        stay. A target queue that is gone fails with ``errors.UnknownQueue``: the first batch
        checks the queues of all (nothing is written), each later one those of its own, each
        under the queues' locks (``_lock_target_queues``). One summary event per batch instead
        of one per schedule. Rows are built with as little per-row work as possible (shared
        targets and times are encoded once); PostgreSQL receives each batch as one JSON
        parameter, SQLite by ``executemany``.
        """
        done = 0
        pg = self.d.name == "postgres"
        encoded: dict[int, Any] = {}  # bulk schedules usually share one targets tuple
        stored: dict[datetime, Any] = {}

        def t(value: datetime | None) -> Any:
            if value is None:
                return None
            got = stored.get(value)
            if got is None:
                got = stored[value] = value.isoformat() if pg else value.timestamp()
            return got

        stamp = t(now)
        for n, part in enumerate(chunks(items, batch)):
            rows = []
            for s in part:
                key = id(s.targets)
                targets = encoded.get(key)
                if targets is None:
                    targets = encoded[key] = json.dumps(
                        [scheduling.target_to_dict(x) for x in s.targets], separators=(",", ":")
                    )
                rows.append(
                    (s.name, s.expression, s.timezone, t(s.anchor_at), t(s.start_at), t(s.end_at),
                     s.window.total_seconds(), s.overlap.value, s.catch_up.value,
                     None if s.deadline is None else s.deadline.total_seconds(), s.state.value, s.delete_after,
                     s.description, json.dumps(list(s.tags)) if s.tags else None, targets,
                     t(s.next_nominal_at), t(s.next_due_at), t(s.last_nominal_at), t(s.last_fired_at),
                     _ids_json(s.last_job_ids), stamp, stamp)
                )  # fmt: skip
            with self._write() as tx:
                self._lock_target_queues(tx, items if n == 0 else part)
                if pg:
                    tx.x(
                        f"INSERT INTO schedules ({_COLUMNS}) SELECT * FROM ({_rows_sql(_CREATE_TYPES)}) AS v",
                        (json.dumps(rows),),
                    )
                else:
                    tx.many(_INSERT, rows)
                self._events(
                    tx,
                    [("schedule", part[0].name, "schedule.created_many", {"count": len(part)})],
                    now,
                )
            done += len(part)
        return done

    def schedule_update(self, s: Schedule, now: datetime) -> Schedule:
        """Replace a schedule's settings and next times (the engine recomputed them);
        ``errors.UnknownQueue`` when a target's queue is gone (see ``_lock_target_queues``)."""
        with self._write() as tx:
            self._lock_target_queues(tx, (s,))
            row = tx.one(
                "UPDATE schedules SET expression = ?, timezone = ?, anchor_at = ?, start_at = ?, end_at = ?,"
                " window_seconds = ?, overlap = ?, catch_up = ?, deadline_seconds = ?, state = ?,"
                " delete_after = ?, description = ?, tags = ?, targets = ?, next_nominal_at = ?,"
                " next_due_at = ?, updated_at = ? WHERE name = ? RETURNING *",
                (*self._values(s, now, now)[1:17], self.d.ts(now), s.name),
            )
            if row is None:
                raise errors.NotFound("schedule", s.name)
            self._events(tx, [_event(s, "schedule.updated", {"expression": s.expression})], now)
        return self._schedule(row)

    def schedule_pause(self, name: str, now: datetime) -> tuple[Schedule, bool]:
        """Stop firing. Idempotent: (schedule, whether it changed)."""
        with self._write() as tx:
            row = tx.one(
                "UPDATE schedules SET state = 'PAUSED', updated_at = ? WHERE name = ? AND state = 'ACTIVE'"
                " RETURNING *",
                (self.d.ts(now), name),
            )
            if row is None:
                return self._require(tx, name), False
            self._events(tx, [("schedule", name, "schedule.paused", {})], now)
        return self._schedule(row), True

    def schedule_resume(self, name: str, now: datetime) -> tuple[Schedule, bool]:
        """Fire again from ``now`` on: time spent paused is not caught up. Idempotent."""
        d = self.d
        with self._write() as tx:
            s = self._require(tx, name, lock=True)
            if s.state is not ScheduleState.PAUSED:
                return s, False
            nominal, due = scheduling.first_times(s, now, self.schedule_math())
            state = ScheduleState.ACTIVE if nominal is not None else ScheduleState.FINISHED
            row = tx.one(
                "UPDATE schedules SET state = ?, next_nominal_at = ?, next_due_at = ?, updated_at = ?"
                " WHERE id = ? RETURNING *",
                (state.value, d.ts(nominal), d.ts(due), d.ts(now), s.id),
            )
            assert row is not None
            self._events(
                tx,
                [("schedule", name, "schedule.resumed", {"next_due_at": _iso(due), "state": state.value})],
                now,
            )
        return self._schedule(row), True

    def schedule_delete(self, name: str, now: datetime) -> bool:
        """Delete a schedule and its history; False when there was none."""
        with self._write() as tx:
            row = tx.one("DELETE FROM schedules WHERE name = ? RETURNING id", (name,))
            if row is None:
                return False
            tx.x("DELETE FROM schedule_fires WHERE schedule_id = ?", (row["id"],))
            self._events(tx, [("schedule", name, "schedule.deleted", {})], now)
        return True

    # -- reading ----------------------------------------------------------------------------
    def schedule_get(self, name: str) -> Schedule | None:
        with self._read() as tx:
            row = tx.one("SELECT * FROM schedules WHERE name = ?", (name,))
        return None if row is None else self._schedule(row)

    def schedule_list(
        self,
        *,
        state: ScheduleState | None = None,
        tag: str | None = None,
        after_name: str | None = None,
        limit: int = 100,
    ) -> list[Schedule]:
        """Schedules by name, a page at a time (``after_name``: the last name of the previous page)."""
        where, params = ["1 = 1"], []
        if state is not None:
            where.append("state = ?")
            params.append(state.value)
        if after_name is not None:
            where.append("name > ?")
            params.append(after_name)
        with self._read() as tx:
            # a tag filter is rare and cheap enough to apply after the page is read
            rows = tx.q(
                f"SELECT * FROM schedules WHERE {' AND '.join(where)} ORDER BY name LIMIT ?",
                (*params, limit if tag is None else max(limit * 20, 1000)),
            )
        out = [self._schedule(r) for r in rows]
        if tag is not None:
            out = [s for s in out if tag in s.tags][:limit]
        return out

    def schedule_count(self) -> dict[str, int]:
        """Schedules per state."""
        with self._read() as tx:
            rows = tx.q("SELECT state, COUNT(*) AS n FROM schedules GROUP BY state")
        return {r["state"]: int(r["n"]) for r in rows}

    def schedule_history(self, name: str, limit: int = 50) -> list[ScheduleFire]:
        """Fires and skips of a schedule, newest nominal time first."""
        d = self.d
        with self._read() as tx:
            s = self._require(tx, name)
            rows = tx.q(
                "SELECT * FROM schedule_fires WHERE schedule_id = ? ORDER BY nominal_at DESC LIMIT ?",
                (s.id, limit),
            )
        return [
            ScheduleFire(
                schedule=r["schedule"],
                nominal_at=_req(d.dt(r["nominal_at"])),
                due_at=d.dt(r["due_at"]),
                fired_at=_req(d.dt(r["fired_at"])),
                outcome=FireOutcome(r["outcome"]),
                reason=r["reason"],
                job_ids=tuple(d.unjs(r["job_ids"]) or ()),
                count=int(r["count"]),
                last_nominal_at=d.dt(r["last_nominal_at"]),
            )
            for r in rows
        ]

    def schedule_next_due(self) -> datetime | None:
        """The earliest due time of any active schedule (the scheduler sleeps until then)."""
        with self._read() as tx:
            row = tx.one(
                "SELECT next_due_at FROM schedules WHERE state = 'ACTIVE' AND next_due_at IS NOT NULL"
                " ORDER BY next_due_at LIMIT 1"
            )
        return None if row is None else self.d.dt(row["next_due_at"])

    def schedule_load_groups(self) -> list[LoadGroup]:
        """Active schedules grouped by what decides their fire times (for the load chart)."""
        d = self.d
        with self._read() as tx:
            rows = tx.q(
                "SELECT expression, timezone, window_seconds,"
                " CASE WHEN expression LIKE 'rate(%' THEN anchor_at END AS anchor, COUNT(*) AS n"
                " FROM schedules WHERE state = 'ACTIVE'"
                " GROUP BY expression, timezone, window_seconds, CASE WHEN expression LIKE 'rate(%' THEN anchor_at END"
            )
        return [
            LoadGroup(
                expression=r["expression"],
                timezone=r["timezone"],
                window=timedelta(seconds=float(r["window_seconds"])),
                anchor_at=d.dt(r["anchor"]),
                count=int(r["n"]),
            )
            for r in rows
        ]

    # -- firing -----------------------------------------------------------------------------
    def schedule_fire_due(self, now: datetime, limit: int = 500) -> FireCounts:
        """Fire the schedules due at ``now``, at most ``limit`` of them, in one transaction.

        The per-schedule work is kept small because a burst (every ``0 0 * * *`` schedule
        at midnight) is all per-schedule work: schedules with the same settings and due
        times (no window) share one plan, ``{scheduled_time}`` texts and stored forms of
        times are computed once per batch, and history, schedule and event rows are written
        with one statement each.
        """
        d = self.d
        counts = FireCounts()
        woken: set[str] = set()
        math = self.schedule_math()
        pg = d.name == "postgres"
        with self._write() as tx:
            if pg:
                # The planner's estimate of due rows comes from statistics taken before they
                # came due: at a burst it expects a few, reads all of them with a bitmap scan
                # and sorts them, for every batch (quadratic over 100,000 due schedules).
                # Walking the due-time index in order stops after ``limit`` rows.
                tx.x("SET LOCAL enable_bitmapscan = off")
            rows = tx.q(
                _SELECT
                + " WHERE state = 'ACTIVE' AND next_due_at <= ? ORDER BY next_due_at LIMIT ?"
                + d.skip_locked,
                (d.ts(now), limit),
            )
            if pg:
                tx.x("SET LOCAL enable_bitmapscan = on")
            if not rows:
                return counts
            b = _Batch(self, now)
            schedules = [self._schedule(r, b.dt) for r in rows]
            counts.schedules = len(schedules)
            active = self._unfinished(
                tx, [j for s in schedules if s.overlap is not Overlap.ALLOW for j in s.last_job_ids]
            )
            queues = {r["name"]: bool(r["enabled"]) for r in tx.q("SELECT name, enabled FROM queues")}

            new_jobs: list[NewJob] = []
            owners: list[int] = []  # the fire (index into fires) of each new job
            fires: list[_Fired] = []
            plans: list[scheduling.FirePlan] = []
            to_stop: list[tuple[int, str]] = []
            shared: dict[tuple[Any, ...], scheduling.FirePlan] = {}
            for s in schedules:
                previous_active = bool(active) and any(j in active for j in s.last_job_ids)
                p = None
                key: tuple[Any, ...] | None = None
                if not s.window:  # with a window, due times depend on the name
                    key = (
                        s.expression, s.timezone, s.anchor_at if s.expression.startswith("rate(") else None,
                        s.end_at, s.deadline, s.catch_up, s.overlap, s.next_nominal_at, s.next_due_at,
                        previous_active,
                    )  # fmt: skip
                    p = shared.get(key)
                if p is None:
                    p = scheduling.plan(s, now, previous_active, math=math)
                    if key is not None:
                        shared[key] = p
                plans.append(p)
                if p.replace_previous:
                    reason = f"replaced by the next fire of schedule {s.name}"
                    to_stop.extend((j, reason) for j in s.last_job_ids if j in active)
                for fire in p.fires:
                    f = _Fired(s, fire)
                    fires.append(f)
                    when = b.when(fire.nominal_at, s.timezone)
                    for t in s.targets:
                        enabled = queues.get(t.queue)
                        if enabled is None:
                            f.notes.append(f"queue {t.queue!r} does not exist")
                        elif not enabled:
                            f.notes.append(f"queue {t.queue!r} is disabled")
                        else:
                            new_jobs.append(scheduling.new_job(t, s.name, fire.nominal_at, s.timezone, when))
                            owners.append(len(fires) - 1)
            if to_stop:
                self._stop_jobs(tx, to_stop, now, woken)
            if new_jobs:
                for owner, res in zip(owners, self._insert_ids(tx, new_jobs, now, woken), strict=True):
                    f = fires[owner]
                    f.ids.append(res.id)
                    if res.existing:
                        f.notes.append(res.reason)

            by_schedule: dict[int, list[_Fired]] = {}
            for f in fires:
                by_schedule.setdefault(f.schedule.id, []).append(f)
            finished: list[Schedule] = []
            for s, p in zip(schedules, plans, strict=True):
                last_ids = s.last_job_ids
                last_nominal, last_fired = s.last_nominal_at, s.last_fired_at
                for f in by_schedule.get(s.id, ()):
                    fire, ids = f.fire, f.ids
                    reason = "; ".join(f.notes) if f.notes else ""
                    if fire.covers > 1:
                        reason = "; ".join(
                            filter(None, [f"stands for {fire.covers} nominal times (catch-up ONCE)", reason])
                        )
                    b.fire(s, fire.nominal_at, None, fire.due_at, ids, reason, fire.covers)
                    if ids:
                        counts.fired += 1
                        counts.jobs += len(ids)
                        last_ids = tuple(ids)
                        last_fired = now
                    else:
                        counts.skipped += 1
                    last_nominal = fire.nominal_at
                for skip in p.skipped:
                    b.skip(s, skip)
                    counts.skipped += skip.count
                    last_nominal = max(last_nominal or skip.last_nominal_at, skip.last_nominal_at)
                if p.finished:
                    finished.append(s)
                    b.event(s.name, "schedule.finished", {"deleted": s.delete_after})
                b.update(s, p, last_nominal, last_fired, last_ids)
            b.write(tx)
            doomed = [s.id for s in finished if s.delete_after]
            for part in chunks(doomed, 500):
                tx.x("DELETE FROM schedules WHERE " + d.id_in("id"), (d.ids(part),))
                tx.x("DELETE FROM schedule_fires WHERE " + d.id_in("schedule_id"), (d.ids(part),))
            counts.finished = len(finished)
            if woken:
                d.notify_jobs(tx, woken)
        if woken:
            self.wake()
        return counts

    def _unfinished(self, tx: Tx, job_ids: list[int]) -> set[int]:
        """Which of these jobs have not reached a terminal state."""
        out: set[int] = set()
        for part in chunks(sorted(set(job_ids)), 500):
            out.update(
                int(r["id"])
                for r in tx.q(
                    "SELECT id FROM jobs WHERE " + self.d.id_in("id") + f" AND state NOT IN {TERMINAL}",
                    (self.d.ids(part),),
                )
            )
        return out

    def _stop_jobs(self, tx: Tx, items: list[tuple[int, str]], now: datetime, woken: set[str]) -> None:
        """Overlap REPLACE, inside the firing transaction: the semantics of ``job_cancel`` for
        waiting jobs (an array job: its waiting children, and it ends CANCELLED once none of
        them runs) and ``job_terminate`` for running ones."""
        for job_id, reason in items:
            row = tx.one("SELECT array_size, state FROM jobs WHERE id = ?" + self.d.for_update, (job_id,))
            if row is None or row["state"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
                continue
            if row["array_size"]:  # as job_cancel marks it: it ended FAILED ("n of n did not succeed")
                self._mark_cancelling(tx, job_id, reason, now)
            where = "array_parent_id = ?" if row["array_size"] else "id = ?"
            self._stop_where(tx, where, job_id, reason, now, False, woken)
            self._flag_terminate(tx, where, job_id, reason, now)

    # -- rows -------------------------------------------------------------------------------
    def _lock_target_queues(self, tx: Tx, schedules: Sequence[Schedule]) -> None:
        """Lock the queues these schedules target, in name order (two writers never wait on
        each other crosswise), or raise ``errors.UnknownQueue`` for one that is gone. As
        ``queue_delete`` locks the queue before it looks for schedules using it, a schedule is
        never left targeting a deleted queue (PostgreSQL; SQLite's writes are serial). Only
        create and update need it: resume makes active a PAUSED schedule, which held its
        queues already."""
        shared = {id(s.targets): s.targets for s in schedules}  # bulk schedules share theirs
        for name in sorted({t.queue for targets in shared.values() for t in targets}):
            if not self._lock_queue(tx, name):
                raise errors.UnknownQueue(name)

    def _require(self, tx: Tx, name: str, lock: bool = False) -> Schedule:
        row = tx.one("SELECT * FROM schedules WHERE name = ?" + (self.d.for_update if lock else ""), (name,))
        if row is None:
            raise errors.NotFound("schedule", name, "list them with `conveyor schedules list`")
        return self._schedule(row)

    def _parse_targets(self, raw: Any) -> tuple[ScheduleTarget, ...]:
        """Targets from their stored JSON; bulk-created schedules share one text, parsed once."""
        if not isinstance(raw, str):
            return tuple(scheduling.target_from_dict(t) for t in raw)
        if self._targets_cache is None:
            self._targets_cache = {}
        got = self._targets_cache.get(raw)
        if got is None:
            got = tuple(scheduling.target_from_dict(t) for t in json.loads(raw))
            if len(self._targets_cache) >= 4096:
                self._targets_cache.clear()
            self._targets_cache[raw] = got
        return got

    def _targets_json(self, s: Schedule) -> Any:
        return self.d.js([scheduling.target_to_dict(t) for t in s.targets])

    def _values(
        self, s: Schedule, created: datetime, updated: datetime, targets: Any = None
    ) -> tuple[Any, ...]:
        d = self.d
        return (
            s.name,
            s.expression,
            s.timezone,
            d.ts(s.anchor_at),
            d.ts(s.start_at),
            d.ts(s.end_at),
            s.window.total_seconds(),
            s.overlap.value,
            s.catch_up.value,
            None if s.deadline is None else s.deadline.total_seconds(),
            s.state.value,
            s.delete_after,
            s.description,
            d.js(list(s.tags)) if s.tags else None,
            self._targets_json(s) if targets is None else targets,
            d.ts(s.next_nominal_at),
            d.ts(s.next_due_at),
            d.ts(s.last_nominal_at),
            d.ts(s.last_fired_at),
            d.js(list(s.last_job_ids)),
            d.ts(created),
            d.ts(updated),
        )

    def _schedule(self, r: Row, dt: Callable[[Any], datetime | None] | None = None) -> Schedule:
        """A schedule from its row; ``dt`` reads stored times (a batch passes a memoised one)."""
        d = self.d
        dt = dt or d.dt
        deadline = r["deadline_seconds"]
        tags = r["tags"]
        last_ids = r["last_job_ids"]
        return Schedule(
            id=int(r["id"]),
            name=r["name"],
            expression=r["expression"],
            timezone=r["timezone"],
            targets=self._parse_targets(r["targets"]),
            anchor_at=_req(dt(r["anchor_at"])),
            start_at=dt(r["start_at"]),
            end_at=dt(r["end_at"]),
            window=_seconds(r["window_seconds"]),
            overlap=_OVERLAP[r["overlap"]],
            catch_up=_CATCH_UP[r["catch_up"]],
            deadline=None if deadline is None else _seconds(deadline),
            state=_STATE[r["state"]],
            delete_after=bool(r["delete_after"]),
            description=r["description"],
            tags=tuple(d.unjs(tags)) if tags else (),
            next_nominal_at=dt(r["next_nominal_at"]),
            next_due_at=dt(r["next_due_at"]),
            last_nominal_at=dt(r["last_nominal_at"]),
            last_fired_at=dt(r["last_fired_at"]),
            last_job_ids=tuple(int(j) for j in d.unjs(last_ids) or ())
            if last_ids and last_ids != "[]"
            else (),
            created_at=dt(r["created_at"]),
            updated_at=dt(r["updated_at"]),
        )


_OVERLAP = {m.value: m for m in Overlap}
_CATCH_UP = {m.value: m for m in CatchUp}
_STATE = {m.value: m for m in ScheduleState}
_ZERO = timedelta(0)


def _seconds(value: Any) -> timedelta:
    return _ZERO if not value else timedelta(seconds=float(value))


def _event(s: Schedule, type_: str, data: dict[str, Any]) -> Event:
    return ("schedule", s.name, type_, data)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _req(value: datetime | None) -> datetime:
    assert value is not None
    return value


@dataclass(slots=True)
class _Fired:
    """One fire being made: its jobs' ids and why targets did not submit."""

    schedule: Schedule
    fire: scheduling.Fire
    ids: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class _Batch:
    """The rows one ``schedule_fire_due`` writes, in their stored form.

    A burst is thousands of schedules sharing a handful of instants, reasons and zones, so
    each distinct value is converted once: times to what the backend stores (SQLite: epoch
    seconds; PostgreSQL: ISO text inside one JSON parameter), texts to JSON.
    """

    def __init__(self, ops: ScheduleOps, now: datetime) -> None:
        self.ops = ops
        self.pg = ops.d.name == "postgres"
        self._stored: dict[datetime, Any] = {}
        self._read: dict[Any, datetime | None] = {}
        self._when: dict[tuple[datetime, str], str] = {}
        self._json: dict[str, str] = {}
        self.now = self.t(now)
        self.fires: list[tuple[Any, ...]] = []
        self.updates: list[tuple[Any, ...]] = []
        self.events: list[tuple[Any, ...]] = []

    # -- conversions, memoised --------------------------------------------------------------
    def dt(self, raw: Any) -> datetime | None:
        """A stored time read back (rows of one batch share most of theirs)."""
        if raw is None:
            return None
        got = self._read.get(raw)
        if got is None:
            got = self._read[raw] = self.ops.d.dt(raw)
        return got

    def t(self, value: datetime | None) -> Any:
        if value is None:
            return None
        got = self._stored.get(value)
        if got is None:
            got = self._stored[value] = value.isoformat() if self.pg else self.ops.d.ts(value)
        return got

    def when(self, nominal: datetime, tz: str) -> str:
        key = (nominal, tz)
        got = self._when.get(key)
        if got is None:
            got = self._when[key] = scheduling.scheduled_time_text(nominal, tz)
        return got

    def js(self, text: str) -> str:
        """``text`` as a JSON string literal."""
        got = self._json.get(text)
        if got is None:
            got = self._json[text] = json.dumps(text)
        return got

    def iso(self, value: datetime) -> str:
        return self.js(value.isoformat())

    # -- rows ---------------------------------------------------------------------------------
    def fire(
        self,
        s: Schedule,
        nominal: datetime,
        last_nominal: datetime | None,
        due: datetime | None,
        ids: list[int],
        reason: str,
        count: int,
    ) -> None:
        jobs = _ids_json(ids)
        self.fires.append(
            (s.id, s.name, self.t(nominal), self.t(last_nominal), self.t(due), self.now,
             FireOutcome.FIRED.value if ids else FireOutcome.SKIPPED.value, reason, count, jobs)
        )  # fmt: skip
        data = f'{{"nominal_at":{self.iso(nominal)},"jobs":{jobs},"reason":{self.js(reason)}}}'
        self.events.append(
            (self.now, "schedule", s.name, "schedule.fired" if ids else "schedule.skipped", data)
        )

    def skip(self, s: Schedule, skip: scheduling.Skip) -> None:
        self.fires.append(
            (s.id, s.name, self.t(skip.nominal_at), self.t(skip.last_nominal_at) if skip.count > 1 else None,
             self.t(skip.due_at), self.now, FireOutcome.SKIPPED.value, skip.reason, skip.count, "[]")
        )  # fmt: skip
        data = f'{{"nominal_at":{self.iso(skip.nominal_at)},"count":{skip.count},"reason":{self.js(skip.reason)}}}'
        self.events.append((self.now, "schedule", s.name, "schedule.skipped", data))

    def event(self, entity_id: str, type_: str, data: dict[str, Any]) -> None:
        self.events.append((self.now, "schedule", entity_id, type_, json.dumps(data, separators=(",", ":"))))

    def update(
        self,
        s: Schedule,
        p: scheduling.FirePlan,
        last_nominal: datetime | None,
        last_fired: datetime | None,
        last_ids: Sequence[int],
    ) -> None:
        self.updates.append(
            (s.id, (ScheduleState.FINISHED if p.finished else ScheduleState.ACTIVE).value,
             self.t(p.next_nominal_at), self.t(p.next_due_at), self.t(last_nominal), self.t(last_fired),
             _ids_json(last_ids))
        )  # fmt: skip

    def write(self, tx: Tx) -> None:
        """History rows (the unique index refuses a second fire of a nominal time), advanced
        schedules and events: one statement each. PostgreSQL: rows in one JSON parameter (a
        round trip per row would dominate); SQLite runs in-process: ``executemany``."""
        if self.pg:
            rows = _rows_sql
            tx.x(_FIRE_SQL + rows(_FIRE_TYPES), (json.dumps(self.fires),))
            tx.x(
                "UPDATE schedules SET state = v.c1, next_nominal_at = v.c2, next_due_at = v.c3,"
                " last_nominal_at = v.c4, last_fired_at = v.c5, last_job_ids = v.c6"
                " FROM (" + rows(_UPDATE_TYPES) + ") AS v WHERE schedules.id = v.c0",
                (json.dumps(self.updates),),
            )
            tx.x(_EVENT_SQL + rows(_EVENT_TYPES), (json.dumps(self.events),))
            return
        tx.many(_FIRE_SQL + "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", self.fires)
        tx.many(
            "UPDATE schedules SET state = ?, next_nominal_at = ?, next_due_at = ?, last_nominal_at = ?,"
            " last_fired_at = ?, last_job_ids = ? WHERE id = ?",
            [(*u[1:], u[0]) for u in self.updates],
        )
        tx.many(_EVENT_SQL + "VALUES (?, ?, ?, ?, ?)", self.events)


def _rows_sql(types: Sequence[str]) -> str:
    """PostgreSQL ``SELECT`` of rows passed as one JSON array of arrays; columns ``c0, c1,
    ...`` of the given types ("json": a JSON text, parsed into jsonb)."""
    cols = [f"(e->>{i})::jsonb" if t == "json" else f"(e->>{i})::{t}" for i, t in enumerate(types)]
    return (
        "SELECT "
        + ", ".join(f"{c} AS c{i}" for i, c in enumerate(cols))
        + " FROM jsonb_array_elements(CAST(? AS jsonb)) AS e"
    )


def _ids_json(ids: Sequence[int]) -> str:
    return "[" + ",".join(map(str, ids)) + "]"
