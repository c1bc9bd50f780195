"""``conveyor run-job ID``: the container-per-job entrypoint, through the real command."""

from __future__ import annotations

import json
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


def test_run_job_gives_up_a_sync_function_at_its_timeout(db_url: str, tmp_path: Path) -> None:
    """A sync function cannot be interrupted: run-job waited for it forever, the job RUNNING."""
    fn = "tests.integration.jobs_fixtures:sync_sleep"
    job_id = int(
        ok("submit", "--function", fn, "--param", "seconds=300", "--timeout", "1", db=db_url, cwd=tmp_path)
    )
    done = conveyor("run-job", str(job_id), db=db_url, cwd=tmp_path, timeout=30)
    assert done.returncode == 1, done.stderr
    assert _state(db_url, job_id) == (JobState.FAILED, "timed out after 1 s")


def test_run_job_reports_a_system_exit_of_the_function(db_url: str, tmp_path: Path) -> None:
    fn = "tests.integration.jobs_fixtures:raise_base"
    job_id = int(ok("submit", "--function", fn, "--param", "kind=SystemExit", db=db_url, cwd=tmp_path))
    done = conveyor("run-job", str(job_id), db=db_url, cwd=tmp_path, timeout=30)
    assert done.returncode == 1, done.stderr
    assert _state(db_url, job_id) == (JobState.FAILED, "SystemExit: 3")


def test_run_job_refuses_a_job_of_a_disabled_queue(db_url: str, tmp_path: Path) -> None:
    ok("queues", "create", "paused", db=db_url, cwd=tmp_path)
    ok("queues", "disable", "paused", db=db_url, cwd=tmp_path)
    job_id = int(ok("submit", "--queue", "paused", "--", "true", db=db_url, cwd=tmp_path))
    done = conveyor("run-job", str(job_id), db=db_url, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"conveyor: job {job_id} is in queue 'paused', which is disabled: its jobs wait"
        " (conveyor queues enable paused)"
    )
    assert _state(db_url, job_id)[0] is JobState.RUNNABLE


def test_show_json_of_a_result_nested_hundreds_deep_and_logs_json(db_url: str, tmp_path: Path) -> None:
    """`jobs show --json` failed with RecursionError on a result 500 deep (the store takes
    up to ~990); `jobs logs --json` printed the raw bytes."""
    fn = "tests.integration.jobs_fixtures:deep_result"
    job_id = int(ok("submit", "--function", fn, "--param", "depth=900", db=db_url, cwd=tmp_path))
    assert conveyor("run-job", str(job_id), db=db_url, cwd=tmp_path).returncode == 0
    shown = json.loads(ok("jobs", "show", str(job_id), "--json", db=db_url, cwd=tmp_path))
    depth, v = 0, shown["job"]["result"]
    while v:
        v, depth = v[0], depth + 1
    assert depth == 900
    cmd = int(ok("submit", "--", "sh", "-c", r"printf 'caf\303\251 \377\n'", db=db_url, cwd=tmp_path))
    assert conveyor("run-job", str(cmd), db=db_url, cwd=tmp_path).returncode == 0
    logs = json.loads(ok("jobs", "logs", str(cmd), "--json", db=db_url, cwd=tmp_path))
    assert logs == {"job_id": cmd, "attempts": [{"attempt": 1, "bytes": 8, "text": "café \\xff\n"}]}
