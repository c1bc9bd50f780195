"""The submitter's catalog cache (``CatalogCache``): a change made elsewhere (another process,
another machine: here a second ``App`` on the same database) is used by a submission within
``ttl``; between ``ttl/2`` and ``ttl`` the re-read happens after the submission, not before."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conveyor import errors
from conveyor.app import App
from conveyor.clock import FrozenClock
from conveyor.engine.jobs import SubmitRequest


@pytest.fixture
def pair(db_url: str, tmp_path: Path) -> Iterator[tuple[App, FrozenClock, App]]:
    clock = FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))
    here = App.open(db_url, clock=clock, blob_dir=tmp_path / "blobs")
    elsewhere = App.open(db_url, migrate=False, blob_dir=tmp_path / "blobs")
    try:
        yield here, clock, elsewhere
    finally:
        here.close()
        elsewhere.close()


def _command(app: App) -> list[str]:
    job = app.jobs.submit(SubmitRequest(definition="d")).job
    assert job.spec.command is not None
    return list(job.spec.command)


def test_a_definition_changed_elsewhere_is_used_within_the_ttl(pair: tuple[App, FrozenClock, App]) -> None:
    here, clock, elsewhere = pair
    ttl = here.jobs.cache.ttl
    elsewhere.catalog.register_definition("d", {"command": ["echo", "1"]})
    assert _command(here) == ["echo", "1"]
    elsewhere.catalog.register_definition("d", {"command": ["echo", "2"]})
    clock.advance(ttl * 0.4)
    assert _command(here) == ["echo", "1"]  # young: not re-read
    clock.advance(ttl * 0.2)
    # older than half the ttl: this submission still uses what it has, then re-reads
    assert _command(here) == ["echo", "1"]
    assert _command(here) == ["echo", "2"]
    elsewhere.catalog.register_definition("d", {"command": ["echo", "3"]})
    clock.advance(ttl * 1.01)
    assert _command(here) == ["echo", "3"]  # older than the ttl: re-read before


def test_a_queue_changed_elsewhere_is_used_within_the_ttl(pair: tuple[App, FrozenClock, App]) -> None:
    here, clock, elsewhere = pair
    ttl = here.jobs.cache.ttl
    here.jobs.submit(SubmitRequest(function="m:f"))
    elsewhere.catalog.put_environment("small", max_vcpus=1, max_memory_mb=1024)
    elsewhere.catalog.put_queue("default", environments=["small"])
    # the cached snapshot still has `default` on the default environment (up to 256 vCPUs)
    clock.advance(ttl * 0.6)
    here.jobs.submit(SubmitRequest(function="m:f", vcpus=2))
    with pytest.raises(errors.ValidationError) as caught:  # re-read after the last one
        here.jobs.submit(SubmitRequest(function="m:f", vcpus=2))
    assert caught.value.field == "vcpus"


def test_a_new_queue_is_seen_at_once(pair: tuple[App, FrozenClock, App]) -> None:
    here, _, elsewhere = pair
    here.jobs.submit(SubmitRequest(function="m:f"))
    elsewhere.catalog.put_queue("reports")
    assert here.jobs.submit(SubmitRequest(function="m:f", queue="reports")).job.queue == "reports"


def test_a_re_read_that_finds_nothing_changed_keeps_the_snapshot(pair: tuple[App, FrozenClock, App]) -> None:
    """What was validated against the snapshot (specs) stays cached across re-reads."""
    here, clock, _ = pair
    here.jobs.submit(SubmitRequest(function="m:f"))
    cache = here.jobs.cache
    queues, envs = cache.queues, cache.envs
    for _ in range(3):
        clock.advance(cache.ttl * 0.6)
        here.jobs.submit(SubmitRequest(function="m:f"))
        clock.advance(cache.ttl * 1.5)
        here.jobs.submit(SubmitRequest(function="m:f"))
    assert cache.queues is queues and cache.envs is envs


def test_a_re_read_that_fails_after_the_job_is_stored_does_not_fail_the_submission(
    pair: tuple[App, FrozenClock, App],
) -> None:
    """The job is stored: answering an error would make the client submit it again."""
    here, clock, elsewhere = pair
    here.jobs.submit(SubmitRequest(function="m:f"))
    clock.advance(here.jobs.cache.ttl * 0.6)
    with elsewhere.store._write() as tx:  # the catalog cannot be read for a moment
        tx.x("ALTER TABLE queues RENAME TO queues_away")
    try:
        job = here.jobs.submit(SubmitRequest(function="m:f", name="kept")).job
    finally:
        with elsewhere.store._write() as tx:
            tx.x("ALTER TABLE queues_away RENAME TO queues")
    assert elsewhere.jobs.get(job.id).name == "kept"
    # the failed re-read is made again before the next submission once the ttl has passed
    clock.advance(here.jobs.cache.ttl)
    assert here.jobs.submit(SubmitRequest(function="m:f")).job.queue == "default"


def test_a_change_made_in_this_process_is_used_at_once(pair: tuple[App, FrozenClock, App]) -> None:
    """No ttl for this process's own changes: a queue deleted or a definition deactivated
    here refuses the next submission here, lean ones included (a like one just before)."""
    here, _, _ = pair
    here.catalog.put_queue("qz")
    here.catalog.register_definition("d", {"command": ["echo", "1"]})
    for _ in range(2):
        job = here.jobs.submit(SubmitRequest(queue="qz", function="m:f")).job
        here.jobs.cancel(job.id)
        assert here.jobs.submit(SubmitRequest(definition="d")).job.spec.command == ("echo", "1")
    here.catalog.register_definition("d", {"command": ["echo", "2"]})
    assert here.jobs.submit(SubmitRequest(definition="d")).job.spec.command == ("echo", "2")
    here.catalog.delete_queue("qz")
    with pytest.raises(errors.ValidationError) as caught:
        here.jobs.submit(SubmitRequest(queue="qz", function="m:f"))
    assert (caught.value.field, caught.value.reason) == ("queue", "queue 'qz' does not exist")
    here.catalog.deactivate_definition("d")
    with pytest.raises(errors.ValidationError) as caught:
        here.jobs.submit(SubmitRequest(definition="d"))
    assert caught.value.field == "definition"
