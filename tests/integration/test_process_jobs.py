"""Process jobs on a real worker: real child processes, their environment, logs and limits."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from conveyor.app import App
from conveyor.engine.jobs import SubmitRequest
from conveyor.model import DefinitionSpec, Job, JobState

from .helpers import (
    FAST_EXECUTOR,
    WorkerThread,
    config,
    log_text,
    process_gone,
    python,
    run_burst,
    wait_for,
    wait_for_state,
)

# no braces: commands are {param} templates
PRINT_ENV = (
    "import json, os; print(json.dumps(dict("
    "(k, v) for k, v in os.environ.items() if k.startswith(('CONVEYOR_', 'GREETING')))))"
)


def submit(app: App, argv: list[str], **kw: object) -> int:
    return app.jobs.submit(SubmitRequest(command=argv, **kw)).job.id  # type: ignore[arg-type]


def last_json_line(text: str) -> dict[str, str]:
    line = [ln for ln in text.splitlines() if ln.startswith("{")][-1]
    loaded: dict[str, str] = json.loads(line)
    return loaded


def kill_group_quietly(pid_file: Path) -> None:
    """Clean up after a failed test: the grandchild must not outlive it."""
    if pid_file.exists() and pid_file.read_text().strip():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_parameters_are_substituted_into_the_argv(app: App) -> None:
    job_id = submit(
        app,
        python("import sys; print('args:', sys.argv[1:])", "--name={who}", "{count}"),
        parameters={"who": "world", "count": 3},
    )
    run_burst(app)
    assert app.jobs.get(job_id).state is JobState.SUCCEEDED
    assert "args: ['--name=world', '3']" in log_text(app, job_id)


def test_child_environment_has_the_job_id_the_attempt_and_the_definition_environment(app: App) -> None:
    app.catalog.register_definition(
        "env-printer", {"command": python(PRINT_ENV), "environment": {"GREETING": "hello"}}
    )
    job_id = app.jobs.submit(SubmitRequest(definition="env-printer")).job.id
    run_burst(app)
    job = app.jobs.get(job_id)
    assert job.state is JobState.SUCCEEDED, job.status_reason
    env = last_json_line(log_text(app, job_id))
    assert env["CONVEYOR_JOB_ID"] == str(job_id)
    assert env["CONVEYOR_ATTEMPT"] == "1"
    assert env["CONVEYOR_QUEUE"] == "default"
    assert env["CONVEYOR_STORE_ID"] == app.store.store_id() and len(env["CONVEYOR_STORE_ID"]) == 32
    assert env["GREETING"] == "hello"
    assert "CONVEYOR_ARRAY_INDEX" not in env


def test_array_children_each_get_their_array_index(app: App) -> None:
    parent_id = submit(app, python(PRINT_ENV), array_size=3)
    run_burst(app, concurrency=3)
    parent = app.jobs.get(parent_id)
    assert parent.state is JobState.SUCCEEDED, parent.status_reason
    children = app.store.job_list(array_parent_id=parent_id)
    assert len(children) == 3
    seen = {}
    for child in children:
        env = last_json_line(log_text(app, child.id))
        assert env["CONVEYOR_JOB_ID"] == str(child.id)
        assert env["CONVEYOR_ARRAY_PARENT_ID"] == str(parent_id)
        seen[env["CONVEYOR_ARRAY_INDEX"]] = child.array_index
    assert seen == {"0": 0, "1": 1, "2": 2}


def test_a_python_command_knows_its_job_from_current_job(app: App) -> None:
    code = (
        "import json, conveyor; c = conveyor.current_job(); "
        "print(json.dumps([c.job_id, c.attempt, c.queue, c.array_index, c.array_parent_id, c.worker_id]))"
    )
    parent_id = submit(app, python(code), array_size=2)
    single_id = submit(app, python(code))
    run_burst(app, concurrency=2)
    children = sorted(app.store.job_list(array_parent_id=parent_id), key=lambda j: j.array_index or 0)
    for job_id in [c.id for c in children] + [single_id]:
        job = app.jobs.get(job_id)
        assert job.state is JobState.SUCCEEDED, job.status_reason
        [attempt] = app.jobs.attempts(job_id)
        line = [ln for ln in log_text(app, job_id).splitlines() if ln.startswith("[")][-1]
        expected_parent = parent_id if job.array_index is not None else None
        assert json.loads(line) == [job_id, 1, "default", job.array_index, expected_parent, attempt.worker_id]


def test_stdout_and_stderr_are_both_captured_in_the_log(app: App) -> None:
    job_id = submit(
        app, python("import sys; print('to stdout', flush=True); print('to stderr', file=sys.stderr)")
    )
    run_burst(app)
    log = log_text(app, job_id, attempt=1)
    assert "to stdout" in log and "to stderr" in log


def test_output_beyond_the_log_cap_is_dropped_with_a_note(app: App) -> None:
    job_id = submit(app, python("print('x' * 5000)"))
    run_burst(app, executor=replace(FAST_EXECUTOR, log_cap_bytes=100))
    assert app.jobs.get(job_id).state is JobState.SUCCEEDED
    log = log_text(app, job_id)
    assert log.startswith("x" * 100)
    assert "x" * 101 not in log
    assert "[conveyor: 4,901 more bytes dropped; log cap is 100 bytes]" in log


def test_each_attempt_runs_in_its_own_working_directory_which_is_removed_after(app: App) -> None:
    code = (
        "import os; open('scratch', 'w').write('x'); print('cwd=' + os.getcwd());"
        " raise SystemExit(1 if os.environ['CONVEYOR_ATTEMPT'] == '1' else 0)"
    )
    job_id = submit(app, python(code), retry={"attempts": 2, "delay_seconds": 0})
    run_burst(app)
    assert app.jobs.get(job_id).state is JobState.SUCCEEDED
    dirs = [log_text(app, job_id, attempt=n).split("cwd=")[1].strip() for n in (1, 2)]
    assert dirs[0] != dirs[1]
    for d in dirs:
        assert f"conveyor-job-{job_id}-" in d
        assert not os.path.exists(d), f"{d} was left behind"


def test_nonzero_exit_fails_the_job_with_the_exit_code(app: App) -> None:
    job_id = submit(app, python("raise SystemExit(7)"))
    stats = run_burst(app)
    job = app.jobs.get(job_id)
    assert job.state is JobState.FAILED
    assert job.status_reason == "exit code 7"
    [attempt] = app.jobs.attempts(job_id)
    assert attempt.exit_code == 7 and attempt.reason == "exit code 7"
    assert stats.failed == 1


@pytest.mark.parametrize(("code", "attempts_used"), [(3, 1), (4, 3)])
def test_evaluate_on_exit_rule_exit_stops_retrying_on_its_exit_code(
    app: App, code: int, attempts_used: int
) -> None:
    retry = {
        "attempts": 3,
        "delay_seconds": 0,
        "evaluate_on_exit": [{"action": "EXIT", "on_exit_code": "3"}],
    }
    job_id = submit(app, python(f"raise SystemExit({code})"), retry=retry)
    run_burst(app)
    job = app.jobs.get(job_id)
    assert job.state is JobState.FAILED
    assert len(app.jobs.attempts(job_id)) == attempts_used
    assert job.status_reason.startswith(f"exit code {code} (")
    if code == 3:
        assert "an evaluate_on_exit rule says EXIT" in job.status_reason
    else:
        assert "no attempts left (3 of 3 used)" in job.status_reason


def test_timeout_kills_the_whole_process_group(app: App, tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    job_id = submit(app, ["sh", "-c", f"sleep 100 & echo $! > {pid_file}; sleep 100"], timeout_seconds=0.5)
    try:
        stats = run_burst(app)
        job = app.jobs.get(job_id)
        assert job.state is JobState.FAILED
        assert job.status_reason == "timed out after 0.5 s"
        assert stats.failed == 1
        grandchild = int(pid_file.read_text())
        wait_for(f"grandchild {grandchild} to be gone", lambda: process_gone(grandchild), 5)
    finally:
        kill_group_quietly(pid_file)


def test_memory_limit_fails_a_child_that_allocates_more(app: App) -> None:
    job_id = submit(app, python("x = bytearray(512 * 1024 * 1024); print('allocated')"), memory_mb=200)
    run_burst(app)
    job = app.jobs.get(job_id)
    assert job.state is JobState.FAILED
    assert job.status_reason == "exit code 1"
    log = log_text(app, job_id)
    assert "MemoryError" in log and "allocated" not in log
    assert log.endswith(
        "[conveyor: this attempt ran with a memory limit of 200 MB of address space (memory_mb);"
        " a failed allocation may come from it]\n"
    )


def test_memory_limit_leaves_room_for_a_child_within_it(app: App) -> None:
    job_id = submit(app, python("x = bytearray(16 * 1024 * 1024); print('allocated')"), memory_mb=200)
    run_burst(app)
    assert app.jobs.get(job_id).state is JobState.SUCCEEDED


def test_memory_limit_is_in_place_before_the_command_runs_and_the_command_keeps_the_pid(app: App) -> None:
    """The limit is not set from outside once the child runs (a busy worker set it too late:
    a child that allocated at once had its memory first): the child reads it at its first
    line. The command replaces the launching shell: the attempt's pid is the command's."""
    job_id = submit(
        app,
        python(
            "import os, resource; print('limit', resource.getrlimit(resource.RLIMIT_AS)[0], 'pid', os.getpid())"
        ),
        memory_mb=300,
    )
    run_burst(app)
    job = app.jobs.get(job_id)
    assert job.state is JobState.SUCCEEDED, job.status_reason
    words = log_text(app, job_id).split()
    assert words[:2] == ["limit", str(300 * 1024 * 1024)]
    [attempt] = app.jobs.attempts(job_id)
    assert words[3] == str(attempt.pid)


@pytest.mark.parametrize(
    ("program", "reason"),
    [
        ("/nonexistent/conveyor-test-binary", "No such file or directory"),
        ("conveyor-no-such-program-on-path", "No such file or directory"),
        ("{tmp}/not-executable", "Permission denied"),
        ("{tmp}", "Permission denied"),
    ],
)
def test_a_memory_limited_command_that_cannot_start_fails_as_an_unlimited_one_does(
    app: App, tmp_path: Path, program: str, reason: str
) -> None:
    (tmp_path / "not-executable").write_text("#!/bin/sh\ntrue\n")
    (tmp_path / "not-executable").chmod(0o644)
    program = program.replace("{tmp}", str(tmp_path))
    limited = submit(app, [program, "x"], memory_mb=100)
    plain = submit(app, [program, "x"])
    run_burst(app)
    for job_id in (limited, plain):
        job = app.jobs.get(job_id)
        assert job.state is JobState.FAILED
        assert job.status_reason == f"cannot start {program!r}: {reason}"
        assert app.jobs.attempts(job_id)[0].exit_code == 127


def test_terminate_kills_a_running_job_process_group_and_fails_it(app: App, tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    job_id = submit(app, ["sh", "-c", f"sleep 100 & echo $! > {pid_file}; sleep 100"])
    try:
        with WorkerThread(app, config(burst=False)) as wt:
            wait_for_state(app, job_id, JobState.RUNNING)
            wait_for("the grandchild's pid", lambda: pid_file.exists() and bool(pid_file.read_text()))
            _, changed = app.jobs.terminate(job_id)
            assert changed
            job = wait_for_state(app, job_id, JobState.FAILED, timeout=10)
            assert wt.error is None
        assert job.status_reason.startswith("terminated"), job.status_reason
        grandchild = int(pid_file.read_text())
        wait_for(f"grandchild {grandchild} to be gone", lambda: process_gone(grandchild), 5)
        [attempt] = app.jobs.attempts(job_id)
        assert attempt.reason.startswith("terminated")
    finally:
        kill_group_quietly(pid_file)


def test_timeout_escalates_to_sigkill_when_the_group_ignores_sigterm(app: App, tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    script = f"trap '' TERM; sleep 100 & echo $! > {pid_file}; sleep 100"
    job_id = submit(app, ["sh", "-c", script], timeout_seconds=0.3)
    try:
        run_burst(app)
        job = app.jobs.get(job_id)
        assert job.state is JobState.FAILED
        assert job.status_reason == "timed out after 0.3 s"
        [attempt] = app.jobs.attempts(job_id)
        assert attempt.exit_code == 128 + signal.SIGKILL
        grandchild = int(pid_file.read_text())
        wait_for(f"grandchild {grandchild} to be gone", lambda: process_gone(grandchild), 5)
    finally:
        kill_group_quietly(pid_file)


def test_command_that_cannot_start_fails_with_the_reason(app: App) -> None:
    job_id = submit(app, ["/nonexistent/conveyor-test-binary", "x"])
    run_burst(app)
    job = app.jobs.get(job_id)
    assert job.state is JobState.FAILED
    assert job.status_reason.startswith("cannot start '/nonexistent/conveyor-test-binary'")
    [attempt] = app.jobs.attempts(job_id)
    assert attempt.exit_code == 127


def test_a_child_does_not_inherit_the_workers_own_conveyor_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    from conveyor.worker.executors import ExecutorConfig, job_environment

    monkeypatch.setenv("CONVEYOR_TOKEN", "cvy_the_workers_own")
    monkeypatch.setenv("CONVEYOR_URL", "http://elsewhere")
    monkeypatch.setenv("CONVEYOR_ARRAY_INDEX", "3")
    monkeypatch.setenv("KEEP_ME", "yes")
    job = _plain_job(DefinitionSpec(command=("true",), environment={"FROM_DEFINITION": "1"}))
    env = job_environment(job, ExecutorConfig(database_url="sqlite:///x.db"))
    assert "CONVEYOR_TOKEN" not in env and "CONVEYOR_URL" not in env and "CONVEYOR_ARRAY_INDEX" not in env
    assert env["KEEP_ME"] == "yes" and env["FROM_DEFINITION"] == "1"
    assert env["CONVEYOR_JOB_ID"] == str(job.id) and env["CONVEYOR_DATABASE_URL"] == "sqlite:///x.db"


def _plain_job(spec: DefinitionSpec) -> Job:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    return Job(
        id=5, queue="default", name=None, definition=None, definition_revision=None, spec=spec,
        state=JobState.STARTING, status_reason="", priority=0, created_at=now, updated_at=now, run_at=None,
        started_at=now, finished_at=None, attempt=1, attempts_counted=1, payload=None, payload_ref=None,
        result=None, tags=(), unique_key=None, idempotency_key=None, parent_id=None, array_size=None,
        array_index=None, array_parent_id=None, depends_on=(), worker_id="w", lease_expires_at=None,
        compute_environment="default",
    )  # fmt: skip


def test_what_is_left_of_the_group_when_the_job_succeeds_is_killed(app: App, tmp_path: Path) -> None:
    """A background child that let go of the output outlived a job that succeeded (one that
    held it was killed): the job's processes go with its leader, as a container's do."""
    pid_file = tmp_path / "background.pid"
    job_id = submit(app, ["sh", "-c", f"sleep 300 >/dev/null 2>&1 & echo $! > {pid_file}; echo done"])
    try:
        run_burst(app)
        assert app.jobs.get(job_id).state is JobState.SUCCEEDED
        child = int(pid_file.read_text())
        wait_for(f"background child {child} to be gone", lambda: process_gone(child), 5)
    finally:
        kill_group_quietly(pid_file)


def test_a_stop_kills_group_members_that_ignore_sigterm_after_the_leader_exits(
    app: App, tmp_path: Path
) -> None:
    """The leader ended on SIGTERM; a member that ignored it ran on: SIGKILL was never sent."""
    pid_file = tmp_path / "stubborn.pid"
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"
    script = f"{sys.executable} -c '{stubborn}' >/dev/null 2>&1 & echo $! > {pid_file}; sleep 300"
    job_id = submit(app, ["sh", "-c", script], timeout_seconds=0.5)
    try:
        run_burst(app)
        job = app.jobs.get(job_id)
        assert (job.state, job.status_reason) == (JobState.FAILED, "timed out after 0.5 s")
        member = int(pid_file.read_text())
        # the executor's grace is 0.5 s here (FAST_EXECUTOR): gone by then, not at its sleep's end
        wait_for(f"member {member} to be gone", lambda: process_gone(member), 5)
    finally:
        kill_group_quietly(pid_file)


def test_a_shutdown_requeues_a_job_only_once_its_processes_are_gone(app: App, tmp_path: Path) -> None:
    """A job that ignored SIGTERM was requeued at the end of the grace period while it still
    ran: the next worker started a second copy beside it."""
    pid_file = tmp_path / "leader.pid"
    code = (
        "import os, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        f" open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(300)"
    )
    job_id = submit(app, python(code))
    with WorkerThread(app, config(burst=False, grace_seconds=0.3)) as wt:
        wait_for("the job to start", lambda: pid_file.exists() and pid_file.read_text() != "", 15)
        leader = int(pid_file.read_text())
        wt.worker.request_stop()
        wt.join(15.0)
    assert process_gone(leader), "requeued while its process still ran"
    job = app.jobs.get(job_id)
    assert job.state is JobState.RUNNABLE, job.status_reason
    assert job.attempts_counted == 0


def test_a_missing_working_directory_is_named_as_such(app: App, tmp_path: Path) -> None:
    """It was reported as a missing program: "cannot start 'echo': No such file or directory"."""
    missing = tmp_path / "not-there"
    app.catalog.register_definition(
        "in-missing-dir", {"command": ["echo", "hi"], "working_dir": str(missing)}
    )
    job_id = app.jobs.submit(SubmitRequest(definition="in-missing-dir")).job.id
    run_burst(app)
    job = app.jobs.get(job_id)
    assert (job.state, job.status_reason) == (
        JobState.FAILED,
        f"working directory {str(missing)!r} does not exist",
    )
