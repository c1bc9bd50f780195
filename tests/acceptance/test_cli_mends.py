"""Small CLI answers a walk through the README found wanting: logs of what has none, the
history's details, an empty environment list, unknown options, a queue that still has jobs."""

from __future__ import annotations

import json
from pathlib import Path

from .helpers import conveyor, ok, ok_json


def _fails(*args: str, db: str | None, cwd: Path) -> str:
    done = conveyor(*args, db=db, cwd=cwd)
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert done.stdout == "" and done.stderr.count("\n") == 1, done.stderr
    return done.stderr


def test_logs_of_an_attempt_the_job_never_had_or_of_an_array_job_are_refused(
    db_url: str, tmp_path: Path
) -> None:
    job = ok_json("submit", "--", "sh", "-c", "echo hi; exit 3", db=db_url, cwd=tmp_path)["id"]
    assert "has not started" in _fails("jobs", "logs", str(job), "--attempt", "1", db=db_url, cwd=tmp_path)
    ok("worker", "--burst", db=db_url, cwd=tmp_path)
    assert ok("jobs", "logs", str(job), "--attempt", "1", db=db_url, cwd=tmp_path) == "hi\n"
    assert _fails("jobs", "logs", str(job), "--attempt", "2", db=db_url, cwd=tmp_path) == (
        f"conveyor: attempt: job {job} has had no attempt 2 (allowed: 1..1)\n"
    )
    assert "attempt: 0 is" in _fails("jobs", "logs", str(job), "--attempt", "0", db=db_url, cwd=tmp_path)
    array = ok_json("submit", "--array-size", "2", "--", "true", db=db_url, cwd=tmp_path)["id"]
    said = _fails("jobs", "logs", str(array), db=db_url, cwd=tmp_path)
    assert f"job {array} is an array job" in said and f"jobs list --array {array}" in said
    # the history does not say the exit code twice (it is the reason already)
    out = ok("jobs", "show", str(job), "--events", db=db_url, cwd=tmp_path)
    failed = next(line for line in out.splitlines() if "-> FAILED" in line)
    assert failed.count("exit code 3") == 1, failed


def test_an_empty_environment_list_is_refused_not_taken_for_the_default(
    sqlite_url: str, tmp_path: Path
) -> None:
    said = _fails("queues", "create", "q3", "--environments", "", db=sqlite_url, cwd=tmp_path)
    assert said == (
        # the words of HTTP and the SDK for an empty list
        "conveyor: environments: is empty (allowed: a non-empty list of strings)\n"
    )
    assert "q3" not in ok("queues", "list", db=sqlite_url, cwd=tmp_path)
    _fails("queues", "update", "default", "--environments", " , ", db=sqlite_url, cwd=tmp_path)


def test_an_unknown_option_points_at_its_own_commands_help(sqlite_url: str, tmp_path: Path) -> None:
    for args, where in (
        (("submit", "--bogus", "--", "true"), "conveyor submit"),
        (("jobs", "list", "--bogus"), "conveyor jobs list"),
        (("schedules", "list", "--bogus"), "conveyor schedules list"),
    ):
        said = _fails(*args, db=sqlite_url, cwd=tmp_path)
        assert said == f"conveyor: unrecognized arguments: --bogus (see {where} --help)\n"


def test_deleting_a_queue_with_jobs_names_some_of_them(db_url: str, tmp_path: Path) -> None:
    ok("queues", "create", "render", db=db_url, cwd=tmp_path)
    ids = [
        ok_json("submit", "--queue", "render", "--", "true", db=db_url, cwd=tmp_path)["id"] for _ in range(7)
    ]
    said = _fails("queues", "delete", "render", db=db_url, cwd=tmp_path)
    shown = ", ".join(str(i) for i in ids[:5])
    assert said == (
        f"conveyor: queue 'render' still has 7 unfinished job(s): {shown} and 2 more;"
        " stop them (conveyor jobs terminate --queue render), or let them finish\n"
    )


def test_an_environment_limit_can_be_lifted_again(sqlite_url: str, tmp_path: Path) -> None:
    ok(
        "environments",
        "create",
        "gpu",
        "--max-vcpus",
        "8",
        "--max-memory",
        "1024",
        db=sqlite_url,
        cwd=tmp_path,
    )
    ok("environments", "update", "gpu", "--max-vcpus", "unlimited", db=sqlite_url, cwd=tmp_path)
    [gpu] = [e for e in ok_json("environments", "list", db=sqlite_url, cwd=tmp_path) if e["name"] == "gpu"]
    assert (gpu["max_vcpus"], gpu["max_memory_mb"]) == (None, 1024)  # the other limit unchanged
    said = _fails("environments", "update", "gpu", "--max-memory", "lots", db=sqlite_url, cwd=tmp_path)
    assert said.startswith("conveyor: max_memory: 'lots' is not a number or 'unlimited'")


def test_submit_runs_a_command_in_the_working_directory_given(db_url: str, tmp_path: Path) -> None:
    """``./script`` runs from ``--working-dir``; without one, the job's fresh directory holds
    nothing, and the reason says so; a relative directory is refused at submission."""
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "hello.sh").write_text("#!/bin/sh\necho hello from $(pwd)\n")
    (scripts / "hello.sh").chmod(0o755)
    there = ok_json("submit", "--working-dir", str(scripts), "--", "./hello.sh", db=db_url, cwd=tmp_path)[
        "id"
    ]
    lost = ok_json("submit", "--", "./hello.sh", db=db_url, cwd=tmp_path)["id"]
    said = _fails("submit", "--working-dir", "scripts", "--", "./hello.sh", db=db_url, cwd=tmp_path)
    assert said.startswith("conveyor: working_dir: 'scripts' is a relative path (allowed: an absolute path")
    ok("worker", "--burst", db=db_url, cwd=tmp_path)
    assert ok("jobs", "logs", str(there), db=db_url, cwd=tmp_path) == f"hello from {scripts}\n"
    failed = ok_json("jobs", "show", str(lost), db=db_url, cwd=tmp_path)["job"]
    assert failed["state"] == "FAILED"
    assert failed["status_reason"].startswith("cannot start './hello.sh': No such file or directory")
    assert "a fresh empty one here: give its absolute path, or a working directory" in failed["status_reason"]
    shown = ok_json("jobs", "show", str(there), db=db_url, cwd=tmp_path)["job"]
    assert shown["spec"]["working_dir"] == str(scripts)


def test_a_job_waiting_for_its_next_attempt_names_no_worker(sqlite_url: str, tmp_path: Path) -> None:
    """The worker of the failed attempt is in the attempts table, not shown as the job's."""
    retry = '{"attempts": 2, "delay_seconds": 3600}'
    job = ok_json("submit", "--retry", retry, "--", "false", db=sqlite_url, cwd=tmp_path)["id"]
    ok("worker", "--burst", db=sqlite_url, cwd=tmp_path)
    shown = ok("jobs", "show", str(job), db=sqlite_url, cwd=tmp_path)
    head, _, attempts = shown.partition("\n\n")
    assert "SUBMITTED" in head and not any(line.startswith("worker") for line in head.splitlines()), head
    assert "ATTEMPT" in attempts and "exit code 1" in attempts


def test_a_worker_for_a_queue_that_does_not_run_in_its_environment_says_so(
    sqlite_url: str, tmp_path: Path
) -> None:
    ok("environments", "create", "e", db=sqlite_url, cwd=tmp_path)
    done = conveyor(
        "worker", "--environment", "e", "--queues", "default", "--burst", db=sqlite_url, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "queue 'default' does not run in environment 'e' (its environments: default)" in done.stderr


def test_a_job_a_hair_too_big_is_told_apart_from_the_limit(sqlite_url: str, tmp_path: Path) -> None:
    ok("environments", "create", "e", "--max-vcpus", "2", db=sqlite_url, cwd=tmp_path)
    ok("queues", "create", "q", "--environments", "e", db=sqlite_url, cwd=tmp_path)
    said = _fails("submit", "--queue", "q", "--vcpus", "2.0000001", "--", "true", db=sqlite_url, cwd=tmp_path)
    assert said.startswith("conveyor: vcpus: 2.0000001 vCPUs / 0 MB fits no compute environment")


def test_database_and_json_may_come_before_the_command(db_url: str, tmp_path: Path) -> None:
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    # db=None: the helper adds no --database of its own; the one before the command is used
    job = json.loads(ok("--database", db_url, "--json", "submit", "--", "true", db=None, cwd=cwd))["id"]
    listed = json.loads(ok("--json", "--database", db_url, "jobs", "list", db=None, cwd=cwd))
    assert [j["id"] for j in listed] == [job]
    assert list(cwd.iterdir()) == []  # not the default ./conveyor.db
    # the command's own --database wins over the one before it
    other = f"sqlite:///{tmp_path / 'other.db'}"
    listed = json.loads(
        ok("--database", db_url, "jobs", "list", "--json", "--database", other, db=None, cwd=cwd)
    )
    assert listed == []


def test_a_database_before_a_command_that_takes_none_is_refused(tmp_path: Path) -> None:
    said = _fails(
        "--database", "sqlite:///x.db", "schedules", "next", "rate(5 minutes)", db=None, cwd=tmp_path
    )
    assert said == "conveyor: --database: the command given takes none (see conveyor --help)\n"
    assert json.loads(ok("--json", "schedules", "next", "rate(5 minutes)", db=None, cwd=tmp_path))
