"""What both SQL backends share: the transaction shape, the dialect seam, migrations.

Queries are written once with ``?`` placeholders. A ``Dialect`` supplies the few things
that differ between SQLite and PostgreSQL: how times, JSON and id lists travel, row locking
clauses, id allocation and wake-up notifications.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from importlib import resources
from typing import Any, Protocol

Row = Mapping[str, Any]

_scan_json: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def read_json(text: str) -> Any:
    """JSON text a store wrote (or is about to): the C scanner alone (~0.4 µs) rather than
    ``json.loads`` (~2.6 µs); anything it does not take whole goes to ``json.loads``, which
    decodes it or raises its usual error."""
    try:
        obj, end = _scan_json(text, 0)
    except (StopIteration, TypeError):
        return json.loads(text)
    return obj if end == len(text) else json.loads(text)


class Tx(Protocol):
    """One open transaction."""

    def q(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run a statement and return all its rows."""
        ...

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """Run a statement and return its first row."""
        ...

    def x(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement and return the number of rows it changed."""
        ...

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for many parameter rows."""
        ...


class Dialect(Protocol):
    name: str
    skip_locked: str  # " FOR UPDATE SKIP LOCKED" or ""
    for_update: str  # " FOR UPDATE" or ""
    for_key_share: str  # " FOR KEY SHARE" or "": the row may not be deleted meanwhile
    # after "FROM jobs" in the due-job queries: SQLite, without statistics, prefers
    # jobs_state_id's equality on state and reads every SUBMITTED row; PostgreSQL picks jobs_due
    due_index: str

    def ts(self, value: datetime | None) -> Any: ...
    def dt(self, value: Any) -> datetime | None: ...
    def js(self, value: Any) -> Any: ...
    def unjs(self, value: Any) -> Any: ...
    def echo_js(self, stored: Any) -> Any:
        """What reading back a value stored as ``js(value)`` gives (without reading it back)."""
        ...

    def id_in(self, column: str) -> str:
        """SQL fragment: ``column`` is one of the ids in the next parameter (see ``ids``)."""
        ...

    def ids(self, values: Sequence[int]) -> Any: ...
    def in_subquery(self, column: str, subquery: str) -> str:
        """SQL fragment: ``column`` is in the result of ``subquery``, which runs exactly once
        (a LIMIT ... SKIP LOCKED subquery must not be rescanned)."""
        ...

    def pair_in(self, a: str, b: str) -> str:
        """SQL fragment: ``(a, b)`` is one of the pairs in the next parameter (see ``pairs``)."""
        ...

    def pairs(self, values: Sequence[tuple[int, int]]) -> Any: ...
    def alloc_job_ids(self, tx: Tx, n: int) -> list[int]: ...
    def notify_jobs(self, tx: Tx, queues: set[str]) -> None: ...


def plus(now: datetime, seconds: float) -> datetime:
    return now + timedelta(seconds=seconds)


def migration_files(backend: str) -> list[tuple[int, str, str]]:
    """The numbered migrations shipped for ``backend``: (version, name, sql)."""
    folder = resources.files("conveyor.store").joinpath("migrations", backend)
    found: list[tuple[int, str, str]] = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name.removesuffix(".sql"), entry.read_text()))
    return sorted(found)


def split_statements(sql: str) -> list[str]:
    """Split a migration file on ``;`` at line ends (our files keep one statement per ``;``)."""
    statements: list[str] = []
    current: list[str] = []
    for line in sql.splitlines():
        stripped = line.strip()
        if stripped.startswith("--") and not current:
            continue
        current.append(line)
        if stripped.endswith(";"):
            text = "\n".join(current).strip().rstrip(";")
            if text:
                statements.append(text)
            current = []
    rest = "\n".join(current).strip()
    if rest:
        statements.append(rest)
    return statements
