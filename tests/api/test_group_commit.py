"""Single submissions group-committed (api/group.py): each request gets exactly its own answer.

Requests that arrive together share one ``submit_many`` transaction; a refused one (invalid,
forbidden, unknown token) never fails the others, keyed ones take the ungrouped path, and
nothing is lost or inserted twice.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from starlette.datastructures import QueryParams

from conveyor import errors
from conveyor.api import ApiConfig, jobs
from conveyor.api.group import GroupCommit
from conveyor.api.http import RateLimiter, Reply
from conveyor.app import App
from tests.api.conftest import Answer, serve

# -- the batcher alone ------------------------------------------------------------------------------


def test_group_commit_gives_each_item_its_own_outcome_and_batches_what_waits() -> None:
    seen: list[list[int]] = []
    started, gate = threading.Event(), threading.Event()

    def process(items: list[int]) -> list[int | BaseException]:
        if not seen:
            started.set()
            gate.wait(5)  # hold the first batch: the others pile up behind it
        seen.append(items)
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]

    async def main() -> list[int | BaseException]:
        group: GroupCommit[int, int] = GroupCommit(process, max_items=4)
        first = asyncio.ensure_future(group(0))
        while not started.is_set():  # an idle group starts at once, with what it has
            await asyncio.sleep(0.001)
        rest = [asyncio.ensure_future(group(i)) for i in range(1, 10)]
        while group.waiting < 9:
            await asyncio.sleep(0.001)
        gate.set()
        done = await asyncio.gather(first, *rest, return_exceptions=True)
        assert group.batches == len(seen) and group.items == 10
        return done

    done = asyncio.run(main())
    assert [d if isinstance(d, int) else str(d) for d in done] == [
        0, "odd 1", 20, "odd 3", 40, "odd 5", 60, "odd 7", 80, "odd 9",
    ]  # fmt: skip
    assert seen == [[0], [1, 2, 3, 4], [5, 6, 7, 8], [9]]


def test_group_commit_failing_process_fails_its_batch_only_and_a_cancelled_item_is_skipped() -> None:
    calls = 0

    def process(items: list[int]) -> list[int | BaseException]:
        nonlocal calls
        calls += 1
        if calls == 1:
            time.sleep(0.05)
            raise RuntimeError("boom")
        return list(items)

    async def main() -> None:
        group: GroupCommit[int, int] = GroupCommit(process)
        first = asyncio.ensure_future(group(1))
        await asyncio.sleep(0.01)
        second, third = asyncio.ensure_future(group(2)), asyncio.ensure_future(group(3))
        await asyncio.sleep(0)
        second.cancel()
        with pytest.raises(RuntimeError, match="boom"):
            await first
        assert await third == 3
        with pytest.raises(asyncio.CancelledError):
            await second
        assert await group(4) == 4  # an idle group starts at once again

    asyncio.run(main())


# -- submit_group: what each submission gets --------------------------------------------------------


def _answers(app: App, items: list[jobs.Pending]) -> list[Reply | BaseException]:
    return jobs.submit_group(app, ApiConfig(rate_per_second=0), RateLimiter(0, 1), items)


def test_submit_group_answers_each_submission_as_if_it_were_alone(app: App) -> None:
    _, admin = app.tokens.create("admin", ["admin"])
    _, other = app.tokens.create("other", ["submit:other-*"])
    q = QueryParams("")
    items = [
        jobs.Pending(admin, {"command": ["true"], "tags": ["a"]}, q),
        jobs.Pending(admin, {"queue": "missing", "command": ["x"]}, q),
        jobs.Pending(admin, {"command": ["true"], "priority": 5}, q),
        jobs.Pending(other, {"command": ["true"]}, q),
        jobs.Pending(admin, {"command": ["true"], "retry": {"attempts": 99}}, q),
        jobs.Pending("cvy_unknown", {"command": ["true"]}, q),
        jobs.Pending(admin, {"command": ["true"], "nonsense": 1}, q),
        jobs.Pending(admin, {"command": ["echo", "{x}"]}, q),
        jobs.Pending(admin, {"command": ["true"], "tags": ["b"]}, q),
    ]
    got = _answers(app, items)
    made = [g for g in got if isinstance(g, Reply)]
    assert [g.status for g in made] == [201, 201, 201]
    assert [g.body["job"]["tags"] for g in made] == [["a"], [], ["b"]]
    assert made[1].body["job"]["priority"] == 5
    refused = {i: g for i, g in enumerate(got) if not isinstance(g, Reply)}
    assert sorted(refused) == [1, 3, 4, 5, 6, 7]
    # the errors name the fields of a single submission (never jobs[i].…), as ungrouped
    alone = {i: _answers(app, [items[i]])[0] for i in refused}
    for i, exc in refused.items():
        assert type(exc) is type(alone[i]) and str(exc) == str(alone[i]), i
    assert isinstance(refused[1], errors.ValidationError) and refused[1].field == "queue"
    assert isinstance(refused[3], errors.Forbidden)
    assert isinstance(refused[4], errors.ValidationError) and refused[4].field == "retry.attempts"
    assert isinstance(refused[5], errors.Unauthorized)
    # exactly the accepted ones were inserted, once each
    stored = app.store.job_list(limit=100)
    assert sorted(j.id for j in stored) == sorted(g.body["job"]["id"] for g in made)


def test_submit_group_never_stores_a_job_twice(app: App) -> None:
    """A time that cannot be turned into UTC is refused before anything is written (it used to be
    stored, fail when read back, and make the group submit every job again, one by one)."""
    _, admin = app.tokens.create("admin", ["admin"])
    q = QueryParams("")
    far = "9999-12-31T23:59:59-14:00"
    items = [
        jobs.Pending(admin, {"command": ["true"], "name": "a"}, q),
        jobs.Pending(admin, {"command": ["true"], "name": "far", "run_at": far}, q),
        jobs.Pending(admin, {"command": ["true"], "name": "b"}, q),
    ]
    got = _answers(app, items)
    assert isinstance(got[1], errors.ValidationError) and got[1].field == "run_at"
    assert got[1].reason == f"{far} is out of range"
    assert sorted(j.name or "" for j in app.store.job_list(limit=100)) == ["a", "b"]
    # whatever fails once the group's transaction may have committed is every item's answer:
    # submitting them again, one by one, could store each twice
    inner = app.jobs.submit_many

    def fails_after_commit(reqs: Any) -> Any:
        inner(reqs)
        raise RuntimeError("after the commit")

    app.jobs.submit_many = fails_after_commit  # type: ignore[method-assign]
    got = _answers(app, [jobs.Pending(admin, {"command": ["true"], "name": n}, q) for n in "cd"])
    assert [str(g) for g in got] == ["after the commit"] * 2
    assert sorted(j.name or "" for j in app.store.job_list(limit=100)) == ["a", "b", "c", "d"]


def test_submit_group_gives_every_item_a_store_outage(app: App) -> None:
    _, admin = app.tokens.create("admin", ["admin"])
    q = QueryParams("")
    app.tokens.verify(admin)  # cached: the outage is met by the insert
    app.store.close()
    got = _answers(app, [jobs.Pending(admin, {"command": ["true"]}, q) for _ in range(3)])
    assert all(isinstance(g, errors.StoreUnavailable) for g in got), got


# -- over HTTP: many clients at once ------------------------------------------------------------------


def _post(port: int, secret: str, body: Any) -> Answer:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(
            "POST", "/v1/jobs", body=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
        )  # fmt: skip
        resp = conn.getresponse()
        return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def _held(group: GroupCommit[Any, Any], until: Callable[[], bool]) -> None:
    """Hold the group's first batch until ``until()``, so that what arrives meanwhile is grouped."""
    inner = group.process
    first = threading.Event()

    def process(items: list[Any]) -> Any:
        if not first.is_set():
            first.set()
            deadline = time.monotonic() + 10
            while not until() and time.monotonic() < deadline:
                time.sleep(0.002)
        return inner(items)

    group.process = process


def test_concurrent_submissions_each_get_their_own_answer_and_none_is_lost(
    db_url: str, tmp_path: Path
) -> None:
    app = App.open(db_url, blob_dir=tmp_path / "blobs")
    server, thread, port = serve(app, ApiConfig(rate_per_second=0))
    try:
        api: Any = server.config.app
        group: GroupCommit[Any, Any] = api.state.submit_group
        _, admin = app.tokens.create("admin", ["admin"])
        _, narrow = app.tokens.create("narrow", ["submit:other"])
        bodies: list[tuple[str, Any]] = []
        for i in range(40):
            kind = i % 8
            if kind == 3:
                bodies.append((admin, {"queue": "missing", "command": ["x"]}))
            elif kind == 5:
                bodies.append((narrow, {"command": ["true"]}))
            elif kind == 6:
                bodies.append((admin, {"command": ["true"], "unique_key": "client:1"}))
            elif kind == 7:
                bodies.append((admin, {"command": ["echo", "{nope}"]}))
            else:
                bodies.append((admin, {"command": ["true"], "tags": [f"n{i}"]}))
        groupable = sum(1 for _, b in bodies if "unique_key" not in b)
        _held(group, lambda: group.waiting >= groupable - 1)
        with ThreadPoolExecutor(len(bodies)) as pool:
            answers = list(pool.map(lambda sb: _post(port, *sb), bodies))
        assert group.items == groupable
        assert group.batches < groupable  # they were grouped
        created: list[int] = []
        for (_, body), answer in zip(bodies, answers, strict=True):
            if body.get("queue") == "missing":
                assert answer.status == 422 and answer.json["field"] == "queue", answer.json
            elif body["command"] == ["echo", "{nope}"]:
                assert answer.status == 422 and answer.json["field"] == "parameters.nope", answer.json
            elif "unique_key" in body:
                assert answer.status in (200, 201)
                if answer.status == 201:
                    created.append(answer.json["job"]["id"])
            elif body["command"] == ["true"] and "tags" not in body:
                assert answer.status == 403, answer.json
            else:
                assert answer.status == 201, answer.json
                job = answer.json["job"]
                assert job["tags"] == body["tags"] and job["state"] == "RUNNABLE"
                assert answer.headers["location"] == f"/v1/jobs/{job['id']}"
                created.append(job["id"])
        unique = [a.json["job"]["id"] for (_, b), a in zip(bodies, answers, strict=True) if "unique_key" in b]
        assert len(set(unique)) == 1  # one holder, the others were told about it
        assert len(set(created)) == len(created) == 5 * 4 + 1
        stored = app.store.job_list(limit=1000)
        assert sorted(j.id for j in stored) == sorted(created)
        for job in stored:  # what each was told is what the store holds
            if job.unique_key is None:
                assert job.tags and job.tags[0].startswith("n")
    finally:
        server.should_exit = True
        thread.join(10)
        app.close()


def test_grouped_and_ungrouped_answers_are_the_same(db_url: str, tmp_path: Path) -> None:
    app = App.open(db_url, blob_dir=tmp_path / "blobs")
    grouped, gthread, gport = serve(app, ApiConfig(rate_per_second=0))
    plain, pthread, pport = serve(app, ApiConfig(rate_per_second=0, group_max=1))
    try:
        assert getattr(plain.config.app, "state").submit_group is None  # noqa: B009
        _, admin = app.tokens.create("admin", ["admin"])
        cases: list[Any] = [
            {"command": ["echo", "{who}"], "parameters": {"who": "x"}, "tags": ["t"], "priority": 3},
            {"command": ["true"], "delay_seconds": 60, "payload": {"k": [1, 2]}},
            {"queue": "missing", "command": ["x"]},
            {"command": ["true"], "retry": {"attempts": 99}},
            {"command": ["echo", "{nope}"]},
            {"function": "not a function"},
        ]
        for body in cases:
            a, b = _post(gport, admin, body), _post(pport, admin, body)
            assert a.status == b.status, body
            assert a.headers["content-type"] == b.headers["content-type"]
            ja, jb = a.json, b.json
            if a.status == 201:
                for volatile in ("id", "created_at", "updated_at", "run_at", "status_reason"):
                    ja["job"].pop(volatile), jb["job"].pop(volatile)
                a.headers.pop("location"), b.headers.pop("location")
            assert ja == jb, body
    finally:
        grouped.should_exit = plain.should_exit = True
        gthread.join(10)
        pthread.join(10)
        app.close()
