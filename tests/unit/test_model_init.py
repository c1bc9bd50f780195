"""``Job`` and ``InsertResult`` get a faster ``__init__`` (model.quick_init): it must take the
same arguments, fill the same defaults, refuse the same mistakes and keep instances frozen."""

from __future__ import annotations

import dataclasses
import inspect
from datetime import UTC, datetime
from typing import Any

import pytest

from conveyor.model import DefinitionSpec, InsertResult, Job, JobState

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _fields() -> dict[str, Any]:
    values: dict[str, Any] = {f.name: None for f in dataclasses.fields(Job)}
    values.update(
        id=7,
        queue="q",
        spec=DefinitionSpec(function="m:f"),
        state=JobState.RUNNABLE,
        status_reason="waiting for a worker",
        priority=3,
        created_at=NOW,
        updated_at=NOW,
        attempt=0,
        attempts_counted=0,
        payload={"a": [1]},
        tags=("t",),
        depends_on=(),
    )
    del values["terminate_requested"]
    return values


def test_a_job_built_by_keyword_or_position_holds_every_field_and_the_default() -> None:
    values = _fields()
    by_keyword = Job(**values)
    by_position = Job(*values.values())
    assert by_keyword == by_position
    assert {f.name: getattr(by_keyword, f.name) for f in dataclasses.fields(Job)} == {
        **values,
        "terminate_requested": False,
    }
    assert Job(**values, terminate_requested=True).terminate_requested is True
    assert dataclasses.replace(by_keyword, priority=9).priority == 9


def test_the_quick_init_keeps_the_dataclass_signature() -> None:
    params = inspect.signature(Job.__init__).parameters
    assert list(params)[1:] == [f.name for f in dataclasses.fields(Job)]
    assert params["terminate_requested"].default is False
    assert list(inspect.signature(InsertResult.__init__).parameters) == ["self", "job", "existing", "reason"]


def test_wrong_arguments_are_refused_and_instances_stay_frozen() -> None:
    values = _fields()
    del values["queue"]
    with pytest.raises(TypeError, match="queue"):
        Job(**values)
    with pytest.raises(TypeError, match="unexpected keyword argument 'nope'"):
        InsertResult(None, nope=1)  # type: ignore[arg-type, call-arg]
    result = InsertResult(Job(**_fields()))
    assert (result.existing, result.reason) == (False, "")
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.job.priority = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.existing = True  # type: ignore[misc]


def test_the_job_fields_keep_the_order_positional_callers_pass() -> None:
    """``LifecycleOps._new_job`` and ``_claimed_jobs`` build a ``Job`` positionally: reordering the
    fields must fail here."""
    assert [f.name for f in dataclasses.fields(Job)] == [
        "id",
        "queue",
        "name",
        "definition",
        "definition_revision",
        "spec",
        "state",
        "status_reason",
        "priority",
        "created_at",
        "updated_at",
        "run_at",
        "started_at",
        "finished_at",
        "attempt",
        "attempts_counted",
        "payload",
        "payload_ref",
        "result",
        "tags",
        "unique_key",
        "idempotency_key",
        "parent_id",
        "array_size",
        "array_index",
        "array_parent_id",
        "depends_on",
        "worker_id",
        "lease_expires_at",
        "compute_environment",
        "terminate_requested",
    ]
