"""A job's history: GET /v1/jobs/{id}/events, and ``client.events`` over HTTP and on the database."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import conveyor
from conveyor import errors
from conveyor.client import Client
from tests.api.conftest import Live

LATER: dict[str, Any] = {"command": ["true"], "delay_seconds": 600}


def _changes(events: list[dict[str, Any]]) -> list[tuple[str | None, str]]:
    return [(e["data"].get("from"), e["data"]["to"]) for e in events if e["type"] == "job.state"]


def test_job_events_route_pages_a_jobs_history_as_reading_the_job_is_authorised(live: Live) -> None:
    job_id = live.call("POST", "/v1/jobs", LATER).json["job"]["id"]
    live.call("POST", f"/v1/jobs/{job_id}/cancel", {"reason": "not today"})
    live.call("POST", f"/v1/jobs/{job_id}/retry")
    answer = live.call("GET", f"/v1/jobs/{job_id}/events")
    assert answer.status == 200, answer.raw
    events = answer.json["events"]
    assert _changes(events) == [(None, "SUBMITTED"), ("SUBMITTED", "CANCELLED"), ("CANCELLED", "RUNNABLE")]
    assert events[1]["data"]["reason"] == "not today" and events[1]["at"].endswith("+00:00")
    assert answer.json["next_after_id"] is None
    first = live.call("GET", f"/v1/jobs/{job_id}/events?limit=2").json
    assert first["events"] == events[:2] and first["next_after_id"] == events[1]["id"]
    rest = live.call("GET", f"/v1/jobs/{job_id}/events?after_id={first['next_after_id']}&limit=2").json
    assert rest == {"events": events[2:], "next_after_id": None}
    # an unknown job: what GET /v1/jobs/{id} answers
    unknown = live.call("GET", "/v1/jobs/987654/events")
    assert unknown.status == 404 and unknown.json == live.call("GET", "/v1/jobs/987654").json
    assert live.call("GET", f"/v1/jobs/{job_id}/events?limit=0").json["field"] == "limit"
    # read as the job is: a reader may, a submit token of another queue may not
    assert live.call("GET", f"/v1/jobs/{job_id}/events", token=live.token("read")).status == 200
    other = live.token("submit:reports-*")
    assert live.call("GET", f"/v1/jobs/{job_id}", token=other).status == 403
    assert live.call("GET", f"/v1/jobs/{job_id}/events", token=other).status == 403
    assert live.call("GET", f"/v1/jobs/{job_id}/events", token=None).status == 401
    doc = live.call("GET", "/openapi.json").json
    assert doc["paths"]["/v1/jobs/{job_id}/events"]["get"]["operationId"] == "job_events"


def test_client_events_give_the_same_history_on_both_backends(client: Client) -> None:
    handle = client.submit(**LATER)
    client.cancel(handle.id)
    page = client.events(handle.id)
    assert _changes(page["events"]) == [(None, "SUBMITTED"), ("SUBMITTED", "CANCELLED")]
    assert page["events"][-1]["data"]["reason"] == "cancelled by user"
    assert page["next_after_id"] is None
    first = client.events(handle.id, limit=1)
    assert first["events"] == page["events"][:1]
    assert client.events(handle.id, after_id=first["next_after_id"])["events"] == page["events"][1:]
    with pytest.raises(errors.NotFound):
        client.events(987654)
    with pytest.raises(errors.ValidationError) as bad:
        client.events(handle.id, limit=0)
    assert bad.value.field == "limit"


def test_async_client_events(live: Live) -> None:
    async def main() -> list[tuple[str | None, str]]:
        async with conveyor.AsyncClient(live.url, live.admin) as ac:
            handle = await ac.submit(**LATER)
            await ac.cancel(handle.id)
            return _changes((await ac.events(handle.id))["events"])

    assert asyncio.run(main()) == [(None, "SUBMITTED"), ("SUBMITTED", "CANCELLED")]
