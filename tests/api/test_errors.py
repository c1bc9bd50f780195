"""Error shapes and limits: problem+json for 400/404/405/409/413/422/429; never a 500 for bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

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
