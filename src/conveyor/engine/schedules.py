"""Schedules: validated creation and changes, and the ``Scheduler`` loop that fires them.

A schedule's targets are validated exactly like submissions (``JobService._build``) when
the schedule is created, and stored as ready-made job templates; a fire only fills in
``{scheduled_time}`` and ``{schedule}``. Bad input raises ``errors.ValidationError`` naming
the field, before anything is stored.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from conveyor import errors, expressions, scheduling, values
from conveyor.clock import Clock
from conveyor.engine import validate
from conveyor.engine.jobs import JobService, SubmitRequest
from conveyor.model import Job, NewJob
from conveyor.scheduling import (
    CatchUp,
    FireCounts,
    Load,
    Overlap,
    Schedule,
    ScheduleFire,
    ScheduleState,
    ScheduleTarget,
)
from conveyor.store import Store

log = logging.getLogger("conveyor.scheduler")

MAX_TARGETS = 20
MAX_WINDOW_MINUTES = scheduling.MAX_WINDOW / timedelta(minutes=1)
# submission fields that make no sense for a job fired by a schedule
_NOT_IN_TARGETS = ("run_at", "delay_seconds", "depends_on", "idempotency_key", "parent_id")
_NO_WINDOW = timedelta(0)


@dataclass(frozen=True, slots=True)
class ScheduleRequest:
    """A schedule as the edges hand it over (plain values, not yet validated)."""

    name: str
    expression: str
    targets: Sequence[SubmitRequest] = ()
    timezone: str = "UTC"
    start_at: datetime | None = None
    end_at: datetime | None = None
    window_minutes: float = 0
    overlap: str = Overlap.ALLOW.value
    catch_up: str = CatchUp.ONCE.value
    deadline_seconds: float | None = None
    delete_after: bool = False
    description: str = ""
    tags: Sequence[str] = ()
    enabled: bool = True


def _choice(field: str, value: Any, kind: type[Overlap] | type[CatchUp]) -> Any:
    try:
        return kind(str(value).upper())
    except ValueError:
        raise errors.ValidationError(
            field, f"{values.shown(value)} is not a policy", ", ".join(m.value for m in kind)
        ) from None


def _aware(field: str, value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return validate.moment(field, value).astimezone(UTC)


MAX_PAGE = 10_000  # schedules or fires listed at once


class ScheduleService:
    def __init__(self, store: Store, clock: Clock, jobs: JobService) -> None:
        self.store = store
        self.clock = clock
        self.jobs = jobs

    # -- validation -----------------------------------------------------------------------
    def build(
        self,
        req: ScheduleRequest,
        now: datetime,
        *,
        targets: tuple[ScheduleTarget, ...] | None = None,
        memo: dict[tuple[int, ...], tuple[ScheduleTarget, ...]] | None = None,
    ) -> Schedule:
        """Validate a request into a ``Schedule`` with its first due time (nothing stored).

        ``targets``: already validated ones (an update that keeps them); ``memo``: validated
        targets by the ids of the request's targets, for the bulk path where many schedules
        share their target objects.
        """
        name = validate.name("name", req.name)
        math = self.store.schedule_math()
        expr = math.expression(req.expression)  # ValidationError field "expression..."
        zone = expressions.validate_timezone(req.timezone).key
        start, end = _aware("start", req.start_at), _aware("end", req.end_at)
        if start is not None and end is not None and end <= start:
            raise errors.ValidationError(
                "end", f"{end.isoformat()} is not after start {start.isoformat()}", "a time after start"
            )
        window = validate.number("window", req.window_minutes, 0, MAX_WINDOW_MINUTES)
        overlap = _choice("overlap", req.overlap, Overlap)
        catch_up = _choice("catch_up", req.catch_up, CatchUp)
        deadline = None
        if req.deadline_seconds is not None:
            deadline = timedelta(
                seconds=validate.number("deadline", req.deadline_seconds, 0, 366 * 86_400, low_open=True)
            )
        if req.delete_after and expr.kind != "at":
            raise errors.ValidationError(
                "delete_after", "only at() schedules can delete themselves", "at(...)"
            )
        if not isinstance(req.description, str) or len(req.description) > 1000:
            raise errors.ValidationError("description", "must be text of at most 1000 characters")
        tags = tuple(str(t) for t in req.tags)
        for t in tags:
            if not t or len(t) > 128 or '"' in t:
                raise errors.ValidationError(
                    "tags", f"{values.shown(t)} is not a valid tag", "1-128 characters, no double quotes"
                )
        if expr.kind == "at" and expressions.is_in_past(expr, zone, now):
            raise errors.ValidationError(
                "expression",
                f"{expr.text} in {zone} is in the past (now is {now.astimezone(expressions.validate_timezone(zone)).isoformat()})",
                "a time in the future",
            )
        if targets is None:
            # the caller keeps the requests (and so these ids) alive
            key = tuple(map(id, req.targets))
            targets = None if memo is None else memo.get(key)
            if targets is None:
                targets = self._targets(req.targets, now)
                if memo is not None:
                    memo[key] = targets
        anchor = start or now
        window_td = timedelta(minutes=window) if window else _NO_WINDOW
        nominal = scheduling.first_nominal(expr.text, zone, anchor, start, end, now, math)
        if nominal is None:
            raise errors.ValidationError(
                "expression",
                f"{expr.text} in {zone} never fires"
                + (f" before end {end.isoformat()}" if end is not None else " after now"),
                "an expression with a fire time in the future",
            )
        return Schedule(
            name=name,
            expression=expr.text,
            timezone=zone,
            targets=targets,
            anchor_at=anchor,
            start_at=start,
            end_at=end,
            window=window_td,
            overlap=overlap,
            catch_up=catch_up,
            deadline=deadline,
            state=ScheduleState.ACTIVE if req.enabled else ScheduleState.PAUSED,
            delete_after=req.delete_after,
            description=req.description,
            tags=tags,
            next_nominal_at=nominal,
            next_due_at=nominal + scheduling.window_offset(name, nominal, window_td),
            created_at=now,
            updated_at=now,
        )

    def _targets(self, reqs: Sequence[SubmitRequest], now: datetime) -> tuple[ScheduleTarget, ...]:
        if not reqs:
            raise errors.ValidationError(
                "targets",
                "a schedule needs at least one target",
                "--queue/--definition, -- argv, or --target-json",
            )
        if len(reqs) > MAX_TARGETS:
            raise errors.ValidationError("targets", f"{len(reqs)} targets", f"at most {MAX_TARGETS}")
        cache = self.jobs.cache
        for req in reqs:
            cache.queue(req.queue)  # refreshes on a miss
        definitions: dict[tuple[str, int | None], Any] = {}
        parents: dict[int, Job] = {}
        out = []
        for i, req in enumerate(reqs):
            prefix = f"targets[{i}]."
            for name in _NOT_IN_TARGETS:
                value = getattr(req, name)
                if value not in (None, (), []):
                    raise errors.ValidationError(
                        f"{prefix}{name}",
                        "cannot be used in a schedule target",
                        "the schedule decides when jobs run",
                    )
            params = {
                scheduling.PARAM_TIME: "{" + scheduling.PARAM_TIME + "}",
                scheduling.PARAM_SCHEDULE: "{" + scheduling.PARAM_SCHEDULE + "}",
                **(req.parameters or {}),
            }
            nj: NewJob = self.jobs._build(
                replace(req, parameters=params), prefix, now, cache.queues, cache.envs, definitions, parents
            )
            out.append(
                ScheduleTarget(
                    queue=nj.queue,
                    spec=nj.spec,
                    definition=nj.definition,
                    definition_revision=nj.definition_revision,
                    payload=nj.payload,
                    payload_ref=nj.payload_ref,
                    priority=nj.priority,
                    array_size=nj.array_size,
                    array_sequential=nj.array_sequential,
                    unique_key=nj.unique_key,
                    unique_ttl_seconds=nj.unique_ttl_seconds,
                    tags=nj.tags,
                    name=nj.name,
                )
            )
        return tuple(out)

    # -- changes ----------------------------------------------------------------------------
    def create(self, req: ScheduleRequest) -> Schedule:
        now = self.clock.now()
        return self.store.schedule_create(self.build(req, now), now)

    def create_many(self, reqs: Sequence[ScheduleRequest], batch: int = 5000) -> int:
        """The bulk path: validate all (identical targets are validated once), then insert
        ``batch`` per transaction. Errors name the request: ``schedules[i].field``."""
        now = self.clock.now()
        memo: dict[tuple[int, ...], tuple[ScheduleTarget, ...]] = {}
        built = []
        names: set[str] = set()
        for i, req in enumerate(reqs):
            try:
                s = self.build(req, now, memo=memo)
            except errors.ValidationError as exc:
                raise errors.ValidationError(f"schedules[{i}].{exc.field}", exc.reason, exc.allowed) from None
            if s.name in names:
                raise errors.Conflict(f"schedules[{i}]: schedule {s.name!r} appears twice")
            names.add(s.name)
            built.append(s)
        return self.store.schedule_create_many(built, now, batch)

    def update(self, name: str, **changes: Any) -> Schedule:
        """Change settings (fields of ``ScheduleRequest``); next times are recomputed from now."""
        current = self.get(name)
        unknown = set(changes) - set(ScheduleRequest.__dataclass_fields__) - {"name"}
        if unknown:
            field = sorted(unknown)[0]
            raise errors.ValidationError(
                field, "is not a schedule setting", ", ".join(ScheduleRequest.__dataclass_fields__)
            )
        now = self.clock.now()
        req = ScheduleRequest(
            name=name,
            expression=changes.get("expression", current.expression),
            targets=changes.get("targets") or (),
            timezone=changes.get("timezone", current.timezone),
            start_at=changes.get("start_at", current.start_at),
            end_at=changes.get("end_at", current.end_at),
            window_minutes=changes.get("window_minutes", current.window / timedelta(minutes=1)),
            overlap=changes.get("overlap", current.overlap.value),
            catch_up=changes.get("catch_up", current.catch_up.value),
            deadline_seconds=changes.get(
                "deadline_seconds", None if current.deadline is None else current.deadline.total_seconds()
            ),
            delete_after=changes.get("delete_after", current.delete_after),
            description=changes.get("description", current.description),
            tags=changes.get("tags", current.tags),
            enabled=current.state is not ScheduleState.PAUSED,
        )
        built = self.build(req, now, targets=None if changes.get("targets") else current.targets)
        if current.state is ScheduleState.FINISHED:
            built = replace(built, state=ScheduleState.ACTIVE)
        if "start_at" not in changes:
            built = replace(built, anchor_at=current.anchor_at)
            nominal, due = scheduling.first_times(built, now, self.store.schedule_math())
            built = replace(built, next_nominal_at=nominal, next_due_at=due)
        return self.store.schedule_update(built, now)

    def pause(self, name: str) -> tuple[Schedule, bool]:
        return self.store.schedule_pause(name, self.clock.now())

    def resume(self, name: str) -> tuple[Schedule, bool]:
        return self.store.schedule_resume(name, self.clock.now())

    def delete(self, name: str) -> None:
        if not self.store.schedule_delete(name, self.clock.now()):
            raise errors.NotFound("schedule", name, "list them with `conveyor schedules list`")

    # -- reading ----------------------------------------------------------------------------
    def get(self, name: str) -> Schedule:
        s = self.store.schedule_get(name)
        if s is None:
            raise errors.NotFound("schedule", name, "list them with `conveyor schedules list`")
        return s

    def find(self, **filters: Any) -> list[Schedule]:
        if filters.get("limit") is not None:
            validate.integer("limit", filters["limit"], 1, MAX_PAGE)
        return self.store.schedule_list(**filters)

    def history(self, name: str, limit: int = 50) -> list[ScheduleFire]:
        return self.store.schedule_history(name, validate.integer("limit", limit, 1, MAX_PAGE))

    def upcoming(self, s: Schedule, count: int = 5) -> list[tuple[datetime, datetime]]:
        """The next ``count`` (nominal, due) pairs of a schedule."""
        out: list[tuple[datetime, datetime]] = []
        nominal, due = s.next_nominal_at, s.next_due_at
        math = self.store.schedule_math()
        while nominal is not None and due is not None and len(out) < count:
            out.append((nominal, due))
            nominal = math.next_after(s.expression, s.timezone, nominal, s.anchor_at)
            if nominal is not None and s.end_at is not None and nominal > s.end_at:
                nominal = None
            due = None if nominal is None else max(scheduling.due_time(s, nominal), due)
        return out

    def load(self, hours: float, now: datetime | None = None) -> Load:
        """Fires per minute over the coming hours, across all active schedules."""
        hours = validate.number("hours", hours, 0, 24 * 31, low_open=True)
        now = now or self.clock.now()
        start = now.replace(second=0, microsecond=0)
        return scheduling.load(
            self.store.schedule_load_groups(), start, int(hours * 60), self.store.schedule_math()
        )


# -- the loop ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    batch_size: int = 500

    def __post_init__(self) -> None:
        validate.integer("batch_size", self.batch_size, 1, 100_000)

    """Schedules claimed per transaction."""
    max_batches: int = 10_000
    """Transactions per ``run_once`` at most (then the loop goes round again)."""
    parallel: int = 2
    """Batches in flight at once during a burst (a first batch that comes back full): one
    batch's database work overlaps the next one's Python work. Exactly-once holds as with
    several schedulers (the claim skips locked rows)."""
    max_sleep: float = 0.5
    """Longest sleep between looks at the store: bounds how late a schedule created on
    another machine, with a due time earlier than any known, can be noticed."""
    error_backoff: float = 1.0


@dataclass(slots=True)
class SchedulerStats:
    runs: int = 0
    errors: int = 0
    total: FireCounts = field(default_factory=FireCounts)


class Scheduler:
    """Fires due schedules. Any number may run against one store; each due time fires once."""

    def __init__(self, store: Store, clock: Clock, config: SchedulerConfig | None = None) -> None:
        self.store, self.clock = store, clock
        self.config = config or SchedulerConfig()
        if self.config.batch_size < 1:
            raise errors.ValidationError("batch_size", f"{self.config.batch_size} is too small", "1 or more")
        self.stats = SchedulerStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None

    def run_once(self, now: datetime) -> FireCounts:
        """Fire everything due at ``now``: batches until one comes back short."""
        size = self.config.batch_size
        total = self.store.schedule_fire_due(now, size)
        if total.schedules >= size and self.config.max_batches > 1:
            # a burst: ``parallel`` loops, each firing batches until one comes back short
            budget = [self.config.max_batches - 1]
            lock = threading.Lock()

            def loop() -> FireCounts:
                mine = FireCounts()
                while True:
                    with lock:
                        if budget[0] <= 0:
                            return mine
                        budget[0] -= 1
                    counts = self.store.schedule_fire_due(now, size)
                    mine.add(counts)
                    if counts.schedules < size:
                        return mine

            n = max(1, self.config.parallel)
            if n == 1:
                total.add(loop())
            else:
                if self._pool is None:  # kept: its threads (and their connections) are reused
                    self._pool = ThreadPoolExecutor(n, thread_name_prefix="conveyor-fire")
                for counts in self._pool.map(lambda _: loop(), range(n)):
                    total.add(counts)
        self.stats.runs += 1
        self.stats.total.add(total)
        return total

    def start(self) -> None:
        if self._thread is not None:
            raise errors.Conflict("the scheduler is already running")
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="conveyor-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def close(self) -> None:
        """End the burst threads (``run`` does it when it returns)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def run(self) -> None:
        """Blocks until ``stop()``: fire what is due, sleep until the next due time."""
        log.info("scheduler started")
        while not self._stop.is_set():
            try:
                counts = self.run_once(self.clock.now())
                if counts.schedules:
                    log.debug(
                        "fired %d, skipped %d, %d job(s) from %d schedule(s)",
                        counts.fired,
                        counts.skipped,
                        counts.jobs,
                        counts.schedules,
                    )
                upcoming = self.store.schedule_next_due()
            except (errors.StoreUnavailable, errors.Conflict) as exc:
                self.stats.errors += 1
                log.warning("scheduler: %s; retrying in %.1f s", exc, self.config.error_backoff)
                self._stop.wait(self.config.error_backoff)
                continue
            wait = self.config.max_sleep
            if upcoming is not None:
                wait = min(wait, max(0.0, (upcoming - self.clock.now()).total_seconds()))
            if wait > 0:
                self._stop.wait(wait)
        self.close()
        log.info("scheduler stopped")
