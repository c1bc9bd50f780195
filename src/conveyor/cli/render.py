"""Output for people (tables) and for scripts (``--json``)."""

from __future__ import annotations

import dataclasses
import enum
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any


def plain(value: Any) -> Any:
    """A dataclass as a dict of its fields, an enum as its value, a datetime in ISO form, a set
    as a list; anything else as it is. One level: what they hold is converted by
    ``emit_json``'s encoder as it meets it."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return list(value)
    return value


def _default(value: Any) -> Any:
    out = plain(value)
    if out is value:
        raise TypeError(f"{type(value).__name__} is not JSON")
    return out


def emit_json(value: Any) -> None:
    # the encoder walks the value itself, calling plain() for what JSON does not know: a
    # payload or result nested hundreds of levels deep (the store takes them) is printed
    # where a recursive conversion first raised RecursionError
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=False, default=_default) + "\n")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str("" if v is None else v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, v in enumerate(row):
            widths[i] = min(max(widths[i], len(v)), 60)
    line = "  ".join(h.upper().ljust(widths[i]) for i, h in enumerate(headers))
    sys.stdout.write(line.rstrip() + "\n")
    for row in cells:
        out = "  ".join((v if len(v) <= 60 else v[:57] + "...").ljust(widths[i]) for i, v in enumerate(row))
        sys.stdout.write(out.rstrip() + "\n")
    if not rows:
        sys.stdout.write("(none)\n")


def when(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def fields(pairs: Sequence[tuple[str, Any]]) -> None:
    width = max(len(k) for k, _ in pairs)
    for k, v in pairs:
        if v is None or v == "" or v == () or v == []:
            continue
        sys.stdout.write(f"{k.ljust(width)}  {v}\n")
