"""``at(yyyy-mm-ddThh:mm:ss)``: one fire at a local wall-clock time of the schedule's zone.

The wall time follows the zone rules of :mod:`conveyor.expressions.zones`: inside a DST gap
it fires at the end of the gap, in a repeated hour at the first occurrence. A time in the
past is not a parse error (parsing has no clock): ask :func:`conveyor.expressions.is_in_past`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from conveyor import errors

_SHAPE = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})", re.ASCII)
FORMAT = "yyyy-mm-ddThh:mm:ss"


@dataclass(frozen=True, slots=True)
class AtSpec:
    wall: datetime
    """Naive local wall-clock time."""


def parse_at(inner: str) -> tuple[AtSpec, str]:
    """The text between ``at(`` and ``)``: the spec and its canonical text."""
    text = inner.strip()
    match = _SHAPE.fullmatch(text)
    wall: datetime | None = None
    if match:
        try:
            year, month, day, hour, minute, second = (int(group) for group in match.groups())
            wall = datetime(year, month, day, hour, minute, second)
        except ValueError:
            wall = None
    if wall is None:
        raise errors.ValidationError("expression", f'at(): "{text}" is not a valid date-time', FORMAT)
    if not 1970 <= wall.year <= 2199:
        raise errors.ValidationError("expression", f"at(): year {wall.year} is out of range", "1970-2199")
    return AtSpec(wall), f"at({wall.isoformat()})"
