"""A schedule is written only into queues that exist, checked under each queue's lock, both
backends: creating or changing one into a queue deleted since the engine looked is refused
with ``UnknownQueue`` and writes nothing; on PostgreSQL a ``queues delete`` under way makes
the schedule wait for it, then refuses it (it cannot be left pointing at a deleted queue)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

import pytest

from conveyor import errors, expressions, scheduling
from conveyor.clock import FrozenClock
from conveyor.model import DefinitionSpec, Queue
from conveyor.scheduling import Schedule, ScheduleState, ScheduleTarget
from conveyor.store import Store


def _target(queue: str) -> ScheduleTarget:
    return ScheduleTarget(queue=queue, spec=DefinitionSpec(function="m:f"))


def _schedule(now: datetime, name: str, *queues: str, **kw: object) -> Schedule:
    """A validated schedule (next times set) with one target per queue, not stored."""
    s = Schedule(
        name=name,
        expression=expressions.parse("rate(1 minute)").text,
        timezone="UTC",
        targets=tuple(_target(q) for q in queues),
        anchor_at=now,
    )
    s = replace(s, **kw)  # type: ignore[arg-type]
    nominal, due = scheduling.first_times(s, now)
    return replace(s, next_nominal_at=nominal, next_due_at=due)


def _deleted_queue(store: Store, now: datetime, name: str = "gone") -> str:
    """A queue that existed when the engine checked the names, deleted since (through the store,
    as a concurrent ``queues delete`` would)."""
    store.queue_put(Queue(name), now)
    store.queue_delete(name, now)
    return name


def _schedule_events(store: Store, name: str) -> list[str]:
    return [e.type for e in store.events_list(entity="schedule", entity_id=name)]


def test_schedule_create_into_a_deleted_queue_is_refused_and_writes_nothing(
    store: Store, clock: FrozenClock
) -> None:
    gone = _deleted_queue(store, clock.now())
    with pytest.raises(errors.UnknownQueue) as info:
        store.schedule_create(_schedule(clock.now(), "s", "default", gone), clock.now())
    assert gone in str(info.value)
    assert store.schedule_get("s") is None and _schedule_events(store, "s") == []
    assert store.schedule_create(_schedule(clock.now(), "s", "default"), clock.now()).name == "s"


def test_schedule_create_many_into_a_deleted_queue_is_refused_and_writes_nothing(
    store: Store, clock: FrozenClock
) -> None:
    """Nothing at all, though the schedule naming it is in a later batch than others."""
    gone = _deleted_queue(store, clock.now())
    items = [
        _schedule(clock.now(), "a", "default"),
        _schedule(clock.now(), "b", "default"),
        _schedule(clock.now(), "c", gone),
    ]
    with pytest.raises(errors.UnknownQueue):
        store.schedule_create_many(items, clock.now(), batch=1)
    assert store.schedule_count() == {}
    assert [e for e in store.events_list(entity="schedule") if e.type == "schedule.created_many"] == []
    assert store.schedule_create_many(items[:2], clock.now(), batch=1) == 2


def test_schedule_update_into_a_deleted_queue_is_refused_and_changes_nothing(
    store: Store, clock: FrozenClock
) -> None:
    created = store.schedule_create(_schedule(clock.now(), "s", "default"), clock.now())
    gone = _deleted_queue(store, clock.now())
    with pytest.raises(errors.UnknownQueue):
        store.schedule_update(_schedule(clock.now(), "s", gone), clock.now())
    assert store.schedule_get("s") == created
    assert _schedule_events(store, "s") == ["schedule.created"]


def test_a_finished_schedule_is_not_made_active_again_into_its_deleted_queue(
    store: Store, clock: FrozenClock
) -> None:
    """A finished schedule does not hold its queue (it fires no more), so the queue can go;
    ``schedules update`` makes a finished schedule active again, with the targets it had."""
    store.queue_put(Queue("sq"), clock.now())
    done = store.schedule_create(
        _schedule(clock.now(), "done", "sq", state=ScheduleState.FINISHED), clock.now()
    )
    store.queue_delete("sq", clock.now())
    with pytest.raises(errors.UnknownQueue):
        store.schedule_update(replace(done, state=ScheduleState.ACTIVE), clock.now())
    again = store.schedule_get("done")
    assert again is not None and again.state is ScheduleState.FINISHED


def _create(store: Store, now: datetime) -> None:
    store.schedule_create(_schedule(now, "s", "default", "contested"), now)


def _create_many(store: Store, now: datetime) -> None:
    store.schedule_create_many([_schedule(now, "s", "default", "contested")], now)


def _update(store: Store, now: datetime) -> None:
    store.schedule_update(_schedule(now, "s", "contested"), now)


@pytest.mark.parametrize("write", [_create, _create_many, _update], ids=["create", "create_many", "update"])
def test_a_schedule_written_during_a_queue_delete_waits_for_it_and_is_refused(
    store: Store, clock: FrozenClock, write: Callable[[Store, datetime], None]
) -> None:
    """PostgreSQL: another transaction deletes the queue as ``queue_delete`` does (its row
    locked, no schedule found using it, deleted, committed a moment later); the schedule being
    written meanwhile waits for the lock, then finds the queue gone."""
    if store.d.name != "postgres":
        pytest.skip("row locks between transactions (SQLite writes one at a time)")
    import psycopg

    now = clock.now()
    store.queue_put(Queue("contested"), now)
    if write is _update:
        store.schedule_create(_schedule(now, "s", "default"), now)
    before = store.schedule_get("s")
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            write(store, now)
            outcome.append(None)
        except BaseException as exc:  # what the main thread asserts on
            outcome.append(exc)

    with psycopg.connect(store.url) as conn:
        assert conn.execute("SELECT name FROM queues WHERE name = 'contested' FOR UPDATE").fetchone()
        writer = threading.Thread(target=run)
        writer.start()
        time.sleep(0.5)
        assert writer.is_alive(), "the schedule was written without waiting for the queue's lock"
        assert conn.execute(
            "SELECT count(*) FROM schedules WHERE state IN ('ACTIVE', 'PAUSED')"
            " AND CAST(targets AS TEXT) LIKE '%contested%'"
        ).fetchone() == (0,)
        conn.execute("DELETE FROM queues WHERE name = 'contested'")
        conn.commit()
    writer.join(10)
    assert not writer.is_alive()
    [raised] = outcome
    assert isinstance(raised, errors.UnknownQueue), raised
    assert store.schedule_get("s") == before


def test_users_of_a_queue_do_not_wait_for_each_other_or_for_a_change_of_its_settings(
    store: Store, clock: FrozenClock
) -> None:
    """PostgreSQL: what comes to depend on a queue takes a shared lock (FOR KEY SHARE): a
    schedule written while another transaction holds one, or changes the queue's priority,
    goes through at once; a delete of the queue waits for the holder."""
    if store.d.name != "postgres":
        pytest.skip("row locks between transactions (SQLite writes one at a time)")
    import psycopg

    now = clock.now()
    store.queue_put(Queue("shared"), now)
    with psycopg.connect(store.url) as conn:
        assert conn.execute("SELECT name FROM queues WHERE name = 'shared' FOR KEY SHARE").fetchone()
        with psycopg.connect(store.url) as other:
            other.execute("UPDATE queues SET priority = 5 WHERE name = 'shared'")  # not committed yet
            writer = threading.Thread(
                target=store.schedule_create, args=(_schedule(now, "first", "shared"), now)
            )
            writer.start()
            writer.join(3)
            waited = writer.is_alive()
            other.commit()
            conn.commit()
            writer.join(10)
            assert not waited, "the schedule waited for another user of the queue"
        assert conn.execute("SELECT name FROM queues WHERE name = 'shared' FOR KEY SHARE").fetchone()
        refused: list[BaseException] = []

        def delete() -> None:
            try:
                store.queue_delete("shared", now)
            except errors.Conflict as exc:  # the schedule uses it
                refused.append(exc)

        deleted = threading.Thread(target=delete)
        deleted.start()
        time.sleep(0.3)
        assert deleted.is_alive(), "the delete did not wait for the queue's holder"
    deleted.join(10)
    assert len(refused) == 1 and "schedule(s) first" in str(refused[0]), refused
    assert store.queue_get("shared") is not None
