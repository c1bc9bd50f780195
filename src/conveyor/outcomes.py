"""Explicit outcomes a Python job can raise or return (Oban/River vocabulary)."""

from __future__ import annotations


class Outcome(Exception):
    """Base of the explicit job outcomes."""


class Retry(Outcome):
    """Fail this attempt and retry after ``delay`` seconds (counts as an attempt)."""

    def __init__(self, delay: float = 0.0, reason: str = "retry requested by the job") -> None:
        super().__init__(reason)
        self.delay = float(delay)
        self.reason = reason


class Cancel(Outcome):
    """Stop here: the job ends CANCELLED with ``reason``; no retry."""

    def __init__(self, reason: str = "cancelled by the job") -> None:
        super().__init__(reason)
        self.reason = reason


class Snooze(Outcome):
    """Run again after ``delay`` seconds without consuming an attempt."""

    def __init__(self, delay: float) -> None:
        super().__init__(f"snoozed for {delay:g} s")
        self.delay = float(delay)
        self.reason = f"snoozed for {delay:g} s"
