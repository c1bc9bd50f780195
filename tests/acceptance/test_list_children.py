"""Listing jobs when array children match: an array job waits (PENDING) while its children
are RUNNABLE, so ``jobs list --state RUNNABLE`` lists no array job. Children stay out of a
listing unless asked for (``--children``, ``children=true``, ``children=True``; ``--array ID``
for one array job's), as the bulk actions select; the table says when some were left out,
and ``--json`` stays exactly what it was."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conveyor import errors
from conveyor.client import Client

from .helpers import call, conveyor, ok, ok_json, start_server, stop_server

HINT = "array children"


def _ids(listed: list[dict[str, Any]]) -> list[int]:
    return [int(j["id"]) for j in listed]


def _table_ids(out: str) -> list[int]:
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["ID", "STATE"], out
    return [int(line.split()[0]) for line in lines[1:] if line != "(none)"]


def test_jobs_list_says_when_array_children_match_and_lists_them_with_children(
    db_url: str, tmp_path: Path
) -> None:
    db = db_url
    ok("queues", "create", "other", db=db, cwd=tmp_path)
    old = ok_json("submit", "--queue", "other", "--", "true", db=db, cwd=tmp_path)["id"]
    parent = ok_json("submit", "--array-size", "3", "--", "true", db=db, cwd=tmp_path)["id"]
    new = ok_json("submit", "--queue", "other", "--", "true", db=db, cwd=tmp_path)["id"]
    kids = sorted(_ids(ok_json("jobs", "list", "--array", str(parent), db=db, cwd=tmp_path)), reverse=True)
    assert len(kids) == 3 and old < parent < min(kids) and max(kids) < new

    # the array job is PENDING: the table says its RUNNABLE children were left out
    done = conveyor("jobs", "list", "--state", "RUNNABLE", db=db, cwd=tmp_path)
    assert done.returncode == 0 and _table_ids(done.stdout) == [new, old]
    [hint] = done.stderr.splitlines()
    assert hint.startswith("conveyor: ") and HINT in hint and "--children" in hint
    # only children match: "(none)" no longer stands alone
    done = conveyor("jobs", "list", "--state", "RUNNABLE", "--queue", "default", db=db, cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.splitlines()[1:] == ["(none)"]
    assert HINT in done.stderr

    # --json is what it was: no children, nothing on stderr
    done = conveyor("jobs", "list", "--state", "RUNNABLE", "--json", db=db, cwd=tmp_path)
    assert done.returncode == 0 and done.stderr == ""
    assert _ids(json.loads(done.stdout)) == [new, old]
    assert _ids(ok_json("jobs", "list", db=db, cwd=tmp_path)) == [new, parent, old]

    # --children lists them, newest first, with the other jobs
    runnable = ok_json("jobs", "list", "--state", "RUNNABLE", "--children", db=db, cwd=tmp_path)
    assert _ids(runnable) == [new, *kids, old]
    assert {j["array_parent_id"] for j in runnable[1:4]} == {parent}
    assert _ids(ok_json("jobs", "list", "--children", db=db, cwd=tmp_path)) == [new, *kids, parent, old]
    done = conveyor("jobs", "list", "--state", "RUNNABLE", "--children", db=db, cwd=tmp_path)
    assert _table_ids(done.stdout) == [new, *kids, old] and done.stderr == ""
    assert "[0]" in done.stdout and "[2]" in done.stdout

    # no hint where no child is left out: the array job itself, one array's children
    done = conveyor("jobs", "list", "--state", "PENDING", db=db, cwd=tmp_path)
    assert _table_ids(done.stdout) == [parent] and done.stderr == ""
    done = conveyor("jobs", "list", "--state", "RUNNABLE", "--array", str(parent), db=db, cwd=tmp_path)
    assert _table_ids(done.stdout) == kids and done.stderr == ""
    assert conveyor("jobs", "list", "--state", "FAILED", db=db, cwd=tmp_path).stderr == ""
    assert conveyor("jobs", "list", db=db, cwd=tmp_path).stderr == ""

    # a full page says so only for children among the jobs it spans
    done = conveyor("jobs", "list", "--state", "RUNNABLE", "--limit", "1", db=db, cwd=tmp_path)
    assert _table_ids(done.stdout) == [new] and done.stderr == ""
    done = conveyor("jobs", "list", "--state", "RUNNABLE", "--limit", "2", db=db, cwd=tmp_path)
    assert _table_ids(done.stdout) == [new, old] and HINT in done.stderr
    done = conveyor(
        "jobs", "list", "--state", "RUNNABLE", "--before", str(new), "--limit", "1", db=db, cwd=tmp_path
    )
    assert _table_ids(done.stdout) == [old] and HINT in done.stderr
    assert "--children" in ok("jobs", "list", "--help", db=None, cwd=tmp_path)


def test_http_and_sdk_list_array_children_only_when_asked(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'conveyor.db'}"
    proc, port, log = start_server(tmp_path, db, "--no-worker", "--no-scheduler", "--log-level", "WARNING")
    try:
        made = conveyor("tokens", "create", "--scope", "admin", db=db, cwd=tmp_path)
        assert made.returncode == 0, made.stderr
        token = made.stdout.strip()
        status, body = call(port, "POST", "/v1/jobs", token, {"command": ["true"], "array_size": 2})
        assert status == 201, body
        parent = body["job"]["id"]
        status, page = call(port, "GET", "/v1/jobs?state=RUNNABLE", token)
        assert status == 200 and page == {"jobs": [], "next_before_id": None}
        status, page = call(port, "GET", "/v1/jobs?state=RUNNABLE&children=true", token)
        assert status == 200 and {j["array_parent_id"] for j in page["jobs"]} == {parent}
        kids = _ids(page["jobs"])
        assert len(kids) == 2
        status, page = call(port, "GET", "/v1/jobs?children=true&limit=2", token)
        assert _ids(page["jobs"]) == kids and page["next_before_id"] == kids[-1]
        status, page = call(port, "GET", "/v1/jobs?children=false", token)
        assert _ids(page["jobs"]) == [parent]
        status, problem = call(port, "GET", "/v1/jobs?children=maybe", token)
        assert status == 422 and problem["field"] == "children"

        over_http = Client(f"http://127.0.0.1:{port}", token)
        local = Client.from_database(db, blob_dir=str(tmp_path / "blobs"))
        try:
            for client in (over_http, local):
                assert client.jobs(state="RUNNABLE")["jobs"] == []
                assert _ids(client.jobs(state="RUNNABLE", children=True)["jobs"]) == kids
                assert _ids(client.jobs(children=True)["jobs"]) == [*kids, parent]
                assert _ids(client.jobs(array_parent_id=parent)["jobs"]) == kids
                assert _ids(client.jobs()["jobs"]) == [parent]
                with pytest.raises(errors.ValidationError) as exc:
                    client.jobs(children="yes")  # type: ignore[arg-type]
                assert exc.value.field == "children"
        finally:
            over_http.close()
            local.close()
    finally:
        stop_server(proc)
    assert proc.returncode == 0, log.read_text()
