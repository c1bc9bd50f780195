"""Deactivated definitions and queues in use, over real HTTP (both backends)."""

from __future__ import annotations

from tests.api.conftest import Live


def test_a_deactivated_definition_is_shown_refused_and_deactivates_again(live: Live) -> None:
    spec = {"command": ["echo", "{src}"]}
    assert live.call("POST", "/v1/definitions", {"name": "resize", "spec": spec}).status == 201
    assert live.call("DELETE", "/v1/definitions/resize").status == 204
    assert live.call("DELETE", "/v1/definitions/resize").status == 204  # idempotent
    assert live.call("DELETE", "/v1/definitions/nope").status == 404
    shown = live.call("GET", "/v1/definitions/resize")
    assert shown.status == 200 and (shown.json["revision"], shown.json["active"]) == (1, False)
    for pinned in ({}, {"definition_revision": 1}):
        job = live.call("POST", "/v1/jobs", {"definition": "resize", "parameters": {"src": "a"}, **pinned})
        assert job.status == 422, job.json
        assert "is deactivated" in job.json["detail"]


def test_a_queue_a_definition_follows_up_to_is_not_deleted(live: Live) -> None:
    assert live.call("PUT", "/v1/queues/emails", {}).status == 201
    spec = {"function": "m:f", "follow_up_queues": ["emails"]}
    assert live.call("POST", "/v1/definitions", {"name": "d", "spec": spec}).status == 201
    refused = live.call("DELETE", "/v1/queues/emails")
    assert refused.status == 409
    assert refused.json["detail"] == "queue 'emails' is used by definition(s) d; remove it there first"
    assert live.call("DELETE", "/v1/definitions/d").status == 204
    assert live.call("DELETE", "/v1/queues/emails").status == 204
