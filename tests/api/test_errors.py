"""Error shapes and limits: problem+json for 400/404/405/409/413/422/429; never a 500 for bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor.api import ApiConfig
from conveyor.app import App
from tests.api.conftest import Live, serve


def _is_problem(answer: object, status: int) -> None:
    from tests.api.conftest import Answer

    assert isinstance(answer, Answer)
    assert answer.status == status, answer.raw
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json
    assert body["status"] == status
    assert body["type"].startswith("urn:conveyor:problem:")
    assert body["title"] and body["detail"]


def test_malformed_json_is_400(live: Live) -> None:
    _is_problem(live.call("POST", "/v1/jobs", raw=b'{"command": ["x"'), 400)
    _is_problem(live.call("POST", "/v1/jobs", raw=b'{"payload": NaN, "command": ["x"]}'), 400)
    _is_problem(live.call("POST", "/v1/jobs", raw=b"\xff\xfe"), 400)


def test_validation_errors_are_422_with_the_field_path(live: Live) -> None:
    answer = live.call("POST", "/v1/jobs", {"command": ["x"], "retry": {"attempts": 99}})
    _is_problem(answer, 422)
    assert answer.json["field"] == "retry.attempts"
    answer = live.call("POST", "/v1/jobs", {"queue": "missing", "command": ["x"]})
    _is_problem(answer, 422)
    assert answer.json["field"] == "queue"
    assert "default" in answer.json["allowed"]
    answer = live.call("POST", "/v1/jobs", {"command": ["x"], "colour": "red"})
    assert answer.json["field"] == "colour"
    answer = live.call("POST", "/v1/jobs", {"command": ["x"], "payload": {"a": "\u0000"}})
    _is_problem(answer, 422)
    assert answer.json["field"] == "payload.a"
    # the same in a UTF-16 body (no "\\u0000" escape in its bytes) and in a batch
    utf16 = json.dumps({"command": ["x"], "payload": {"b": "\u0000"}}, ensure_ascii=False).encode("utf-16")
    answer = live.call("POST", "/v1/jobs", raw=utf16)
    _is_problem(answer, 422)
    assert answer.json["field"] == "payload.b"
    answer = live.call("POST", "/v1/jobs/batch", {"jobs": [{"command": ["x"]}, {"command": ["x\u0000"]}]})
    _is_problem(answer, 422)
    assert answer.json["field"] == "jobs[1].command[0]"
    _is_problem(live.call("POST", "/v1/jobs", {}), 422)  # nothing to run
    _is_problem(live.call("POST", "/v1/jobs", [1, 2]), 422)
    _is_problem(live.call("GET", "/v1/jobs?limit=0"), 422)
    _is_problem(live.call("GET", "/v1/jobs/abc"), 422)
    _is_problem(live.call("GET", "/v1/jobs?state=DONE"), 422)


def test_text_that_no_store_or_answer_can_hold_is_refused_and_nothing_is_written(live: Live) -> None:
    """A lone surrogate escape used to be stored, then make every read of the job (and the job
    list) a 500; an integer of 5,000 digits was a 500 before anything was read."""
    before = live.call("GET", "/v1/jobs").json["jobs"]
    for body, field in [
        (rb'{"command": ["x"], "payload": {"a": "\ud800x"}}', "payload.a"),
        (rb'{"command": ["\udc00"]}', "command[0]"),
        (rb'{"command": ["x"], "payload": {"\ud83d": 1}}', "payload"),
        (rb'{"command": ["x"], "tags": ["ok", "\uDBFF"]}', "tags[1]"),
        (rb'{"name": "sur", "spec": {"command": ["\ud800"]}}', "spec.command[0]"),
    ]:
        path = "/v1/definitions" if b'"spec"' in body else "/v1/jobs"
        answer = live.call("POST", path, raw=body)
        _is_problem(answer, 422)
        assert answer.json["field"] == field, body
        assert "lone UTF-16 surrogate" in answer.json["detail"]
    answer = live.call("POST", "/v1/jobs", raw=b'{"command": ["x"], "priority": ' + b"9" * 5000 + b"}")
    _is_problem(answer, 400)
    assert "more than 4,300 digits" in answer.json["detail"]
    assert live.call("GET", "/v1/jobs").json["jobs"] == before
    # a pair of escapes is one character, kept as it is
    answer = live.call("POST", "/v1/jobs", raw=rb'{"command": ["x"], "payload": "\ud83d\ude00"}')
    assert answer.status == 201 and answer.json["job"]["payload"] == "\U0001f600"


def test_a_time_out_of_range_is_refused_before_anything_is_written(live: Live) -> None:
    before = live.call("GET", "/v1/jobs").json["jobs"]
    for when in ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "9500-01-01T00:00:00Z"]:
        answer = live.call("POST", "/v1/jobs", {"command": ["x"], "run_at": when})
        _is_problem(answer, 422)
        assert (answer.json["field"], answer.json["detail"]) == (
            "run_at",
            f"run_at: {when.replace('Z', '+00:00')} is out of range (allowed: a time from 1900-01-01 to 9000-01-01 UTC, with its offset, e.g. 2026-05-01T12:00:00+00:00)",
        )
    assert live.call("GET", "/v1/jobs").json["jobs"] == before


def test_an_unknown_token_is_401_before_its_body_is_read_and_no_body_means_none(live: Live) -> None:
    for body in [{"jobs": [{"command": "x"}]}, {"priority": 10**9}]:
        answer = live.call("POST", "/v1/jobs/batch", body, token="cvy_unknown")
        _is_problem(answer, 401)
    answer = live.call("POST", "/v1/jobs/batch", raw=b"{not json", token="cvy_unknown")
    _is_problem(answer, 401)
    job = live.call("POST", "/v1/jobs", {"command": ["x"]}).json["job"]
    cancelled = live.call("POST", f"/v1/jobs/{job['id']}/cancel")
    assert cancelled.status == 200
    for raw in [b"{bad", b'{"reason": "x", "ids": [1]}', b"[1]"]:
        answer = live.call("POST", f"/v1/jobs/{job['id']}/retry", raw=raw)
        _is_problem(answer, 400 if raw == b"{bad" else 422)
    assert live.call("GET", f"/v1/jobs/{job['id']}").json["state"] == "CANCELLED"
    assert live.call("POST", f"/v1/jobs/{job['id']}/retry", raw=b" {} ").status == 200


def test_ids_and_numbers_in_paths_and_queries_are_ascii_digits(live: Live) -> None:
    job = live.call("POST", "/v1/jobs", {"command": ["x"]}).json["job"]
    assert live.call("GET", f"/v1/jobs/{job['id']}").status == 200
    for text in ["%EF%BC%91", "%201", "1_0", "+1", "%D9%A1"]:  # full-width 1, " 1", Arabic-Indic 1
        _is_problem(live.call("GET", f"/v1/jobs/{text}"), 422)
        _is_problem(live.call("DELETE", f"/v1/tokens/{text}"), 422)
        _is_problem(live.call("GET", f"/v1/jobs?limit={text}"), 422)
    assert live.call("GET", "/v1/tokens").status == 200  # the admin token still works


def test_the_schema_says_what_is_allowed_and_the_engine_enforces_the_same(live: Live) -> None:
    cases: list[tuple[dict[str, Any], str, str, str]] = [
        (
            {"timeout_seconds": -1},
            "timeout_seconds",
            "-1 must be more than 0",
            "a number more than 0, up to 2592000",
        ),
        (
            {"timeout_seconds": 0},
            "timeout_seconds",
            "0 must be more than 0",
            "a number more than 0, up to 2592000",
        ),
        (
            {"priority": "high"},
            "priority",
            "'high' is not a whole number",
            "a whole number from -1000000 to 1000000",
        ),
        (
            {"priority": 2_000_000},
            "priority",
            "2000000 is above 1000000",
            "a whole number from -1000000 to 1000000",
        ),
        ({"vcpus": 2000}, "vcpus", "2000 is above 1024", "a number more than 0, up to 1024"),
        ({"name": "n" * 300}, "name", "is 300 characters", "1-256 characters"),
    ]
    for body, field, detail, allowed in cases:
        answer = live.call("POST", "/v1/jobs", {"command": ["x"], **body})
        _is_problem(answer, 422)
        assert (answer.json["field"], answer.json["allowed"]) == (field, allowed), body
        assert answer.json["detail"].startswith(f"{field}: {detail}"), answer.json
    schemas = live.call("GET", "/openapi.json").json["components"]["schemas"]
    assert schemas["Submission"]["properties"]["priority"] == {
        "type": "integer", "minimum": -1_000_000, "maximum": 1_000_000,
    }  # fmt: skip


def test_unknown_things_are_404_and_wrong_methods_405(live: Live) -> None:
    answer = live.call("GET", "/v1/jobs/999999")
    _is_problem(answer, 404)
    assert answer.json["kind"] == "job"
    _is_problem(live.call("GET", "/v1/queues/nope"), 404)
    _is_problem(live.call("GET", "/v1/nothing-here"), 404)
    _is_problem(live.call("PATCH", "/v1/jobs"), 405)


def test_a_real_conflict_is_409(live: Live) -> None:
    live.call("POST", "/v1/jobs", {"command": ["true"], "delay_seconds": 600})
    _is_problem(live.call("DELETE", "/v1/queues/default"), 409)


@pytest.fixture
def small(db_url: str, tmp_path: Path) -> Iterator[Live]:
    app = App.open(db_url, blob_dir=tmp_path / "blobs")
    server, thread, port = serve(app, ApiConfig(max_body_bytes=2048, rate_per_second=5, rate_burst=5))
    _, admin = app.tokens.create("admin", ["admin"])
    try:
        yield Live(app, f"http://127.0.0.1:{port}", port, admin)
    finally:
        server.should_exit = True
        thread.join(10)
        app.close()


def test_a_body_over_the_limit_is_413_and_a_token_over_its_rate_is_429(small: Live) -> None:
    big = small.call("POST", "/v1/jobs", {"command": ["x"], "payload": "y" * 5000})
    _is_problem(big, 413)
    other = small.token("admin")
    answers = [small.call("GET", "/v1/queues", token=other).status for _ in range(8)]
    assert answers[:4] == [200] * 4
    assert 429 in answers
    limited = small.call("GET", "/v1/queues", token=other)
    _is_problem(limited, 429)
    assert int(limited.headers["retry-after"]) >= 1
    # the bucket is per token: another token is not limited
    assert small.call("GET", "/v1/queues", token=small.token("read")).status == 200
