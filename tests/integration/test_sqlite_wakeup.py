"""Idle SQLite waiters are woken across processes by a datagram sent to ``<database>-wake/``
after COMMIT, not only by polling ``PRAGMA data_version``: real processes, real sockets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conveyor.clock import FrozenClock
from conveyor.store import open_store
from conveyor.store.sqlite import SQLiteStore

from ..store_contract.helpers import insert, new

# waits in another process with the data_version poll slowed to 60 s: only a datagram can
# wake it within the 30 s it waits; prints the outcome
WAITER = """
import sys, time
from conveyor.store import open_store
store = open_store(sys.argv[1])
store.poll_seconds = float(sys.argv[2])
store.wait_for_jobs(0.01)  # binds the socket
print("ready", flush=True)
t = time.monotonic()
woken = store.wait_for_jobs(30.0)
print("woken" if woken else "timeout", round(time.monotonic() - t, 3), flush=True)
store.close()
"""


def _waiter(url: str, poll: float) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen(
        [sys.executable, "-c", WAITER, url, str(poll)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _outcome(proc: subprocess.Popen[str]) -> tuple[str, float]:
    assert proc.stdout is not None
    word, seconds = proc.stdout.readline().split()
    assert proc.wait(30) == 0
    return word, float(seconds)


def _submit_to_a_waiter(url: str, clock: FrozenClock) -> tuple[str, float]:
    """Start a waiter process (fallback poll 60 s), submit one job from this process, and
    return how the waiter's wait ended."""
    waiter = _waiter(url, poll=60.0)
    try:
        store = open_store(url)
        try:
            insert(store, clock.now(), new())
        finally:
            store.close()
        return _outcome(waiter)
    finally:
        waiter.kill()
        waiter.wait(5)


def _wake_dir(url: str) -> Path:
    store = open_store(url)
    try:
        assert isinstance(store, SQLiteStore)
        return Path(store._channel.folder)
    finally:
        store.close()


def test_a_submission_wakes_a_waiter_in_another_process_without_its_poll(
    sqlite_url: str, clock: FrozenClock
) -> None:
    word, seconds = _submit_to_a_waiter(sqlite_url, clock)
    assert word == "woken"
    assert seconds < 20.0


def test_a_commit_that_makes_nothing_runnable_does_not_wake_other_processes(
    sqlite_url: str, clock: FrozenClock
) -> None:
    waiter = _waiter(sqlite_url, poll=60.0)
    try:
        store = open_store(sqlite_url)
        try:
            # a job waiting on another one is PENDING: nothing to claim yet
            [first] = insert(
                store, clock.now(), new(queue="elsewhere", run_at=clock.now().replace(year=2100))
            )
            insert(store, clock.now(), new(deps=(first.id,)))
            time.sleep(0.3)
            waiter.send_signal(signal.SIGKILL)
        finally:
            store.close()
    finally:
        waiter.kill()
        assert waiter.stdout is not None
        assert waiter.stdout.read() == ""  # still waiting when killed


def test_a_real_worker_process_starts_a_job_submitted_from_another_process(
    sqlite_url: str, clock: FrozenClock, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    worker = subprocess.Popen(
        [sys.executable, "-m", "conveyor", "worker", "--database", sqlite_url, "--log-level", "WARNING"],
        env=env,
    )
    try:
        folder = _wake_dir(sqlite_url)
        deadline = time.monotonic() + 30
        while not (folder.is_dir() and any(folder.iterdir())):  # the worker is idle and listening
            assert time.monotonic() < deadline, "the worker never listened"
            assert worker.poll() is None
            time.sleep(0.05)
        from conveyor.app import App
        from conveyor.engine.jobs import SubmitRequest

        app = App.open(sqlite_url)
        try:
            job = app.jobs.submit(SubmitRequest(command=["touch", str(marker)])).job
            deadline = time.monotonic() + 30
            while app.store.job_get(job.id).state.value != "SUCCEEDED":  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "the job did not run"
                time.sleep(0.02)
        finally:
            app.close()
        assert marker.exists()
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    assert not any(folder.iterdir()), "the worker left its socket behind"


def test_sockets_of_dead_processes_are_removed_by_the_next_submission(
    sqlite_url: str, clock: FrozenClock
) -> None:
    waiter = _waiter(sqlite_url, poll=60.0)
    folder = _wake_dir(sqlite_url)
    [dead] = list(folder.iterdir())
    waiter.kill()  # no chance to clean up
    waiter.wait(5)
    assert dead.exists()
    live = _waiter(sqlite_url, poll=60.0)
    try:
        store = open_store(sqlite_url)
        try:
            insert(store, clock.now(), new())
        finally:
            store.close()
        assert _outcome(live)[0] == "woken"
    finally:
        live.kill()
        live.wait(5)
    assert not dead.exists()


def test_an_unusable_wake_folder_falls_back_to_polling(sqlite_url: str, clock: FrozenClock) -> None:
    folder = _wake_dir(sqlite_url)
    folder.write_text("not a folder")  # the sockets cannot be made
    # the slow poll is for socket waiters only; the submission raises no error either
    word, _ = _submit_to_a_waiter(sqlite_url, clock)
    assert word == "woken"
    assert folder.read_text() == "not a folder"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_wake_folder_falls_back_to_polling(sqlite_url: str, clock: FrozenClock) -> None:
    folder = _wake_dir(sqlite_url)
    folder.mkdir()
    folder.chmod(0o500)
    try:
        word, _ = _submit_to_a_waiter(sqlite_url, clock)
        assert word == "woken"
    finally:
        folder.chmod(0o700)


def test_a_database_path_too_long_for_a_socket_address_still_wakes(
    tmp_path: Path, clock: FrozenClock
) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    url = f"sqlite:///{deep / 'conveyor.db'}"
    store = open_store(url)
    try:
        store.migrate(clock.now())
        assert len(_wake_dir(url).as_posix()) > 108
        assert not store.wait_for_jobs(0.01)  # binds its socket
        other = open_store(url)
        try:
            insert(other, clock.now(), new())
        finally:
            other.close()
        store.poll_seconds = 60.0  # type: ignore[attr-defined]
        assert store.wait_for_jobs(20.0)
    finally:
        store.close()


def test_closing_the_store_removes_its_socket_and_ends_a_wait(sqlite_url: str) -> None:
    store = open_store(sqlite_url)
    assert isinstance(store, SQLiteStore)
    assert not store.wait_for_jobs(0.01)
    folder = Path(store._channel.folder)
    [path] = list(folder.iterdir())
    store.close()
    assert not path.exists()
    assert not store.wait_for_jobs(5.0)


def test_one_submission_wakes_every_waiting_thread(sqlite_url: str, clock: FrozenClock) -> None:
    store = open_store(sqlite_url)
    store.poll_seconds = 60.0  # type: ignore[attr-defined]
    ready = threading.Barrier(9)
    woken: list[bool] = []

    def wait() -> None:
        assert not store.wait_for_jobs(0.01)  # binds this thread's socket
        ready.wait(10)
        woken.append(store.wait_for_jobs(30.0))

    threads = [threading.Thread(target=wait, daemon=True) for _ in range(8)]
    try:
        for t in threads:
            t.start()
        ready.wait(10)
        assert len(list(_wake_dir(sqlite_url).iterdir())) == 8
        other = open_store(sqlite_url)  # a channel of its own: it must list the folder
        try:
            insert(other, clock.now(), new())
        finally:
            other.close()
        for t in threads:
            t.join(30)
        assert woken == [True] * 8
    finally:
        store.close()
