"""When an expression fires: ``next_fires``, ``next_fire``, ``is_in_past``.

All functions are pure: the zone and the reference instant are arguments, results are aware
UTC datetimes strictly after ``after``, in increasing order. DST behaviour is documented in
:mod:`conveyor.expressions.zones`; in short: a wall time in a spring-forward gap fires once
at the end of the gap, a wall time in a repeated hour fires once at its first occurrence,
except that cron expressions whose minute or hour field starts with ``*`` follow real time
(cronsim/Debian cron: both occurrences of a repeated hour fire, gap times do not exist).
``rate()`` is elapsed time from its anchor and ignores the zone.

Nothing fires at or after 2200-01-01 (local time for cron and at, UTC for rate): an
expression that cannot fire again before then gives ``None`` / an exhausted iterator, so
``cron(0 0 31 2 ? *)``-like impossibilities and year ranges in the past never loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from conveyor import errors
from conveyor.expressions import zones
from conveyor.expressions.at import AtSpec
from conveyor.expressions.cron import CronSpec
from conveyor.expressions.expression import Expression
from conveyor.expressions.rate import RateSpec

END = datetime(2200, 1, 1, tzinfo=UTC)


def _aware(name: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise errors.ValidationError(name, f"{value.isoformat()} has no time zone", "an aware datetime")
    return value.astimezone(UTC)


def next_fire(
    expr: Expression, tz: str | ZoneInfo, after: datetime, *, anchor: datetime | None = None
) -> datetime | None:
    """The first fire strictly after ``after`` (aware UTC), or ``None`` when there is none.

    ``anchor`` only matters for ``rate()``: the instant the rate counts from (the schedule's
    start, else its creation time). Without it, rates count from the Unix epoch.
    """
    zone = zones.as_zone(tz)
    after = _aware("after", after)
    spec = expr.spec
    if isinstance(spec, CronSpec):
        return _next_cron(spec, zone, after)
    if isinstance(spec, RateSpec):
        return _next_rate(spec, after, None if anchor is None else _aware("anchor", anchor))
    return _next_at(spec, zone, after)


def next_fires(
    expr: Expression, tz: str | ZoneInfo, after: datetime, *, anchor: datetime | None = None
) -> Iterator[datetime]:
    """All fires strictly after ``after``, lazily, in order (at most one for ``at()``)."""
    zone = zones.as_zone(tz)
    current = next_fire(expr, zone, after, anchor=anchor)
    while current is not None:
        yield current
        current = next_fire(expr, zone, current, anchor=anchor)


def is_in_past(
    expr: Expression, tz: str | ZoneInfo, now: datetime, *, anchor: datetime | None = None
) -> bool:
    """True when the expression will never fire after ``now`` (an ``at()`` at or before now,
    a cron() whose years are over)."""
    return next_fire(expr, tz, now, anchor=anchor) is None


def _next_at(spec: AtSpec, zone: ZoneInfo, after: datetime) -> datetime | None:
    instant = zones.resolve(spec.wall, zone)
    return instant if instant > after else None


def _next_rate(spec: RateSpec, after: datetime, anchor: datetime | None) -> datetime | None:
    base = zones.EPOCH if anchor is None else anchor
    # The anchor is the first fire; later fires are whole periods after it.
    instant = base if after < base else base + ((after - base) // spec.period + 1) * spec.period
    return instant if instant < END else None


def _next_cron(spec: CronSpec, zone: ZoneInfo, after: datetime) -> datetime | None:
    local = after.astimezone(zone)
    wall = local.replace(tzinfo=None, fold=0)
    start = wall.replace(microsecond=0) + zones.ONE_SECOND
    repeated = zones.classify(wall, zone) is zones.Wall.REPEATED
    if not spec.frequent:
        # Wall-clock rule: each matching wall time fires once, at its first occurrence or at
        # the end of its gap. From inside the second occurrence of a repeated hour, every wall
        # time of that hour has already fired.
        if repeated and local.fold == 1:
            start = max(start, zones.repeated_span(wall, zone)[1])
        match = spec.next_match(start)
        return None if match is None else zones.resolve(match, zone)

    # Real-time rule (minute or hour field starts with *): every instant whose wall time
    # matches fires, so a repeated hour is walked twice and gap times are skipped.
    if repeated:
        span_start, span_end = zones.repeated_span(wall, zone)
        match = spec.next_match(start)
        if match is not None and match < span_end:
            return zones.to_utc(match, zone, local.fold)
        if local.fold == 0:
            match = spec.next_match(span_start)
            if match is not None and match < span_end:
                return zones.to_utc(match, zone, 1)
        start = span_end
    while True:
        match = spec.next_match(start)
        if match is None:
            return None
        if zones.classify(match, zone) is not zones.Wall.GAP:
            return zones.to_utc(match, zone, 0)
        start = zones.wall_of(zones.gap_end(match, zone), zone).replace(fold=0)
