"""Schedules in the store, both backends: each due time fires exactly once, policies hold."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from conveyor import errors, expressions, scheduling
from conveyor.clock import FrozenClock
from conveyor.model import DefinitionSpec, JobState, Queue
from conveyor.scheduling import CatchUp, FireOutcome, Overlap, Schedule, ScheduleState, ScheduleTarget
from conveyor.store import Store, open_store

TARGET = ScheduleTarget(queue="default", spec=DefinitionSpec(function="tasks:work"))
MIN = timedelta(minutes=1)


def create(
    store: Store, now: datetime, name: str = "s", expression: str = "* * * * *", **kw: object
) -> Schedule:
    s = Schedule(
        name=name,
        expression=expressions.parse(expression).text,
        timezone="UTC",
        targets=(TARGET,),
        anchor_at=now,
    )
    s = replace(s, **kw)  # type: ignore[arg-type]
    nominal, due = scheduling.first_times(s, now)
    return store.schedule_create(replace(s, next_nominal_at=nominal, next_due_at=due), now)


def fired(store: Store, name: str) -> list[datetime]:
    return sorted(
        f.nominal_at for f in store.schedule_history(name, 10_000) if f.outcome is FireOutcome.FIRED
    )


def test_each_due_time_fires_exactly_once(store: Store, clock: FrozenClock) -> None:
    start = clock.now()
    create(store, start, "every-minute")
    create(store, start, "five", "*/5 * * * *")
    for _ in range(30):
        clock.advance(20)
        store.schedule_fire_due(clock.now())
        store.schedule_fire_due(clock.now())  # a second look at the same instant fires nothing
    assert fired(store, "every-minute") == [start + k * MIN for k in range(1, 11)]
    assert fired(store, "five") == [start + 5 * MIN, start + 10 * MIN]
    jobs = store.job_list(limit=100)
    assert len(jobs) == 12
    assert {j.name for j in jobs} == {"every-minute", "five"}
    assert all(j.spec.parameters["schedule"] == j.name for j in jobs)
    s = store.schedule_get("every-minute")
    assert s is not None and s.next_nominal_at == start + 11 * MIN and s.last_nominal_at == start + 10 * MIN


def test_a_duplicate_name_is_a_conflict_naming_it(store: Store, clock: FrozenClock) -> None:
    create(store, clock.now(), "nightly")
    with pytest.raises(errors.Conflict, match="nightly"):
        create(store, clock.now(), "nightly", "0 2 * * *")
    s = store.schedule_get("nightly")
    assert s is not None and s.expression == "* * * * *"


def test_the_unique_history_index_refuses_a_second_fire_of_a_nominal_time(
    store: Store, clock: FrozenClock
) -> None:
    start = clock.now()
    create(store, start)
    clock.advance(MIN)
    assert store.schedule_fire_due(clock.now()).fired == 1
    with store._write() as tx:  # simulate a lost update: the schedule points back at a fired time
        tx.x(
            "UPDATE schedules SET next_nominal_at = ?, next_due_at = ? WHERE name = 's'",
            (store.d.ts(start + MIN), store.d.ts(start + MIN)),
        )
    with pytest.raises(errors.Conflict):
        store.schedule_fire_due(clock.now())
    assert len(store.job_list(limit=10)) == 1  # the whole batch rolled back


def test_pause_resume_and_delete(store: Store, clock: FrozenClock) -> None:
    start = clock.now()
    create(store, start)
    s, changed = store.schedule_pause("s", start)
    assert changed and s.state is ScheduleState.PAUSED
    assert not store.schedule_pause("s", start)[1]
    clock.advance(10 * MIN + timedelta(seconds=30))
    assert store.schedule_fire_due(clock.now()).schedules == 0
    s, changed = store.schedule_resume("s", clock.now())
    assert changed and s.state is ScheduleState.ACTIVE and s.next_nominal_at == start + 11 * MIN
    clock.advance(MIN)
    assert store.schedule_fire_due(clock.now()).fired == 1
    assert store.schedule_delete("s", clock.now())
    assert store.schedule_get("s") is None and not store.schedule_delete("s", clock.now())
    with pytest.raises(errors.NotFound):
        store.schedule_history("s")


def test_overlap_skip_waits_for_the_previous_fire_to_finish(store: Store, clock: FrozenClock) -> None:
    create(store, clock.now(), overlap=Overlap.SKIP)
    clock.advance(MIN)
    assert store.schedule_fire_due(clock.now()).jobs == 1
    [job] = store.job_list(limit=10)
    clock.advance(MIN)
    counts = store.schedule_fire_due(clock.now())
    assert (counts.fired, counts.skipped, counts.jobs) == (0, 1, 0)
    [latest] = store.schedule_history("s", 1)
    assert latest.outcome is FireOutcome.SKIPPED and "overlap SKIP" in latest.reason
    store.job_cancel(job.id, "done", clock.now())
    clock.advance(MIN)
    assert store.schedule_fire_due(clock.now()).jobs == 1


def test_overlap_replace_cancels_the_previous_fire_first(store: Store, clock: FrozenClock) -> None:
    create(store, clock.now(), overlap=Overlap.REPLACE)
    clock.advance(MIN)
    store.schedule_fire_due(clock.now())
    [first] = store.job_list(limit=10)
    clock.advance(MIN)
    assert store.schedule_fire_due(clock.now()).jobs == 1
    old = store.job_get(first.id)
    assert old is not None and old.state is JobState.CANCELLED and "replaced" in old.status_reason
    s = store.schedule_get("s")
    assert s is not None and s.last_job_ids != (first.id,)


def test_overlap_replace_ends_a_waiting_array_job_cancelled(store: Store, clock: FrozenClock) -> None:
    """REPLACE cancelled the array's children directly: the array ended FAILED ("2 of 2
    children did not succeed"), as an explicit cancel did before it was fixed."""
    target = replace(TARGET, array_size=2)
    create(store, clock.now(), targets=(target,), overlap=Overlap.REPLACE)
    clock.advance(MIN)
    store.schedule_fire_due(clock.now())
    [first] = [j for j in store.job_list(limit=10) if j.array_size]
    clock.advance(MIN)
    assert store.schedule_fire_due(clock.now()).jobs == 1
    old = store.job_get(first.id)
    assert old is not None and old.state is JobState.CANCELLED, old
    assert "replaced" in old.status_reason


@pytest.mark.parametrize(
    ("policy", "jobs", "skipped"),
    [(CatchUp.SKIP, 0, 5), (CatchUp.ONCE, 1, 4), (CatchUp.ALL, 5, 0)],
)
def test_catch_up_after_downtime(
    store: Store, clock: FrozenClock, policy: CatchUp, jobs: int, skipped: int
) -> None:
    start = clock.now()
    create(store, start, expression="0 * * * *", catch_up=policy)
    clock.advance(timedelta(hours=5, minutes=30))
    counts = store.schedule_fire_due(clock.now())
    assert (counts.jobs, counts.skipped) == (jobs, skipped)
    s = store.schedule_get("s")
    assert s is not None and s.next_nominal_at == start + timedelta(hours=6)
    assert s.last_nominal_at == start + timedelta(hours=5)


def test_catch_up_all_is_capped_at_100(store: Store, clock: FrozenClock) -> None:
    create(store, clock.now(), catch_up=CatchUp.ALL)
    clock.advance(timedelta(hours=3))
    counts = store.schedule_fire_due(clock.now())
    assert (counts.jobs, counts.skipped) == (100, 80)


def test_an_at_schedule_finishes_or_deletes_itself(store: Store, clock: FrozenClock) -> None:
    at = clock.now() + timedelta(hours=1)
    text = f"at({at.replace(tzinfo=None).isoformat()})"
    create(store, clock.now(), "keep", text)
    create(store, clock.now(), "drop", text, delete_after=True)
    clock.set(at)
    counts = store.schedule_fire_due(clock.now())
    assert (counts.jobs, counts.finished) == (2, 2)
    keep = store.schedule_get("keep")
    assert keep is not None and keep.state is ScheduleState.FINISHED and keep.next_due_at is None
    assert store.schedule_get("drop") is None
    clock.advance(timedelta(days=1))
    assert store.schedule_fire_due(clock.now()).schedules == 0


def test_a_disabled_target_queue_skips_the_fire_with_the_reason(store: Store, clock: FrozenClock) -> None:
    store.queue_put(Queue("reports", enabled=False), clock.now())
    create(store, clock.now(), targets=(replace(TARGET, queue="reports"),))
    clock.advance(MIN)
    counts = store.schedule_fire_due(clock.now())
    assert (counts.jobs, counts.skipped) == (0, 1)
    [entry] = store.schedule_history("s")
    assert entry.outcome is FireOutcome.SKIPPED and "queue 'reports' is disabled" in entry.reason


def test_fires_are_claimed_in_batches_by_due_time(store: Store, clock: FrozenClock) -> None:
    start = clock.now()
    store.schedule_create_many(
        [
            replace(
                Schedule(f"b{i:03}", "* * * * *", "UTC", (TARGET,), start),
                next_nominal_at=start + MIN,
                next_due_at=start + MIN + timedelta(milliseconds=i),
            )
            for i in range(250)
        ],
        start,
        batch=100,
    )
    clock.advance(MIN + timedelta(seconds=1))
    sizes = [store.schedule_fire_due(clock.now(), limit=100).schedules for _ in range(4)]
    assert sizes == [100, 100, 50, 0]
    assert store.schedule_next_due() == start + 2 * MIN
    assert store.schedule_count() == {"ACTIVE": 250}
    assert [s.name for s in store.schedule_list(limit=3, after_name="b100")] == ["b101", "b102", "b103"]


EXPRESSIONS = [
    "* * * * *",
    "*/5 * * * *",
    "rate(7 minutes)",
    "*/30 * * * * *",
    "17 * * * *",
    "cron(0/3 * * * ? *)",
]


@pytest.mark.postgres
@pytest.mark.parametrize("schedulers", [2, 3])
def test_racing_schedulers_fire_every_due_time_exactly_once(
    pg_url: str, clock: FrozenClock, schedulers: int
) -> None:
    """Several schedulers (threads, each with its own store) over an hour of simulated time."""
    start = clock.now()
    setup = open_store(pg_url)
    expected: dict[str, list[datetime]] = {}
    try:
        for i in range(30):
            text = EXPRESSIONS[i % len(EXPRESSIONS)]
            s = create(setup, start, f"race{i:02}", text, window=timedelta(seconds=37 * (i % 3)))
            end = start + timedelta(hours=1)
            expected[s.name] = list(
                _until(expressions.next_fires(expressions.parse(text), "UTC", start, anchor=start), end)
            )
    finally:
        setup.close()
    steps = [start + timedelta(seconds=12 * k) for k in range(1, 3600 // 12 + 8)]
    barrier = threading.Barrier(schedulers)
    failures: list[BaseException] = []

    def run() -> None:
        store = open_store(pg_url)
        try:
            for now in steps:
                barrier.wait(timeout=30)
                while store.schedule_fire_due(now, limit=7).schedules == 7:
                    pass
        except BaseException as exc:  # reported below
            failures.append(exc)
            barrier.abort()
        finally:
            store.close()

    threads = [threading.Thread(target=run) for _ in range(schedulers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures, failures
    check = open_store(pg_url)
    try:
        for name, nominal in expected.items():
            got = [f for f in fired(check, name) if f <= start + timedelta(hours=1)]
            assert got == nominal, name
        jobs = check.job_list(limit=100_000)
        per_schedule = Counter(j.name for j in jobs)
        assert sum(per_schedule.values()) == len(
            {(j.name, j.spec.parameters["scheduled_time"]) for j in jobs}
        )
        assert all(per_schedule[n] >= len(v) for n, v in expected.items())
    finally:
        check.close()


def _until(fires: object, end: datetime) -> list[datetime]:
    out = []
    for at in fires:  # type: ignore[attr-defined]
        if at > end:
            break
        out.append(at)
    return out
