"""A running job submits follow-up jobs, only to the queues its definition allows."""

from __future__ import annotations

import sys
from pathlib import Path

from conveyor.model import JobState
from conveyor.store import open_store
from tests.acceptance.helpers import ok

SPAWN = (
    "import sys, conveyor; conveyor.Client.from_env().submit(queue=sys.argv[1], command=['echo', 'child'])"
)


def test_command_and_function_jobs_submit_follow_ups_only_to_allowed_queues(tmp_path: Path) -> None:
    # the default ./conveyor.db: a child process runs in its own folder and must still find it
    for queue in ("reports", "other"):
        ok("queues", "create", queue, db=None, cwd=tmp_path)
    ok(
        "definitions",
        "register",
        "parent-cmd",
        "--follow-up-queue",
        "reports",
        "--",
        sys.executable,
        "-c",
        SPAWN,
        "{q}",
        db=None,
        cwd=tmp_path,
    )
    ok(
        "definitions", "register", "parent-fn", "--follow-up-queue", "reports",
        "--function", "tests.integration.jobs_fixtures:spawn_follow_up", db=None, cwd=tmp_path,
    )  # fmt: skip
    cmd_ok = int(ok("submit", "--definition", "parent-cmd", "--param", "q=reports", db=None, cwd=tmp_path))
    cmd_no = int(ok("submit", "--definition", "parent-cmd", "--param", "q=other", db=None, cwd=tmp_path))
    fn_ok = int(ok("submit", "--definition", "parent-fn", "--param", "queue=reports", db=None, cwd=tmp_path))
    fn_no = int(ok("submit", "--definition", "parent-fn", "--param", "queue=other", db=None, cwd=tmp_path))
    ok("worker", "--burst", db=None, cwd=tmp_path)
    store = open_store(f"sqlite:///{tmp_path / 'conveyor.db'}")
    try:
        state = {j.id: j for j in store.job_list(limit=100)}
        assert state[cmd_ok].state is JobState.SUCCEEDED and state[fn_ok].state is JobState.SUCCEEDED
        assert state[cmd_no].state is JobState.FAILED and state[fn_no].state is JobState.FAILED
        assert "may not submit follow-up jobs to queue 'other'" in state[fn_no].status_reason
        children = sorted((j.parent_id, j.queue, j.state) for j in state.values() if j.parent_id is not None)
        assert children == [(cmd_ok, "reports", JobState.SUCCEEDED), (fn_ok, "reports", JobState.SUCCEEDED)]
        child = next(j.id for j in state.values() if j.parent_id == cmd_ok)
    finally:
        store.close()
    shown = ok("jobs", "show", str(child), db=None, cwd=tmp_path)  # it was in --json only
    assert f"job {cmd_ok} (a follow-up job)" in shown
