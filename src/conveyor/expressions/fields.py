"""Cron fields: each field parses itself into a bitmask and renders itself back.

A field value is an ``int`` bitmask: bit ``v`` is set when value ``v`` is selected. Bitmasks
make "the next selected value at or after v" two integer operations (see :func:`next_bit`),
which is what keeps the next-fire search fast.

The day fields also accept the Quartz/EventBridge specials (``L``, ``LW``, ``15W`` in
day-of-month; ``5L``, ``FRIL``, ``MON#2`` in day-of-week); they are parsed here into
:class:`DaySpecials` and evaluated month by month in :mod:`conveyor.expressions.cron`.

Every parse error is an ``errors.ValidationError`` whose ``field`` is
``expression.<field name>`` and whose reason quotes the offending token.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from conveyor import errors

MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
WEEKDAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


def next_bit(mask: int, value: int) -> int:
    """The smallest selected value ``>= value`` in ``mask``, or -1 when there is none."""
    rest = mask >> value
    if not rest:
        return -1
    return value + (rest & -rest).bit_length() - 1


def bits(mask: int) -> list[int]:
    """The selected values of ``mask`` in increasing order."""
    out: list[int] = []
    value = 0
    while mask:
        if mask & 1:
            out.append(value)
        mask >>= 1
        value += 1
    return out


def span_mask(lo: int, hi: int, step: int = 1) -> int:
    if step == 1:
        return ((1 << (hi + 1)) - 1) ^ ((1 << lo) - 1) if hi >= lo else 0
    mask = 0
    for value in range(lo, hi + 1, step):
        mask |= 1 << value
    return mask


@dataclass(frozen=True, slots=True)
class FieldDef:
    """The shape of one cron field: its name, value range, names and spelling rules."""

    name: str
    lo: int
    hi: int
    names: tuple[str, ...] = ()
    """Symbolic names; ``names[i]`` stands for ``name_base + i``."""
    name_base: int = 0
    name_kind: str = "number"
    """How errors call a valid token ("weekday name", "month name")."""
    wrap_to: int | None = None
    """crontab day-of-week: the value ``hi`` (7) means ``wrap_to`` (0, Sunday)."""

    @property
    def field(self) -> str:
        return f"expression.{self.name}"

    @property
    def allowed(self) -> str:
        if self.names:
            return f"{self.names[0]}-{self.names[-1]} or {self.lo}-{self.hi}"
        return f"{self.lo}-{self.hi}"

    def error(self, reason: str, allowed: str | None = None) -> errors.ValidationError:
        return errors.ValidationError(self.field, reason, allowed or self.allowed)

    def full(self) -> int:
        return self.fold(span_mask(self.lo, self.hi))

    def fold(self, mask: int) -> int:
        """Fold the alias value (crontab day-of-week 7) onto its canonical value."""
        if self.wrap_to is not None and mask >> self.hi & 1:
            mask = (mask & ~(1 << self.hi)) | (1 << self.wrap_to)
        return mask

    def value(self, token: str, whole: str) -> int:
        """One number or name, range-checked."""
        upper = token.upper()
        if not token:
            raise self.error(f'"{whole}" is incomplete')
        if self.names and upper in self.names:
            return self.name_base + self.names.index(upper)
        if not token.isdigit() or not token.isascii():
            if self.names:
                raise self.error(f'"{token}" is not a {self.name_kind}')
            if token == whole:
                raise self.error(f'"{token}" is not a number')
            raise self.error(f'"{token}" in "{whole}" is not a number')
        number = int(token)
        if not self.lo <= number <= self.hi:
            raise self.error(f'"{token}" is out of range')
        return number

    def step(self, token: str, whole: str) -> int:
        limit = self.hi - self.lo + 1
        if not token.isdigit() or not token.isascii() or not 1 <= int(token) <= limit:
            raise self.error(
                f'step "{token}" in "{whole}" must be a whole number from 1 to {limit}', f"1-{limit}"
            )
        return int(token)

    def item(self, item: str) -> int:
        """``*``, ``*/n``, ``a``, ``a-b``, ``a/n``, ``a-b/n`` as a bitmask (unfolded)."""
        if not item:
            raise self.error("empty value (two commas in a row, or a trailing comma)")
        base, slash, step_text = item.partition("/")
        step = self.step(step_text, item) if slash else 1
        if base == "*":
            lo, hi = self.lo, self.hi
        elif "-" in base:
            first, _, last = base.partition("-")
            lo, hi = self.value(first, item), self.value(last, item)
            if lo > hi and self.wrap_to == hi and last.upper() == self.names[0]:
                hi = self.hi  # crontab "FRI-SUN": SUN closing a range is 7
            if lo > hi:
                raise self.error(f'range "{item}" goes backwards', f"{self.allowed}, low-high")
        else:
            lo = self.value(base, item)
            hi = self.hi if slash else lo
        return span_mask(lo, hi, step)

    def parse(self, text: str) -> int:
        """A whole plain field (comma list of items) as a folded bitmask."""
        mask = 0
        for item in text.split(","):
            mask |= self.item(item)
        return self.fold(mask)

    def render(self, mask: int, *, star: bool) -> str:
        """Canonical text for ``mask``.

        ``star`` says whether the field must start with ``*``: crontab gives a field that
        starts with ``*`` a meaning of its own (Vixie day AND/OR rule, and the DST rule for
        minute/hour), so canonical text keeps that bit and drops everything else.
        """
        full = self.full()
        if star or (self.name not in STAR_SENSITIVE and mask.bit_count() > 1):
            if mask == full:
                return "*"
            for step in range(2, self.hi - self.lo + 2):
                if self.fold(span_mask(self.lo, self.hi, step)) == mask:
                    return f"*/{step}"
        if star:
            # A starred list such as "*/5,7": "*/<span>" selects just the lowest value, which
            # a starred field always contains; the rest follows as a plain list.
            rest = mask & ~(1 << self.lo)
            head = f"*/{self.hi - self.lo + 1}"
            return f"{head},{render_ranges(rest)}" if rest else head
        return render_ranges(mask)


STAR_SENSITIVE = frozenset({"minute", "hour", "day-of-month", "day-of-week"})


def render_ranges(mask: int) -> str:
    """Values as ``a-b/n`` when they form one progression of 3 or more, else ranges and singles."""
    values = bits(mask)
    if len(values) >= 3:
        step = values[1] - values[0]
        if step > 1 and all(b - a == step for a, b in itertools.pairwise(values)):
            return f"{values[0]}-{values[-1]}/{step}"
    parts: list[str] = []
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        if j == i:
            parts.append(str(values[i]))
        elif j == i + 1:
            parts.extend((str(values[i]), str(values[j])))
        else:
            parts.append(f"{values[i]}-{values[j]}")
        i = j + 1
    return ",".join(parts)


SECOND = FieldDef("second", 0, 59)
MINUTE = FieldDef("minute", 0, 59)
HOUR = FieldDef("hour", 0, 23)
DAY_OF_MONTH = FieldDef("day-of-month", 1, 31)
MONTH = FieldDef("month", 1, 12, MONTH_NAMES, 1, "month name")
YEAR = FieldDef("year", 1970, 2199)
WEEKDAY_CRONTAB = FieldDef("day-of-week", 0, 7, WEEKDAY_NAMES, 0, "weekday name", wrap_to=0)
"""crontab numbering: 0 or 7 = SUN, 1 = MON ... 6 = SAT."""
WEEKDAY_EVENTBRIDGE = FieldDef("day-of-week", 1, 7, WEEKDAY_NAMES, 1, "weekday name")
"""EventBridge numbering: 1 = SUN, 2 = MON ... 7 = SAT."""


def to_py_weekday(value: int, field: FieldDef) -> int:
    """Field numbering -> ``date.weekday()`` numbering (MON = 0 ... SUN = 6)."""
    sunday = 0 if field is WEEKDAY_CRONTAB else 1
    return (value - sunday - 1) % 7


def from_py_weekday(weekday: int, field: FieldDef) -> int:
    sunday = 0 if field is WEEKDAY_CRONTAB else 1
    return (weekday + 1) % 7 + sunday


@dataclass(frozen=True, slots=True)
class DaySpecials:
    """The Quartz/EventBridge day rules that depend on the month: L, LW, nW, n#k, nL."""

    last_day: bool = False
    last_weekday: bool = False
    nearest_weekday: tuple[int, ...] = ()
    nth_weekday: tuple[tuple[int, int], ...] = ()
    """(python weekday, n): the n-th such weekday of the month."""
    last_of_weekday: tuple[int, ...] = ()
    """python weekdays: the last such weekday of the month."""


def parse_day_of_month(text: str) -> tuple[int, DaySpecials]:
    """Day-of-month items plus ``L``, ``LW`` and ``nW``."""
    field = DAY_OF_MONTH
    mask = 0
    last_day = last_weekday = False
    nearest: set[int] = set()
    for item in text.split(","):
        upper = item.upper()
        if upper == "L":
            last_day = True
        elif upper == "LW":
            last_weekday = True
        elif upper.endswith("W") and upper[:-1].isdigit():
            nearest.add(field.value(item[:-1], item))
        elif upper.startswith("L") and len(upper) > 1:
            raise field.error(f'"{item}" is not supported', "1-31, L, LW, nW")
        else:
            mask |= field.item(item)
    return mask, DaySpecials(last_day, last_weekday, tuple(sorted(nearest)))


def parse_day_of_week(text: str, field: FieldDef) -> tuple[int, DaySpecials]:
    """Day-of-week items (a python-weekday bitmask) plus ``n#k``, ``nL`` and (cron() only) ``L``."""
    mask = 0
    nth: set[tuple[int, int]] = set()
    last: set[int] = set()
    for item in text.split(","):
        upper = item.upper()
        if "#" in upper:
            day, _, which = item.partition("#")
            weekday = to_py_weekday(field.value(day, item), field)
            if not (which.isdigit() and which.isascii() and 1 <= int(which) <= 5):
                raise field.error(
                    f'"{item}": the week number after # must be 1-5', f"{field.allowed}, day#1-5"
                )
            nth.add((weekday, int(which)))
        elif upper == "L" and field is WEEKDAY_EVENTBRIDGE:
            mask |= 1 << to_py_weekday(7, field)  # Quartz: a lone L is the last day of the week, SAT.
        elif upper.endswith("L") and len(upper) > 1 and "-" not in upper and "/" not in upper:
            last.add(to_py_weekday(field.value(item[:-1], item), field))
        else:
            for value in bits(field.parse(item)):
                mask |= 1 << to_py_weekday(value, field)
    return mask, DaySpecials(nth_weekday=tuple(sorted(nth)), last_of_weekday=tuple(sorted(last)))


def render_day_of_month(mask: int, specials: DaySpecials, *, star: bool) -> str:
    parts: list[str] = []
    if mask or not (specials.last_day or specials.last_weekday or specials.nearest_weekday):
        parts.append(DAY_OF_MONTH.render(mask, star=star))
    if specials.last_day:
        parts.append("L")
    if specials.last_weekday:
        parts.append("LW")
    parts.extend(f"{day}W" for day in specials.nearest_weekday)
    return ",".join(parts)


def render_day_of_week(py_mask: int, specials: DaySpecials, field: FieldDef, *, star: bool) -> str:
    parts: list[str] = []
    if py_mask or not (specials.nth_weekday or specials.last_of_weekday):
        mask = 0
        for weekday in bits(py_mask):
            mask |= 1 << from_py_weekday(weekday, field)
        parts.append(field.render(mask, star=star))
    parts.extend(f"{from_py_weekday(day, field)}#{n}" for day, n in specials.nth_weekday)
    parts.extend(f"{from_py_weekday(day, field)}L" for day in specials.last_of_weekday)
    return ",".join(parts)
