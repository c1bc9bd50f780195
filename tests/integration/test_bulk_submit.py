"""Bulk submissions larger than one chunk: all or nothing, in submission order."""

from __future__ import annotations

import pytest

from conveyor import errors
from conveyor.app import App
from conveyor.engine.jobs import BULK_CHUNK, SubmitRequest
from conveyor.model import JobState

N = 2 * BULK_CHUNK + 100  # three chunks


def test_bulk_submission_of_several_chunks_inserts_every_job_in_order(app: App) -> None:
    got = app.jobs.submit_many_brief(
        [SubmitRequest(function="m:f", payload={"n": i}, priority=i % 3) for i in range(N)]
    )
    assert [r.state for r in got] == [JobState.RUNNABLE] * N
    ids = [r.id for r in got]
    assert ids == sorted(ids) and len(set(ids)) == N
    jobs = [app.jobs.get(i) for i in ids[:: BULK_CHUNK // 2]]
    assert [(j.payload, j.priority) for j in jobs] == [
        ({"n": i}, i % 3) for i in range(0, N, BULK_CHUNK // 2)
    ]


def test_invalid_submission_in_a_later_chunk_inserts_nothing(app: App) -> None:
    before = app.jobs.submit(SubmitRequest(function="m:f")).job.id
    reqs = [SubmitRequest(function="m:f", payload={"n": i}) for i in range(N)]
    reqs[N - 5] = SubmitRequest(function="m:f", priority=10**9)
    with pytest.raises(errors.ValidationError, match=rf"jobs\[{N - 5}\]\.priority"):
        app.jobs.submit_many_brief(reqs)
    after = app.jobs.submit(SubmitRequest(function="m:f")).job.id
    assert app.store.job_list(limit=N + 10) and all(
        app.store.job_get(i) is None for i in range(before + 1, after)
    )
    counts = app.store.queue_counts().get("default", {})
    assert sum(counts.values()) == 2
