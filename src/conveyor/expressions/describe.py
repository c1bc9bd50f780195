"""``describe``: a short English phrase for an expression (listings, the dashboard).

Plain and literal rather than clever: ``at 12:00 on MON-FRI``, ``every 15 minutes``,
``at minute 5 past hours 9-17 on the last day of the month``. Times are in the schedule's
zone; a rate counts from its anchor.
"""

from __future__ import annotations

import itertools

from conveyor.expressions import fields as f
from conveyor.expressions.at import AtSpec
from conveyor.expressions.cron import CronSpec, DayRule
from conveyor.expressions.expression import Expression
from conveyor.expressions.rate import RateSpec

_ORDINALS = ("", "1st", "2nd", "3rd", "4th", "5th")
_PY_WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")


def describe(expr: Expression) -> str:
    spec = expr.spec
    if isinstance(spec, RateSpec):
        return expr.text[len("rate(") : -1].join(("every ", "")).replace("every 1 ", "every ")
    if isinstance(spec, AtSpec):
        return f"once at {spec.wall.isoformat(sep=' ')}"
    return _cron(spec)


def _list(values: list[int], names: tuple[str, ...] = (), base: int = 0) -> str:
    """``1-5``, ``MON-FRI``, ``1,15``, ``0-22 every 2``: runs of three or more joined by a dash."""
    if not names and len(values) >= 3:
        step = values[1] - values[0]
        if step > 1 and all(b - a == step for a, b in itertools.pairwise(values)):
            return f"{values[0]}-{values[-1]} every {step}"
    spelled: list[str] = []
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        one = [names[v - base] if names else str(v) for v in (values[i], values[j])]
        if j - i >= 2:
            spelled.append(f"{one[0]}-{one[1]}")
        else:
            spelled.extend(names[v - base] if names else str(v) for v in values[i : j + 1])
        i = j + 1
    return ",".join(spelled)


def _every(mask: int, size: int) -> int:
    """n when ``mask`` is exactly 0, n, 2n ... of a field with ``size`` values, else 0."""
    for step in range(1, size):
        if mask == f.span_mask(0, size - 1, step):
            return step
    return 0


def _time(spec: CronSpec) -> str:
    seconds, minutes, hours = f.bits(spec.seconds), f.bits(spec.minutes), f.bits(spec.hours)
    all_hours = len(hours) == 24
    prefix = ""
    if seconds != [0]:
        step = _every(spec.seconds, 60)
        prefix = (
            "every second"
            if step == 1
            else f"every {step} seconds"
            if step
            else f"at second {_list(seconds)}"
        )
        if len(minutes) == 60 and all_hours:
            return prefix
        prefix += " of "
    if len(minutes) == 1 and len(hours) == 1:
        return f"{prefix}{'at ' if not prefix else ''}{hours[0]:02d}:{minutes[0]:02d}"
    step = _every(spec.minutes, 60)
    if step:
        what = "every minute" if step == 1 else f"every {step} minutes"
    else:
        what = f"minute {_list(minutes)}" if len(minutes) == 1 else f"minutes {_list(minutes)}"
        what = ("at " if not prefix else "") + what
    if all_hours:
        return f"{prefix}{what}" + ("" if step else " past every hour")
    hour_text = f"hour {hours[0]}" if len(hours) == 1 else f"hours {_list(hours)}"
    return f"{prefix}{what} {'during' if step else 'past'} {hour_text}"


def _dom(days: DayRule) -> str:
    parts: list[str] = []
    values = f.bits(days.dom)
    if values:
        parts.append(f"day {_list(values)}" if len(values) == 1 else f"days {_list(values)}")
    s = days.dom_specials
    if s.last_day:
        parts.append("the last day")
    if s.last_weekday:
        parts.append("the last weekday")
    parts.extend(f"the weekday nearest day {day}" for day in s.nearest_weekday)
    return " and ".join(parts) + " of the month"


def _dow(days: DayRule) -> str:
    parts: list[str] = []
    values = f.bits(days.dow)
    if values:
        parts.append(_list(values, _PY_WEEKDAYS))
    s = days.dow_specials
    parts.extend(f"the {_ORDINALS[n]} {_PY_WEEKDAYS[day]}" for day, n in s.nth_weekday)
    parts.extend(f"the last {_PY_WEEKDAYS[day]}" for day in s.last_of_weekday)
    return " and ".join(parts)


def _cron(spec: CronSpec) -> str:
    text = _time(spec)
    days = spec.days
    all_dom = days.dom == f.DAY_OF_MONTH.full() and days.dom_specials == f.DaySpecials()
    all_dow = days.dow == f.span_mask(0, 6) and days.dow_specials == f.DaySpecials()
    if days.combine == "dom" and not all_dom:
        text += f" on {_dom(days)}"
    elif days.combine == "dow" and not all_dow:
        text += f" on {_dow(days)}"
    elif days.combine == "and" and not (all_dom and all_dow):
        text += (
            f" on {_dom(days)}"
            if all_dow
            else f" on {_dow(days)}"
            if all_dom
            else (f" on {_dom(days)} if it is {_dow(days)}")
        )
    elif days.combine == "or":
        text += f" on {_dom(days)} and on {_dow(days)}"
    months = f.bits(spec.months)
    if len(months) < 12:
        text += f" in {_list(months, f.MONTH_NAMES, 1)}"
    if spec.years is not None:
        years = [1970 + offset for offset in f.bits(spec.years)]
        text += f" in {_list(years)}"
    return text
