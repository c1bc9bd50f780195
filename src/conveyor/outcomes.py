"""Explicit outcomes a Python job can raise or return (Oban/River vocabulary)."""

from __future__ import annotations

import math
from typing import Any

# the longest delay an outcome may ask for: a year, as a submission's delay_seconds
MAX_DELAY_SECONDS = 366 * 86_400


def _delay(kind: str, value: Any) -> float:
    """``value`` as a delay in seconds, or ValueError/TypeError naming what is wrong: a NaN,
    an infinity or a delay past a year could not be stored (the worker looped on its report),
    a negative one re-ran the job at once, over and over."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{kind} delay must be a number of seconds, not {value!r}")
    out = float(value) if not isinstance(value, int) or abs(value) <= MAX_DELAY_SECONDS else math.inf
    if not 0 <= out <= MAX_DELAY_SECONDS:
        shown = repr(value) if len(repr(value)) <= 40 else "that"
        raise ValueError(f"{kind} delay {shown} is out of range (0..{MAX_DELAY_SECONDS} s)")
    return out


class Outcome(Exception):
    """Base of the explicit job outcomes."""


class Retry(Outcome):
    """Fail this attempt and retry after ``delay`` seconds (counts as an attempt)."""

    def __init__(self, delay: float = 0.0, reason: str = "retry requested by the job") -> None:
        super().__init__(reason)
        self.delay = _delay("Retry", delay)
        self.reason = str(reason)


class Cancel(Outcome):
    """Stop here: the job ends CANCELLED with ``reason``; no retry."""

    def __init__(self, reason: str = "cancelled by the job") -> None:
        super().__init__(reason)
        self.reason = str(reason)


class Snooze(Outcome):
    """Run again after ``delay`` seconds without consuming an attempt."""

    def __init__(self, delay: float) -> None:
        seconds = _delay("Snooze", delay)
        super().__init__(f"snoozed for {seconds:g} s")
        self.delay = seconds
        self.reason = f"snoozed for {seconds:g} s"


class Interrupted(BaseException):
    """Raised inside a synchronous function whose attempt timed out or was terminated (as
    Dramatiq's time limit does): a ``BaseException``, so the function's ``except Exception``
    does not swallow it; catch it to clean up, and let it go on. It lands at the next Python
    instruction; a call blocked in C code (``time.sleep``, a read without a timeout) sees it
    only when that call returns."""
