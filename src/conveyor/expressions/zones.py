"""Time zones: IANA names, and turning local wall-clock times into instants across DST.

Schedules are written in local wall-clock time of an IANA zone; fires are instants (aware
UTC datetimes). Two wall-clock situations need a rule:

* **Gap** (spring forward, e.g. Europe/Berlin 2026-03-29 02:00 CET -> 03:00 CEST): wall
  times 02:00-02:59:59 do not exist. A fire due then happens **once, at the first valid
  instant after the gap** (02:30 fires at 03:00 CEST = 01:00 UTC). Several wall times in the
  same gap collapse into that one fire.
* **Repeated hour** (fall back, e.g. Europe/Berlin 2026-10-25 03:00 CEST -> 02:00 CET):
  wall times 02:00-02:59:59 happen twice. A fire due then happens **once, at the first
  occurrence** (fold=0, CEST).

Frequent cron expressions are the exception, exactly as in cronsim (which follows
Debian's cron): when the minute or the hour field starts with ``*`` (``*/5 * * * *``,
``0 * * * *``, ``15 */2 * * *``) the expression is evaluated on *real* time: every instant
whose local wall time matches fires. So in the repeated hour such an expression fires in
**both** occurrences (``0 * * * *`` fires at 02:00 CEST *and* 02:00 CET: still one fire per
elapsed hour, and an hourly job is never silent for two hours), and wall times inside a gap
simply do not happen (no extra catch-up fire at 03:00: the fire at 03:00 is there anyway
when the expression matches it). We chose cronsim's rule because it is what Debian cron
does, so crontab users see what they already know, and because it keeps "every N minutes"
meaning every N elapsed minutes through the change. ``rate()`` never looks at wall time.

These rules apply in every zone; in UTC and fixed-offset zones they never trigger.
(Amazon EventBridge Scheduler *skips* a cron() fire that falls in a gap; Conveyor fires it
at the end of the gap instead, so a daily 02:30 job still runs on the day of the change.)
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from enum import Enum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from conveyor import errors

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_SECOND = timedelta(seconds=1)


def validate_timezone(name: str) -> ZoneInfo:
    """The ``ZoneInfo`` for an IANA zone name; ``ValidationError`` (field ``timezone``) otherwise."""
    if isinstance(name, str) and name and name.strip() == name and name.lower() != "localtime":
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    raise errors.ValidationError(
        "timezone",
        f'"{name}" is not an IANA time zone name',
        "IANA names such as UTC, Europe/Berlin, America/New_York",
    )


def as_zone(tz: str | ZoneInfo) -> ZoneInfo:
    return tz if isinstance(tz, ZoneInfo) else validate_timezone(tz)


class Wall(Enum):
    """What a naive wall-clock time is in a zone."""

    NORMAL = "normal"
    GAP = "gap"
    """does not exist (spring forward)"""
    REPEATED = "repeated"
    """happens twice (fall back)"""


def classify(wall: datetime, zone: ZoneInfo) -> Wall:
    # PEP 495: fold=0 uses the offset in force before a transition, fold=1 the one after.
    before = wall.replace(tzinfo=zone, fold=0).utcoffset()
    after = wall.replace(tzinfo=zone, fold=1).utcoffset()
    if before == after:
        return Wall.NORMAL
    assert before is not None and after is not None
    return Wall.REPEATED if before > after else Wall.GAP


def to_utc(wall: datetime, zone: ZoneInfo, fold: int = 0) -> datetime:
    return wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)


def wall_of(instant: datetime, zone: ZoneInfo) -> datetime:
    """The naive local wall-clock time of an instant (its fold kept)."""
    return instant.astimezone(zone).replace(tzinfo=None)


def transition_around(wall: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant of the transition that makes ``wall`` a gap or a repeated time.

    Both folds of ``wall`` bracket the transition; zoneinfo exposes no transition list, so
    bisect on whole seconds (about 12 steps for a one-hour change).
    """
    a = to_utc(wall, zone, 0)
    b = to_utc(wall, zone, 1)
    early, late = (a, b) if a < b else (b, a)
    target = late.astimezone(zone).utcoffset()
    lo = math.floor((early - EPOCH) / ONE_SECOND)
    hi = math.ceil((late - EPOCH) / ONE_SECOND)
    # invariant: offset(lo) != target, offset(hi) == target; transitions fall on whole seconds
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if (EPOCH + timedelta(seconds=mid)).astimezone(zone).utcoffset() == target:
            hi = mid
        else:
            lo = mid
    return EPOCH + timedelta(seconds=hi)


def gap_end(wall: datetime, zone: ZoneInfo) -> datetime:
    """The first valid instant after the gap containing ``wall`` (UTC)."""
    return transition_around(wall, zone)


def repeated_span(wall: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """Naive wall-clock ``[start, end)`` of the repeated period containing ``wall``."""
    transition = transition_around(wall, zone)
    start = wall_of(transition, zone).replace(fold=0)
    end = wall_of(transition - ONE_SECOND, zone).replace(fold=0) + ONE_SECOND
    return start, end


def resolve(wall: datetime, zone: ZoneInfo) -> datetime:
    """The one instant a wall-clock time fires at: first occurrence, or the end of a gap."""
    kind = classify(wall, zone)
    if kind is Wall.GAP:
        return gap_end(wall, zone)
    return to_utc(wall, zone, 0)
