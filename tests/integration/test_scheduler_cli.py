"""``conveyor schedules ...`` and ``conveyor scheduler`` end to end on SQLite, in-process."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from conveyor.app import App, SchedulerConfig
from conveyor.cli import main
from conveyor.engine.jobs import SubmitRequest
from conveyor.engine.schedules import ScheduleRequest


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_create_list_show_pause_resume_history_delete(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ("--database", sqlite_url)
    code, out, _ = run(
        capsys, "schedules", "create", "tick", "-x", "* * * * * *", *db, "--window", "0",
        "--tag", "demo", "--", "echo", "{schedule}", "{scheduled_time}",
    )  # fmt: skip
    assert code == 0 and "schedule tick created" in out
    code, out, _ = run(capsys, "schedules", "create", "nightly", "-x", "cron(0 2 * * ? *)", "--tz", "Europe/Berlin",
                       "--window", "15", "--overlap", "skip", "--function", "tasks:work", *db)  # fmt: skip
    assert code == 0
    code, out, _ = run(capsys, "schedules", "list", *db)
    assert code == 0 and "tick" in out and "nightly" in out and "Europe/Berlin" in out
    code, out, _ = run(capsys, "schedules", "list", "--json", *db)
    listed = {s["name"]: s for s in json.loads(out)}
    assert listed["nightly"]["overlap"] == "SKIP" and listed["nightly"]["window_minutes"] == 15
    code, out, _ = run(capsys, "schedules", "show", "nightly", *db)
    assert code == 0 and "next fires" in out and "+01:00" in out

    time.sleep(1.1)
    code, _, err = run(capsys, "scheduler", "--once", *db)
    assert code == 0 and "fire(s)" in err
    code, out, _ = run(capsys, "schedules", "history", "tick", "--json", *db)
    history = json.loads(out)
    assert history and history[0]["outcome"] == "FIRED" and history[0]["job_ids"]
    code, out, _ = run(capsys, "jobs", "show", str(history[0]["job_ids"][0]), "--json", *db)
    assert json.loads(out)["job"]["spec"]["parameters"]["schedule"] == "tick"

    code, out, _ = run(capsys, "schedules", "pause", "tick", *db)
    assert code == 0 and "PAUSED" in out
    code, out, _ = run(capsys, "schedules", "resume", "tick", *db)
    assert code == 0 and "ACTIVE" in out
    code, out, _ = run(capsys, "schedules", "delete", "tick", *db)
    assert code == 0
    code, _, err = run(capsys, "schedules", "show", "tick", *db)
    assert code == 2 and "tick" in err


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["-x", "cron(0 2 * * MOX *)"], "expression"),
        (["-x", "0 * * * *", "--tz", "Mars/Olympus"], "timezone"),
        (["-x", "at(2001-01-01T00:00:00)"], "expression"),
        (["-x", "0 * * * *", "--start", "2030-01-02T00:00:00Z", "--end", "2030-01-01T00:00:00Z"], "end"),
        (["-x", "0 * * * *", "--queue", "nowhere"], "targets[0].queue"),
        (["-x", "0 * * * *", "--definition", "missing"], "targets[0].definition"),
        (["-x", "0 * * * *", "--overlap", "SOMETIMES"], "overlap"),
        (["-x", "0 * * * *", "--window", "5000"], "window"),
        # times that cannot even be turned into UTC (an OverflowError, a 500 over HTTP, before)
        (["-x", "0 * * * *", "--start", "9999-12-31T23:59:59-14:00"], "start"),
        (["-x", "0 * * * *", "--end", "0001-01-01T00:00:00+14:00"], "end"),
    ],
)
def test_bad_input_exits_2_naming_the_field_and_stores_nothing(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], argv: list[str], field: str
) -> None:
    code, _, err = run(capsys, "schedules", "create", "bad", *argv, "--database", sqlite_url, "--", "true")
    assert code == 2
    assert f"conveyor: {field}:" in err
    code, out, _ = run(capsys, "schedules", "list", "--json", "--database", sqlite_url)
    assert json.loads(out) == []


def test_shortcut_flags_beside_json_targets_are_refused_not_ignored(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ("--database", sqlite_url)
    target = '{"command": ["true"], "queue": "default"}'
    for flag, value in (("--queue", "nope"), ("--priority", "5"), ("--timeout", "9")):
        code, _, err = run(
            capsys, "schedules", "create", "s", "-x", "@daily", "--target-json", target, flag, value, *db
        )
        assert code == 2 and err.startswith(f"conveyor: target_json: is given with {flag},"), err
    assert json.loads(run(capsys, "schedules", "list", "--json", *db)[1]) == []
    code, _, _ = run(capsys, "schedules", "create", "s", "-x", "@daily", "--priority", "4", *db, "--", "true")
    assert code == 0
    shown = json.loads(run(capsys, "schedules", "show", "s", "--json", *db)[1])
    assert [(t["queue"], t["priority"]) for t in shown["targets"]] == [("default", 4)]


def test_a_duplicate_name_exits_2(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    db = ("--database", sqlite_url)
    assert run(capsys, "schedules", "create", "dup", "-x", "@daily", *db, "--", "true")[0] == 0
    code, _, err = run(capsys, "schedules", "create", "dup", "-x", "@hourly", *db, "--", "true")
    assert code == 2 and "'dup' already exists" in err


def test_next_refuses_a_time_out_of_range(capsys: pytest.CaptureFixture[str]) -> None:
    """It was an OverflowError with a traceback."""
    code, _, err = run(capsys, "schedules", "next", "rate(1 minute)", "--after", "9999-12-31T23:59:00Z")
    assert code == 2 and err.startswith("conveyor: after: 9999-12-31T23:59:00+00:00 is out of range")


def test_next_prints_iso_times_with_offset_in_the_zone(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "schedules", "next", "cron(30 2 * * ? *)", "--tz", "Europe/Berlin",
        "--after", "2026-03-27T12:00:00+01:00", "--count", "3",
    )  # fmt: skip
    assert code == 0
    assert out.splitlines() == [
        "2026-03-28T02:30:00+01:00",
        "2026-03-29T03:00:00+02:00",  # 02:30 does not exist that night: fires at the end of the gap
        "2026-03-30T02:30:00+02:00",
    ]
    assert all(datetime.fromisoformat(line).tzinfo for line in out.splitlines())
    code, _, err = run(capsys, "schedules", "next", "rate(0 minutes)")
    assert code == 2 and "expression" in err


def test_load_charts_fires_per_minute_with_and_without_windows(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ("--database", sqlite_url)
    for i in range(3):
        run(capsys, "schedules", "create", f"h{i}", "-x", "0 * * * *", *db, "--", "true")
        run(capsys, "schedules", "create", f"w{i}", "-x", "0 * * * *", "--window", "30", *db, "--", "true")
    code, out, _ = run(capsys, "schedules", "load", "--hours", "2", *db)
    assert code == 0 and "busiest minute without windows" in out and "#" in out and "=" in out
    code, out, _ = run(capsys, "schedules", "load", "--hours", "2", "--json", *db)
    data = json.loads(out)
    assert data["schedules"] == 6 and len(data["fires_per_minute"]) == 120
    assert max(data["fires_per_minute"]) == 6
    assert max(data["fires_per_minute_with_windows"]) == pytest.approx(3.1, abs=0.01)


def test_the_scheduler_loop_fires_in_the_background_and_stops(sqlite_url: str, tmp_path: Path) -> None:
    with App.open(sqlite_url, blob_dir=tmp_path / "blobs") as app:
        app.schedules.create(
            ScheduleRequest(
                name="bg", expression="* * * * * *", targets=[SubmitRequest(function="tasks:work")]
            )
        )
        scheduler = app.scheduler(SchedulerConfig(max_sleep=0.05))
        scheduler.start()
        try:
            deadline = time.monotonic() + 5
            while not app.store.job_list(limit=1) and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            scheduler.stop()
        assert app.store.job_list(limit=1)
        assert scheduler.stats.total.fired >= 1 and scheduler.stats.errors == 0


def test_update_changes_only_the_given_settings(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    db = ("--database", sqlite_url)
    code, _, _ = run(
        capsys, "schedules", "create", "nightly", "-x", "cron(0 2 * * ? *)", "--tz", "Europe/Berlin",
        "--window", "15", "--overlap", "skip", "--end", "2030-01-01T00:00:00+00:00", "--tag", "ops",
        "--description", "backup", *db, "--", "./backup.sh", "{scheduled_time}",
    )  # fmt: skip
    assert code == 0

    def show() -> dict[str, object]:
        code, out, _ = run(capsys, "schedules", "show", "nightly", "--json", *db)
        assert code == 0
        data: dict[str, object] = json.loads(out)
        return data

    before = show()
    code, out, _ = run(capsys, "schedules", "update", "nightly", "-x", "cron(30 3 * * ? *)", *db)
    assert code == 0 and "updated (expression)" in out and "next due" in out
    after = show()
    assert after["expression"] == "cron(30 3 * * ? *)"
    # the nominal time is 03:30 Berlin; the due time lies somewhere in the 15-minute flexible
    # window after it (spread per schedule and day, so not always "03:3x")
    nominal = datetime.fromisoformat(str(after["next_nominal_at"])).astimezone(ZoneInfo("Europe/Berlin"))
    assert (nominal.hour, nominal.minute) == (3, 30)
    due = datetime.fromisoformat(str(after["next_due_at"]))
    assert nominal <= due < nominal + timedelta(minutes=15)
    assert due.astimezone(ZoneInfo("Europe/Berlin")).isoformat(timespec="seconds")[11:19] in out
    unchanged = ("timezone", "window_minutes", "overlap", "end_at", "tags", "description", "targets", "state")
    assert {k: after[k] for k in unchanged} == {k: before[k] for k in unchanged}

    code, out, _ = run(
        capsys, "schedules", "update", "nightly", "--end", "none", "--tag", "a", "--tag", "b", "--deadline",
        "600", "--overlap", "replace", "--json", *db,
    )  # fmt: skip
    assert code == 0
    data = json.loads(out)
    assert data["end_at"] is None and data["tags"] == ["a", "b"] and data["deadline_seconds"] == 600
    assert (
        data["overlap"] == "REPLACE" and data["window_minutes"] == 15 and data["targets"] == before["targets"]
    )

    # any target flag replaces the targets; --paused also pauses it
    code, out, _ = run(
        capsys, "schedules", "update", "nightly", "--priority", "3", "--paused", *db, "--", "./other.sh"
    )
    assert code == 0 and "paused" in out
    data = show()
    targets: list[dict[str, Any]] = data["targets"]  # type: ignore[assignment]
    assert len(targets) == 1
    assert targets[0]["spec"]["command"] == ["./other.sh"] and targets[0]["priority"] == 3
    assert data["state"] == "PAUSED" and data["expression"] == "cron(30 3 * * ? *)"

    code, _, err = run(capsys, "schedules", "update", "nightly", *db)
    assert code == 2 and "nothing to change" in err
    code, _, err = run(capsys, "schedules", "update", "nightly", "--tz", "Mars/Base", *db)
    assert code == 2 and "timezone" in err
    code, _, err = run(capsys, "schedules", "update", "ghost", "--window", "1", *db)
    assert code == 2 and "ghost" in err
    assert show()["timezone"] == "Europe/Berlin"
