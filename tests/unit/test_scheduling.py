"""Pure schedule planning: due times, catch-up, overlap, windows, DST, substitution, load."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from conveyor import expressions, scheduling
from conveyor.model import DefinitionSpec
from conveyor.scheduling import CatchUp, FireMath, Overlap, Schedule, ScheduleTarget

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
TARGET = ScheduleTarget(queue="default", spec=DefinitionSpec(command=("echo", "{scheduled_time}")))
MIN = timedelta(minutes=1)


def make(expression: str = "* * * * *", now: datetime = T0, **kw: object) -> Schedule:
    s = Schedule(
        name=str(kw.pop("name", "s")),
        expression=expressions.parse(expression).text,
        timezone=str(kw.pop("timezone", "UTC")),
        targets=(TARGET,),
        anchor_at=now,
    )
    s = replace(s, **kw)  # type: ignore[arg-type]
    nominal, due = scheduling.first_times(s, now)
    return replace(s, next_nominal_at=nominal, next_due_at=due)


def advance(s: Schedule, p: scheduling.FirePlan) -> Schedule:
    return replace(s, next_nominal_at=p.next_nominal_at, next_due_at=p.next_due_at)


def fired(p: scheduling.FirePlan) -> list[datetime]:
    return [f.nominal_at for f in p.fires]


def test_nothing_fires_before_the_due_time() -> None:
    s = make()
    p = scheduling.plan(s, T0 + timedelta(seconds=59), False)
    assert p.fires == () and p.skipped == () and p.next_nominal_at == T0 + MIN


def test_an_on_time_fire_fires_and_advances_to_the_next_nominal_time() -> None:
    s = make()
    p = scheduling.plan(s, T0 + MIN + timedelta(seconds=1), False)
    assert fired(p) == [T0 + MIN]
    assert p.skipped == ()
    assert p.next_nominal_at == p.next_due_at == T0 + 2 * MIN
    assert not p.finished


def test_walking_minute_by_minute_fires_every_nominal_time_once() -> None:
    s = make("*/5 * * * *")
    seen: list[datetime] = []
    now = T0
    for _ in range(120):
        now += timedelta(seconds=30)
        p = scheduling.plan(s, now, False)
        seen += fired(p)
        s = advance(s, p)
    assert seen == [T0 + k * 5 * MIN for k in range(1, 13)]


def test_catch_up_skip_fires_only_on_time_fires_and_records_one_skip_run() -> None:
    s = make(catch_up=CatchUp.SKIP)
    now = T0 + 10 * MIN + timedelta(seconds=5)
    p = scheduling.plan(s, now, False)
    assert fired(p) == [T0 + 10 * MIN]
    [skip] = p.skipped
    assert (skip.nominal_at, skip.last_nominal_at, skip.count) == (T0 + MIN, T0 + 9 * MIN, 9)
    assert "catch-up SKIP" in skip.reason


def test_catch_up_once_folds_late_fires_into_the_on_time_fire() -> None:
    s = make()
    p = scheduling.plan(s, T0 + 10 * MIN + timedelta(seconds=5), False)
    assert fired(p) == [T0 + 10 * MIN]
    assert p.fires[0].covers == 10
    assert sum(k.count for k in p.skipped) == 9


def test_catch_up_once_fires_the_most_recent_late_time_when_none_is_on_time() -> None:
    s = make("0 * * * *")
    p = scheduling.plan(s, T0 + timedelta(hours=5, minutes=30), False)
    assert fired(p) == [T0 + timedelta(hours=5)]
    assert p.fires[0].covers == 5
    assert p.next_nominal_at == T0 + timedelta(hours=6)


def test_catch_up_all_fires_each_late_time_up_to_the_cap_of_100() -> None:
    s = make(catch_up=CatchUp.ALL)
    p = scheduling.plan(s, T0 + timedelta(hours=3), False)
    assert len(p.fires) == 100
    assert fired(p) == [T0 + k * MIN for k in range(81, 181)]
    assert sum(k.count for k in p.skipped) == 80


def test_a_deadline_drops_fires_that_are_too_late_whatever_the_policy() -> None:
    s = make("0 * * * *", deadline=timedelta(minutes=30))
    p = scheduling.plan(s, T0 + timedelta(hours=2, minutes=45), False)
    assert p.fires == ()
    assert all("deadline" in k.reason for k in p.skipped)


def test_a_month_of_downtime_is_planned_quickly_and_keeps_the_latest_fires() -> None:
    s = make("* * * * * *", catch_up=CatchUp.ALL)  # every second
    now = T0 + timedelta(days=30)
    started = time.perf_counter()
    p = scheduling.plan(s, now, False)
    assert time.perf_counter() - started < 2.0
    assert len(p.fires) == 100
    assert p.fires[-1].nominal_at == now
    assert p.next_nominal_at == now + timedelta(seconds=1)
    assert sum(k.count for k in p.skipped) > 2_000_000


def test_overlap_skip_skips_while_the_previous_jobs_are_unfinished() -> None:
    s = make(overlap=Overlap.SKIP)
    p = scheduling.plan(s, T0 + MIN, True)
    assert p.fires == ()
    assert "overlap SKIP" in p.skipped[0].reason
    assert p.next_nominal_at == T0 + 2 * MIN  # skipped fires are not retried later


def test_overlap_skip_fires_only_the_first_of_several_due_times() -> None:
    s = make(overlap=Overlap.SKIP, catch_up=CatchUp.ALL)
    p = scheduling.plan(s, T0 + 3 * MIN, False)
    assert fired(p) == [T0 + MIN]


def test_overlap_replace_fires_the_last_due_time_and_replaces_the_previous_jobs() -> None:
    s = make(overlap=Overlap.REPLACE, catch_up=CatchUp.ALL)
    p = scheduling.plan(s, T0 + 3 * MIN, True)
    assert fired(p) == [T0 + 3 * MIN]
    assert p.replace_previous
    assert not scheduling.plan(s, T0 + 3 * MIN, False).replace_previous


def test_an_at_schedule_fires_once_and_finishes() -> None:
    s = make("at(2026-03-01T14:00:00)", timezone="Europe/Berlin")  # 13:00 UTC
    at = T0 + timedelta(hours=1)
    assert s.next_nominal_at == at
    p = scheduling.plan(s, at, False)
    assert fired(p) == [at] and p.finished and p.next_nominal_at is None


def test_an_end_time_finishes_the_schedule() -> None:
    s = make("0 * * * *", end_at=T0 + timedelta(hours=2))
    p = scheduling.plan(s, T0 + timedelta(hours=2), False)
    assert fired(p) == [T0 + timedelta(hours=2)]
    assert p.finished


def test_a_start_time_on_a_fire_time_is_included() -> None:
    s = make("0 * * * *", start_at=T0 + timedelta(hours=3))
    assert s.next_nominal_at == T0 + timedelta(hours=3)


@pytest.mark.parametrize(
    ("day", "expected_utc"),
    [
        # spring forward in Berlin: 02:30 does not exist on 2026-03-29 -> fires once at 03:00 CEST
        (datetime(2026, 3, 28, 12, tzinfo=UTC), datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),
        # fall back: 02:30 happens twice on 2026-10-25 -> fires once, at the first (CEST)
        (datetime(2026, 10, 24, 12, tzinfo=UTC), datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
    ],
)
def test_dst_changes_fire_a_daily_local_time_exactly_once(day: datetime, expected_utc: datetime) -> None:
    s = make("30 2 * * *", now=day, timezone="Europe/Berlin")
    seen: list[datetime] = []
    now = day
    for _ in range(24 * 6):  # a day in 10-minute steps
        now += timedelta(minutes=10)
        p = scheduling.plan(s, now, False)
        seen += fired(p)
        s = advance(s, p)
    assert seen == [expected_utc]


def test_window_offsets_are_deterministic_and_inside_the_window() -> None:
    window = timedelta(minutes=10)
    for i in range(500):
        off = scheduling.window_offset(f"s{i}", T0, window)
        assert timedelta(0) <= off < window
        assert off == scheduling.window_offset(f"s{i}", T0, window)
    assert scheduling.window_offset("s", T0, timedelta(0)) == timedelta(0)
    # different fires of one schedule land on different spots
    assert len({scheduling.window_offset("s", T0 + k * MIN, window) for k in range(50)}) > 40


def test_window_offsets_spread_many_schedules_evenly() -> None:
    window = timedelta(minutes=10)
    buckets = Counter(int(scheduling.window_offset(f"job-{i}", T0, window) // MIN) for i in range(10_000))
    assert set(buckets) == set(range(10))
    assert all(850 <= n <= 1150 for n in buckets.values()), buckets


def test_a_window_longer_than_the_period_keeps_due_times_in_order() -> None:
    s = make(window=timedelta(minutes=30))
    dues: list[datetime] = []
    now = T0
    for _ in range(200):
        now += timedelta(seconds=20)
        p = scheduling.plan(s, now, False)
        dues += [f.due_at for f in p.fires]
        assert all(now - f.due_at <= scheduling.GRACE for f in p.fires)
        s = advance(s, p)
    assert dues == sorted(dues) and len(dues) > 30


def test_new_job_fills_scheduled_time_and_schedule_in_parameters_and_unique_key() -> None:
    target = ScheduleTarget(
        queue="q",
        spec=DefinitionSpec(command=("run", "{day}"), parameters={"day": "day-{scheduled_time}"}),
        unique_key="{schedule}:{scheduled_time}",
    )
    job = scheduling.new_job(target, "nightly", T0, "Europe/Berlin")
    assert job.spec.parameters == {
        "day": "day-2026-03-01T13:00:00+01:00",
        "scheduled_time": "2026-03-01T13:00:00+01:00",
        "schedule": "nightly",
    }
    assert job.unique_key == "nightly:2026-03-01T13:00:00+01:00"
    assert job.name == "nightly"
    assert scheduling.target_from_dict(scheduling.target_to_dict(target)) == target


def test_schedules_sharing_an_expression_share_the_fire_math() -> None:
    math = FireMath()
    for i in range(100):
        s = make("0 9 * * MON-FRI", name=f"s{i}", timezone="Europe/Berlin")
        scheduling.plan(s, T0 + timedelta(days=3), False, math=math)
    assert math.misses <= 5 and math.hits >= 99


def test_load_counts_fires_per_minute_with_and_without_windows() -> None:
    groups = [
        scheduling.LoadGroup("0 * * * *", "UTC", timedelta(0), None, 100),
        scheduling.LoadGroup("0 * * * *", "UTC", timedelta(minutes=10), None, 100),
    ]
    load = scheduling.load(groups, T0, 120)
    assert load.nominal[0] == 200 and load.nominal[60] == 200 and sum(load.nominal) == 400
    assert load.spread[0] == pytest.approx(110)
    assert load.spread[5] == pytest.approx(10)
    assert sum(load.spread) == pytest.approx(400)
