"""``conveyor jobs show ID --events``: a job's history, as a table and in JSON."""

from __future__ import annotations

from pathlib import Path

from .helpers import conveyor, ok, ok_json


def test_show_events_lists_every_state_change_with_what_it_left(db_url: str, tmp_path: Path) -> None:
    db = db_url
    job_id = ok_json("submit", "--", "true", db=db, cwd=tmp_path)["id"]
    ok("jobs", "cancel", str(job_id), "--reason", "bad deploy", db=db, cwd=tmp_path)
    ok("jobs", "retry", str(job_id), db=db, cwd=tmp_path)
    out = ok("jobs", "show", str(job_id), "--events", db=db, cwd=tmp_path)
    table = out[out.index("TIME") :].splitlines()
    assert table[0].split() == ["TIME", "CHANGE", "REASON"]
    changes = [line.split("  ", 1)[1].strip() for line in table[1:]]
    assert [c.split("  ")[0] for c in changes] == [
        "new -> RUNNABLE",
        "RUNNABLE -> CANCELLED",
        "CANCELLED -> RUNNABLE",
    ]
    assert changes[1].endswith("bad deploy") and changes[2].endswith("retried by user")
    shown = ok_json("jobs", "show", str(job_id), "--events", db=db, cwd=tmp_path)
    assert [(e["data"].get("from"), e["data"]["to"]) for e in shown["events"]] == [
        (None, "RUNNABLE"),
        ("RUNNABLE", "CANCELLED"),
        ("CANCELLED", "RUNNABLE"),
    ]
    assert [set(e) for e in shown["events"]] == [{"id", "at", "type", "data"}] * 3
    assert "events" not in ok_json("jobs", "show", str(job_id), db=db, cwd=tmp_path)
    assert "TIME" not in ok("jobs", "show", str(job_id), db=db, cwd=tmp_path)


def test_show_events_of_an_unknown_job_fails_as_show_does(sqlite_url: str, tmp_path: Path) -> None:
    plain = conveyor("jobs", "show", "987654", db=sqlite_url, cwd=tmp_path)
    with_events = conveyor("jobs", "show", "987654", "--events", db=sqlite_url, cwd=tmp_path)
    assert (with_events.returncode, with_events.stderr) == (plain.returncode, plain.stderr)
    assert plain.returncode == 2 and "job 987654 does not exist" in plain.stderr
