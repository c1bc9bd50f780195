"""Shared fixtures: a real SQLite file and a real PostgreSQL database per test.

PostgreSQL: a template database is migrated once per session; each test gets
``CREATE DATABASE ... TEMPLATE`` (fast isolation on the real server). Under ``CI=true``
an unreachable server fails the run; elsewhere the PostgreSQL tests skip with one line.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from conveyor.app import App
from conveyor.clock import FrozenClock
from conveyor.store import Store, open_store

PG_ADMIN_URL = os.environ.get("CONVEYOR_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")
START = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def _pg_url(dbname: str) -> str:
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{dbname}"


@pytest.fixture(scope="session")
def pg_template(worker_id: str) -> Iterator[str]:
    """Name of a migrated template database for this test process."""
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        reason = f"PostgreSQL not reachable at {PG_ADMIN_URL}: {str(exc).strip().splitlines()[0]}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true: the PostgreSQL tests must run)")
        pytest.skip(reason)
    name = f"conveyor_tpl_{worker_id}_{os.getpid()}"
    with admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
        store = open_store(_pg_url(name))
        store.migrate(START)
        store.close()
        yield name
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    name = f"conveyor_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    # a copy keeps the template's store id: give it its own, as a database migrated on its
    # own has (tests on other databases run on this host at the same time; see orphans.py)
    with psycopg.connect(_pg_url(name), autocommit=True) as conn:
        conn.execute("UPDATE store_info SET value = md5(random()::text || clock_timestamp()::text)")
    try:
        yield _pg_url(name)
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'conveyor.db'}"
    store = open_store(url)
    store.migrate(START)
    store.close()
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """A migrated, empty database URL, once per backend."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = open_store(db_url)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture(scope="session")
def worker_id(request: pytest.FixtureRequest) -> str:
    """xdist's worker id, or ``main`` without xdist."""
    wid = getattr(request.config, "workerinput", {}).get("workerid", "main")
    return str(wid)


@pytest.fixture
def app(db_url: str, tmp_path: Path) -> Iterator[App]:
    """An in-process ``App`` on a real database (both backends via ``db_url``)."""
    opened = App.open(db_url, blob_dir=tmp_path / "blobs")
    try:
        yield opened
    finally:
        opened.close()
