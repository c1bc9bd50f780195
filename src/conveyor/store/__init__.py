"""The store: the only shared state, and the only code that speaks SQL.

``open_store(url)`` gives a ``Store`` for ``sqlite:///path`` (the default, ``./conveyor.db``)
or ``postgresql://...``.
"""

from __future__ import annotations

import os
from typing import Any

from conveyor import errors
from conveyor.store.lifecycle import LeaseStatus
from conveyor.store.ops import StoreOps

Store = StoreOps
DEFAULT_URL = "sqlite:///conveyor.db"

__all__ = ["DEFAULT_URL", "LeaseStatus", "Store", "absolute_url", "database_url", "open_store"]


def database_url(explicit: str | None = None) -> str:
    """The URL to use: explicit, else ``CONVEYOR_DATABASE_URL``, else ``./conveyor.db``."""
    return explicit or os.environ.get("CONVEYOR_DATABASE_URL") or DEFAULT_URL


def absolute_url(url: str) -> str:
    """The same database seen from any working directory (children run in their own)."""
    if url.startswith(("postgresql://", "postgres://")) or ("://" in url and not url.startswith("sqlite:")):
        return url
    from pathlib import Path

    from conveyor.store.sqlite import sqlite_path

    path, _ = sqlite_path(url)
    query = url.split("?", 1)[1] if "?" in url else ""
    return f"sqlite:///{Path(path).expanduser().resolve()}" + (f"?{query}" if query else "")


def open_store(url: str | None = None, **options: Any) -> Store:
    url = database_url(url)
    if url.startswith(("postgresql://", "postgres://")):
        from conveyor.store.postgres import PostgresStore

        return PostgresStore(url, **options)
    if url.startswith("sqlite:") or "://" not in url:
        from conveyor.store.sqlite import SQLiteStore

        return SQLiteStore(url)
    scheme = url.split("://", 1)[0]
    raise errors.ValidationError(
        "database", f"scheme {scheme!r} is not supported", "sqlite:///path, postgresql://..."
    )
