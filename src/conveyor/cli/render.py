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
    """Dataclasses, enums and datetimes as JSON-ready values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    return value


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(plain(value), indent=2, sort_keys=False) + "\n")


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
