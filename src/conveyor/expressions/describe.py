"""``describe``: a short English sentence for an expression (for listings and the dashboard)."""

from __future__ import annotations

from conveyor.expressions.expression import Expression


def describe(expr: Expression) -> str:
    return expr.text
