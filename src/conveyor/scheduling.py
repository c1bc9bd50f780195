"""Schedules, planned: which due times fire now, which are skipped and why. Pure: no I/O.

The store calls :func:`plan` inside the transaction that claims a due schedule, inserts its
jobs and advances it; nothing here reads a clock or a database.

Words used below:

* **nominal time** -- an instant the expression yields (``0 * * * *`` -> every full hour);
* **due time** -- the nominal time plus the schedule's flexible-window offset, a
  deterministic value in ``[0, window)`` hashed from the schedule name and the nominal time
  (:func:`window_offset`), so a thousand hourly schedules spread over the window instead of
  all firing at second 0, and every scheduler computes the same due time;
* **late** -- a due time seen more than :data:`GRACE` after it passed (the scheduler was
  down or overloaded). On-time fires always fire; late ones follow the catch-up policy:

  - ``SKIP``: late fires are skipped;
  - ``ONCE`` (default): late fires are folded into one fire -- the first on-time fire when
    there is one, else one fire for the most recent late nominal time;
  - ``ALL``: every late fire fires, the most recent :data:`CATCH_UP_CAP` at most.

  A schedule may also set a starting ``deadline``: a fire more than that late never fires,
  whatever the policy (default: no deadline).

* **overlap** -- what happens while the previous fire's jobs are unfinished: ``ALLOW``
  fires anyway, ``SKIP`` skips this fire, ``REPLACE`` cancels the waiting jobs and
  terminates the running ones of the previous fire, then fires. Within one plan, ``SKIP``
  fires only the first due time and ``REPLACE`` only the last.

DST is the expression module's business (:mod:`conveyor.expressions.zones`): nominal times
come from :func:`conveyor.expressions.next_fire`, so a spring-forward gap fires once at the
end of the gap and a repeated hour fires once (frequent crontab lines follow real time).
"""

from __future__ import annotations

import enum
import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from conveyor import expressions
from conveyor.model import JSON, DefinitionSpec, NewJob, spec_from_dict, spec_to_dict

GRACE = timedelta(seconds=60)
"""A due time seen later than this is late (missed); earlier it is on time."""
CATCH_UP_CAP = 100
"""Catch-up ``ALL`` fires at most this many late fires, the most recent ones."""
SCAN_LIMIT = 1000
"""Nominal times walked one by one per plan; beyond that the walk jumps ahead (long downtime)."""
MAX_WINDOW = timedelta(hours=24)
PARAM_TIME = "scheduled_time"
PARAM_SCHEDULE = "schedule"


class Overlap(enum.StrEnum):
    ALLOW = "ALLOW"
    SKIP = "SKIP"
    REPLACE = "REPLACE"


class CatchUp(enum.StrEnum):
    SKIP = "SKIP"
    ONCE = "ONCE"
    ALL = "ALL"


class ScheduleState(enum.StrEnum):
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    FINISHED = "FINISHED"  # no more fires: at() fired, end reached, cron years over


class FireOutcome(enum.StrEnum):
    FIRED = "FIRED"
    SKIPPED = "SKIPPED"


@dataclass(frozen=True, slots=True)
class ScheduleTarget:
    """One validated job submission a fire makes (the schedule's ``NewJob`` template).

    ``spec.parameters`` and ``unique_key`` may contain ``{scheduled_time}`` and
    ``{schedule}``, filled in at each fire by :func:`new_job`.
    """

    queue: str
    spec: DefinitionSpec
    definition: str | None = None
    definition_revision: int | None = None
    payload: JSON = None
    payload_ref: str | None = None
    priority: int = 0
    array_size: int | None = None
    array_sequential: bool = False
    unique_key: str | None = None
    unique_ttl_seconds: float | None = None
    tags: tuple[str, ...] = ()
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Schedule:
    name: str
    expression: str  # canonical text
    timezone: str
    targets: tuple[ScheduleTarget, ...]
    anchor_at: datetime  # where rate() counts from: start, else creation time
    start_at: datetime | None = None
    end_at: datetime | None = None
    window: timedelta = timedelta(0)
    overlap: Overlap = Overlap.ALLOW
    catch_up: CatchUp = CatchUp.ONCE
    deadline: timedelta | None = None
    state: ScheduleState = ScheduleState.ACTIVE
    delete_after: bool = False  # at(): delete the schedule (and its history) once it has fired
    description: str = ""
    tags: tuple[str, ...] = ()
    next_nominal_at: datetime | None = None
    next_due_at: datetime | None = None
    last_nominal_at: datetime | None = None
    last_fired_at: datetime | None = None
    last_job_ids: tuple[int, ...] = ()
    created_at: datetime | None = None
    updated_at: datetime | None = None
    id: int = 0

    @property
    def enabled(self) -> bool:
        return self.state is ScheduleState.ACTIVE


@dataclass(frozen=True, slots=True)
class Skip:
    """Consecutive nominal times skipped for the same reason (one history row)."""

    nominal_at: datetime
    last_nominal_at: datetime
    due_at: datetime
    count: int
    reason: str


@dataclass(frozen=True, slots=True)
class Fire:
    nominal_at: datetime
    due_at: datetime
    covers: int = 1  # nominal times this fire stands for (catch-up ONCE folds late ones in)


@dataclass(frozen=True, slots=True)
class FirePlan:
    fires: tuple[Fire, ...]
    skipped: tuple[Skip, ...]
    replace_previous: bool
    next_nominal_at: datetime | None
    next_due_at: datetime | None
    finished: bool  # no nominal time left


@dataclass(frozen=True, slots=True)
class ScheduleFire:
    """A history row: a fire, or a run of skipped nominal times."""

    schedule: str
    nominal_at: datetime
    due_at: datetime | None
    fired_at: datetime
    outcome: FireOutcome
    reason: str
    job_ids: tuple[int, ...] = ()
    count: int = 1
    last_nominal_at: datetime | None = None

    @property
    def lag(self) -> timedelta | None:
        return None if self.due_at is None else self.fired_at - self.due_at


@dataclass(slots=True)
class FireCounts:
    """What one ``schedule_fire_due`` / ``Scheduler.run_once`` did."""

    schedules: int = 0
    fired: int = 0
    skipped: int = 0
    jobs: int = 0
    finished: int = 0

    def add(self, other: FireCounts) -> None:
        self.schedules += other.schedules
        self.fired += other.fired
        self.skipped += other.skipped
        self.jobs += other.jobs
        self.finished += other.finished


# -- shared fire-time math ------------------------------------------------------------------
class FireMath:
    """An LRU of parsed expressions and next-fire answers, shared by every schedule using it.

    A million schedules built from a thousand expressions ask the same questions ("after
    12:00, when does ``0 * * * *`` in Europe/Berlin fire?"); the answer is computed once.
    ``rate()`` answers depend on each schedule's anchor and are cheap, so they bypass the
    cache. Thread-safe; owned by whoever plans (a store object), never global.
    """

    def __init__(self, maxsize: int = 65_536) -> None:
        self.maxsize = maxsize
        self._parsed: OrderedDict[str, expressions.Expression] = OrderedDict()
        self._next: OrderedDict[tuple[str, str, datetime], datetime | None] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def expression(self, text: str) -> expressions.Expression:
        with self._lock:
            got = self._parsed.get(text)
            if got is not None:
                self._parsed.move_to_end(text)
                return got
        parsed = expressions.parse(text)
        with self._lock:
            self._parsed[text] = parsed
            if len(self._parsed) > self.maxsize:
                self._parsed.popitem(last=False)
        return parsed

    def next_after(self, text: str, tz: str, after: datetime, anchor: datetime | None) -> datetime | None:
        expr = self.expression(text)
        if expr.kind == "rate":
            return expressions.next_fire(expr, tz, after, anchor=anchor)
        key = (text, tz, after)
        with self._lock:
            if key in self._next:
                self.hits += 1
                self._next.move_to_end(key)
                return self._next[key]
        self.misses += 1
        value = expressions.next_fire(expr, tz, after)
        with self._lock:
            self._next[key] = value
            if len(self._next) > self.maxsize:
                self._next.popitem(last=False)
        return value


# -- due times ------------------------------------------------------------------------------
def window_offset(name: str, nominal: datetime, window: timedelta) -> timedelta:
    """Deterministic offset in ``[0, window)`` (millisecond steps) for one fire of one schedule.

    blake2b of the name and the nominal instant: the same in every process and version of
    Python (unlike ``hash()``), different for each fire so one schedule does not always
    land at the same spot, and uniform, so many schedules spread evenly.
    """
    span = int(window / timedelta(milliseconds=1))
    if span <= 0:
        return timedelta(0)
    key = f"{name}|{int(nominal.timestamp() * 1000)}".encode()
    h = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")
    return timedelta(milliseconds=h % span)


def due_time(s: Schedule, nominal: datetime) -> datetime:
    return nominal + window_offset(s.name, nominal, s.window)


def _within_end(s: Schedule, nominal: datetime | None) -> datetime | None:
    if nominal is None or (s.end_at is not None and nominal > s.end_at):
        return None
    return nominal


def first_times(
    s: Schedule, now: datetime, math: FireMath | None = None
) -> tuple[datetime | None, datetime | None]:
    """(next nominal, next due) for a schedule created or resumed at ``now``.

    Nothing before ``now`` fires (no catch-up for time the schedule did not exist or was
    paused); a future start time that is itself a fire time is included.
    """
    nominal = first_nominal(s.expression, s.timezone, s.anchor_at, s.start_at, s.end_at, now, math)
    return nominal, None if nominal is None else due_time(s, nominal)


def first_nominal(
    expression: str,
    tz: str,
    anchor: datetime,
    start: datetime | None,
    end: datetime | None,
    now: datetime,
    math: FireMath | None = None,
) -> datetime | None:
    """The first nominal time of a schedule created or resumed at ``now`` (see ``first_times``)."""
    math = math or FireMath(64)
    after = now
    if start is not None and start > now:
        after = start - timedelta(microseconds=1)
    nominal = math.next_after(expression, tz, after, anchor)
    if nominal is None or (end is not None and nominal > end):
        return None
    return nominal


def plan(
    s: Schedule,
    now: datetime,
    previous_jobs_active: bool,
    *,
    math: FireMath | None = None,
    grace: timedelta = GRACE,
) -> FirePlan:
    """Decide what a due schedule does at ``now``. See the module docstring for the rules."""
    math = math or FireMath(256)
    if s.next_nominal_at is None or s.next_due_at is None or s.next_due_at > now:
        return FirePlan((), (), False, s.next_nominal_at, s.next_due_at, s.next_nominal_at is None)

    # 1. walk the nominal times that are due
    due: list[Fire] = []
    skipped: list[Skip] = []
    nominal: datetime | None = s.next_nominal_at
    due_at = s.next_due_at
    while nominal is not None and due_at <= now:
        due.append(Fire(nominal, due_at))
        previous_due = due_at
        nominal = _within_end(s, math.next_after(s.expression, s.timezone, nominal, s.anchor_at))
        if nominal is not None:
            # keep due times in order even when the window is longer than the period
            due_at = max(due_time(s, nominal), previous_due)
            if len(due) >= SCAN_LIMIT and due_at <= now:
                nominal, due_at = _jump(s, due, skipped, nominal, now, math)

    # 2. catch-up: which of the due times fire
    fires: list[Fire] = []
    dropped: list[tuple[Fire, str]] = []
    on_time = [f for f in due if now - f.due_at <= grace]
    late = [f for f in due if now - f.due_at > grace]
    if s.deadline is not None:
        expired = [f for f in late if now - f.due_at > s.deadline]
        dropped += [(f, f"more than {_span(s.deadline)} late (deadline)") for f in expired]
        late = [f for f in late if now - f.due_at <= s.deadline]
    if s.catch_up is CatchUp.SKIP:
        dropped += [(f, f"missed: more than {_span(grace)} late (catch-up SKIP)") for f in late]
        fires = on_time
    elif s.catch_up is CatchUp.ONCE:
        if on_time:
            head = on_time[0]
            fires = [replace(head, covers=1 + len(late)), *on_time[1:]]
            dropped += [(f, f"folded into the fire at {_iso(head.nominal_at)} (catch-up ONCE)") for f in late]
        elif late:
            fires = [replace(late[-1], covers=len(late))]
            dropped += [
                (f, f"folded into the fire at {_iso(late[-1].nominal_at)} (catch-up ONCE)") for f in late[:-1]
            ]
    else:
        candidates = sorted(late + on_time, key=lambda f: f.nominal_at)
        fires = candidates[-CATCH_UP_CAP:]
        dropped += [
            (f, f"beyond the catch-up cap of {CATCH_UP_CAP} (catch-up ALL)")
            for f in candidates[:-CATCH_UP_CAP]
        ]

    # 3. overlap
    replace_previous = False
    if fires and s.overlap is Overlap.SKIP:
        if previous_jobs_active:
            dropped += [(f, "the previous fire's jobs are still unfinished (overlap SKIP)") for f in fires]
            fires = []
        else:
            dropped += [
                (f, f"the fire at {_iso(fires[0].nominal_at)} is still unfinished (overlap SKIP)")
                for f in fires[1:]
            ]
            fires = fires[:1]
    elif fires and s.overlap is Overlap.REPLACE:
        dropped += [
            (f, f"replaced by the fire at {_iso(fires[-1].nominal_at)} (overlap REPLACE)") for f in fires[:-1]
        ]
        fires = fires[-1:]
        replace_previous = previous_jobs_active

    skipped += _runs(sorted(dropped, key=lambda item: item[0].nominal_at))
    skipped.sort(key=lambda k: k.nominal_at)
    return FirePlan(
        fires=tuple(fires),
        skipped=tuple(skipped),
        replace_previous=replace_previous,
        next_nominal_at=nominal,
        next_due_at=None if nominal is None else due_at,
        finished=nominal is None,
    )


def _jump(
    s: Schedule, due: list[Fire], skipped: list[Skip], nominal: datetime, now: datetime, math: FireMath
) -> tuple[datetime | None, datetime]:
    """After a long downtime: summarise the walked fires as one skip and jump near ``now``.

    Lands about ``CATCH_UP_CAP + 1`` periods (plus the window) before ``now``, so every
    policy still sees the most recent late fires.
    """
    first, last = due[0], due[-1]
    period = (last.nominal_at - first.nominal_at) / max(1, len(due) - 1)
    target = now - period * (CATCH_UP_CAP + 1) - s.window - GRACE
    if target <= nominal:
        return nominal, max(due_time(s, nominal), last.due_at)
    walked = len(due)
    estimate = walked + max(0, int((target - nominal) / period)) if period > timedelta(0) else walked
    skipped.append(
        Skip(
            first.nominal_at,
            last.nominal_at,
            first.due_at,
            estimate,
            "missed while no scheduler ran (long downtime)",
        )
    )
    due.clear()
    jumped = _within_end(s, math.next_after(s.expression, s.timezone, target, s.anchor_at))
    if jumped is None:
        return None, last.due_at
    return jumped, due_time(s, jumped)


def _runs(dropped: list[tuple[Fire, str]]) -> list[Skip]:
    """Consecutive skips with the same reason become one history row."""
    out: list[Skip] = []
    for f, reason in dropped:
        if out and out[-1].reason == reason:
            prev = out[-1]
            out[-1] = replace(prev, last_nominal_at=f.nominal_at, count=prev.count + 1)
        else:
            out.append(Skip(f.nominal_at, f.nominal_at, f.due_at, 1, reason))
    return out


def _iso(value: datetime) -> str:
    return value.isoformat()


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172_800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86_400} days"


# -- targets --------------------------------------------------------------------------------
def scheduled_time_text(nominal: datetime, tz: str) -> str:
    """``{scheduled_time}``: the nominal time in the schedule's zone, ISO-8601 with offset."""
    return nominal.astimezone(expressions.validate_timezone(tz)).isoformat()


def fill(text: str, schedule: str, scheduled_time: str) -> str:
    """Replace ``{scheduled_time}`` and ``{schedule}``; other braces are left alone."""
    if "{" not in text:
        return text
    return text.replace("{" + PARAM_TIME + "}", scheduled_time).replace("{" + PARAM_SCHEDULE + "}", schedule)


def new_job(
    target: ScheduleTarget, schedule: str, nominal: datetime, tz: str, when: str | None = None
) -> NewJob:
    """The job a fire of ``schedule`` at ``nominal`` submits for ``target``.

    ``when``: ``scheduled_time_text(nominal, tz)`` when the caller has it already."""
    if when is None:
        when = scheduled_time_text(nominal, tz)
    params = {k: fill(v, schedule, when) for k, v in target.spec.parameters.items()}
    params[PARAM_TIME] = when
    params[PARAM_SCHEDULE] = schedule
    return NewJob(
        queue=target.queue,
        spec=replace(target.spec, parameters=params),
        definition=target.definition,
        definition_revision=target.definition_revision,
        payload=target.payload,
        payload_ref=target.payload_ref,
        priority=target.priority,
        array_size=target.array_size,
        array_sequential=target.array_sequential,
        unique_key=None if target.unique_key is None else fill(target.unique_key, schedule, when),
        unique_ttl_seconds=target.unique_ttl_seconds,
        tags=target.tags,
        name=target.name or schedule,
    )


def target_to_dict(t: ScheduleTarget) -> dict[str, Any]:
    return {
        "queue": t.queue,
        "spec": spec_to_dict(t.spec),
        "definition": t.definition,
        "definition_revision": t.definition_revision,
        "payload": t.payload,
        "payload_ref": t.payload_ref,
        "priority": t.priority,
        "array_size": t.array_size,
        "array_sequential": t.array_sequential,
        "unique_key": t.unique_key,
        "unique_ttl_seconds": t.unique_ttl_seconds,
        "tags": list(t.tags),
        "name": t.name,
    }


def target_from_dict(d: dict[str, Any]) -> ScheduleTarget:
    return ScheduleTarget(
        queue=d["queue"],
        spec=spec_from_dict(d["spec"]),
        definition=d.get("definition"),
        definition_revision=d.get("definition_revision"),
        payload=d.get("payload"),
        payload_ref=d.get("payload_ref"),
        priority=int(d.get("priority", 0)),
        array_size=d.get("array_size"),
        array_sequential=bool(d.get("array_sequential", False)),
        unique_key=d.get("unique_key"),
        unique_ttl_seconds=d.get("unique_ttl_seconds"),
        tags=tuple(d.get("tags") or ()),
        name=d.get("name"),
    )


# -- load over the coming hours ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LoadGroup:
    """Active schedules sharing expression, zone, window (and anchor for rate())."""

    expression: str
    timezone: str
    window: timedelta
    anchor_at: datetime | None
    count: int


@dataclass(frozen=True, slots=True)
class Load:
    """Fires per minute from ``start``: without windows (nominal) and with them (due)."""

    start: datetime
    nominal: tuple[float, ...]
    spread: tuple[float, ...]
    groups: int = 0
    schedules: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def load(groups: list[LoadGroup], start: datetime, minutes: int, math: FireMath | None = None) -> Load:
    """Fires per minute over ``minutes`` from ``start`` (a minute boundary is best).

    With a window, a group's fires are spread evenly over the window (the expected value of
    the hashed offsets, exact in the limit of many schedules).
    """
    math = math or FireMath(1024)
    nominal = [0.0] * minutes
    spread = [0.0] * minutes
    end = start + timedelta(minutes=minutes)
    for g in groups:
        after = start - timedelta(microseconds=1) - g.window
        while True:
            at = math.next_after(g.expression, g.timezone, after, g.anchor_at)
            if at is None or at >= end:
                break
            after = at
            index = int((at - start) // timedelta(minutes=1))
            if 0 <= index < minutes:
                nominal[index] += g.count
            width = g.window / timedelta(minutes=1)
            if width <= 0:
                if 0 <= index < minutes:
                    spread[index] += g.count
                continue
            # spread count evenly over [at, at + window)
            offset = (at - start) / timedelta(minutes=1)
            lo, hi = offset, offset + width
            m = int(lo // 1)
            while m < hi and m < minutes:
                if m >= 0:
                    overlap = min(hi, m + 1) - max(lo, m)
                    spread[m] += g.count * overlap / width
                m += 1
    return Load(start, tuple(nominal), tuple(spread), len(groups), sum(g.count for g in groups))
