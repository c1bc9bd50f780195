"""The catalogue: migrations and defaults, environments, queues, definitions, workers."""

from __future__ import annotations

import pytest

from conveyor import errors
from conveyor.clock import FrozenClock
from conveyor.model import ComputeEnvironment, DefinitionSpec, Queue, RetryStrategy
from conveyor.store import Store

from .helpers import claim, insert, insert_one, new, worker


def test_migrate_again_is_a_no_op(store: Store, clock: FrozenClock) -> None:
    job = insert_one(store, clock.now())
    assert store.migrate(clock.now()) == []
    applied, latest = store.schema_status()
    assert applied == latest and latest >= 1
    assert store.job_get(job.id) == job


def test_default_queue_and_environment_exist_after_migrate(store: Store, clock: FrozenClock) -> None:
    assert store.queue_get("default") == Queue("default", 0, True, ("default",))
    assert store.environment_get("default") == ComputeEnvironment("default", None, None, True)
    assert [q.name for q in store.queue_list()] == ["default"]
    assert [e.name for e in store.environment_list()] == ["default"]


def test_environment_put_creates_and_updates(store: Store, clock: FrozenClock) -> None:
    env = ComputeEnvironment("spot", 8, 4096)
    assert store.environment_put(env, clock.now()) == env
    assert store.environment_get("spot") == env
    store.environment_put(ComputeEnvironment("spot", 16, None, enabled=False), clock.now())
    assert store.environment_get("spot") == ComputeEnvironment("spot", 16, None, False)
    assert store.environment_get("nope") is None


def test_environment_delete_refuses_one_in_use_and_unknown_names(store: Store, clock: FrozenClock) -> None:
    store.environment_put(ComputeEnvironment("spot", None, None), clock.now())
    store.queue_put(Queue("q", environments=("spot",)), clock.now())
    with pytest.raises(errors.Conflict):
        store.environment_delete("spot", clock.now())
    with pytest.raises(errors.NotFound):
        store.environment_delete("nope", clock.now())
    store.queue_delete("q", clock.now())
    store.environment_delete("spot", clock.now())
    assert store.environment_get("spot") is None


def test_queue_put_with_an_unknown_environment_is_refused(store: Store, clock: FrozenClock) -> None:
    with pytest.raises(errors.ValidationError) as info:
        store.queue_put(Queue("q", environments=("default", "mars")), clock.now())
    assert info.value.field == "environments" and "mars" in info.value.reason
    assert store.queue_get("q") is None


def test_queue_put_creates_updates_and_lists_by_priority(store: Store, clock: FrozenClock) -> None:
    store.queue_put(Queue("low", priority=-1), clock.now())
    store.queue_put(Queue("high", priority=5), clock.now())
    store.queue_put(Queue("low", priority=9, enabled=False), clock.now())
    assert [q.name for q in store.queue_list()] == ["low", "high", "default"]
    assert store.queue_get("low") == Queue("low", 9, False, ("default",))


def test_queue_delete_refuses_a_queue_with_unfinished_jobs(store: Store, clock: FrozenClock) -> None:
    store.queue_put(Queue("q"), clock.now())
    job = insert_one(store, clock.now(), new("q"))
    with pytest.raises(errors.Conflict):
        store.queue_delete("q", clock.now())
    store.job_cancel(job.id, "", clock.now())
    store.queue_delete("q", clock.now())
    assert store.queue_get("q") is None
    with pytest.raises(errors.NotFound):
        store.queue_delete("q", clock.now())


def test_queue_counts_per_state(store: Store, clock: FrozenClock) -> None:
    insert(store, clock.now(), new(), new(), new(array_size=2))
    claim(store, clock.now(), limit=1)
    assert store.queue_counts() == {"default": {"RUNNING": 1, "RUNNABLE": 3}}


def test_definition_register_creates_revision_one(store: Store, clock: FrozenClock) -> None:
    spec = DefinitionSpec(command=("report", "{day}"), parameters={"day": "today"}, vcpus=2)
    definition, created = store.definition_register("report", spec, clock.now())
    assert created and definition.revision == 1 and definition.active and definition.spec == spec
    assert store.definition_get("report") == definition


def test_definition_register_with_the_same_spec_keeps_the_revision(store: Store, clock: FrozenClock) -> None:
    spec = DefinitionSpec(function="m:f", retry=RetryStrategy(attempts=3))
    store.definition_register("d", spec, clock.now())
    clock.advance(60)
    again, created = store.definition_register("d", spec, clock.now())
    assert not created and again.revision == 1


def test_definition_register_with_a_changed_spec_makes_a_new_active_revision(
    store: Store, clock: FrozenClock
) -> None:
    store.definition_register("d", DefinitionSpec(function="m:f"), clock.now())
    changed = DefinitionSpec(function="m:f", vcpus=4)
    new_rev, created = store.definition_register("d", changed, clock.now())
    assert created and new_rev.revision == 2
    first = store.definition_get("d", 1)
    assert first is not None and not first.active and first.spec == DefinitionSpec(function="m:f")
    current = store.definition_get("d")
    assert current is not None and current.revision == 2 and current.spec == changed
    assert [d.revision for d in store.definition_list()] == [2]
    assert [d.revision for d in store.definition_list(include_inactive=True)] == [1, 2]


def test_definition_deactivate(store: Store, clock: FrozenClock) -> None:
    spec = DefinitionSpec(function="m:f")
    store.definition_register("d", spec, clock.now())
    store.definition_deactivate("d", clock.now())
    assert store.definition_get("d") is None
    assert store.definition_list() == []
    with pytest.raises(errors.NotFound):
        store.definition_deactivate("d", clock.now())
    again, created = store.definition_register("d", spec, clock.now())
    assert created and again.revision == 2 and again.active


def test_environment_usage_counts_running_jobs_and_live_workers(store: Store, clock: FrozenClock) -> None:
    store.environment_put(ComputeEnvironment("spot", 8, None), clock.now())
    store.worker_register(worker("w1", "default", clock.now()))
    insert(
        store,
        clock.now(),
        new(spec=DefinitionSpec(function="m:f", vcpus=2, memory_mb=512)),
        new(spec=DefinitionSpec(function="m:f", vcpus=0.5, memory_mb=100)),
        new(),
    )
    claim(store, clock.now(), limit=2)
    usage = store.environment_usage(clock.now())
    assert set(usage) == {"default", "spot"}
    assert usage["default"].used_vcpus == 2.5 and usage["default"].used_memory_mb == 612
    assert usage["default"].running == 2 and usage["default"].live_workers == 1
    assert usage["spot"].used_vcpus == 0 and usage["spot"].running == 0 and usage["spot"].live_workers == 0


def test_worker_register_list_and_stop(store: Store, clock: FrozenClock) -> None:
    store.worker_register(worker("w1", "default", clock.now()))
    store.worker_register(worker("w2", "default", clock.now()))
    insert(store, clock.now(), new(), new())
    claim(store, clock.now(), "w1", limit=5)
    listed = {w.id: w for w in store.worker_list(clock.now())}
    assert set(listed) == {"w1", "w2"}
    assert listed["w1"].running == 2 and listed["w2"].running == 0
    assert listed["w1"].host == "host-1" and listed["w1"].environment == "default"
    store.worker_stop("w2", clock.now())
    assert [w.id for w in store.worker_list(clock.now())] == ["w1"]
    everyone = {w.id: w for w in store.worker_list(clock.now(), include_stopped=True)}
    assert everyone["w2"].stopped_at == clock.now()
    assert [e.type for e in store.events_list(entity="worker", entity_id="w2")] == [
        "worker.started",
        "worker.stopped",
    ]


def test_registering_the_same_worker_id_twice_is_a_conflict(store: Store, clock: FrozenClock) -> None:
    store.worker_register(worker("w1", "default", clock.now()))
    with pytest.raises(errors.Conflict):
        store.worker_register(worker("w1", "default", clock.now()))
