"""A single plain submission (each backend's own fast path) is one transaction: when its event
row cannot be written, no job is left behind, the error is the store's, and the next
submission goes through."""

from __future__ import annotations

import pytest

from conveyor import errors
from conveyor.clock import FrozenClock
from conveyor.store import Store

from .helpers import insert_one, new


def _count(store: Store, table: str) -> int:
    with store._read() as tx:
        row = tx.one(f"SELECT COUNT(*) AS n FROM {table}")
    assert row is not None
    return int(row["n"])


def test_a_single_submission_whose_event_fails_leaves_no_job(store: Store, clock: FrozenClock) -> None:
    now = clock.now()
    first = insert_one(store, now, new(payload={"n": 1}))
    jobs, events = _count(store, "jobs"), _count(store, "events")
    with store._write() as tx:
        tx.x("ALTER TABLE events RENAME TO events_away")
    try:
        with pytest.raises(errors.StoreUnavailable, match="schema"):
            insert_one(store, now, new(payload={"n": 2}))
    finally:
        with store._write() as tx:
            tx.x("ALTER TABLE events_away RENAME TO events")
    assert (_count(store, "jobs"), _count(store, "events")) == (jobs, events)
    again = insert_one(store, now, new(payload={"n": 3}))
    assert again.id > first.id
    assert store.job_get(again.id) == again
    assert (_count(store, "jobs"), _count(store, "events")) == (jobs + 1, events + 1)


def test_a_single_submission_after_the_schema_is_gone_says_so(store: Store, clock: FrozenClock) -> None:
    with store._write() as tx:
        tx.x("ALTER TABLE jobs RENAME TO jobs_away")
    with pytest.raises(errors.StoreUnavailable, match="schema"):
        insert_one(store, clock.now())
