"""Cron expressions: EventBridge ``cron(...)`` and classic crontab, parsed into one :class:`CronSpec`.

Two dialects, one evaluator:

* **EventBridge** ``cron(minutes hours day-of-month month day-of-week year)``: exactly six
  fields; day-of-week numbers 1 = SUN ... 7 = SAT; exactly one of day-of-month and
  day-of-week must be ``?`` (a day then matches the other field alone); year 1970-2199.
* **crontab** ``minute hour day-of-month month day-of-week`` (optionally a leading seconds
  field) and the ``@hourly`` family. Day-of-week 0-7, 0 and 7 = SUN. Vixie cron's day rule:
  when day-of-month *and* day-of-week are both restricted (neither field starts with ``*``)
  a day matches if *either* matches; otherwise both must match.

Both accept ``*``, lists, ranges, steps (``*/n``, ``a-b/n``, ``a/n``), month and weekday
names, and the Quartz specials ``L``, ``LW``, ``nW`` (day-of-month) and ``nL``, ``n#k``
(day-of-week).

The search for the next matching wall-clock time skips field by field (year, month, day,
hour, minute, second) over bitmasks; it never steps minute by minute. It works on naive
*local wall-clock* times; :mod:`conveyor.expressions.zones` turns them into instants.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from conveyor import errors
from conveyor.expressions import fields as f

LAST_YEAR = 2199
"""No fire is computed at or after 2200-01-01 (local): iteration ends there."""

DayCombine = Literal["dom", "dow", "and", "or"]

MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
CRONTAB_FIELDS = ("second", "minute", "hour", "day-of-month", "month", "day-of-week")
_DAYS_IN_MONTH = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


_WEEKDAY_DAYS = tuple(
    tuple(sum(1 << day for day in range(1, 32) if (first + day - 1) % 7 == weekday) for weekday in range(7))
    for first in range(7)
)
"""``_WEEKDAY_DAYS[first][weekday]``: days of a month starting on ``first`` that fall on ``weekday``."""


def _weekday_masks(py_mask: int) -> tuple[int, ...]:
    """For each weekday of the 1st of a month, the day-of-month bitmask of ``py_mask``'s days."""
    weekdays = f.bits(py_mask)
    out: list[int] = []
    for first in range(7):
        mask = 0
        for weekday in weekdays:
            mask |= _WEEKDAY_DAYS[first][weekday]
        out.append(mask)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class DayRule:
    """Which days of a given month match: day-of-month and day-of-week, combined."""

    dom: int
    dom_specials: f.DaySpecials
    dow: int
    """python weekday bitmask (MON = bit 0)."""
    dow_specials: f.DaySpecials
    combine: DayCombine
    _by_first: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_first", _weekday_masks(self.dow))

    def month_mask(self, year: int, month: int) -> int:
        """Bitmask of the matching days (bit 1 = the 1st) of ``year-month``."""
        first, ndays = calendar.monthrange(year, month)
        valid = (1 << (ndays + 1)) - 2
        dom = dow = 0
        if self.combine != "dow":
            dom = self.dom & valid
            s = self.dom_specials
            if s.last_day:
                dom |= 1 << ndays
            if s.last_weekday:
                weekday = (first + ndays - 1) % 7
                dom |= 1 << (ndays - max(0, weekday - 4))
            for day in s.nearest_weekday:
                if day <= ndays:
                    dom |= 1 << _nearest_weekday(day, (first + day - 1) % 7, ndays)
            if self.combine == "dom":
                return dom
        dow = self._by_first[first] & valid
        s = self.dow_specials
        for weekday, nth in s.nth_weekday:
            day = 1 + (weekday - first) % 7 + 7 * (nth - 1)
            if day <= ndays:
                dow |= 1 << day
        for weekday in s.last_of_weekday:
            last_weekday = (first + ndays - 1) % 7
            dow |= 1 << (ndays - (last_weekday - weekday) % 7)
        if self.combine == "dow":
            return dow
        if self.combine == "and":
            return dom & dow
        return dom | dow


def _nearest_weekday(day: int, weekday: int, ndays: int) -> int:
    """Quartz ``nW``: the weekday nearest ``day``, never leaving the month."""
    if weekday == 5:  # Saturday -> Friday, or Monday when the 1st is a Saturday
        return day - 1 if day > 1 else day + 2
    if weekday == 6:  # Sunday -> Monday, or Friday when it is the last day
        return day + 1 if day < ndays else day - 2
    return day


@dataclass(frozen=True, slots=True)
class CronSpec:
    """A compiled cron expression: one bitmask per field plus the day rule.

    ``frequent`` is cronsim's (Debian cron's) DST switch: true when the minute or the hour
    field starts with ``*``; see :mod:`conveyor.expressions.zones` for what it changes.
    """

    seconds: int
    minutes: int
    hours: int
    months: int
    years: int | None
    """Bit ``y - 1970``; ``None`` = every year."""
    days: DayRule
    frequent: bool

    def next_match(self, start: datetime) -> datetime | None:
        """The first naive wall-clock time ``>= start`` (second resolution) that matches.

        ``None`` when there is none before 2200. Each failed field bumps its parent and
        restarts from the top, so a bump past the end of a month or year is absorbed by the
        parent's own check rather than by date arithmetic here.
        """
        next_bit = f.next_bit
        y, mo, d, h, mi, s = start.year, start.month, start.day, start.hour, start.minute, start.second
        day_key = (0, 0)
        day_mask = 0
        while True:
            if y > LAST_YEAR:
                return None
            if self.years is not None:
                offset = next_bit(self.years, max(y - 1970, 0))
                if offset < 0:
                    return None
                if offset + 1970 != y:
                    y, mo, d, h, mi, s = offset + 1970, 1, 1, 0, 0, 0
            nm = next_bit(self.months, mo)
            if nm < 0:
                y, mo, d, h, mi, s = y + 1, 1, 1, 0, 0, 0
                continue
            if nm != mo:
                mo, d, h, mi, s = nm, 1, 0, 0, 0
            if day_key != (y, mo):
                day_key = (y, mo)
                day_mask = self.days.month_mask(y, mo)
            nd = next_bit(day_mask, d)
            if nd < 0:
                mo, d, h, mi, s = mo + 1, 1, 0, 0, 0
                continue
            if nd != d:
                d, h, mi, s = nd, 0, 0, 0
            nh = next_bit(self.hours, h)
            if nh < 0:
                d, h, mi, s = d + 1, 0, 0, 0
                continue
            if nh != h:
                h, mi, s = nh, 0, 0
            nmi = next_bit(self.minutes, mi)
            if nmi < 0:
                h, mi, s = h + 1, 0, 0
                continue
            if nmi != mi:
                mi, s = nmi, 0
            ns = next_bit(self.seconds, s)
            if ns < 0:
                mi, s = mi + 1, 0
                continue
            return datetime(y, mo, d, h, mi, ns)


def _check_days_exist(days: DayRule, months: int, years: int | None, where: str) -> None:
    """Reject a day-of-month that no selected month has (Feb 30, Apr 31): it would never fire."""
    if days.combine in ("dow", "or"):
        return
    s = days.dom_specials
    if s.last_day or s.last_weekday or (days.dom == 0 and not s.nearest_weekday):
        return
    wanted = [day for day in f.bits(days.dom)] + list(s.nearest_weekday)
    leap = years is None or any(calendar.isleap(1970 + offset) for offset in f.bits(years))
    longest = max((28 if month == 2 and not leap else _DAYS_IN_MONTH[month]) for month in f.bits(months))
    if min(wanted) > longest:
        names = ",".join(f.MONTH_NAMES[month - 1] for month in f.bits(months))
        if years is not None and not leap and longest == 28:
            names += " of the selected years"
        raise errors.ValidationError(
            "expression.day-of-month",
            f"{where}: day {min(wanted)} never occurs in {names}, so the schedule would never fire",
            f"1-{longest} for the selected months",
        )


def parse_eventbridge(inner: str) -> tuple[CronSpec, str]:
    """The text between ``cron(`` and ``)``: the spec and its canonical text."""
    parts = inner.split()
    if len(parts) != 6:
        raise errors.ValidationError(
            "expression",
            f"cron(): expected 6 fields (minutes hours day-of-month month day-of-week year), got {len(parts)}",
            "cron(minutes hours day-of-month month day-of-week year), e.g. cron(0 12 ? * MON-FRI *)",
        )
    minute_t, hour_t, dom_t, month_t, dow_t, year_t = parts
    for name, token in (("minute", minute_t), ("hour", hour_t), ("month", month_t), ("year", year_t)):
        if "?" in token:
            raise errors.ValidationError(
                f"expression.{name}",
                f'"{token}": ? is only allowed in day-of-month or day-of-week',
                "*" if name != "year" else "*, 1970-2199",
            )
    if dom_t == "?" and dow_t == "?":
        raise errors.ValidationError(
            "expression",
            "cron(): day-of-month and day-of-week cannot both be ?; set one of them",
            "? in exactly one of day-of-month and day-of-week",
        )
    if dom_t != "?" and dow_t != "?":
        raise errors.ValidationError(
            "expression",
            "cron(): day-of-month and day-of-week cannot both be set; use ? in one of them",
            "? in exactly one of day-of-month and day-of-week",
        )
    for name, token in (("day-of-month", dom_t), ("day-of-week", dow_t)):
        if "?" in token and token != "?":
            raise errors.ValidationError(
                f"expression.{name}", f'"{token}": ? must stand alone', "? on its own"
            )
    minutes = f.MINUTE.parse(minute_t)
    hours = f.HOUR.parse(hour_t)
    months = f.MONTH.parse(month_t)
    year_mask = f.YEAR.parse(year_t) >> 1970
    years = None if year_mask == f.span_mask(0, f.YEAR.hi - 1970) else year_mask
    dom, dom_specials = (0, f.DaySpecials()) if dom_t == "?" else f.parse_day_of_month(dom_t)
    dow, dow_specials = (
        (0, f.DaySpecials()) if dow_t == "?" else f.parse_day_of_week(dow_t, f.WEEKDAY_EVENTBRIDGE)
    )
    days = DayRule(dom, dom_specials, dow, dow_specials, "dow" if dom_t == "?" else "dom")
    _check_days_exist(days, months, years, "cron()")
    spec = CronSpec(
        1, minutes, hours, months, years, days, minute_t.startswith("*") or hour_t.startswith("*")
    )
    full_dom = dom == f.DAY_OF_MONTH.full() and dom_specials == f.DaySpecials()
    full_dow = dow == f.span_mask(0, 6) and dow_specials == f.DaySpecials()
    text_fields = [
        f.MINUTE.render(minutes, star=minute_t.startswith("*")),
        f.HOUR.render(hours, star=hour_t.startswith("*")),
        "?" if dom_t == "?" else f.render_day_of_month(dom, dom_specials, star=full_dom),
        f.MONTH.render(months, star=False),
        "?"
        if dow_t == "?"
        else f.render_day_of_week(dow, dow_specials, f.WEEKDAY_EVENTBRIDGE, star=full_dow),
        "*" if years is None else f.render_ranges(years << 1970),
    ]
    return spec, f"cron({' '.join(text_fields)})"


def parse_crontab(text: str) -> tuple[CronSpec, str]:
    """A 5-field (or 6-field, seconds first) crontab line or an ``@hourly``-style shortcut:
    the spec and its canonical text."""
    if text.startswith("@"):
        macro = text.lower()
        if macro not in MACROS:
            raise errors.ValidationError(
                "expression",
                f'"{text}" is not a known shortcut',
                ", ".join(MACROS),
            )
        text = MACROS[macro]
    parts = text.split()
    if len(parts) == 5:
        parts.insert(0, "0")
    elif len(parts) != 6:
        raise errors.ValidationError(
            "expression",
            f'"{text}" is not a schedule expression: a crontab line has 5 fields '
            f"(minute hour day-of-month month day-of-week) or 6 with leading seconds, got {len(parts)}",
            "cron(...), rate(...), at(...), a 5- or 6-field crontab line, @hourly/@daily/@weekly/@monthly/@yearly",
        )
    second_t, minute_t, hour_t, dom_t, month_t, dow_t = parts
    for name, token in zip(CRONTAB_FIELDS, parts, strict=True):
        if "?" in token:
            raise errors.ValidationError(
                f"expression.{name}", f'"{token}": ? is not crontab syntax; use *', "*"
            )
    seconds = f.SECOND.parse(second_t)
    minutes = f.MINUTE.parse(minute_t)
    hours = f.HOUR.parse(hour_t)
    months = f.MONTH.parse(month_t)
    dom, dom_specials = f.parse_day_of_month(dom_t)
    dow, dow_specials = f.parse_day_of_week(dow_t, f.WEEKDAY_CRONTAB)
    dom_star, dow_star = dom_t.startswith("*"), dow_t.startswith("*")
    combine: DayCombine = "and" if dom_star or dow_star else "or"
    if dow_star and dow == f.span_mask(0, 6):
        combine = "dom"
    elif dom_star and dom == f.DAY_OF_MONTH.full():
        combine = "dow"
    days = DayRule(dom, dom_specials, dow, dow_specials, combine)
    _check_days_exist(days, months, None, "crontab")
    minute_star, hour_star = minute_t.startswith("*"), hour_t.startswith("*")
    spec = CronSpec(seconds, minutes, hours, months, None, days, minute_star or hour_star)
    text_fields = [
        f.MINUTE.render(minutes, star=minute_star),
        f.HOUR.render(hours, star=hour_star),
        f.render_day_of_month(dom, dom_specials, star=dom_star),
        f.MONTH.render(months, star=False),
        f.render_day_of_week(dow, dow_specials, f.WEEKDAY_CRONTAB, star=dow_star),
    ]
    if seconds != 1:
        text_fields.insert(0, f.SECOND.render(seconds, star=False))
    return spec, " ".join(text_fields)
