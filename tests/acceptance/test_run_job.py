"""``conveyor run-job ID``: the container-per-job entrypoint, through the real command."""

from __future__ import annotations

from pathlib import Path

from conveyor.model import JobState
from conveyor.store import open_store
from tests.acceptance.helpers import conveyor, ok


def _state(db: str, job_id: int) -> tuple[JobState, str]:
    store = open_store(db)
    try:
        job = store.job_get(job_id)
        assert job is not None
        return job.state, job.status_reason
    finally:
        store.close()


def test_run_job_runs_the_named_job_and_exits_with_its_exit_code(db_url: str, tmp_path: Path) -> None:
    job_id = int(ok("submit", "--", "sh", "-c", "echo job $CONVEYOR_JOB_ID; exit 7", db=db_url, cwd=tmp_path))
    done = conveyor("run-job", str(job_id), db=db_url, cwd=tmp_path)
    assert done.returncode == 7, done.stderr
    assert _state(db_url, job_id) == (JobState.FAILED, "exit code 7")
    assert ok("jobs", "logs", str(job_id), db=db_url, cwd=tmp_path) == f"job {job_id}\n"


def test_run_job_of_a_succeeding_job_exits_zero(db_url: str, tmp_path: Path) -> None:
    job_id = int(ok("submit", "--", "true", db=db_url, cwd=tmp_path))
    assert conveyor("run-job", str(job_id), db=db_url, cwd=tmp_path).returncode == 0
    assert _state(db_url, job_id)[0] is JobState.SUCCEEDED


def test_run_job_refuses_a_finished_or_unknown_job_with_exit_2(db_url: str, tmp_path: Path) -> None:
    job_id = int(ok("submit", "--", "true", db=db_url, cwd=tmp_path))
    assert conveyor("run-job", str(job_id), db=db_url, cwd=tmp_path).returncode == 0
    again = conveyor("run-job", str(job_id), db=db_url, cwd=tmp_path)
    assert again.returncode == 2
    assert (
        again.stderr.strip()
        == f"conveyor: job {job_id} is SUCCEEDED; only a RUNNABLE or SUBMITTED job can be run"
    )
    unknown = conveyor("run-job", "999999", db=db_url, cwd=tmp_path)
    assert unknown.returncode == 2 and "999999" in unknown.stderr
