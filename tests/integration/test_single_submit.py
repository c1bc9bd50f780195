"""``JobService.submit`` has a path of its own (no batch lists): it must answer, store and
refuse exactly as ``submit_many`` of one does."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from conveyor import errors
from conveyor.app import App
from conveyor.clock import FrozenClock
from conveyor.engine.jobs import JobService, Limits, SubmitRequest
from conveyor.model import InsertResult, Job, JobState


def _comparable(job: Job) -> dict[str, object]:
    fields = {f.name: getattr(job, f.name) for f in dataclasses.fields(job)}
    for name in ("id", "created_at", "updated_at", "run_at"):
        del fields[name]
    if job.state is JobState.SUBMITTED:  # "scheduled for <run_at>"
        fields["status_reason"] = str(fields["status_reason"]).split(" 20", 1)[0]
    return fields


@pytest.mark.parametrize(
    "req",
    [
        SubmitRequest(function="m:f", payload={"args": [1]}),
        SubmitRequest(
            command=["echo", "{x}"], parameters={"x": 1}, payload=[1, "é"], priority=-4, tags=["a"]
        ),
        SubmitRequest(function="m:f", name="later", delay_seconds=60, retry=3, vcpus=0.5, timeout_seconds=9),
        SubmitRequest(function="m:f", unique_key="k-{x}", parameters={"x": "1"}),
    ],
)
def test_a_single_submission_answers_and_stores_what_a_batch_of_one_does(
    app: App, req: SubmitRequest
) -> None:
    single = app.jobs.submit(req)
    assert app.jobs.get(single.job.id) == single.job
    if req.unique_key:  # the batch would meet the key the single submission holds
        app.jobs.cancel(single.job.id)
        req = dataclasses.replace(req, unique_key="k2-{x}")
    [batch] = app.jobs.submit_many([req])
    assert (single.existing, batch.existing) == (False, False)
    expected = _comparable(batch.job)
    if req.unique_key:
        expected["unique_key"] = "k-1"
    assert _comparable(single.job) == expected
    if req.delay_seconds:
        assert single.job.state is JobState.SUBMITTED and single.job.run_at is not None
        assert single.job.run_at - single.job.created_at == pytest.approx(
            timedelta(seconds=60), abs=timedelta(seconds=1)
        )


def test_a_single_submission_names_fields_without_a_batch_index(app: App) -> None:
    with pytest.raises(errors.ValidationError) as info:
        app.jobs.submit(SubmitRequest(function="m:f", priority=10**9))
    assert info.value.field == "priority"
    with pytest.raises(errors.ValidationError) as info:
        app.jobs.submit(SubmitRequest(queue="nope", function="m:f"))
    assert (info.value.field, info.value.reason) == ("queue", "queue 'nope' does not exist")
    with pytest.raises(errors.ValidationError) as info:
        app.jobs.submit(SubmitRequest(function="m:f", payload={"x": float("nan")}))
    assert info.value.field == "payload"
    # a command given as one string is refused, not split into one-letter arguments
    with pytest.raises(errors.ValidationError) as info:
        app.jobs.submit(SubmitRequest(command="echo hi"))
    assert (info.value.field, info.value.reason) == (
        "command",
        "'echo hi' is not a list",
    )
    assert app.store.queue_counts().get("default", {}) == {}


def test_a_batch_limit_below_one_refuses_single_submissions_too(app: App) -> None:
    jobs = JobService(app.store, app.clock, app.blobs, Limits(max_batch=0))
    with pytest.raises(errors.ValidationError, match="1 jobs in one batch"):
        jobs.submit(SubmitRequest(function="m:f"))
    assert app.store.queue_counts().get("default", {}) == {}


# -- the lean path: a submission like one validated before (``_lean_key``) ---------------------
def _lean_calls(app: App) -> list[int]:
    """The ids of the jobs the store inserts from a template (``job_insert_like``), from now on."""
    calls: list[int] = []
    inner = app.store.job_insert_like

    def spy(template: Any, payload: Any, payload_json: str | None, now: datetime) -> InsertResult:
        done = inner(template, payload, payload_json, now)
        calls.append(done.job.id)
        return done

    app.store.job_insert_like = spy  # type: ignore[method-assign]
    return calls


def _events(app: App, job_id: int) -> list[tuple[str, object]]:
    return [(e.type, e.data) for e in app.store.events_list(entity="job", entity_id=str(job_id))]


LEAN = [
    SubmitRequest(function="m:f", payload={"args": [1], "k": "é\u2028", "n": [1.5, None, True]}),
    SubmitRequest(command=["echo", "hi"], priority=-4),  # no payload
    SubmitRequest(command=("echo", "hi"), payload=[1, 2]),
    SubmitRequest(queue="other", function="m:f", payload="text"),
    SubmitRequest(definition="d", payload={"n": 1}, priority=7),
]


@pytest.mark.parametrize("req", LEAN)
def test_a_submission_like_an_earlier_one_stores_what_the_general_path_does(
    app: App, req: SubmitRequest
) -> None:
    app.catalog.put_queue("other")
    app.catalog.register_definition("d", {"command": ["echo", "{x}"], "parameters": {"x": "1"}, "vcpus": 0.5})
    calls = _lean_calls(app)
    first = app.jobs.submit(req)  # validated in full: its template is kept
    second = app.jobs.submit(req)
    assert calls == [second.job.id]
    assert second.existing is False and second.job.id > first.job.id
    assert app.jobs.get(second.job.id) == second.job  # the answer is what reading back gives
    assert _comparable(second.job) == _comparable(first.job)
    assert _events(app, second.job.id) == _events(app, first.job.id) != []
    assert second.job.state is JobState.RUNNABLE and second.job.created_at >= first.job.created_at


def _outcome(jobs: JobService, req: SubmitRequest) -> tuple[object, ...]:
    try:
        done = jobs.submit(req)
    except errors.ValidationError as exc:
        return ("refused", exc.field, exc.reason, exc.allowed)
    job = done.job
    return ("stored", _comparable(job)["spec"], job.priority, job.payload, job.payload_ref is not None)


@pytest.mark.parametrize(
    ("earlier", "req"),
    [
        # what would share a key with an earlier submission if the key compared values only
        (SubmitRequest(function="m:f", priority=1), SubmitRequest(function="m:f", priority=True)),
        (SubmitRequest(command=["a", "b"]), SubmitRequest(command="ab")),
        # ... and so would reuse the earlier one's validated spec (``_build``'s cache)
        (
            SubmitRequest(function="m:f", timeout_seconds=1),
            SubmitRequest(function="m:f", timeout_seconds=True),
        ),
        (SubmitRequest(function="m:f", vcpus=1), SubmitRequest(function="m:f", vcpus=True)),
        (SubmitRequest(function="m:f", memory_mb=1), SubmitRequest(function="m:f", memory_mb=True)),
        (SubmitRequest(function="m:f", vcpus=1), SubmitRequest(function="m:f", vcpus=[1])),  # type: ignore[arg-type]
        (SubmitRequest(command=["1"]), SubmitRequest(command=[1])),  # type: ignore[list-item]
        # payloads: refused, too big for the row (a blob), over the limit
        (
            SubmitRequest(function="m:f", payload=1),
            SubmitRequest(function="m:f", payload={"x": float("nan")}),
        ),
        (SubmitRequest(function="m:f", payload=1), SubmitRequest(function="m:f", payload={1, 2})),
        (SubmitRequest(function="m:f", payload=1), SubmitRequest(function="m:f", payload="x" * 300)),
        (SubmitRequest(function="m:f", payload=1), SubmitRequest(function="m:f", payload="x" * 3000)),
        (SubmitRequest(function="m:f", payload=1), SubmitRequest(function="m:f", payload=None)),
    ],
)
def test_a_submission_like_an_earlier_one_is_validated_as_a_first_one(
    app: App, earlier: SubmitRequest, req: SubmitRequest
) -> None:
    limits = Limits(max_payload_bytes=1000, inline_payload_bytes=100)
    warm = JobService(app.store, app.clock, app.blobs, limits)
    warm.submit(earlier)
    cold = JobService(app.store, app.clock, app.blobs, limits)
    assert _outcome(warm, req) == _outcome(cold, req)


def test_a_revised_definition_ends_the_lean_path_of_the_old_one(app: App) -> None:
    clock = FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))
    jobs = JobService(app.store, clock, app.blobs)
    app.catalog.register_definition("d", {"command": ["echo", "1"]})
    req = SubmitRequest(definition="d", payload=1)
    jobs.submit(req)
    calls = _lean_calls(app)
    assert jobs.submit(req).job.definition_revision == 1
    app.catalog.register_definition("d", {"command": ["echo", "2"]})
    clock.advance(jobs.cache.ttl * 1.01)  # the revision is re-read, as by the general path
    job = jobs.submit(req).job
    assert (job.definition_revision, job.spec.command) == (2, ("echo", "2"))
    assert len(calls) == 1  # the revised definition took the general path
    job = jobs.submit(req).job
    assert (job.definition_revision, job.spec.command, len(calls)) == (2, ("echo", "2"), 2)
    app.store.definition_deactivate("d", clock.now())
    clock.advance(jobs.cache.ttl * 1.01)
    with pytest.raises(errors.ValidationError) as info:
        jobs.submit(req)
    assert info.value.field == "definition" and len(calls) == 2


def test_a_job_bigger_than_every_environment_names_the_limit_it_exceeds(app: App) -> None:
    """An environment limited in memory only (no vCPU limit) used to fail formatting its
    vCPUs: a 500 over HTTP."""
    app.catalog.put_environment("mem", max_vcpus=None, max_memory_mb=100)
    app.catalog.put_environment("cpu", max_vcpus=2, max_memory_mb=None)
    app.catalog.put_queue("m", environments=["mem"])
    app.catalog.put_queue("c", environments=["cpu"])
    with pytest.raises(errors.ValidationError) as info:
        app.jobs.submit(SubmitRequest(queue="m", command=["true"], memory_mb=200))
    assert (info.value.field, info.value.allowed) == ("memory_mb", "mem: any vCPUs / 100 MB")
    with pytest.raises(errors.ValidationError) as info:
        app.jobs.submit(SubmitRequest(queue="c", command=["true"], vcpus=4))
    assert (info.value.field, info.value.allowed) == ("vcpus", "cpu: 2 vCPUs / any MB")
    assert app.store.queue_counts() == {}


@pytest.mark.parametrize(
    ("req", "field"),
    [
        (SubmitRequest(command=["echo", "\udcff"]), "command[1]"),  # an argument that was not UTF-8
        (SubmitRequest(command=["echo", "a\x00b"]), "command[1]"),
        (SubmitRequest(function="m:f", parameters={"x": "a\x00"}), "parameters.x"),
        (SubmitRequest(function="m:f", environment={"X": "\ud800"}), "environment.X"),
        (SubmitRequest(function="m:f", payload={"a": ["\ud800"]}), "payload.a[0]"),
        (SubmitRequest(function="m:f", tags=["ok", "t\udc80"]), "tags[1]"),
        (SubmitRequest(function="m:f", name="n\x00"), "name"),
        (SubmitRequest(function="m:f", unique_key="k\ud800"), "unique_key"),
        (SubmitRequest(function="m:f", idempotency_key="\x00"), "idempotency_key"),
    ],
)
def test_text_that_is_not_unicode_is_refused_on_every_backend(
    app: App, req: SubmitRequest, field: str
) -> None:
    """A lone surrogate used to be stored (escaped in JSON) and break every later read; a NUL
    was stored by SQLite and refused by PostgreSQL with a driver error."""
    for _ in range(2):  # the second time a like submission would take the lean path
        with pytest.raises(errors.ValidationError) as info:
            app.jobs.submit(req)
        assert info.value.field == field
    assert app.store.queue_counts().get("default", {}) == {}


@pytest.mark.parametrize(
    "when",
    [
        datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-14))),
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))),
        datetime(9000, 1, 1, tzinfo=UTC),
        datetime(1899, 12, 31, tzinfo=UTC),
    ],
)
def test_a_time_out_of_range_is_refused_before_anything_is_written(app: App, when: datetime) -> None:
    with pytest.raises(errors.ValidationError) as info:
        app.jobs.submit(SubmitRequest(function="m:f", run_at=when))
    assert (info.value.field, info.value.reason) == ("run_at", f"{when.isoformat()} is out of range")
    with pytest.raises(errors.ValidationError) as info:
        app.jobs.submit_many([SubmitRequest(function="m:f"), SubmitRequest(function="m:f", run_at=when)])
    assert info.value.field == "jobs[1].run_at"
    assert app.store.queue_counts().get("default", {}) == {}
    early = datetime(1900, 1, 1, tzinfo=UTC)  # the range's first instant: due at once
    assert app.jobs.submit(SubmitRequest(function="m:f", run_at=early)).job.state is JobState.RUNNABLE


@pytest.mark.parametrize(
    ("req", "field", "reason"),
    [
        (
            SubmitRequest(function="m:f", run_at=datetime(2030, 1, 1, tzinfo=UTC), delay_seconds=5),
            "delay_seconds",
            "is given with run_at",
        ),
        (
            SubmitRequest(function="m:f", definition_revision=2),
            "definition_revision",
            "is given without a definition",
        ),
        (SubmitRequest(command=["", "x"]), "command", "names no program (its first item is empty)"),
    ],
)
def test_what_could_only_be_a_mistake_is_refused_not_ignored(
    app: App, req: SubmitRequest, field: str, reason: str
) -> None:
    """These were accepted: the delay silently won over run_at, the revision was dropped, and
    the empty program failed at the worker ("cannot start ''")."""
    with pytest.raises(errors.ValidationError) as info:
        app.jobs.submit(req)
    assert (info.value.field, info.value.reason) == (field, reason)
