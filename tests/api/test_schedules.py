"""/v1/schedules: create, read, next fire times, update, pause/resume, history, delete; scopes."""

from __future__ import annotations

from tests.api.conftest import Live


def test_schedule_crud_pause_resume_history_and_next_fires(live: Live) -> None:
    body = {
        "name": "nightly",
        "expression": "cron(0 3 * * ? *)",
        "timezone": "Europe/Paris",
        "targets": [{"command": ["echo", "report"]}],
        "overlap": "SKIP",
    }
    made = live.call("POST", "/v1/schedules", body)
    assert made.status == 201, made.json
    assert made.json["state"] == "ACTIVE"
    assert made.json["next_due_at"] is not None
    assert live.call("POST", "/v1/schedules", body).status == 409
    fires = live.call("GET", "/v1/schedules/nightly/next?count=3").json["fires"]
    assert len(fires) == 3
    assert live.call("GET", "/v1/schedules").json["schedules"][0]["name"] == "nightly"
    changed = live.call("PATCH", "/v1/schedules/nightly", {"expression": "rate(5 minutes)"})
    assert changed.status == 200, changed.json
    assert changed.json["expression"].startswith("rate(")
    paused = live.call("POST", "/v1/schedules/nightly/pause").json
    assert (paused["state"], paused["changed"]) == ("PAUSED", True)
    assert live.call("POST", "/v1/schedules/nightly/pause").json["changed"] is False
    assert live.call("POST", "/v1/schedules/nightly/resume").json["state"] == "ACTIVE"
    assert live.call("GET", "/v1/schedules/nightly/history").json == {"history": []}
    assert live.call("DELETE", "/v1/schedules/nightly").status == 204
    assert live.call("GET", "/v1/schedules/nightly").status == 404


def test_schedule_errors_name_the_field_and_scopes_are_enforced(live: Live) -> None:
    bad = live.call(
        "POST",
        "/v1/schedules",
        {"name": "x", "expression": "cron(99 * * * ? *)", "targets": [{"command": ["true"]}]},
    )
    assert bad.status == 422
    assert bad.json["field"].startswith("expression")
    bad_target = live.call(
        "POST",
        "/v1/schedules",
        {"name": "x", "expression": "rate(1 hour)", "targets": [{"queue": "nope", "command": ["true"]}]},
    )
    assert bad_target.status == 422
    assert bad_target.json["field"].startswith("targets[0]")
    writer = live.token("schedules:write")
    body = {"name": "y", "expression": "rate(1 hour)", "targets": [{"command": ["true"]}]}
    assert live.call("POST", "/v1/schedules", body, token=writer).status == 403  # may not submit to default
    both = live.token("schedules:write", "submit:default")
    assert live.call("POST", "/v1/schedules", body, token=both).status == 201
    assert live.call("POST", "/v1/schedules", {**body, "name": "z"}, token=live.token("read")).status == 403
