"""Every resource's happy path over real HTTP."""

from __future__ import annotations

from tests.api.conftest import Live, wait_state


def test_health_readiness_openapi_and_docs_need_no_token(live: Live) -> None:
    assert live.call("GET", "/healthz", token=None).json == {"status": "ok"}
    ready = live.call("GET", "/readyz", token=None)
    assert ready.status == 200
    assert ready.json["schema_version"] == ready.json["latest_version"]
    doc = live.call("GET", "/openapi.json", token=None).json
    assert doc["openapi"].startswith("3.1")
    assert "/v1/jobs/{job_id}/logs" in doc["paths"]
    page = live.call("GET", "/docs", token=None)
    assert page.status == 200
    assert b"/v1/jobs/batch" in page.raw
    assert b"<script src=" not in page.raw  # offline: no CDN


def test_submit_get_list_filter_and_page_jobs(live: Live) -> None:
    made = live.call(
        "POST", "/v1/jobs", {"command": ["echo", "{who}"], "parameters": {"who": "x"}, "tags": ["t1"]}
    )
    assert made.status == 201
    assert made.headers["location"] == f"/v1/jobs/{made.json['job']['id']}"
    job = made.json["job"]
    assert job["state"] == "RUNNABLE"
    assert job["spec"]["parameters"] == {"who": "x"}
    ids = [job["id"]]
    for i in range(4):
        ids.append(live.call("POST", "/v1/jobs", {"command": ["true"], "priority": i}).json["job"]["id"])
    got = live.call("GET", f"/v1/jobs/{ids[0]}?explain=true").json
    assert got["id"] == ids[0]
    assert "explanation" in got
    page1 = live.call("GET", "/v1/jobs?limit=2").json
    assert [j["id"] for j in page1["jobs"]] == ids[::-1][:2]
    page2 = live.call("GET", f"/v1/jobs?limit=2&before_id={page1['next_before_id']}").json
    assert [j["id"] for j in page2["jobs"]] == ids[::-1][2:4]
    tagged = live.call("GET", "/v1/jobs?tag=t1").json["jobs"]
    assert [j["id"] for j in tagged] == [ids[0]]
    runnable = live.call("GET", "/v1/jobs?state=RUNNABLE,FAILED&queue=default").json["jobs"]
    assert len(runnable) == 5
    assert live.call("GET", "/v1/jobs?created_after=2000-01-01T00:00:00Z").json["jobs"]


def test_batch_submit_is_one_transaction_and_reports_existing(live: Live) -> None:
    body = {"jobs": [{"command": ["true"], "unique_key": "k1"}, {"command": ["true"]}, {"command": ["true"]}]}
    first = live.call("POST", "/v1/jobs/batch", body)
    assert first.status == 201
    assert first.json["created"] == 3
    again = live.call("POST", "/v1/jobs/batch", {"jobs": [{"command": ["true"], "unique_key": "k1"}]})
    assert again.status == 200
    assert again.json["jobs"][0]["existing"] is True
    assert again.json["jobs"][0]["id"] == first.json["jobs"][0]["id"]
    bad = live.call(
        "POST", "/v1/jobs/batch", {"jobs": [{"command": ["true"]}, {"queue": "nope", "command": ["x"]}]}
    )
    assert bad.status == 422
    assert bad.json["field"] == "jobs[1].queue"
    assert len(live.call("GET", "/v1/jobs?limit=100").json["jobs"]) == 3


def test_unique_key_returns_the_existing_job_with_200_and_idempotency_key_too(live: Live) -> None:
    first = live.call("POST", "/v1/jobs", {"command": ["true"], "unique_key": "client:7"})
    again = live.call("POST", "/v1/jobs", {"command": ["true"], "unique_key": "client:7"})
    assert (first.status, again.status) == (201, 200)
    assert again.json["existing"] is True
    assert again.json["job"]["id"] == first.json["job"]["id"]
    a = live.call("POST", "/v1/jobs", {"command": ["true"], "idempotency_key": "req-1"})
    b = live.call("POST", "/v1/jobs", {"command": ["true"], "idempotency_key": "req-1"})
    assert b.status == 200
    assert b.json["job"]["id"] == a.json["job"]["id"]


def test_cancel_retry_terminate_and_attempts(live: Live) -> None:
    job_id = live.call("POST", "/v1/jobs", {"command": ["true"], "delay_seconds": 3600}).json["job"]["id"]
    cancelled = live.call("POST", f"/v1/jobs/{job_id}/cancel", {"reason": "not needed"})
    assert cancelled.json["changed"] is True
    assert cancelled.json["job"]["state"] == "CANCELLED"
    assert live.call("POST", f"/v1/jobs/{job_id}/cancel").json["changed"] is False
    retried = live.call("POST", f"/v1/jobs/{job_id}/retry")
    assert retried.status == 200
    assert retried.json["job"]["state"] in ("SUBMITTED", "RUNNABLE")
    live.worker()
    sleeper = live.call("POST", "/v1/jobs", {"command": ["sleep", "30"]}).json["job"]["id"]
    wait_state(live, sleeper, "RUNNING")
    assert live.call("POST", f"/v1/jobs/{sleeper}/terminate", {"reason": "stop"}).json["changed"] is True
    done = wait_state(live, sleeper, "FAILED", "CANCELLED")
    assert done["state"] == "FAILED"
    attempts = live.call("GET", f"/v1/jobs/{sleeper}/attempts").json["attempts"]
    assert len(attempts) == 1
    assert attempts[0]["number"] == 1


def test_queues_environments_definitions_and_workers(live: Live) -> None:
    env = live.call("PUT", "/v1/environments/gpu", {"max_vcpus": 8, "max_memory_mb": 4096})
    assert env.status == 201
    assert live.call("PUT", "/v1/environments/gpu", {"enabled": False}).json == {
        "name": "gpu",
        "max_vcpus": 8.0,
        "max_memory_mb": 4096,
        "enabled": False,
    }
    assert live.call("GET", "/v1/environments/gpu").json["usage"]["running"] == 0
    assert {e["name"] for e in live.call("GET", "/v1/environments").json["environments"]} == {
        "default",
        "gpu",
    }
    queue = live.call("PUT", "/v1/queues/speedy", {"priority": 10, "environments": ["gpu", "default"]})
    assert queue.status == 201
    assert live.call("PUT", "/v1/queues/speedy", {"priority": 20}).json["environments"] == ["gpu", "default"]
    assert live.call("GET", "/v1/queues/speedy").json["priority"] == 20
    names = [q["name"] for q in live.call("GET", "/v1/queues").json["queues"]]
    assert names[0] == "speedy"
    spec = {"command": ["echo", "{day}"], "parameters": {"day": "mon"}, "retry": {"attempts": 3}}
    made = live.call("POST", "/v1/definitions", {"name": "report", "spec": spec})
    assert made.status == 201
    assert made.json["revision"] == 1
    same = live.call("POST", "/v1/definitions", {"name": "report", "spec": spec})
    assert (same.status, same.json["created"]) == (200, False)
    assert live.call("GET", "/v1/definitions/report").json["spec"]["retry"]["attempts"] == 3
    job = live.call(
        "POST", "/v1/jobs", {"queue": "speedy", "definition": "report", "parameters": {"day": "tue"}}
    )
    assert job.status == 201, job.json
    assert live.call("GET", "/v1/definitions").json["definitions"][0]["name"] == "report"
    assert live.call("DELETE", "/v1/definitions/report").status == 204
    assert live.call("GET", "/v1/definitions/report").json["active"] is False  # shown, as inactive
    assert live.call("DELETE", "/v1/queues/speedy").status == 409  # it still has a job
    live.call("POST", f"/v1/jobs/{job.json['job']['id']}/cancel")
    assert live.call("DELETE", "/v1/queues/speedy").status == 204
    assert live.call("DELETE", "/v1/environments/gpu").status == 204
    live.worker()
    workers = live.call("GET", "/v1/workers")
    assert workers.status == 200


def test_logs_of_a_finished_job_and_follow_streams_until_the_job_ends(live: Live) -> None:
    live.worker()
    script = "import time, sys\nfor i in range(3):\n    print('line', i, flush=True)\n    time.sleep(0.4)\n"
    import sys

    job_id = live.call("POST", "/v1/jobs", {"command": [sys.executable, "-c", script]}).json["job"]["id"]
    wait_state(live, job_id, "RUNNING", "SUCCEEDED")
    import http.client
    import time

    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=30)
    started = time.monotonic()
    conn.request(
        "GET", f"/v1/jobs/{job_id}/logs?follow=true", headers={"Authorization": f"Bearer {live.admin}"}
    )
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.getheader("transfer-encoding") == "chunked"
    chunks = []
    while True:
        chunk = resp.read1(65536)
        if not chunk:
            break
        chunks.append((time.monotonic() - started, chunk))
    conn.close()
    text = b"".join(c for _, c in chunks).decode()
    assert text == "line 0\nline 1\nline 2\n"
    assert len(chunks) >= 2  # it arrived in pieces while the job ran
    assert live.call("GET", f"/v1/jobs/{job_id}").json["state"] == "SUCCEEDED"
    assert live.call("GET", f"/v1/jobs/{job_id}/logs").raw == b"line 0\nline 1\nline 2\n"


def test_bulk_cancel_retry_and_terminate_by_filter_and_by_ids(live: Live) -> None:
    assert live.call("PUT", "/v1/queues/reports", {}).status == 201
    ids = [
        live.call("POST", "/v1/jobs", {"queue": "reports", "command": ["true"], "delay_seconds": 3600}).json[
            "job"
        ]["id"]
        for _ in range(3)
    ]
    other = live.call("POST", "/v1/jobs", {"command": ["true"], "delay_seconds": 3600}).json["job"]["id"]
    dry = live.call("POST", "/v1/jobs/cancel", {"queue": "reports", "dry_run": True})
    assert dry.status == 200
    assert dry.json == {
        "action": "cancel",
        "dry_run": True,
        "matched": 3,
        "changed": sorted(ids, reverse=True),
        "unchanged": [],
        "skipped": [],
    }
    done = live.call("POST", "/v1/jobs/cancel", {"queue": "reports", "reason": "bad deploy"}).json
    assert done["changed"] == sorted(ids, reverse=True)
    assert live.call("GET", f"/v1/jobs/{ids[0]}").json["status_reason"] == "bad deploy"
    assert live.call("GET", f"/v1/jobs/{other}").json["state"] == "SUBMITTED"
    retried = live.call("POST", "/v1/jobs/retry", {"ids": [ids[0], 999_999], "dry_run": False}).json
    assert retried["changed"] == [ids[0]]
    assert retried["skipped"] == [{"id": 999_999, "reason": "job 999999 does not exist"}]
    terminated = live.call("POST", "/v1/jobs/terminate", {"ids": [other]}).json
    assert terminated["changed"] == [other]
    assert live.call("GET", f"/v1/jobs/{other}").json["state"] == "FAILED"


def test_bad_bulk_requests_are_problems_naming_the_field(live: Live) -> None:
    for body, field in (
        ({}, "filter"),
        ({"ids": [1], "queue": "default"}, "ids"),
        ({"states": ["RUNNING"]}, "states"),
        ({"all": True, "reason": 7}, "reason"),
        ({"ids": [0]}, "ids[0]"),
        ({"everything": True}, ""),
    ):
        answer = live.call("POST", "/v1/jobs/cancel", body)
        assert answer.status in (400, 422), (body, answer.json)
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json.get("field", "") == field or field in answer.json["detail"], (body, answer.json)
    assert live.call("POST", "/v1/jobs/retry", {"all": True, "reason": "x"}).status in (400, 422)
    assert live.call("POST", "/v1/jobs/cancel", {"queue": "nope"}).status == 404


def test_bulk_actions_of_a_submit_token_stay_within_its_queues(live: Live) -> None:
    assert live.call("PUT", "/v1/queues/reports-daily", {}).status == 201
    mine = live.call("POST", "/v1/jobs", {"queue": "reports-daily", "command": ["true"], "delay_seconds": 60})
    theirs = live.call("POST", "/v1/jobs", {"command": ["true"], "delay_seconds": 60}).json["job"]["id"]
    submitter = live.token("submit:reports-*")
    assert live.call("POST", "/v1/jobs/cancel", {"all": True}, token=submitter).status == 403
    assert live.call("POST", "/v1/jobs/cancel", {"queue": "default"}, token=submitter).status == 403
    denied = live.call("POST", "/v1/jobs/cancel", {"ids": [mine.json["job"]["id"], theirs]}, token=submitter)
    assert denied.status == 403 and f"job {theirs}" in denied.json["detail"]
    assert "default" not in denied.json["detail"]  # another queue's name is not the token's to learn
    assert live.call("GET", f"/v1/jobs/{theirs}").json["state"] == "SUBMITTED"
    allowed = live.call("POST", "/v1/jobs/cancel", {"queue": "reports-daily"}, token=submitter)
    assert allowed.status == 200 and allowed.json["changed"] == [mine.json["job"]["id"]]
    assert live.call("POST", "/v1/jobs/cancel", {"queue": "default"}, token=live.token("read")).status == 403
