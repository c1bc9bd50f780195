"""The ``conveyor`` command as a user runs it: real subprocesses on a real database."""

from __future__ import annotations

import argparse
import json
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor.app import App
from conveyor.cli import build_parser
from conveyor.engine.jobs import SubmitRequest
from conveyor.model import JobState
from conveyor.store import Store, open_store

from .helpers import WorkerProcess, conveyor, ok, ok_json, python_c


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    opened = open_store(db_url)
    try:
        yield opened
    finally:
        opened.close()


def command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and subcommand of the parser, e.g. (), ("jobs",), ("jobs", "list")."""
    found = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.extend(command_paths(sub, (*prefix, name)))
    return found


def one_line_error(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got:\n{stderr}"
    assert lines[0].startswith("conveyor: ")
    return lines[0]


# -- help ---------------------------------------------------------------------------------


# One interpreter runs every command's --help through the real entry point (a process per
# command would cost ~40 interpreter starts); the top-level and one subcommand help also run
# as `python -m conveyor ... --help` to prove the real command line.
HELP_SWEEP = """
import contextlib, io, json, sys
from conveyor.cli import main
found = {}
for path in json.loads(sys.argv[1]):
    out = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out):
        try:
            code = main([*path, "--help"])
        except SystemExit as exc:
            code = exc.code
    found[" ".join(path) or "(top)"] = [code, out.getvalue()]
print(json.dumps(found))
"""


def test_every_command_help_exits_0_and_shows_an_example(tmp_path: Path) -> None:
    paths = command_paths(build_parser())
    assert ("jobs", "show") in paths and ("definitions", "register") in paths
    swept = python_c(HELP_SWEEP, json.dumps(paths), cwd=tmp_path, check=True)
    results: dict[str, list[Any]] = json.loads(swept.stdout)
    assert len(results) == len(paths)
    failed = [name for name, (code, _) in results.items() if code != 0]
    assert not failed, f"--help exited non-zero for: {failed}"
    without = [name for name, (_, out) in results.items() if "example" not in out.lower()]
    assert not without, f"--help shows no example for: {without}"
    assert not list(tmp_path.iterdir()), "--help must not create a database"


@pytest.mark.parametrize("command", [[], ["submit"]], ids=["top", "submit"])
def test_help_of_the_real_command_exits_0_and_shows_examples(tmp_path: Path, command: list[str]) -> None:
    done = conveyor(*command, "--help", db=None, cwd=tmp_path)
    assert done.returncode == 0
    assert "examples" in done.stdout and "conveyor submit -- echo hello" in done.stdout


# -- start-up -----------------------------------------------------------------------------

LOADED = """
import json, sys
from conveyor.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:  # --help
    code = exc.code
print(json.dumps([code, sorted(sys.modules)]))
"""


@pytest.mark.parametrize(
    "args",
    [["queues", "list"], ["jobs", "list"], ["submit", "--", "true"], ["--help"]],
    ids=["queues-list", "jobs-list", "submit", "help"],
)
def test_a_one_shot_command_loads_neither_the_http_stack_nor_the_worker(
    sqlite_url: str, tmp_path: Path, args: list[str]
) -> None:
    # what a command imports is most of its start-up time (0.45 s -> 0.2 s when these went)
    items = args if args == ["--help"] else [*args[:2], "--database", sqlite_url, *args[2:]]
    done = python_c(LOADED, *items, cwd=tmp_path)
    code, modules = json.loads(done.stdout.strip().splitlines()[-1])
    assert code == 0, done.stderr
    heavy = ("starlette", "uvicorn", "conveyor.api", "conveyor.worker")
    assert [m for m in modules if m.startswith(heavy)] == []


# -- submit -------------------------------------------------------------------------------


def test_submit_wait_exits_0_when_the_job_succeeds_and_1_when_it_fails(db_url: str, tmp_path: Path) -> None:
    with WorkerProcess(db_url, tmp_path, "--lease-seconds", "3") as worker:
        good = conveyor("submit", "--wait", "--", "sh", "-c", "echo fine", db=db_url, cwd=tmp_path)
        bad = conveyor("submit", "--wait", "--", "sh", "-c", "exit 4", db=db_url, cwd=tmp_path)
        worker.send(signal.SIGTERM)
        assert worker.wait(10) == 0
    assert good.returncode == 0, good.stderr
    assert good.stdout.strip().isdigit()
    assert "SUCCEEDED" in good.stderr
    assert bad.returncode == 1, bad.stderr
    assert "FAILED: exit code 4" in bad.stderr


def test_json_output_of_every_reading_command_parses(sqlite_url: str, tmp_path: Path) -> None:
    db = sqlite_url
    submitted = ok_json("submit", "--name", "greeting", "--", "echo", "hi", db=db, cwd=tmp_path)
    assert submitted["state"] == "RUNNABLE" and submitted["existing"] is False
    job_id = submitted["id"]
    [listed] = ok_json("jobs", "list", db=db, cwd=tmp_path)
    assert listed["id"] == job_id and listed["spec"]["command"] == ["echo", "hi"]
    shown = ok_json("jobs", "show", str(job_id), db=db, cwd=tmp_path)
    assert shown["job"]["name"] == "greeting" and "explanation" in shown and shown["attempts"] == []
    assert [q["name"] for q in ok_json("queues", "list", db=db, cwd=tmp_path)] == ["default"]
    assert [e["name"] for e in ok_json("environments", "list", db=db, cwd=tmp_path)] == ["default"]
    assert ok_json("definitions", "list", db=db, cwd=tmp_path) == []
    assert ok_json("workers", "list", db=db, cwd=tmp_path) == []
    cancelled = ok_json("jobs", "cancel", str(job_id), db=db, cwd=tmp_path)
    assert cancelled == {"id": job_id, "state": "CANCELLED", "changed": True, "reason": "cancelled by user"}


BAD_SUBMITS = [
    pytest.param(["submit", "--queue", "nope", "--", "echo"], "queue", id="unknown-queue"),
    pytest.param(["submit", "--definition", "nope"], "definition", id="unknown-definition"),
    pytest.param(["submit", "--payload", "{not json", "--", "echo"], "payload", id="malformed-payload"),
    pytest.param(
        ["submit", "--payload", "[" * 5000 + "]" * 5000, "--", "echo"],
        "payload",
        id="payload-nested-too-deeply",
    ),
    pytest.param(
        ["submit", "--retry", '{"attempts": ' + "[" * 5000 + "]" * 5000 + "}", "--", "echo"],
        "retry",
        id="retry-nested-too-deeply",
    ),
    pytest.param(["submit", "--function", "m:f", "--", "echo"], "function", id="command-and-function"),
    pytest.param(["submit", "--name", "x" * 257, "--", "echo"], "name", id="name-257-characters"),
    pytest.param(["submit", "--name", "", "--", "echo"], "name", id="empty-name"),
    pytest.param(["submit", "--idempotency-key", "k" * 513, "--", "echo"], "idempotency_key", id="key-513"),
    pytest.param(["submit", "--array-size", "1", "--", "echo"], "array_size", id="array-size-1"),
    pytest.param(["submit", "--array-size", "10001", "--", "echo"], "array_size", id="array-size-10001"),
    pytest.param(["submit", "--depends-on", "99", "--", "echo"], "depends_on", id="unknown-dependency"),
    pytest.param(["submit", "--attempts", "11", "--", "echo"], "attempts", id="attempts-11"),
    # each of these ended in a traceback (TypeError, OverflowError) or was taken
    pytest.param(
        ["submit", "--retry", "5", "--attempts", "3", "--", "echo"], "retry", id="retry-int-and-attempts"
    ),
    pytest.param(
        ["submit", "--definition", "d", "--revision", str(2**64)], "definition_revision", id="revision-huge"
    ),
    pytest.param(
        ["submit", "--run-at", "9999-12-31T23:59:59-14:00", "--", "echo"], "run_at", id="run-at-year-10000"
    ),
    pytest.param(["submit", "--priority", "1_0", "--", "echo"], "priority", id="priority-underscore"),
    pytest.param(["submit", "--unique-ttl", "5", "--", "echo"], "unique_ttl_seconds", id="ttl-without-key"),
    pytest.param(["submit", "--", "echo", "a\udcffb"], "command", id="argument-not-utf8"),
]


@pytest.mark.parametrize(("args", "field"), BAD_SUBMITS)
def test_bad_submit_exits_2_with_one_line_naming_the_field_and_stores_nothing(
    db_url: str, tmp_path: Path, store: Store, args: list[str], field: str
) -> None:
    done = conveyor(*args, db=db_url, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    line = one_line_error(done.stderr)
    assert field in line
    assert "Traceback" not in done.stderr
    assert store.job_list(include_children=True) == []


BAD_OPTIONS = [
    pytest.param(["worker", "--burst", "--lease-seconds", "nan"], "lease_seconds", id="lease-nan"),
    pytest.param(["worker", "--burst", "--lease-seconds", "1e9"], "lease_seconds", id="lease-1e9"),
    pytest.param(["worker", "--burst", "--lease-seconds", "1"], "lease_seconds", id="lease-1"),
    pytest.param(["worker", "--burst", "--grace", "-1"], "grace", id="grace-negative"),
    pytest.param(["worker", "--burst", "--grace", "nan"], "grace", id="grace-nan"),
    pytest.param(["worker", "--burst", "--concurrency", "0"], "concurrency", id="concurrency-0"),
    pytest.param(["worker", "--burst", "--concurrency", "100000"], "concurrency", id="concurrency-100000"),
    pytest.param(["run-job", "1", "--lease-seconds", "nan"], "lease_seconds", id="run-job-lease-nan"),
    pytest.param(["jobs", "list", "--limit", "0"], "limit", id="list-limit-0"),
    pytest.param(["jobs", "list", "--limit", str(2**64)], "limit", id="list-limit-huge"),
    pytest.param(["jobs", "list", "--before", str(2**64)], "before_id", id="list-before-huge"),
    pytest.param(["jobs", "list", "--array", str(2**64)], "array_parent_id", id="list-array-huge"),
    pytest.param(["jobs", "prune", "--older-than", "-1"], "older_than", id="prune-negative"),
    pytest.param(["jobs", "prune", "--older-than", "nan"], "older_than", id="prune-nan"),
    pytest.param(["submit", "--from-file", "/nonexistent/jobs.jsonl"], "from_file", id="from-file-missing"),
    # each line holds its own fields: a job flag beside --from-file was silently ignored
    pytest.param(
        ["submit", "--from-file", "j.jsonl", "--priority", "5"], "from_file", id="from-file-priority"
    ),
    pytest.param(["submit", "--from-file", "j.jsonl", "--", "echo"], "from_file", id="from-file-command"),
    pytest.param(["definitions", "show", "d", "--revision", str(2**64)], "revision", id="revision-huge"),
    pytest.param(["jobs", "list", "--limit", "abc"], "limit", id="list-limit-abc"),
    pytest.param(["jobs", "logs", "1", "--attempt", str(2**64)], "attempt", id="logs-attempt-huge"),
    pytest.param(["schedules", "list", "--limit", "0"], "limit", id="schedules-limit-0"),
    pytest.param(["schedules", "list", "--limit", str(2**64)], "limit", id="schedules-limit-huge"),
    pytest.param(["scheduler", "--once", "--batch-size", str(2**64)], "batch_size", id="batch-size-huge"),
    pytest.param(["worker", "--burst", "--import", ""], "import", id="import-empty"),
    pytest.param(["worker", "--burst", "--queues", "nope"], "queues", id="burst-unknown-queue"),
    pytest.param(
        ["server", "--no-scheduler", "--port", "0", "--environment", "nope"],
        "environment",
        id="server-unknown-env",
    ),
    pytest.param(["tokens", "create", "--scope", "admin", "--expires", ""], "expires", id="expires-empty"),
    pytest.param(
        ["tokens", "create", "--scope", "admin", "--expires", "9" * 30 + "d"], "expires", id="expires-huge"
    ),
    pytest.param(["server", "--no-worker", "--no-scheduler", "--port", "99999"], "port", id="port-99999"),
    pytest.param(["server", "--no-worker", "--no-scheduler", "--port", "-1"], "port", id="port-negative"),
    pytest.param(
        ["server", "--no-worker", "--no-scheduler", "--host", "999.999.999.999"], "host", id="host-no-address"
    ),
    pytest.param(
        ["server", "--no-worker", "--no-scheduler", "--rate-limit", "nan"], "rate-limit", id="rate-nan"
    ),
    pytest.param(
        ["server", "--no-worker", "--no-scheduler", "--max-body", "-1"], "max-body", id="max-body-negative"
    ),
]


@pytest.mark.parametrize(("args", "field"), BAD_OPTIONS)
def test_an_option_out_of_range_exits_2_naming_it_and_changes_nothing(
    db_url: str, tmp_path: Path, store: Store, args: list[str], field: str
) -> None:
    """Each of these crashed with a traceback (OverflowError, ValueError, FileNotFoundError),
    was taken as it came (a negative grace, a limit of -1, a prune into the future), or, a NaN
    lease, made a burst worker that never exited."""
    done = conveyor(*args, db=db_url, cwd=tmp_path, timeout=20)
    assert done.returncode == 2, done.stderr
    assert one_line_error(done.stderr).startswith(f"conveyor: {field}: ")
    assert store.job_list(include_children=True) == []


@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_port_in_use_exits_2_before_the_server_says_it_serves(
    db_url: str, tmp_path: Path, processes: str
) -> None:
    """With one HTTP process the server printed "serving http://..." and started its worker,
    then uvicorn failed to bind and the command exited 3."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        done = conveyor(
            "server", "--host", "127.0.0.1", "--port", port, "--http-processes", processes,
            db=db_url, cwd=tmp_path, timeout=30,
        )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert one_line_error(done.stderr) == (
        f"conveyor: port: cannot listen on 127.0.0.1:{port}: Address already in use"
        " (allowed: a free port, or 0 for any)"
    )
    assert "serving" not in done.stderr


@pytest.mark.parametrize("action", ["show", "logs", "cancel", "terminate", "retry", "run-job", "revoke"])
def test_a_job_id_beyond_any_integer_column_is_an_unknown_job_not_a_crash(
    db_url: str, tmp_path: Path, action: str
) -> None:
    """SQLite's driver raised OverflowError for ids past 2**63 - 1: such an id names no job."""
    args = {"run-job": ["run-job"], "revoke": ["tokens", "revoke"]}.get(action, ["jobs", action])
    done = conveyor(*args, str(2**64), db=db_url, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    kind = "token" if action == "revoke" else "job"
    assert one_line_error(done.stderr) == f"conveyor: {kind} {2**64} does not exist"


def test_unknown_state_filter_exits_2_naming_the_field(sqlite_url: str, tmp_path: Path) -> None:
    done = conveyor("jobs", "list", "--state", "DONE", db=sqlite_url, cwd=tmp_path)
    assert done.returncode == 2
    line = one_line_error(done.stderr)
    assert line.startswith("conveyor: state: 'DONE' is not a valid choice")
    assert "SUCCEEDED" in line


def test_jobs_list_is_empty_after_a_refused_submit(sqlite_url: str, tmp_path: Path) -> None:
    assert conveyor("submit", "--attempts", "11", "--", "echo", db=sqlite_url, cwd=tmp_path).returncode == 2
    assert ok_json("jobs", "list", db=sqlite_url, cwd=tmp_path) == []


def test_create_never_overwrites_and_every_change_answers_json(sqlite_url: str, tmp_path: Path) -> None:
    """`queues create` on an existing queue reset its priority and enabled it again, silently;
    delete, deactivate and migrate printed text under --json."""
    db = sqlite_url
    assert ok_json("queues", "create", "q1", "--priority", "5", db=db, cwd=tmp_path)["priority"] == 5
    done = conveyor("queues", "create", "q1", db=db, cwd=tmp_path)
    assert done.returncode == 2
    assert one_line_error(done.stderr) == (
        "conveyor: queue 'q1' already exists; change it with `conveyor queues update q1`"
    )
    assert ok_json("environments", "create", "e1", "--max-vcpus", "4", db=db, cwd=tmp_path)["max_vcpus"] == 4
    assert conveyor("environments", "create", "e1", db=db, cwd=tmp_path).returncode == 2
    assert [q["priority"] for q in ok_json("queues", "list", db=db, cwd=tmp_path) if q["name"] == "q1"] == [5]
    assert ok_json("queues", "delete", "q1", db=db, cwd=tmp_path) == {"queue": "q1", "deleted": True}
    assert ok_json("environments", "delete", "e1", db=db, cwd=tmp_path) == {
        "environment": "e1",
        "deleted": True,
    }
    ok_json("definitions", "register", "d", "--", "true", db=db, cwd=tmp_path)
    assert ok_json("definitions", "deactivate", "d", db=db, cwd=tmp_path) == {
        "definition": "d",
        "deactivated": True,
        "changed": True,
    }
    assert ok_json("migrate", db=db, cwd=tmp_path)["schema_version"] >= 1


def test_a_postgresql_url_without_a_database_is_refused(tmp_path: Path) -> None:
    """libpq would pick the user's database and Conveyor would have made its tables there."""
    for url in ("postgresql://", "postgresql://127.0.0.1:5432", "postgresql://127.0.0.1/?sslmode=disable"):
        done = conveyor("jobs", "list", db=url, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert one_line_error(done.stderr) == (
            f"conveyor: database: {url!r} names no database (allowed: postgresql://user@host:5432/dbname)"
        )


def test_a_file_that_is_not_utf8_is_refused_naming_the_flag(sqlite_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "latin1.json"
    bad.write_bytes('{"city": "Zürich"}'.encode("latin-1"))
    for args, field in (
        (["submit", "--payload", f"@{bad}", "--", "echo"], "payload"),
        (["submit", "--from-file", str(bad)], "from_file"),
        (["definitions", "register", "d", "--file", str(bad)], "file"),
    ):
        done = conveyor(*args, db=sqlite_url, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert one_line_error(done.stderr).startswith(f"conveyor: {field}: "), done.stderr
        assert "is not UTF-8 text" in done.stderr


def test_unreachable_postgresql_exits_3_with_one_line(tmp_path: Path) -> None:
    started = time.monotonic()
    done = conveyor("jobs", "list", db="postgresql://127.0.0.1:1/x", cwd=tmp_path, timeout=60)
    assert time.monotonic() - started < 8  # at the refusal, not after the 10 s a worker waits
    assert done.returncode == 3
    line = one_line_error(done.stderr)
    assert "cannot reach PostgreSQL at postgresql://127.0.0.1:1/x" in line


def test_sqlite_file_in_a_missing_folder_exits_3_with_one_line(tmp_path: Path) -> None:
    done = conveyor("jobs", "list", db=f"sqlite:///{tmp_path}/missing/x.db", cwd=tmp_path)
    assert done.returncode == 3
    assert "does not exist" in one_line_error(done.stderr)


def test_submit_from_file_inserts_every_json_line(db_url: str, tmp_path: Path) -> None:
    lines = tmp_path / "jobs.jsonl"
    lines.write_text(
        '{"command": ["echo", "one"]}\n'
        "\n"
        '{"command": ["echo", "two"], "priority": 5, "tags": ["bulk"]}\n'
        '{"function": "tests.integration.jobs_fixtures:add", "payload": {"args": [1, 2]}}\n'
    )
    results = ok_json("submit", "--from-file", str(lines), db=db_url, cwd=tmp_path)
    assert [r["existing"] for r in results] == [False, False, False]
    listed = ok_json("jobs", "list", db=db_url, cwd=tmp_path)
    assert sorted(j["id"] for j in listed) == sorted(r["id"] for r in results)
    assert {j["priority"] for j in listed} == {0, 5}


def test_submit_from_stdin_with_one_bad_line_stores_none(db_url: str, tmp_path: Path, store: Store) -> None:
    done = conveyor(
        "submit",
        "--from-file",
        "-",
        db=db_url,
        cwd=tmp_path,
        stdin='{"command": ["echo", "one"]}\n{"command": ["echo"], "queue": "nope"}\n',
    )
    assert done.returncode == 2
    assert "line 2.queue" in one_line_error(done.stderr)
    assert store.job_list() == []


# -- the catalogue ----------------------------------------------------------------------------


def test_queue_create_disable_and_enable(sqlite_url: str, tmp_path: Path) -> None:
    created = ok_json("queues", "create", "reports", "--priority", "5", db=sqlite_url, cwd=tmp_path)
    assert created == {"name": "reports", "priority": 5, "enabled": True, "environments": ["default"]}
    assert (
        ok("queues", "disable", "reports", db=sqlite_url, cwd=tmp_path).strip() == "queue reports: disabled"
    )
    queues = {q["name"]: q for q in ok_json("queues", "list", db=sqlite_url, cwd=tmp_path)}
    assert queues["reports"]["enabled"] is False
    assert ok("queues", "enable", "reports", db=sqlite_url, cwd=tmp_path).strip() == "queue reports: enabled"


def test_environment_max_vcpus_bounds_what_its_queues_accept(sqlite_url: str, tmp_path: Path) -> None:
    ok("environments", "create", "small", "--max-vcpus", "2", db=sqlite_url, cwd=tmp_path)
    ok("queues", "create", "tiny", "--environments", "small", db=sqlite_url, cwd=tmp_path)
    envs = {e["name"]: e for e in ok_json("environments", "list", db=sqlite_url, cwd=tmp_path)}
    assert envs["small"]["max_vcpus"] == 2
    too_big = conveyor("submit", "--queue", "tiny", "--vcpus", "4", "--", "echo", db=sqlite_url, cwd=tmp_path)
    assert too_big.returncode == 2
    assert "vcpus" in one_line_error(too_big.stderr) and "fits no compute environment" in too_big.stderr
    fits = ok_json("submit", "--queue", "tiny", "--vcpus", "2", "--", "echo", db=sqlite_url, cwd=tmp_path)
    assert fits["state"] == "RUNNABLE"


def test_registered_definition_runs_with_its_parameters(db_url: str, tmp_path: Path) -> None:
    registered = ok(
        "definitions",
        "register",
        "greet",
        "--param",
        "who=world",
        "--",
        "sh",
        "-c",
        'echo "hello $0"',
        "{who}",
        db=db_url,
        cwd=tmp_path,
    )
    assert registered.strip() == "definition greet revision 1"
    default = ok_json("submit", "--definition", "greet", db=db_url, cwd=tmp_path)["id"]
    given = ok_json("submit", "--definition", "greet", "--param", "who=conveyor", db=db_url, cwd=tmp_path)[
        "id"
    ]
    ok("worker", "--burst", db=db_url, cwd=tmp_path)
    assert ok("jobs", "logs", str(default), db=db_url, cwd=tmp_path) == "hello world\n"
    assert ok("jobs", "logs", str(given), db=db_url, cwd=tmp_path) == "hello conveyor\n"
    shown = ok("jobs", "show", str(given), db=db_url, cwd=tmp_path)
    assert "SUCCEEDED" in shown and "greet:1" in shown


# -- why is my job waiting? -----------------------------------------------------------------


def why(db: str, cwd: Path, job_id: int) -> str:
    out = ok("jobs", "show", str(job_id), db=db, cwd=cwd)
    [line] = [ln for ln in out.splitlines() if ln.startswith("why")]
    return line.removeprefix("why").strip()


@pytest.fixture
def app(db_url: str, tmp_path: Path) -> Iterator[App]:
    """The same database in-process, to set the scene quickly for the command under test."""
    with App.open(db_url, blob_dir=tmp_path / "blobs") as opened:
        yield opened


def test_show_json_of_a_definition_registers_again_as_it_is(sqlite_url: str, tmp_path: Path) -> None:
    """--help says the file holds the fields of `show --json`: its output was refused
    ("definition.name: is not a known field")."""
    done = conveyor(
        "definitions", "register", "d", "--vcpus", "0.5", "--", "echo", "{x}", db=sqlite_url, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    shown = conveyor("definitions", "show", "d", "--json", db=sqlite_url, cwd=tmp_path).stdout
    (tmp_path / "d.json").write_text(shown)
    again = conveyor("definitions", "register", "d", "--file", "d.json", db=sqlite_url, cwd=tmp_path)
    assert (again.returncode, again.stdout.strip()) == (0, "definition d revision 1 (unchanged)"), (
        again.stderr
    )
    edited = {**json.loads(shown), "vcpus": 2, "revision": 7, "name": "other"}
    (tmp_path / "d.json").write_text(json.dumps(edited))
    copy = conveyor("definitions", "register", "e", "--file", "d.json", db=sqlite_url, cwd=tmp_path)
    assert copy.stdout.strip() == "definition e revision 1", copy.stderr
    e = json.loads(conveyor("definitions", "show", "e", "--json", db=sqlite_url, cwd=tmp_path).stdout)
    assert (e["name"], e["revision"], e["vcpus"], e["command"]) == ("e", 1, 2.0, ["echo", "{x}"])


def test_bulk_cancel_and_retry_by_filter_and_by_ids(app: App, db_url: str, tmp_path: Path) -> None:
    """A filter selects across pages (transactions of BULK_PAGE jobs); --dry-run changes
    nothing; listed ids report the unknown ones, with exit 1; retry takes FAILED by default."""
    app.catalog.put_queue("reports")
    reports = [
        app.jobs.submit(
            SubmitRequest(queue="reports", command=["true"], tags=["nightly"] if i % 2 else [])
        ).job.id
        for i in range(7)
    ]
    other = app.jobs.submit(SubmitRequest(command=["true"])).job.id
    dry = ok_json("jobs", "cancel", "--queue", "reports", "--dry-run", db=db_url, cwd=tmp_path)
    assert dry == {
        "action": "cancel",
        "dry_run": True,
        "matched": 7,
        "changed": sorted(reports, reverse=True),
        "unchanged": [],
        "skipped": [],
    }
    assert app.jobs.get(reports[0]).state is JobState.RUNNABLE
    out = ok("jobs", "cancel", "--tag", "nightly", "--reason", "bad deploy", db=db_url, cwd=tmp_path)
    assert out == f"cancelled 3 job(s): {reports[5]}, {reports[3]}, {reports[1]}\n"
    assert app.jobs.get(reports[1]).status_reason == "bad deploy"
    done = ok_json("jobs", "cancel", "--queue", "reports", db=db_url, cwd=tmp_path)
    assert done["changed"] == sorted(reports[0::2], reverse=True)
    assert app.jobs.get(other).state is JobState.RUNNABLE
    # retry: FAILED by default (none here), CANCELLED when asked
    assert ok_json("jobs", "retry", "--queue", "reports", db=db_url, cwd=tmp_path)["changed"] == []
    retried = ok_json("jobs", "retry", "--queue", "reports", "--state", "CANCELLED", db=db_url, cwd=tmp_path)
    assert sorted(retried["changed"]) == reports
    # listed ids: the unknown one is reported, the others done, exit 1
    listed = conveyor("jobs", "cancel", str(reports[0]), "999999", str(other), db=db_url, cwd=tmp_path)
    assert listed.returncode == 1, listed.stderr
    assert listed.stdout == (
        f"cancelled 2 job(s): {reports[0]}, {other}\n1 left alone:\n  job 999999 does not exist\n"
    )
    assert app.jobs.get(other).state is JobState.CANCELLED


BAD_BULK = [
    pytest.param(["jobs", "cancel"], "filter", id="nothing-selected"),
    pytest.param(["jobs", "cancel", "1", "--queue", "default"], "ids", id="ids-and-filter"),
    pytest.param(["jobs", "cancel", "--state", "RUNNING"], "states", id="cancel-running"),
    pytest.param(["jobs", "retry", "--state", "RUNNABLE"], "states", id="retry-runnable"),
    pytest.param(["jobs", "terminate", "--state", "DONE"], "state", id="unknown-state"),
    pytest.param(["jobs", "cancel", "--queue", "nope"], "queue", id="unknown-queue"),
    pytest.param(["jobs", "cancel", "--all", "--reason", "x" * 1001], "reason", id="long-reason"),
    # refused as a name, as over HTTP (it was "queue '' does not exist")
    pytest.param(["jobs", "cancel", "--queue", ""], "queue", id="empty-queue"),
    pytest.param(["jobs", "cancel", "--queue", "a b"], "queue", id="queue-not-a-name"),
]


@pytest.mark.parametrize(("args", "field"), BAD_BULK)
def test_a_bad_bulk_action_exits_2_naming_the_field_and_changes_nothing(
    app: App, db_url: str, tmp_path: Path, args: list[str], field: str
) -> None:
    job_id = app.jobs.submit(SubmitRequest(command=["true"])).job.id
    done = conveyor(*args, db=db_url, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    line = one_line_error(done.stderr)
    assert line.startswith(f"conveyor: {field}: ") or (
        field == "queue" and line == "conveyor: queue 'nope' does not exist"
    )
    assert app.jobs.get(job_id).state is JobState.RUNNABLE


STATES = "SUBMITTED, PENDING, RUNNABLE, STARTING, RUNNING, SUCCEEDED, FAILED, CANCELLED"
# (command, refusal): the words of HTTP and the SDK (tests/api/test_bulk_parity.py)
SAME_WORDS = [
    pytest.param(
        ["jobs", "list", "--state", "runnable,done"],
        ("state", "'done' is not a valid choice", STATES),
        id="list-state",
    ),
    pytest.param(
        ["jobs", "cancel", "--state", "Done"],
        ("state", "'Done' is not a valid choice", STATES),
        id="bulk-state",
    ),
    pytest.param(
        ["jobs", "list", "--queue", "q" * 513],
        ("queue", "is 513 characters", "at most 512 characters"),
        id="list-queue",
    ),
    pytest.param(
        ["jobs", "cancel", "--tag", ""], ("tag", "is 0 characters", "1-128 characters"), id="bulk-tag"
    ),
    pytest.param(
        ["jobs", "list", "--before", "0"],
        ("before_id", "0 is below 1", "a whole number from 1 to 4611686018427387904"),
        id="list-before",
    ),
    pytest.param(
        ["jobs", "list", "--created-after", "2026-01-01T00:00:00"],
        (
            "created_after",
            "'2026-01-01T00:00:00' has no UTC offset",
            "an ISO-8601 time with its UTC offset, e.g. 2026-05-01T12:00:00+00:00",
        ),
        id="list-created-after",
    ),
    pytest.param(
        [
            "definitions",
            "register",
            "d",
            "--follow-up-queue",
            "default",
            "--follow-up-queue",
            "nope",
            "--",
            "echo",
        ],
        ("spec.follow_up_queues[1]", "queue 'nope' does not exist", "default"),
        id="follow-up-queue",
    ),
    pytest.param(
        ["definitions", "register", "d", "--", "echo", "{x.y}"],
        (
            "spec.command[1]",
            "'{x.y}': {x.y} is not a plain placeholder",
            "{name} placeholders; {{ and }} for braces",
        ),
        id="template",
    ),
]


@pytest.mark.parametrize(("args", "refused"), SAME_WORDS)
def test_a_filter_or_a_definition_is_refused_in_the_words_of_http(
    db_url: str, tmp_path: Path, args: list[str], refused: tuple[str, str, str]
) -> None:
    done = conveyor(*args, db=db_url, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    field, reason, allowed = refused
    assert one_line_error(done.stderr) == f"conveyor: {field}: {reason} (allowed: {allowed})"


def test_filters_take_a_state_in_any_case(app: App, db_url: str, tmp_path: Path) -> None:
    job_id = app.jobs.submit(SubmitRequest(command=["true"])).job.id
    listed = ok_json("jobs", "list", "--state", "runnable,Pending", db=db_url, cwd=tmp_path)
    assert [j["id"] for j in listed] == [job_id]
    dry = ok_json("jobs", "cancel", "--state", "runnable", "--dry-run", db=db_url, cwd=tmp_path)
    assert dry["changed"] == [job_id]


def test_show_says_the_job_waits_on_a_disabled_queue(app: App, tmp_path: Path) -> None:
    app.catalog.put_queue("x", enabled=False)
    job_id = app.jobs.submit(SubmitRequest(queue="x", command=["echo"])).job.id
    assert why(app.url, tmp_path, job_id).startswith("queue `x` is disabled")


def test_show_says_the_job_waits_for_its_dependency(app: App, tmp_path: Path) -> None:
    first = app.jobs.submit(SubmitRequest(command=["echo", "one"])).job.id
    second = app.jobs.submit(SubmitRequest(command=["echo", "two"], depends_on=[first])).job
    assert second.state is JobState.PENDING
    assert why(app.url, tmp_path, second.id) == f"waiting for job {first} (RUNNABLE)"


def test_show_says_no_worker_serves_the_environment(app: App, tmp_path: Path) -> None:
    job_id = app.jobs.submit(SubmitRequest(command=["echo"])).job.id
    assert why(app.url, tmp_path, job_id).startswith("no worker is serving environment `default`")


def test_show_of_an_unknown_job_exits_2(sqlite_url: str, tmp_path: Path) -> None:
    done = conveyor("jobs", "show", "42", db=sqlite_url, cwd=tmp_path)
    assert done.returncode == 2
    assert one_line_error(done.stderr) == "conveyor: job 42 does not exist"


def test_worker_burst_runs_a_submitted_command_and_logs_show_its_output(
    sqlite_url: str, tmp_path: Path
) -> None:
    job_id = ok_json("submit", "--", "sh", "-c", "echo hi; echo oops >&2", db=sqlite_url, cwd=tmp_path)["id"]
    worker = conveyor("worker", "--burst", "--json", db=sqlite_url, cwd=tmp_path)
    assert worker.returncode == 0, worker.stderr
    stats = json.loads(worker.stdout)
    assert (stats["claimed"], stats["succeeded"], stats["failed"]) == (1, 1, 0)
    assert ok("jobs", "logs", str(job_id), db=sqlite_url, cwd=tmp_path) == "hi\noops\n"
