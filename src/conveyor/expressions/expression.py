"""``Expression``: a parsed schedule expression, and ``parse`` which makes one.

Accepted forms (see the dialect modules for details):

* ``cron(minutes hours day-of-month month day-of-week year)`` -- Amazon EventBridge
  (:mod:`conveyor.expressions.cron`);
* ``rate(N minute|minutes|hour|hours|day|days)`` (:mod:`conveyor.expressions.rate`);
* ``at(yyyy-mm-ddThh:mm:ss)`` (:mod:`conveyor.expressions.at`);
* a classic crontab line, 5 fields or 6 with leading seconds, and ``@hourly``,
  ``@daily``/``@midnight``, ``@weekly``, ``@monthly``, ``@yearly``/``@annually``.

An ``Expression`` is a frozen, hashable value compared by its canonical ``text``: two
spellings of the same schedule (``@daily`` and ``0 0 * * *``, ``MON-FRI`` and ``1-5``,
``rate(60 minutes)`` and ``rate(1 hour)``) give equal expressions, so schedules can share
the fire-time math by grouping on ``text``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from conveyor import errors
from conveyor.expressions import at, cron, rate

Kind = Literal["cron", "rate", "at"]
Spec = cron.CronSpec | rate.RateSpec | at.AtSpec

FORMS = "cron(...), rate(...), at(...), a 5- or 6-field crontab line, @hourly/@daily/@weekly/@monthly/@yearly"


@dataclass(frozen=True, slots=True)
class Expression:
    """A parsed schedule expression. Equal when the canonical ``text`` is equal."""

    text: str
    """Canonical text; ``parse(expr.text) == expr``."""
    kind: Kind
    spec: Spec = field(compare=False, repr=False)
    """The compiled form the fire-time math runs on."""

    def __str__(self) -> str:
        return self.text


def parse(text: str) -> Expression:
    """Parse any accepted form; ``errors.ValidationError`` naming the field otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise errors.ValidationError("expression", "is empty", FORMS)
    stripped = " ".join(text.split())
    lower = stripped.lower()
    for prefix in ("cron(", "rate(", "at("):
        if lower.startswith(prefix) or lower.startswith(prefix[:-1] + " ("):
            head = prefix[:-1]
            if not lower.endswith(")"):
                raise errors.ValidationError(
                    "expression", f'{head}(): "{stripped}" is missing its closing parenthesis', f"{head}(...)"
                )
            inner = stripped[stripped.index("(") + 1 : -1]
            if head == "cron":
                cron_spec, canonical = cron.parse_eventbridge(inner)
                return Expression(canonical, "cron", cron_spec)
            if head == "rate":
                rate_spec, canonical = rate.parse_rate(inner)
                return Expression(canonical, "rate", rate_spec)
            at_spec, canonical = at.parse_at(inner)
            return Expression(canonical, "at", at_spec)
    cron_spec, canonical = cron.parse_crontab(stripped)
    return Expression(canonical, "cron", cron_spec)
