"""Fire times: every syntax element, rate anchors, at(), never-firing expressions, DST, speed.

DST tests write the real transition instants down (UTC, "Z"):
* Europe/Berlin 2026-03-29 01:00Z: 02:00 CET (+1) -> 03:00 CEST (+2); 2026-10-25 01:00Z: 03:00 CEST -> 02:00 CET.
* America/New_York 2026-03-08 07:00Z: 02:00 EST (-5) -> 03:00 EDT (-4); 2026-11-01 06:00Z: 02:00 EDT -> 01:00 EST.
* Australia/Lord_Howe (30-minute DST) 2026-04-04 15:00Z: 02:00 (+11) -> 01:30 (+10:30);
  2026-10-03 15:30Z: 02:00 (+10:30) -> 02:30 (+11).
"""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from conveyor import errors, expressions


def z(text: str) -> datetime:
    """An aware UTC instant from ``2026-03-29T01:00:00Z``-style text."""
    return datetime.fromisoformat(text).astimezone(UTC)


def fires(text: str, tz: str, after: str, count: int = 5, anchor: str | None = None) -> list[str]:
    expr = expressions.parse(text)
    out = itertools.islice(
        expressions.next_fires(expr, tz, z(after), anchor=None if anchor is None else z(anchor)), count
    )
    return [instant.strftime("%Y-%m-%dT%H:%M:%SZ") for instant in out]


# --- syntax elements, in UTC ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "after", "expected"),
    [
        ("0 0 * * *", "2026-01-01T00:00:00Z", ["2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"]),
        ("*/20 * * * *", "2026-01-01T00:00:00Z", ["2026-01-01T00:20:00Z", "2026-01-01T00:40:00Z"]),
        ("5/20 * * * *", "2026-01-01T00:00:00Z", ["2026-01-01T00:05:00Z", "2026-01-01T00:25:00Z"]),
        ("10-20/5 * * * *", "2026-01-01T00:00:00Z", ["2026-01-01T00:10:00Z", "2026-01-01T00:15:00Z"]),
        ("0 9-17/4 * * *", "2026-01-01T10:00:00Z", ["2026-01-01T13:00:00Z", "2026-01-01T17:00:00Z"]),
        ("0 0 1,15 * *", "2026-01-02T00:00:00Z", ["2026-01-15T00:00:00Z", "2026-02-01T00:00:00Z"]),
        ("0 0 1 JAN,JUL *", "2026-01-02T00:00:00Z", ["2026-07-01T00:00:00Z", "2027-01-01T00:00:00Z"]),
        ("0 0 * * MON", "2026-01-01T00:00:00Z", ["2026-01-05T00:00:00Z", "2026-01-12T00:00:00Z"]),
        ("0 0 * * 0", "2026-01-01T00:00:00Z", ["2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z"]),
        ("0 0 * * 7", "2026-01-01T00:00:00Z", ["2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z"]),
        ("0 0 * * FRI-SUN", "2026-01-01T00:00:00Z",
         ["2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z", "2026-01-09T00:00:00Z"]),
        # a/n runs to the end of the field: 1/3 in crontab day-of-week is MON, THU and 7 = SUN (cronsim)
        ("0 0 * * 1/3", "2026-01-01T00:00:00Z",
         ["2026-01-04T00:00:00Z", "2026-01-05T00:00:00Z", "2026-01-08T00:00:00Z"]),
        # Vixie: both day fields restricted -> either matches (1st of the month OR a Monday)
        ("0 0 1 * MON", "2026-01-01T00:00:00Z", ["2026-01-05T00:00:00Z", "2026-01-12T00:00:00Z",
                                                  "2026-01-19T00:00:00Z", "2026-01-26T00:00:00Z",
                                                  "2026-02-01T00:00:00Z"]),
        # Vixie: a day field starting with * -> both must match (odd days that are Mondays)
        ("0 0 */2 * MON", "2026-01-01T00:00:00Z", ["2026-01-05T00:00:00Z", "2026-01-19T00:00:00Z",
                                                   "2026-02-09T00:00:00Z"]),
        ("0 0 1-7 * */7", "2026-01-01T00:00:00Z", ["2026-01-04T00:00:00Z", "2026-02-01T00:00:00Z"]),
        ("0 0 L * *", "2026-01-01T00:00:00Z", ["2026-01-31T00:00:00Z", "2026-02-28T00:00:00Z",
                                              "2026-03-31T00:00:00Z"]),
        ("0 0 L 2 *", "2027-03-01T00:00:00Z", ["2028-02-29T00:00:00Z", "2029-02-28T00:00:00Z"]),
        ("0 0 * * 5#3", "2026-01-01T00:00:00Z", ["2026-01-16T00:00:00Z", "2026-02-20T00:00:00Z"]),
        ("0 0 * * 5L", "2026-01-01T00:00:00Z", ["2026-01-30T00:00:00Z", "2026-02-27T00:00:00Z"]),
        ("0 0 * * SUNL", "2026-01-01T00:00:00Z", ["2026-01-25T00:00:00Z", "2026-02-22T00:00:00Z"]),
        ("0 0 29 2 *", "2026-01-01T00:00:00Z", ["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"]),
        # seconds first
        ("*/20 * * * * *", "2026-01-01T00:00:00Z", ["2026-01-01T00:00:20Z", "2026-01-01T00:00:40Z",
                                                    "2026-01-01T00:01:00Z"]),
        ("30 0 12 * * *", "2026-01-01T00:00:00Z", ["2026-01-01T12:00:30Z", "2026-01-02T12:00:30Z"]),
        # shortcuts
        ("@hourly", "2026-01-01T00:30:00Z", ["2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z"]),
        ("@weekly", "2026-01-01T00:00:00Z", ["2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z"]),
        ("@monthly", "2026-01-01T00:00:00Z", ["2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"]),
        ("@yearly", "2026-01-01T00:00:00Z", ["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"]),
        # EventBridge: 1 = SUN ... 7 = SAT
        ("cron(0 12 ? * MON-FRI *)", "2026-01-02T12:00:00Z", ["2026-01-05T12:00:00Z", "2026-01-06T12:00:00Z"]),
        ("cron(0 12 ? * 2 *)", "2026-01-01T00:00:00Z", ["2026-01-05T12:00:00Z", "2026-01-12T12:00:00Z"]),
        ("cron(0 12 ? * 1 *)", "2026-01-01T00:00:00Z", ["2026-01-04T12:00:00Z", "2026-01-11T12:00:00Z"]),
        ("cron(0/15 * * * ? *)", "2026-01-01T00:00:00Z", ["2026-01-01T00:15:00Z", "2026-01-01T00:30:00Z"]),
        ("cron(0 8 L * ? *)", "2026-01-01T00:00:00Z", ["2026-01-31T08:00:00Z", "2026-02-28T08:00:00Z"]),
        # LW: last weekday; 2026-01-31 is a Saturday, 2026-05-31 a Sunday
        ("cron(0 8 LW * ? *)", "2026-01-01T00:00:00Z", ["2026-01-30T08:00:00Z", "2026-02-27T08:00:00Z",
                                                       "2026-03-31T08:00:00Z", "2026-04-30T08:00:00Z",
                                                       "2026-05-29T08:00:00Z"]),
        # nW: 2026-02-15 is a Sunday -> Monday 16th; 2026-03-15 a Sunday -> 16th; 2026-08-15 a Saturday -> 14th
        ("cron(0 8 15W * ? *)", "2026-02-01T00:00:00Z", ["2026-02-16T08:00:00Z", "2026-03-16T08:00:00Z",
                                                        "2026-04-15T08:00:00Z"]),
        ("cron(0 8 15W 8 ? *)", "2026-01-01T00:00:00Z", ["2026-08-14T08:00:00Z"]),
        # 1W on a Saturday moves forward to Monday the 3rd (never into the previous month): 2026-08-01 is a Sat
        ("cron(0 8 1W 8 ? *)", "2026-01-01T00:00:00Z", ["2026-08-03T08:00:00Z"]),
        # 31W on a Sunday moves back to Friday the 29th: 2026-05-31 is a Sunday
        ("cron(0 8 31W 5 ? *)", "2026-01-01T00:00:00Z", ["2026-05-29T08:00:00Z"]),
        ("cron(0 8 ? * MON#2 *)", "2026-01-01T00:00:00Z", ["2026-01-12T08:00:00Z", "2026-02-09T08:00:00Z"]),
        ("cron(0 8 ? * 6#5 *)", "2026-01-01T00:00:00Z", ["2026-01-30T08:00:00Z", "2026-05-29T08:00:00Z"]),
        ("cron(0 8 ? * 6L *)", "2026-01-01T00:00:00Z", ["2026-01-30T08:00:00Z", "2026-02-27T08:00:00Z"]),
        ("cron(0 8 ? * FRIL *)", "2026-01-01T00:00:00Z", ["2026-01-30T08:00:00Z", "2026-02-27T08:00:00Z"]),
        ("cron(0 8 ? * L *)", "2026-01-01T00:00:00Z", ["2026-01-03T08:00:00Z", "2026-01-10T08:00:00Z"]),
        ("cron(0 8 1 JAN ? 2027,2029)", "2026-01-01T00:00:00Z", ["2027-01-01T08:00:00Z", "2029-01-01T08:00:00Z"]),
        ("cron(0 0 ? 2 MON#5 *)", "2026-01-01T00:00:00Z", ["2044-02-29T00:00:00Z", "2072-02-29T00:00:00Z"]),
    ],
)  # fmt: skip
def test_next_fires_in_utc(text: str, after: str, expected: list[str]) -> None:
    assert fires(text, "UTC", after, len(expected)) == expected


def test_fires_are_strictly_after_and_aware_utc() -> None:
    expr = expressions.parse("0 * * * *")
    after = z("2026-01-01T10:00:00Z")
    first = expressions.next_fire(expr, "Europe/Berlin", after)
    assert first == z("2026-01-01T11:00:00Z")
    assert first is not None and first.tzinfo is UTC
    assert expressions.next_fire(expr, "UTC", after - timedelta(microseconds=1)) == after
    assert expressions.next_fire(expr, "UTC", after + timedelta(microseconds=1)) == z("2026-01-01T11:00:00Z")


def test_after_may_be_in_any_zone() -> None:
    expr = expressions.parse("0 12 * * *")
    after = datetime(2026, 1, 1, 13, 0, tzinfo=ZoneInfo("Europe/Berlin"))  # 12:00Z
    assert expressions.next_fire(expr, "UTC", after) == z("2026-01-02T12:00:00Z")


def test_zone_may_be_a_zoneinfo_or_a_name_and_a_bad_name_is_a_timezone_error() -> None:
    expr = expressions.parse("0 12 * * *")
    after = z("2026-01-01T00:00:00Z")
    assert expressions.next_fire(expr, ZoneInfo("Asia/Tokyo"), after) == z("2026-01-01T03:00:00Z")
    assert expressions.next_fire(expr, "Asia/Tokyo", after) == z("2026-01-01T03:00:00Z")
    with pytest.raises(errors.ValidationError) as caught:
        expressions.next_fire(expr, "Asia/Tokio", after)
    assert caught.value.field == "timezone"


def test_naive_after_is_refused() -> None:
    with pytest.raises(errors.ValidationError) as caught:
        expressions.next_fire(expressions.parse("@daily"), "UTC", datetime(2026, 1, 1))
    assert caught.value.field == "after"
    assert caught.value.message == "after: 2026-01-01T00:00:00 has no time zone (allowed: an aware datetime)"


def test_next_fires_is_lazy_and_ordered() -> None:
    it = expressions.next_fires(expressions.parse("* * * * * *"), "UTC", z("2026-01-01T00:00:00Z"))
    got = list(itertools.islice(it, 120))
    assert got[0] == z("2026-01-01T00:00:01Z")
    assert got[-1] == z("2026-01-01T00:02:00Z")
    assert all(a < b for a, b in itertools.pairwise(got))


# --- expressions that stop firing -----------------------------------------------------


def test_year_list_ends_the_iterator() -> None:
    assert fires("cron(0 8 1 JAN ? 2027,2029)", "UTC", "2026-01-01T00:00:00Z", 10) == [
        "2027-01-01T08:00:00Z",
        "2029-01-01T08:00:00Z",
    ]


def test_years_in_the_past_give_none_and_count_as_past() -> None:
    expr = expressions.parse("cron(0 0 1 1 ? 2020-2024)")
    now = z("2026-01-01T00:00:00Z")
    assert expressions.next_fire(expr, "UTC", now) is None
    assert expressions.is_in_past(expr, "UTC", now)
    assert not expressions.is_in_past(expr, "UTC", z("2023-06-01T00:00:00Z"))


def test_nothing_fires_from_2200_on() -> None:
    assert fires("cron(0 0 ? 2 MON#5 2190-2199)", "UTC", "2100-01-01T00:00:00Z", 3) == [
        "2196-02-29T00:00:00Z"
    ]
    assert expressions.next_fire(expressions.parse("* * * * *"), "UTC", z("2199-12-31T23:59:00Z")) is None
    assert fires("@yearly", "UTC", "2197-06-01T00:00:00Z", 10) == [
        "2198-01-01T00:00:00Z",
        "2199-01-01T00:00:00Z",
    ]
    rate = expressions.parse("rate(1 day)")
    assert expressions.next_fire(rate, "UTC", z("2199-12-31T00:00:00Z")) is None


def test_a_rare_expression_is_found_quickly() -> None:
    start = time.perf_counter()
    assert fires("0 0 29 2 MON", "UTC", "2026-03-01T00:00:00Z", 1) == [
        "2027-02-01T00:00:00Z"
    ]  # OR: Feb Mondays
    assert fires("0 0 29 2 */7", "UTC", "2026-03-01T00:00:00Z", 1) == [
        "2032-02-29T00:00:00Z"
    ]  # AND: a Sunday
    assert fires("cron(0 0 ? 2 MON#5 *)", "UTC", "2045-01-01T00:00:00Z", 1) == ["2072-02-29T00:00:00Z"]
    assert time.perf_counter() - start < 0.5


# --- rate() ---------------------------------------------------------------------------------


def test_rate_without_anchor_counts_from_the_epoch() -> None:
    assert fires("rate(1 hour)", "UTC", "2026-01-01T10:20:00Z", 2) == [
        "2026-01-01T11:00:00Z",
        "2026-01-01T12:00:00Z",
    ]
    assert fires("rate(1 day)", "Europe/Berlin", "2026-01-01T10:20:00Z", 1) == ["2026-01-02T00:00:00Z"]


def test_rate_counts_from_its_anchor_and_the_anchor_itself_fires() -> None:
    anchor = "2026-01-01T09:17:30Z"
    assert fires("rate(5 minutes)", "UTC", "2026-01-01T09:17:30Z", 2, anchor) == [
        "2026-01-01T09:22:30Z",
        "2026-01-01T09:27:30Z",
    ]
    assert fires("rate(5 minutes)", "UTC", "2026-01-01T09:21:00Z", 1, anchor) == ["2026-01-01T09:22:30Z"]
    # a schedule that starts in the future fires first at its start
    assert fires("rate(5 minutes)", "UTC", "2025-12-01T00:00:00Z", 2, anchor) == [
        "2026-01-01T09:17:30Z",
        "2026-01-01T09:22:30Z",
    ]


def test_rate_is_elapsed_time_through_dst() -> None:
    # Anchored at 09:00 CET; after the spring change it fires at 10:00 CEST: every 24 h, not every local day.
    anchor = "2026-03-27T08:00:00Z"
    assert fires("rate(1 day)", "Europe/Berlin", anchor, 3, anchor) == [
        "2026-03-28T08:00:00Z",
        "2026-03-29T08:00:00Z",
        "2026-03-30T08:00:00Z",
    ]
    assert fires("rate(1 day)", "UTC", anchor, 3, anchor) == fires(
        "rate(1 day)", "Pacific/Chatham", anchor, 3, anchor
    )


def test_rate_anchor_must_be_aware() -> None:
    with pytest.raises(errors.ValidationError) as caught:
        expressions.next_fire(
            expressions.parse("rate(1 hour)"), "UTC", z("2026-01-01T00:00:00Z"), anchor=datetime(2026, 1, 1)
        )
    assert caught.value.field == "anchor"


# --- at() -------------------------------------------------------------------------------------


def test_at_fires_once_in_the_schedule_zone() -> None:
    assert fires("at(2026-06-01T09:00:00)", "Europe/Berlin", "2026-01-01T00:00:00Z", 5) == [
        "2026-06-01T07:00:00Z"
    ]
    assert fires("at(2026-06-01T09:00:00)", "UTC", "2026-06-01T09:00:00Z", 5) == []


def test_at_in_the_past_parses_and_is_reported_as_past() -> None:
    expr = expressions.parse("at(2020-06-01T09:00:00)")
    assert expressions.is_in_past(expr, "UTC", z("2026-01-01T00:00:00Z"))
    assert expressions.is_in_past(expr, "UTC", z("2020-06-01T09:00:00Z"))  # due now: nothing left to fire
    assert not expressions.is_in_past(expr, "UTC", z("2020-06-01T08:59:59Z"))
    assert not expressions.is_in_past(expr, "Asia/Tokyo", z("2020-06-01T00:00:00Z") - timedelta(seconds=1))
    assert expressions.is_in_past(expr, "Asia/Tokyo", z("2020-06-01T00:00:00Z"))


# --- DST: Europe/Berlin -------------------------------------------------------------------


def test_berlin_spring_gap_daily_fire_moves_to_the_end_of_the_gap() -> None:
    # 02:30 does not exist on 2026-03-29: it fires at 03:00 CEST = 01:00Z
    expected = ["2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]
    assert fires("30 2 * * *", "Europe/Berlin", "2026-03-27T12:00:00Z", 3) == expected
    assert fires("cron(30 2 * * ? *)", "Europe/Berlin", "2026-03-27T12:00:00Z", 3) == expected
    assert fires("at(2026-03-29T02:30:00)", "Europe/Berlin", "2026-03-27T12:00:00Z") == [
        "2026-03-29T01:00:00Z"
    ]


def test_berlin_spring_gap_several_wall_times_in_the_gap_fire_once() -> None:
    assert fires("0,30 2 * * *", "Europe/Berlin", "2026-03-28T23:00:00Z", 3) == [
        "2026-03-29T01:00:00Z",
        "2026-03-30T00:00:00Z",
        "2026-03-30T00:30:00Z",
    ]
    # 02:00, 02:30 (gap) and 03:00 all land on 03:00 CEST: one fire
    assert fires("0,30 2,3 * * *", "Europe/Berlin", "2026-03-28T23:00:00Z", 3) == [
        "2026-03-29T01:00:00Z",
        "2026-03-29T01:30:00Z",
        "2026-03-30T00:00:00Z",
    ]


def test_berlin_spring_gap_every_second_of_a_missing_minute_fires_once() -> None:
    assert fires("* 30 2 * * *", "Europe/Berlin", "2026-03-28T23:00:00Z", 3) == [
        "2026-03-29T01:00:00Z",
        "2026-03-30T00:30:00Z",
        "2026-03-30T00:30:01Z",
    ]


def test_berlin_spring_gap_frequent_expressions_skip_the_missing_hour() -> None:
    # minute or hour field starting with *: real time, the gap's wall times simply do not happen
    assert fires("*/30 * * * *", "Europe/Berlin", "2026-03-28T23:45:00Z", 4) == [
        "2026-03-29T00:00:00Z",  # 01:00 CET
        "2026-03-29T00:30:00Z",  # 01:30 CET
        "2026-03-29T01:00:00Z",  # 03:00 CEST
        "2026-03-29T01:30:00Z",  # 03:30 CEST
    ]
    assert fires("30 * * * *", "Europe/Berlin", "2026-03-28T23:45:00Z", 2) == [
        "2026-03-29T00:30:00Z",  # 01:30 CET
        "2026-03-29T01:30:00Z",  # 03:30 CEST; 02:30 does not exist
    ]
    assert fires("*/20 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", 1) == ["2026-03-30T00:00:00Z"]


def test_berlin_fall_back_daily_fire_happens_once_at_the_first_occurrence() -> None:
    expected = ["2026-10-24T00:30:00Z", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]
    assert fires("30 2 * * *", "Europe/Berlin", "2026-10-23T12:00:00Z", 3) == expected
    assert fires("cron(30 2 * * ? *)", "Europe/Berlin", "2026-10-23T12:00:00Z", 3) == expected
    assert fires("at(2026-10-25T02:30:00)", "Europe/Berlin", "2026-10-23T12:00:00Z") == [
        "2026-10-25T00:30:00Z"
    ]


def test_berlin_fall_back_from_inside_the_second_occurrence_the_hour_has_already_fired() -> None:
    # after = 02:10 CET (second pass); the 02:30 wall time fired at 02:30 CEST already
    assert fires("30 2 * * *", "Europe/Berlin", "2026-10-25T01:10:00Z", 1) == ["2026-10-26T01:30:00Z"]
    # after = 02:10 CEST (first pass): 02:30 CEST is still ahead
    assert fires("30 2 * * *", "Europe/Berlin", "2026-10-25T00:10:00Z", 1) == ["2026-10-25T00:30:00Z"]


def test_berlin_fall_back_frequent_expressions_fire_in_both_occurrences() -> None:
    assert fires("0 * * * *", "Europe/Berlin", "2026-10-24T23:30:00Z", 4) == [
        "2026-10-25T00:00:00Z",  # 02:00 CEST
        "2026-10-25T01:00:00Z",  # 02:00 CET
        "2026-10-25T02:00:00Z",  # 03:00 CET
        "2026-10-25T03:00:00Z",
    ]
    assert fires("*/20 2 * * *", "Europe/Berlin", "2026-10-24T23:30:00Z", 7) == [
        "2026-10-25T00:00:00Z",
        "2026-10-25T00:20:00Z",
        "2026-10-25T00:40:00Z",
        "2026-10-25T01:00:00Z",
        "2026-10-25T01:20:00Z",
        "2026-10-25T01:40:00Z",
        "2026-10-26T01:00:00Z",
    ]
    # starting inside the first pass, the second pass still comes
    assert fires("*/30 * * * *", "Europe/Berlin", "2026-10-25T00:45:00Z", 3) == [
        "2026-10-25T01:00:00Z",  # 02:00 CET
        "2026-10-25T01:30:00Z",
        "2026-10-25T02:00:00Z",
    ]
    # starting inside the second pass
    assert fires("*/30 * * * *", "Europe/Berlin", "2026-10-25T01:10:00Z", 2) == [
        "2026-10-25T01:30:00Z",
        "2026-10-25T02:00:00Z",
    ]


def test_berlin_fall_back_spelled_out_hours_use_the_wall_clock_rule() -> None:
    # "0 0-23" does not start with *, so (like Debian cron) each wall time fires once: 02:00 CEST, then 03:00 CET
    assert fires("0 0-23 * * *", "Europe/Berlin", "2026-10-24T23:30:00Z", 3) == [
        "2026-10-25T00:00:00Z",
        "2026-10-25T02:00:00Z",
        "2026-10-25T03:00:00Z",
    ]


# --- DST: America/New_York ------------------------------------------------------------------


def test_new_york_spring_gap() -> None:
    assert fires("30 2 * * *", "America/New_York", "2026-03-07T00:00:00Z", 3) == [
        "2026-03-07T07:30:00Z",  # 02:30 EST
        "2026-03-08T07:00:00Z",  # 03:00 EDT, end of the gap
        "2026-03-09T06:30:00Z",  # 02:30 EDT
    ]
    assert fires("0 */1 * * *", "America/New_York", "2026-03-08T06:30:00Z", 2) == [
        "2026-03-08T07:00:00Z",  # 03:00 EDT; 02:00 does not exist
        "2026-03-08T08:00:00Z",
    ]


def test_new_york_fall_back() -> None:
    assert fires("30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", 2) == [
        "2026-11-01T05:30:00Z",  # 01:30 EDT, first occurrence only
        "2026-11-02T06:30:00Z",  # 01:30 EST
    ]
    assert fires("30 * * * *", "America/New_York", "2026-11-01T04:45:00Z", 3) == [
        "2026-11-01T05:30:00Z",  # 01:30 EDT
        "2026-11-01T06:30:00Z",  # 01:30 EST
        "2026-11-01T07:30:00Z",  # 02:30 EST
    ]


# --- DST: Australia/Lord_Howe (30-minute change) -------------------------------------------------


def test_lord_howe_half_hour_gap_and_repeat() -> None:
    # 2026-10-04 02:00 (+10:30) -> 02:30 (+11) at 2026-10-03T15:30Z: 02:15 fires at 02:30 = 15:30Z
    assert fires("15 2 * * *", "Australia/Lord_Howe", "2026-10-03T00:00:00Z", 2) == [
        "2026-10-03T15:30:00Z",
        "2026-10-04T15:15:00Z",
    ]
    # 2026-04-05 02:00 (+11) -> 01:30 (+10:30) at 2026-04-04T15:00Z: 01:45 fires once, at 01:45 +11
    assert fires("45 1 * * *", "Australia/Lord_Howe", "2026-04-04T00:00:00Z", 2) == [
        "2026-04-04T14:45:00Z",
        "2026-04-05T15:15:00Z",
    ]
    assert fires("*/15 * * * *", "Australia/Lord_Howe", "2026-04-04T14:20:00Z", 5) == [
        "2026-04-04T14:30:00Z",  # 01:30 +11
        "2026-04-04T14:45:00Z",  # 01:45 +11
        "2026-04-04T15:00:00Z",  # 01:30 +10:30
        "2026-04-04T15:15:00Z",  # 01:45 +10:30
        "2026-04-04T15:30:00Z",  # 02:00 +10:30
    ]


# --- speed ----------------------------------------------------------------------------------------


def test_next_fire_for_a_thousand_expressions_is_fast() -> None:
    texts = [f"{m} {h} * * *" for m in range(0, 60, 3) for h in range(0, 24, 2)]  # 240
    texts += [
        f"cron({m} {h} ? * {d} *)" for m in (0, 17, 45) for h in range(0, 24, 3) for d in range(1, 8)
    ]  # 168
    texts += [f"*/{n} * * * *" for n in range(1, 61)]  # 60
    texts += [f"0 {h} {d} * *" for h in range(0, 24) for d in (1, 10, 20, 28, 31)]  # 120
    texts += [f"cron(0 {h} {d}W * ? *)" for h in range(0, 24) for d in range(1, 29)]  # 672
    parsed = [expressions.parse(text) for text in texts[:1000]]
    assert len(set(parsed)) == 1000
    zone = ZoneInfo("Europe/Berlin")
    after = z("2026-10-24T23:59:59Z")
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for expr in parsed:
            assert expressions.next_fire(expr, zone, after) is not None
        best = min(best, time.perf_counter() - start)
    # The target is well under 50 ms; the bound leaves room for slow CI machines.
    assert best < 0.25
