"""Schedule expressions: parse them, and compute when they fire. Pure: no I/O, no clock.

``cron(...)`` (EventBridge), ``rate(...)``, ``at(...)`` and classic crontab lines parse into
one frozen :class:`Expression`; :func:`next_fires` yields its fire instants (aware UTC)
for an IANA zone. DST rules: :mod:`conveyor.expressions.zones`. Parse errors are
``errors.ValidationError`` with ``field`` ``expression`` or ``expression.<cron field>``.
"""

from __future__ import annotations

from conveyor.expressions.describe import describe
from conveyor.expressions.expression import Expression, Kind, parse
from conveyor.expressions.fires import is_in_past, next_fire, next_fires
from conveyor.expressions.zones import validate_timezone

__all__ = [
    "Expression",
    "Kind",
    "describe",
    "is_in_past",
    "next_fire",
    "next_fires",
    "parse",
    "validate_timezone",
]
