"""Bearer tokens and scopes: 401 without a usable token, 403 when the scopes do not cover it."""

from __future__ import annotations

from datetime import timedelta

from conveyor.clock import FrozenClock
from conveyor.engine.tokens import TokenService
from tests.api.conftest import Live


def test_a_v1_call_without_a_token_is_401_problem_json_with_www_authenticate(live: Live) -> None:
    answer = live.call("GET", "/v1/jobs", token=None)
    assert answer.status == 401
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["www-authenticate"].startswith("Bearer")
    body = answer.json
    assert {"type", "title", "status", "detail"} <= set(body)
    assert body["status"] == 401


def test_unknown_malformed_revoked_and_expired_tokens_are_401(live: Live) -> None:
    assert live.call("GET", "/v1/jobs", token="cvy_nope").status == 401
    assert live.call("GET", "/v1/jobs", headers={"Authorization": "Basic abc"}, token=None).status == 401
    token, secret = live.app.tokens.create("gone", ["read"])
    assert live.call("GET", "/v1/jobs", token=secret).status == 200
    assert live.call("DELETE", f"/v1/tokens/{token.id}").json["changed"] is True
    assert live.call("GET", "/v1/jobs", token=secret).status == 401
    # an expired one (created through a service whose clock is an hour behind)
    past = TokenService(live.app.store, FrozenClock(live.app.clock.now() - timedelta(hours=1)))
    _, old = past.create("old", ["read"], timedelta(minutes=5))
    answer = live.call("GET", "/v1/jobs", token=old)
    assert answer.status == 401
    assert "expired" in answer.json["detail"]


def test_read_scope_reads_everything_but_cannot_submit_or_administer(live: Live) -> None:
    reader = live.token("read")
    assert live.call("GET", "/v1/queues", token=reader).status == 200
    assert live.call("GET", "/v1/workers", token=reader).status == 200
    answer = live.call("POST", "/v1/jobs", {"command": ["true"]}, token=reader)
    assert answer.status == 403
    assert answer.headers["content-type"] == "application/problem+json"
    assert live.call("PUT", "/v1/queues/x", {}, token=reader).status == 403
    assert live.call("GET", "/v1/tokens", token=reader).status == 403


def test_submit_scope_is_limited_to_its_queue_glob_and_those_queues_jobs(live: Live) -> None:
    assert live.call("PUT", "/v1/queues/reports-daily", {}).status == 201
    submitter = live.token("submit:reports-*")
    ok = live.call("POST", "/v1/jobs", {"queue": "reports-daily", "command": ["true"]}, token=submitter)
    assert ok.status == 201, ok.json
    job_id = ok.json["job"]["id"]
    assert live.call("GET", f"/v1/jobs/{job_id}", token=submitter).status == 200
    assert live.call("POST", f"/v1/jobs/{job_id}/cancel", token=submitter).status == 200
    denied = live.call("POST", "/v1/jobs", {"queue": "default", "command": ["true"]}, token=submitter)
    assert denied.status == 403
    assert "default" in denied.json["detail"]
    other = live.call("POST", "/v1/jobs", {"command": ["true"]}).json["job"]["id"]
    assert live.call("GET", f"/v1/jobs/{other}", token=submitter).status == 403
    assert live.call("GET", "/v1/jobs", token=submitter).status == 403
    assert live.call("GET", "/v1/jobs?queue=reports-daily", token=submitter).status == 200
    assert live.call("GET", "/v1/queues", token=submitter).status == 403


def test_tokens_are_created_over_the_api_shown_once_and_listed_without_secrets(live: Live) -> None:
    made = live.call(
        "POST", "/v1/tokens", {"name": "ci", "scopes": ["submit:*", "read"], "expires_in_seconds": 3600}
    )
    assert made.status == 201
    secret = made.json["token"]
    assert secret.startswith("cvy_")
    assert made.json["expires_at"] is not None
    assert live.call("GET", "/v1/jobs", token=secret).status == 200
    listed = live.call("GET", "/v1/tokens").json["tokens"]
    assert {t["name"] for t in listed} >= {"admin", "ci"}
    assert all("token" not in t for t in listed)
    bad = live.call("POST", "/v1/tokens", {"scopes": ["root"]})
    assert bad.status == 422
    assert bad.json["field"] == "scopes[0]"


def test_schedule_and_check_scopes_are_accepted(live: Live) -> None:
    made = live.call("POST", "/v1/tokens", {"scopes": ["schedules:write", "checks:write"]})
    assert made.status == 201
    assert made.json["scopes"] == ["schedules:write", "checks:write"]
