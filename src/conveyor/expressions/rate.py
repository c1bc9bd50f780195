"""``rate(N unit)``: fire every N minutes, hours or days of elapsed time.

A rate is pure elapsed time: it fires at ``anchor + k * period`` (k = 0, 1, 2 ...) and
never looks at the wall clock, so DST changes do not move it (``rate(1 day)`` anchored at
09:00 CET fires at 10:00 CEST in summer). The anchor is the schedule's start time (or its
creation time when it has none) and is passed to ``next_fires``; without one it is the Unix
epoch, so ``rate(1 hour)`` fires on the hour UTC and ``rate(1 day)`` at 00:00 UTC.

As in EventBridge, the unit is singular exactly when N is 1: ``rate(1 hour)``,
``rate(5 hours)``. Canonical text uses the largest unit that divides the period, so
``rate(60 minutes)`` and ``rate(1 hour)`` are the same expression.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from conveyor import errors

UNITS = {"minute": 60, "hour": 3600, "day": 86400}
MAX_PERIOD = timedelta(days=36500)
ALLOWED = "rate(value unit) with unit minute(s), hour(s), day(s), e.g. rate(5 minutes)"


@dataclass(frozen=True, slots=True)
class RateSpec:
    period: timedelta


def _error(reason: str, allowed: str = ALLOWED) -> errors.ValidationError:
    return errors.ValidationError("expression", f"rate(): {reason}", allowed)


def parse_rate(inner: str) -> tuple[RateSpec, str]:
    """The text between ``rate(`` and ``)``: the spec and its canonical text."""
    parts = inner.split()
    if len(parts) != 2:
        raise _error(f'"{inner.strip()}" is not "value unit"')
    value_text, unit_text = parts
    if not (value_text.isdigit() and value_text.isascii()) or int(value_text) == 0:
        raise _error(f'value "{value_text}" must be a positive whole number', "1 or more")
    value = int(value_text)
    unit = unit_text.lower()
    singular = unit[:-1] if unit.endswith("s") else unit
    if singular not in UNITS:
        raise _error(f'unit "{unit_text}" is not allowed', "minute(s), hour(s), day(s)")
    if value == 1 and unit != singular:
        raise _error(f'"{inner.strip()}" must use the singular unit "{singular}" when the value is 1')
    if value > 1 and unit == singular:
        raise _error(
            f'"{inner.strip()}" must use the plural unit "{singular}s" when the value is more than 1'
        )
    seconds = value * UNITS[singular]
    if seconds > MAX_PERIOD.total_seconds():
        raise _error(f'"{inner.strip()}" is too long', "at most 36500 days")
    return RateSpec(timedelta(seconds=seconds)), canonical(seconds)


def canonical(seconds: int) -> str:
    for name, size in sorted(UNITS.items(), key=lambda item: -item[1]):
        if seconds % size == 0:
            count = seconds // size
            return f"rate({count} {name}{'s' if count > 1 else ''})"
    raise AssertionError(seconds)  # every period is a whole number of minutes
