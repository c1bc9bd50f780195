"""Definitions and the queues they use, through the real ``conveyor`` command (SQLite)."""

from __future__ import annotations

import json
from pathlib import Path

from .helpers import conveyor, ok, ok_json


def error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got:\n{stderr}"
    return lines[0]


def test_a_deactivated_definition_is_refused_shown_and_deactivates_again(
    sqlite_url: str, tmp_path: Path
) -> None:
    """Submitting by --revision ran it anyway; show and a second deactivate said it did not exist."""
    db = sqlite_url
    ok("definitions", "register", "resize", "--", "echo", "{src}", db=db, cwd=tmp_path)
    assert ok_json("definitions", "deactivate", "resize", db=db, cwd=tmp_path) == {
        "definition": "resize",
        "deactivated": True,
        "changed": True,
    }
    expected = (
        "conveyor: definition: job definition 'resize' is deactivated; register it again to re-activate it"
        " (allowed: an active definition, see `conveyor definitions list`)"
    )
    for extra in ((), ("--revision", "1")):
        done = conveyor("submit", "--definition", "resize", *extra, "--param", "src=a", db=db, cwd=tmp_path)
        assert done.returncode == 2, done.stdout
        assert error_line(done.stderr) == expected
    assert ok_json("jobs", "list", db=db, cwd=tmp_path) == []
    shown = conveyor("definitions", "show", "resize", db=db, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert (data["name"], data["revision"], data["active"]) == ("resize", 1, False)
    assert "deactivated" in shown.stderr
    assert ok_json("definitions", "show", "resize", db=db, cwd=tmp_path)["active"] is False
    again = conveyor("definitions", "deactivate", "resize", db=db, cwd=tmp_path)
    assert (again.returncode, again.stdout.strip()) == (0, "definition resize was already inactive")
    assert ok_json("definitions", "deactivate", "resize", db=db, cwd=tmp_path) == {
        "definition": "resize",
        "deactivated": True,
        "changed": False,
    }
    missing = conveyor("definitions", "deactivate", "nope", db=db, cwd=tmp_path)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    assert ok("definitions", "register", "resize", "--", "echo", "{src}", db=db, cwd=tmp_path).strip() == (
        "definition resize revision 2"
    )
    assert int(ok("submit", "--definition", "resize", "--param", "src=a", db=db, cwd=tmp_path)) >= 1


def test_a_queue_a_schedule_or_a_definition_uses_is_not_deleted(sqlite_url: str, tmp_path: Path) -> None:
    """The schedule then skipped every fire ("queue 'sq' does not exist"), and the definition
    could no longer be registered again from its own `show --json`."""
    db = sqlite_url
    ok("queues", "create", "sq", db=db, cwd=tmp_path)
    ok(
        "schedules",
        "create",
        "s1",
        "--expression",
        "rate(1 minute)",
        "--queue",
        "sq",
        "--",
        "echo",
        "hi",
        db=db,
        cwd=tmp_path,
    )
    done = conveyor("queues", "delete", "sq", db=db, cwd=tmp_path)
    assert done.returncode == 2
    assert error_line(done.stderr) == "conveyor: queue 'sq' is used by schedule(s) s1; remove it there first"
    ok("queues", "create", "emails", db=db, cwd=tmp_path)
    ok(
        "definitions",
        "register",
        "d",
        "--function",
        "m:f",
        "--follow-up-queue",
        "emails",
        db=db,
        cwd=tmp_path,
    )
    ok(
        "definitions",
        "register",
        "g",
        "--function",
        "m:f",
        "--follow-up-queue",
        "email*",
        db=db,
        cwd=tmp_path,
    )
    done = conveyor("queues", "delete", "emails", "--json", db=db, cwd=tmp_path)
    assert done.returncode == 2
    assert error_line(done.stderr) == (
        "conveyor: queue 'emails' is used by definition(s) d; remove it there first"
    )
    assert {q["name"] for q in ok_json("queues", "list", db=db, cwd=tmp_path)} >= {"sq", "emails"}
    ok("schedules", "delete", "s1", db=db, cwd=tmp_path)
    assert ok_json("queues", "delete", "sq", db=db, cwd=tmp_path) == {"queue": "sq", "deleted": True}
    ok("definitions", "deactivate", "d", db=db, cwd=tmp_path)
    assert ok_json("queues", "delete", "emails", db=db, cwd=tmp_path) == {"queue": "emails", "deleted": True}


def test_the_cli_takes_and_refuses_what_http_does(sqlite_url: str, tmp_path: Path) -> None:
    """One limit and one wording on every path: argv, enum case, the retry shorthand."""
    db = sqlite_url
    for args in (("submit", "--"), ("definitions", "register", "long", "--")):
        done = conveyor(*args, *["x"] * 1001, db=db, cwd=tmp_path)
        assert done.returncode == 2, done.stdout
        assert error_line(done.stderr).endswith("command: has 1,001 items (allowed: at most 1,000 items)")
    rule = '{"evaluate_on_exit": [{"action": "exit", "on_exit_code": "2"}], "backoff": "FIXED"}'
    ok("definitions", "register", "sync", "--retry", rule, "--", "true", db=db, cwd=tmp_path)
    retry = ok_json("definitions", "show", "sync", db=db, cwd=tmp_path)["retry"]
    assert (retry["evaluate_on_exit"][0]["action"], retry["backoff"]) == ("EXIT", "fixed")
    ok("definitions", "register", "three", "--retry", "3", "--", "true", db=db, cwd=tmp_path)
    assert ok_json("definitions", "show", "three", db=db, cwd=tmp_path)["retry"]["attempts"] == 3
    done = conveyor(
        "definitions", "register", "code", "--retry", '{"evaluate_on_exit": [{"action": "EXIT", "on_exit_code": 2}]}',
        "--", "true", db=db, cwd=tmp_path,
    )  # fmt: skip
    assert error_line(done.stderr) == (
        "conveyor: spec.retry.evaluate_on_exit[0].on_exit_code: 2 is not a string"
        " (allowed: a string of at most 512 characters)"
    )
