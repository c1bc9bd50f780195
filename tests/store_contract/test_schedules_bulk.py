"""The schedules' bulk paths on both backends: bulk creation and bursts of due schedules
(one plan shared by schedules with the same settings, rows written a batch at a time)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from conveyor import errors, scheduling
from conveyor.clock import FrozenClock
from conveyor.model import DefinitionSpec, Queue
from conveyor.scheduling import CatchUp, FireOutcome, Overlap, Schedule, ScheduleState, ScheduleTarget
from conveyor.store import Store

MIN = timedelta(minutes=1)
TARGET = ScheduleTarget(
    queue="default", spec=DefinitionSpec(function="tasks:work", parameters={"day": "{scheduled_time}"})
)


def schedule(name: str, now: datetime, expression: str = "* * * * *", **kw: object) -> Schedule:
    s = replace(Schedule(name, expression, "UTC", (TARGET,), now), **kw)  # type: ignore[arg-type]
    nominal, due = scheduling.first_times(s, now)
    return replace(s, next_nominal_at=nominal, next_due_at=due, created_at=now, updated_at=now)


def test_bulk_created_schedules_read_back_as_created_one_by_one(store: Store, clock: FrozenClock) -> None:
    now = clock.now()
    varied: dict[str, Any] = dict(
        timezone="Europe/Berlin",
        start_at=now + MIN,
        end_at=now + 30 * MIN,
        window=timedelta(seconds=90),
        overlap=Overlap.SKIP,
        catch_up=CatchUp.ALL,
        deadline=timedelta(seconds=600),
        description="bulk",
        tags=("a", "b"),
        state=ScheduleState.PAUSED,
    )
    assert store.schedule_create_many([schedule("bulk", now, **varied), schedule("plain", now)], now) == 2
    store.schedule_create(schedule("single", now, **varied), now)
    bulk, single = store.schedule_get("bulk"), store.schedule_get("single")
    assert bulk is not None and single is not None
    # the window offset depends on the name
    assert replace(bulk, id=0, name="single", next_due_at=None) == replace(single, id=0, next_due_at=None)
    assert bulk.next_due_at == scheduling.due_time(bulk, now + MIN)
    plain = store.schedule_get("plain")
    assert plain is not None and plain.tags == () and plain.deadline is None and plain.end_at is None
    assert plain.targets == (TARGET,) and plain.last_job_ids == ()


def test_a_taken_name_fails_its_bulk_batch_only(store: Store, clock: FrozenClock) -> None:
    now = clock.now()
    store.schedule_create(schedule("s003", now), now)
    with pytest.raises(errors.Conflict):
        store.schedule_create_many([schedule(f"s{i:03}", now) for i in range(6)], now, batch=3)
    assert sorted(s.name for s in store.schedule_list()) == ["s000", "s001", "s002", "s003"]


def test_a_burst_of_alike_schedules_fires_each_with_its_own_name_jobs_and_history(
    store: Store, clock: FrozenClock
) -> None:
    now = clock.now()
    store.queue_put(Queue("off", enabled=False), now)
    off = replace(TARGET, queue="off")
    items = [schedule(f"b{i:03}", now) for i in range(40)]
    items += [schedule(f"w{i:03}", now, window=timedelta(seconds=20)) for i in range(10)]
    items += [schedule(f"x{i:03}", now, targets=(TARGET, off)) for i in range(5)]
    items += [schedule(f"o{i:03}", now, targets=(off,)) for i in range(5)]
    store.schedule_create_many(items, now, batch=7)
    clock.advance(MIN + timedelta(seconds=30))
    total = scheduling.FireCounts()
    while (counts := store.schedule_fire_due(clock.now(), limit=16)).schedules:
        total.add(counts)
    assert (total.schedules, total.fired, total.skipped, total.jobs) == (60, 55, 5, 55)

    jobs = {j.name: j for j in store.job_list(limit=1000)}
    assert len(jobs) == 55
    for name, job in jobs.items():
        assert job.spec.parameters["schedule"] == name
        assert job.spec.parameters["day"] == job.spec.parameters["scheduled_time"] == (now + MIN).isoformat()
    for s in items:
        got = store.schedule_get(s.name)
        assert got is not None and got.next_nominal_at == now + 2 * MIN and got.last_nominal_at == now + MIN
        history = store.schedule_history(s.name)
        assert len(history) == 1 and history[0].nominal_at == now + MIN
        entry = history[0]
        if s.name.startswith("o"):
            assert entry.outcome is FireOutcome.SKIPPED and "queue 'off' is disabled" in entry.reason
            assert got.last_job_ids == () and got.last_fired_at is None
        else:
            assert entry.outcome is FireOutcome.FIRED and entry.job_ids == got.last_job_ids
            assert jobs[s.name].id in entry.job_ids and got.last_fired_at == clock.now()
        if s.name.startswith("x"):
            assert "queue 'off' is disabled" in entry.reason
        if s.name.startswith("w"):
            assert entry.due_at is not None and now + MIN <= entry.due_at < now + MIN + timedelta(seconds=20)
    events = [e for e in store.events_list(entity="schedule", limit=10_000) if e.type.startswith("schedule.")]
    fired = {e.entity_id: e.data for e in events if e.type in ("schedule.fired", "schedule.skipped")}
    assert len(fired) == 60
    assert fired["b000"]["nominal_at"] == (now + MIN).isoformat()
    assert fired["b000"]["jobs"] == [jobs["b000"].id] and fired["b000"]["reason"] == ""
    assert fired["o000"]["jobs"] == [] and "disabled" in str(fired["o000"]["reason"])
    # a second look at the same instant fires nothing
    assert store.schedule_fire_due(clock.now(), limit=100).schedules == 0


def test_a_burst_fired_by_parallel_batches_fires_every_schedule_exactly_once(
    store: Store, clock: FrozenClock
) -> None:
    from collections import Counter

    from conveyor.engine.schedules import Scheduler, SchedulerConfig

    now = clock.now()
    store.schedule_create_many([schedule(f"p{i:04}", now) for i in range(600)], now, batch=250)
    clock.advance(MIN)
    scheduler = Scheduler(store, clock, SchedulerConfig(batch_size=25, parallel=4))
    counts = scheduler.run_once(clock.now())
    assert (counts.schedules, counts.fired, counts.jobs) == (600, 600, 600)
    names = Counter(j.name for j in store.job_list(limit=10_000))
    assert len(names) == 600 and set(names.values()) == {1}
    assert scheduler.run_once(clock.now()).schedules == 0
    scheduler.close()
