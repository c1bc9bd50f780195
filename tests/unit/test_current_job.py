"""``conveyor.current_job()`` outside a worker: None, or what the CONVEYOR_* variables say."""

from __future__ import annotations

import pytest

import conveyor
from conveyor.worker.context import JobContext, current

VARIABLES = (
    "CONVEYOR_JOB_ID",
    "CONVEYOR_ATTEMPT",
    "CONVEYOR_QUEUE",
    "CONVEYOR_ARRAY_INDEX",
    "CONVEYOR_ARRAY_PARENT_ID",
    "CONVEYOR_WORKER_ID",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_outside_a_job_it_is_none() -> None:
    assert conveyor.current_job() is None


def test_in_a_command_job_it_reads_the_variables_the_worker_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in zip(VARIABLES, ("42", "3", "reports", "7", "40", "host-1-abc"), strict=True):
        monkeypatch.setenv(name, value)
    assert conveyor.current_job() == JobContext(42, 3, "reports", 7, "host-1-abc", array_parent_id=40)


def test_a_job_outside_an_array_has_no_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_JOB_ID", "5")
    monkeypatch.setenv("CONVEYOR_ATTEMPT", "1")
    job = conveyor.current_job()
    assert job is not None
    assert (job.job_id, job.attempt, job.array_index, job.array_parent_id) == (5, 1, None, None)


@pytest.mark.parametrize("value", ["", "abc", "-1", "\uff11\uff12", "4.0"])
def test_a_job_id_that_is_not_a_plain_number_means_no_job(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("CONVEYOR_JOB_ID", value)
    assert conveyor.current_job() is None


def test_the_worker_record_of_an_inline_attempt_comes_before_the_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONVEYOR_JOB_ID", "42")
    inline = JobContext(9, 2, "default", None, "worker-x")
    token = current.set(inline)
    try:
        assert conveyor.current_job() is inline
    finally:
        current.reset(token)
    assert conveyor.current_job() is not None and conveyor.current_job().job_id == 42  # type: ignore[union-attr]
