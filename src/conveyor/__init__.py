"""Conveyor: scheduled and on-demand batch jobs on SQLite or PostgreSQL.

The SDK is imported lazily (``import conveyor`` stays cheap for workers and the CLI)::

    import conveyor
    client = conveyor.Client("http://127.0.0.1:8080", token)

    @conveyor.task(queue="reports")
    def report(day: str) -> str: ...
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conveyor.client import AsyncClient, Client, task
    from conveyor.outcomes import Cancel, Interrupted, Retry, Snooze
    from conveyor.worker.context import JobContext, current_job

__all__ = [
    "AsyncClient",
    "Cancel",
    "Client",
    "Interrupted",
    "JobContext",
    "Retry",
    "Snooze",
    "current_job",
    "task",
]

_HOMES = {
    "AsyncClient": "conveyor.client",
    "Client": "conveyor.client",
    "task": "conveyor.client",
    "Retry": "conveyor.outcomes",
    "Cancel": "conveyor.outcomes",
    "Snooze": "conveyor.outcomes",
    "Interrupted": "conveyor.outcomes",
    "current_job": "conveyor.worker.context",
    "JobContext": "conveyor.worker.context",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'conveyor' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(home), name)
