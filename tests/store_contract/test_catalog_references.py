"""What the catalogue refers to, both backends: a deactivated definition runs no new job (by
revision neither) and is still shown; a queue a schedule or an active definition uses cannot
be deleted."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest

from conveyor import errors, expressions, scheduling
from conveyor.app import App
from conveyor.clock import FrozenClock
from conveyor.engine.jobs import SubmitRequest
from conveyor.model import DefinitionSpec, Queue
from conveyor.scheduling import Schedule, ScheduleState, ScheduleTarget
from conveyor.store import Store


def schedule(store: Store, now: datetime, name: str, queue: str, **kw: object) -> Schedule:
    s = Schedule(
        name=name,
        expression=expressions.parse("rate(1 minute)").text,
        timezone="UTC",
        targets=(
            ScheduleTarget(queue="default", spec=DefinitionSpec(function="m:f")),
            ScheduleTarget(queue=queue, spec=DefinitionSpec(function="m:f")),
        ),
        anchor_at=now,
    )
    s = replace(s, **kw)  # type: ignore[arg-type]
    nominal, due = scheduling.first_times(s, now)
    return store.schedule_create(replace(s, next_nominal_at=nominal, next_due_at=due), now)


# -- definitions: deactivated ------------------------------------------------------------------


def test_definition_deactivate_idempotent_answers_whether_it_changed(
    store: Store, clock: FrozenClock
) -> None:
    store.definition_register("d", DefinitionSpec(function="m:f"), clock.now())
    assert store.definition_deactivate("d", clock.now(), idempotent=True) is True
    assert store.definition_deactivate("d", clock.now(), idempotent=True) is False
    assert [e.type for e in store.events_list(entity="definition", entity_id="d")] == [
        "definition.registered",
        "definition.deactivated",
    ]
    with pytest.raises(errors.UnknownDefinition):
        store.definition_deactivate("nope", clock.now(), idempotent=True)


def test_definition_latest_is_the_newest_revision_active_or_not(store: Store, clock: FrozenClock) -> None:
    assert store.definition_latest("d") is None
    store.definition_register("d", DefinitionSpec(function="m:f"), clock.now())
    store.definition_register("d", DefinitionSpec(function="m:g"), clock.now())
    latest = store.definition_latest("d")
    assert latest is not None and (latest.revision, latest.active) == (2, True)
    store.definition_deactivate("d", clock.now())
    latest = store.definition_latest("d")
    assert latest is not None and (latest.revision, latest.active) == (2, False)
    assert latest.spec == DefinitionSpec(function="m:g")


def test_a_deactivated_definition_is_refused_with_and_without_revision(app: App) -> None:
    app.catalog.register_definition("resize", {"command": ["echo", "{src}"]})
    assert app.jobs.submit(SubmitRequest(definition="resize", definition_revision=1, parameters={"src": "a"}))
    assert app.catalog.deactivate_definition("resize") is True
    for revision in (None, 1):
        with pytest.raises(errors.ValidationError) as info:
            app.jobs.submit(SubmitRequest(definition="resize", definition_revision=revision))
        assert info.value.field == "definition"
        assert (
            info.value.reason == "job definition 'resize' is deactivated; register it again to re-activate it"
        )
    with pytest.raises(errors.ValidationError) as info:
        app.jobs.submit(SubmitRequest(definition="never"))
    assert info.value.reason == "job definition 'never' does not exist"
    again, created = app.catalog.register_definition("resize", {"command": ["echo", "{src}"]})
    assert created and again.revision == 2 and again.active
    job = app.jobs.submit(SubmitRequest(definition="resize", definition_revision=1, parameters={"src": "b"}))
    assert job.job.definition_revision == 1  # an older revision of an active definition still runs


def test_a_pinned_revision_validated_before_is_refused_once_the_definition_is_deactivated(app: App) -> None:
    """Revision 1 does not change when revision 2 is deactivated: the specs validated
    against it must not let a submission through."""
    app.catalog.register_definition("d", {"command": ["echo", "1"]})
    app.catalog.register_definition("d", {"command": ["echo", "2"]})
    req = SubmitRequest(definition="d", definition_revision=1)
    for _ in range(2):
        assert app.jobs.submit(req).job.spec.command == ("echo", "1")
    app.catalog.deactivate_definition("d")
    with pytest.raises(errors.ValidationError) as info:
        app.jobs.submit(req)
    assert info.value.field == "definition" and info.value.reason.startswith(
        "job definition 'd' is deactivated;"
    )
    with pytest.raises(errors.ValidationError):
        app.jobs.submit_many([req])


def test_a_missing_revision_of_an_active_definition_is_named(app: App) -> None:
    app.catalog.register_definition("d", {"command": ["true"]})
    with pytest.raises(errors.ValidationError) as info:
        app.jobs.submit(SubmitRequest(definition="d", definition_revision=5))
    assert info.value.reason == "job definition 'd' revision 5 does not exist"


def test_show_and_deactivate_see_a_deactivated_definition(app: App) -> None:
    app.catalog.register_definition("d", {"command": ["true"]})
    app.catalog.deactivate_definition("d")
    shown = app.catalog.definition("d")
    assert (shown.name, shown.revision, shown.active) == ("d", 1, False)
    assert app.catalog.deactivate_definition("d") is False
    with pytest.raises(errors.UnknownDefinition):
        app.catalog.definition("nope")
    with pytest.raises(errors.UnknownDefinition):
        app.catalog.deactivate_definition("nope")


# -- queues: in use --------------------------------------------------------------------------


def test_queue_delete_is_refused_while_a_schedule_targets_it(store: Store, clock: FrozenClock) -> None:
    store.queue_put(Queue("sq"), clock.now())
    schedule(store, clock.now(), "s1", "sq")
    schedule(store, clock.now(), "s2", "sq", state=ScheduleState.PAUSED)
    schedule(store, clock.now(), "other", "default")
    schedule(store, clock.now(), "done", "sq", state=ScheduleState.FINISHED)
    with pytest.raises(errors.Conflict) as info:
        store.queue_delete("sq", clock.now())
    assert str(info.value) == "queue 'sq' is used by schedule(s) s1, s2; remove it there first"
    assert store.queue_get("sq") is not None
    store.schedule_delete("s1", clock.now())
    store.schedule_delete("s2", clock.now())
    store.queue_delete("sq", clock.now())  # a finished schedule fires no more
    assert store.queue_get("sq") is None


def test_queue_delete_is_refused_while_an_active_definition_follows_up_to_it(
    store: Store, clock: FrozenClock
) -> None:
    store.queue_put(Queue("emails"), clock.now())
    store.definition_register("d", DefinitionSpec(function="m:f", follow_up_queues=("emails",)), clock.now())
    store.definition_register(
        "glob", DefinitionSpec(function="m:f", follow_up_queues=("email*",)), clock.now()
    )
    store.definition_register(
        "off", DefinitionSpec(function="m:f", follow_up_queues=("emails",)), clock.now()
    )
    store.definition_deactivate("off", clock.now())
    schedule(store, clock.now(), "s", "emails")
    with pytest.raises(errors.Conflict) as info:
        store.queue_delete("emails", clock.now())
    assert str(info.value) == (
        "queue 'emails' is used by schedule(s) s and definition(s) d; remove it there first"
    )
    store.schedule_delete("s", clock.now())
    # a new revision without it frees the queue: older revisions do not pin it
    store.definition_register("d", DefinitionSpec(function="m:f"), clock.now())
    store.queue_delete("emails", clock.now())
    assert store.queue_get("emails") is None


def test_queue_delete_of_an_unknown_queue_is_not_found(store: Store, clock: FrozenClock) -> None:
    with pytest.raises(errors.UnknownQueue):
        store.queue_delete("nope", clock.now())


def test_definition_register_refuses_a_follow_up_queue_deleted_meanwhile(
    store: Store, clock: FrozenClock
) -> None:
    """The engine checks the names first; the store checks again under the queue's lock, so
    that a queue deleted in between is not left referred to."""
    with pytest.raises(errors.ValidationError) as info:
        store.definition_register(
            "d", DefinitionSpec(function="m:f", follow_up_queues=("gone",)), clock.now()
        )
    assert info.value.field == "follow_up_queues" and "gone" in info.value.reason
    assert store.definition_latest("d") is None
    store.definition_register("g", DefinitionSpec(function="m:f", follow_up_queues=("gone-*",)), clock.now())
