"""Bulk actions and job listings take and refuse alike over HTTP and on the database.

As ``test_transport_parity``: each selection or filter goes through a real server and
straight to the database (``LocalBackend``), on both backends; both must answer the same, or
refuse naming the same field, reason and allowed values. A listing's query string, sent as
text, reads as the SDK's typed value does. A job state is taken in any case of its ASCII
letters, as every other choice (``validate.canonical``)."""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import quote

import pytest

from conveyor import errors
from conveyor.client import Client
from conveyor.client.backends import raise_problem
from conveyor.engine import validate
from conveyor.engine.jobs import SubmitRequest
from tests.api.conftest import Live
from tests.api.test_transport_parity import NUL, TEMPLATES, Refused, check, compare, outcome

STATES = ", ".join(validate.JOB_STATES)
NAME = "1-128 characters: letters, digits, _ . -, starting with a letter or digit"
JOB_ID = "a whole number from 1 to 4611686018427387904"


def _bulk(c: Client, action: str, selection: dict[str, Any]) -> dict[str, Any]:
    sel = dict(selection)
    ids = sel.pop("ids", ())
    return {"cancel": c.cancel_many, "terminate": c.terminate_many, "retry": c.retry_many}[action](ids, **sel)


# (action, selection, refusal): the members of the BulkStop/BulkRetry schema, in its words
BULK_REFUSALS: list[tuple[str, dict[str, Any], Refused]] = [
    # one state per item, as the schema has it: never a comma-separated list in one string
    (
        "cancel",
        {"states": ["RUNNABLE,PENDING"]},
        ("states[0]", "'RUNNABLE,PENDING' is not a valid choice", STATES),
    ),
    ("cancel", {"states": ["runnable", "done"]}, ("states[1]", "'done' is not a valid choice", STATES)),
    ("retry", {"states": ["fa\u0131led"]}, ("states[0]", "'fa\u0131led' is not a valid choice", STATES)),
    ("cancel", {"states": [5]}, ("states[0]", "5 is not a string", STATES)),
    ("cancel", {"states": 5}, ("states", "5 is not a list", "a list of strings")),
    ("cancel", {"states": ["RUNNABLE"] * 11}, ("states", "has 11 items", "at most 10 items")),
    # a state in any case, then the action's own states
    (
        "cancel",
        {"states": ["running"]},
        ("states", "cancel does not apply to RUNNING jobs", "SUBMITTED, PENDING, RUNNABLE"),
    ),
    (
        "retry",
        {"states": ["Runnable"]},
        ("states", "retry does not apply to RUNNABLE jobs", "FAILED, CANCELLED"),
    ),
    # the queue is a name: on the database a NUL or an empty name was an unknown queue
    ("cancel", {"queue": "q\x00"}, ("queue", "contains a NUL character", NUL)),
    ("cancel", {"queue": ""}, ("queue", "is 0 characters", "1-128 characters")),
    ("cancel", {"queue": "q" * 129}, ("queue", "is 129 characters", "1-128 characters")),
    ("cancel", {"queue": 5}, ("queue", "5 is not a string", "a string of 1-128 characters")),
    ("terminate", {"queue": "a b"}, ("queue", "'a b' is not a valid name", NAME)),
    ("cancel", {"tag": "t\x00"}, ("tag", "contains a NUL character", NUL)),
    ("cancel", {"tag": 5}, ("tag", "5 is not a string", "a string of 1-128 characters")),
    ("cancel", {"tag": ""}, ("tag", "is 0 characters", "1-128 characters")),
    # listed ids: named at the item, counted as the schema counts
    ("cancel", {"ids": ["5"]}, ("ids[0]", "'5' is not a whole number", JOB_ID)),
    ("cancel", {"ids": [1, True]}, ("ids[1]", "true is not a whole number", JOB_ID)),
    ("retry", {"ids": [1.0]}, ("ids[0]", "1.0 is not a whole number", JOB_ID)),
    # a job id of the API's range (on the database 0 and 2**70 were skipped as unknown jobs)
    ("cancel", {"ids": [5, 0]}, ("ids[1]", "0 is below 1", JOB_ID)),
    ("terminate", {"ids": [2**70]}, ("ids[0]", f"{2**70} is above 4611686018427387904", JOB_ID)),
    ("cancel", {"ids": list(range(1, 100_002))}, ("ids", "has 100,001 items", "at most 100,000 items")),
    (
        "cancel",
        {"ids": [1], "queue": "default"},
        ("ids", "cannot be given with a filter", "ids, or a filter"),
    ),
    ("cancel", {"all": "yes"}, ("all", "'yes' is not true or false", "true, false")),
]


@pytest.mark.parametrize(
    ("action", "selection", "expected"), BULK_REFUSALS, ids=[str(i) for i in range(len(BULK_REFUSALS))]
)
def test_a_bulk_selection_is_refused_alike_over_http_and_on_the_database(
    both: tuple[Client, Client], action: str, selection: dict[str, Any], expected: Refused
) -> None:
    check(compare(both, lambda c, _: _bulk(c, action, selection)), expected)


def test_a_bulk_filter_takes_states_in_any_case_alike_over_http_and_on_the_database(
    live: Live, both: tuple[Client, Client]
) -> None:
    waiting = live.app.jobs.submit(SubmitRequest(command=["true"], tags=["t"])).job.id
    cancelled = live.app.jobs.submit(SubmitRequest(command=["true"])).job.id
    live.app.jobs.cancel(cancelled)

    def dry(action: str, **selection: Any) -> dict[str, Any]:
        got = compare(both, lambda c, _: _bulk(c, action, {**selection, "dry_run": True}))
        assert got[0] == "accepted", got
        return {k: got[1][k] for k in ("matched", "changed", "skipped")}

    assert dry("cancel", states=["runnable", "Pending"]) == {
        "matched": 1,
        "changed": [waiting],
        "skipped": [],
    }
    assert dry("retry", states=["cancelled"], queue="default") == {
        "matched": 1,
        "changed": [cancelled],
        "skipped": [],
    }
    assert dry("terminate", states=("RUNNABLE",), tag="t")["changed"] == [waiting]
    assert dry("cancel", ids=[999_999, waiting]) == {
        "matched": 1,
        "changed": [waiting],
        "skipped": [{"id": 999_999, "reason": "job 999999 does not exist"}],
    }
    for c in both:
        with pytest.raises(errors.NotFound) as caught:
            c.cancel_many(queue="nope")
        assert str(caught.value) == "queue 'nope' does not exist"


# -- listing -------------------------------------------------------------------------------------
ISO = validate.ISO_TIME
# (the SDK's filters, refusal)
LIST_REFUSALS: list[tuple[dict[str, Any], Refused]] = [
    ({"state": "done"}, ("state", "'done' is not a valid choice", STATES)),
    ({"state": "RUNNABLE,x"}, ("state", "'x' is not a valid choice", STATES)),
    ({"state": ["runnable", "fa\u0131led"]}, ("state", "'fa\u0131led' is not a valid choice", STATES)),
    ({"state": 5}, ("state", "5 is not a string", STATES)),
    ({"state": [None]}, ("state", "null is not a string", STATES)),
    # on the database these were taken (PostgreSQL: a driver error), over HTTP worded apart
    ({"queue": "q\x00"}, ("queue", "contains a NUL character", NUL)),
    ({"queue": "q" * 513}, ("queue", "is 513 characters", "at most 512 characters")),
    ({"queue": 5}, ("queue", "5 is not a string", "a string of at most 512 characters")),
    ({"tag": "t\x00"}, ("tag", "contains a NUL character", NUL)),
    ({"tag": "t" * 129}, ("tag", "is 129 characters", "at most 128 characters")),
    # over HTTP "0 is out of range (allowed: 1..1000)", and "5" taken
    ({"limit": 0}, ("limit", "0 is below 1", "a whole number from 1 to 1000")),
    ({"limit": 1001}, ("limit", "1001 is above 1000", "a whole number from 1 to 1000")),
    ({"limit": "5"}, ("limit", "'5' is not a whole number", "a whole number from 1 to 1000")),
    ({"limit": True}, ("limit", "true is not a whole number", "a whole number from 1 to 1000")),
    ({"before_id": 0}, ("before_id", "0 is below 1", JOB_ID)),
    ({"before_id": "5"}, ("before_id", "'5' is not a whole number", JOB_ID)),
    (
        {"array_parent_id": 2**62 + 1},
        ("array_parent_id", "4611686018427387905 is above 4611686018427387904", JOB_ID),
    ),
    ({"children": "yes"}, ("children", "'yes' is not true or false", "true, false")),
    # the created_* filters were HTTP's alone
    (
        {"created_after": "2026-01-01T00:00:00"},
        ("created_after", "'2026-01-01T00:00:00' has no UTC offset", ISO),
    ),
    ({"created_before": "soon"}, ("created_before", "'soon' is not an ISO-8601 time", ISO)),
    ({"created_after": 5}, ("created_after", "5 is not a string", ISO)),
    ({"created_after": "t" * 65}, ("created_after", "is 65 characters", "at most 64 characters")),
    (
        {"created_before": "1800-01-01T00:00:00+00:00"},
        ("created_before", "1800-01-01T00:00:00+00:00 is out of range", validate.TIME_RANGE),
    ),
]


@pytest.mark.parametrize(
    ("query", "expected"), LIST_REFUSALS, ids=[str(i) for i in range(len(LIST_REFUSALS))]
)
def test_a_listing_filter_is_refused_alike_over_http_and_on_the_database(
    both: tuple[Client, Client], query: dict[str, Any], expected: Refused
) -> None:
    check(compare(both, functools.partial(_listed, query)), expected)


def _listed(query: dict[str, Any], c: Client, _: str) -> dict[str, Any]:
    return c.jobs(**query)


def _ids(page: dict[str, Any]) -> list[int]:
    return [j["id"] for j in page["jobs"]]


def test_listing_filters_select_alike_and_states_are_taken_in_any_case(
    live: Live, both: tuple[Client, Client]
) -> None:
    waiting = live.app.jobs.submit(SubmitRequest(command=["true"])).job.id
    cancelled = live.app.jobs.submit(SubmitRequest(command=["true"])).job.id
    live.app.jobs.cancel(cancelled)
    cases: list[tuple[dict[str, Any], list[int]]] = [
        ({"state": "runnable"}, [waiting]),
        ({"state": "Runnable, cancelled"}, [cancelled, waiting]),
        ({"state": ["runnable", "CANCELLED"]}, [cancelled, waiting]),
        ({"state": ""}, [cancelled, waiting]),  # no filter, as ?state= is
        ({"state": []}, [cancelled, waiting]),
        ({"created_after": "2000-01-01T00:00:00+00:00"}, [cancelled, waiting]),
        ({"created_before": "2000-01-01T00:00:00+00:00"}, []),
        ({"limit": 1}, [cancelled]),
        ({"before_id": cancelled}, [waiting]),
    ]
    for query, expected in cases:
        got = compare(both, functools.partial(_listed, query))
        assert got[0] == "accepted" and _ids(got[1]) == expected, (query, got)


# (the query string of GET /v1/jobs, the same filters as the SDK gives them)
QUERIES: list[tuple[str, dict[str, Any]]] = [
    ("limit=0", {"limit": 0}),
    ("limit=abc", {"limit": "abc"}),
    ("limit=1.0", {"limit": "1.0"}),
    ("limit=" + "9" * 40, {"limit": int("9" * 40)}),
    ("before_id=0", {"before_id": 0}),
    ("array_parent_id=4611686018427387905", {"array_parent_id": 2**62 + 1}),
    ("state=done", {"state": "done"}),
    ("state=runnable&state=x", {"state": ["runnable", "x"]}),
    ("state=runnable,PENDING", {"state": "runnable,PENDING"}),
    ("state=", {"state": ""}),
    ("limit=&before_id=", {}),
    ("queue=q%00", {"queue": "q\x00"}),
    ("queue=" + "q" * 513, {"queue": "q" * 513}),
    ("tag=" + "t" * 129, {"tag": "t" * 129}),
    ("children=maybe", {"children": "maybe"}),
    ("children=yes", {"children": True}),
    ("created_after=" + quote("2026-01-01T00:00:00"), {"created_after": "2026-01-01T00:00:00"}),
    ("created_after=" + "x" * 65, {"created_after": "x" * 65}),
    ("created_after=2026%00", {"created_after": "2026\x00"}),
]


@pytest.mark.parametrize(("text", "query"), QUERIES, ids=[str(i) for i in range(len(QUERIES))])
def test_a_query_string_reads_as_the_same_filters_from_the_sdk(
    live: Live, both: tuple[Client, Client], text: str, query: dict[str, Any]
) -> None:
    answer = live.call("GET", f"/v1/jobs?{text}")

    def over_http() -> dict[str, Any]:
        if answer.status >= 400:
            raise_problem(answer.status, answer.raw)
        page: dict[str, Any] = answer.json
        return page

    assert outcome(over_http) == outcome(lambda: both[1].jobs(**query))


def test_a_batch_names_the_bad_template_at_its_item(both: tuple[Client, Client]) -> None:
    got = compare(
        both,
        lambda c, _: {"ids": [h.id for h in c.submit_many([{"command": ["x"]}, {"command": ["x", "{}"]}])]},
    )
    check(got, ("jobs[1].command[1]", "'{}': {} is not a plain placeholder", TEMPLATES))


def test_a_follow_up_queue_deleted_while_registering_is_named_at_its_item(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store checks the queues again under its lock: its refusal names the item too."""
    catalog = live.app.catalog
    catalog.put_queue("gone")
    checks = iter([lambda _: None])  # the first check passes: the queue existed then
    real = catalog._check_follow_ups
    monkeypatch.setattr(catalog, "_check_follow_ups", lambda patterns: next(checks, real)(patterns))
    catalog.delete_queue("gone")
    with pytest.raises(errors.ValidationError) as caught:
        catalog.register_definition("d", {"function": "m:f", "follow_up_queues": ["default", "gone"]})
    assert (caught.value.field, caught.value.reason) == (
        "spec.follow_up_queues[1]",
        "queue 'gone' does not exist",
    )
