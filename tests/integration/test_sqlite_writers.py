"""SQLite writers of several processes queue on the lock file ``<database>-lock`` (flock), not on
SQLite's busy handler, which sleeps in growing steps: a real second process holds the lock."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conveyor.clock import FrozenClock
from conveyor.store import open_store
from conveyor.store import sqlite as sqlite_store

from ..store_contract.helpers import insert, new

HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.readline()
fcntl.flock(fd, fcntl.LOCK_UN)
print("released", flush=True)
"""


def test_a_write_waits_for_another_process_holding_the_write_lock(
    sqlite_url: str, clock: FrozenClock
) -> None:
    store = open_store(sqlite_url)
    db = store.path  # type: ignore[attr-defined]
    try:
        insert(store, clock.now(), new())  # schema and the lock file exist
        assert Path(f"{db}-lock").exists()
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, f"{db}-lock"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None and holder.stdin is not None
            assert holder.stdout.readline().strip() == "held"
            done = threading.Event()
            ids: list[int] = []

            def write() -> None:
                ids.extend(j.id for j in insert(store, clock.now(), new()))
                done.set()

            t = threading.Thread(target=write, daemon=True)
            t.start()
            assert not done.wait(0.5), "the write did not wait for the other process's lock"
            holder.stdin.write("\n")
            holder.stdin.flush()
            assert holder.stdout.readline().strip() == "released"
            assert done.wait(10), "the write did not go on once the lock was released"
            assert store.job_get(ids[0]) is not None
        finally:
            holder.kill()
            holder.wait(5)
    finally:
        store.close()


def test_wal_checkpoints_run_in_a_thread_of_their_own_and_end_with_the_store(
    sqlite_url: str, clock: FrozenClock
) -> None:
    store = open_store(sqlite_url)
    db = Path(store.path)  # type: ignore[attr-defined]
    before = db.stat().st_size
    try:
        for _ in range(600):  # 1,200 rows, one commit each: far below SQLite's own threshold
            insert(store, clock.now(), new())
        deadline = time.monotonic() + 20
        while db.stat().st_size == before:  # pages written back from the WAL
            assert time.monotonic() < deadline, "no checkpoint ran"
            time.sleep(0.02)
        thread = store._checkpointer  # type: ignore[attr-defined]
        assert thread is not None and thread.is_alive()
    finally:
        store.close()
    thread.join(10)
    assert not thread.is_alive()


def test_a_long_wal_copied_without_writers_starts_over_without_the_write_lock(
    sqlite_url: str, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With nothing written meanwhile, a passive pass copies the whole log, which then starts
    over at the next write: the checkpoint thread does not wait for the write lock (a RESTART
    under it held every writer, a submission included, for ~10 ms)."""
    monkeypatch.setattr(sqlite_store, "_CHECKPOINT_PAGES", 10**9)  # only when asked below
    monkeypatch.setattr(sqlite_store, "_RESTART_PAGES", 50)
    store = open_store(sqlite_url)
    db = Path(store.path)  # type: ignore[attr-defined]
    holder = None
    try:
        for _ in range(100):  # well over 50 pages of log
            insert(store, clock.now(), new())
        before = db.stat().st_size
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, f"{db}-lock"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "held"
        store._checkpoint_soon()  # type: ignore[attr-defined]
        deadline = time.monotonic() + 20
        while db.stat().st_size == before:
            assert time.monotonic() < deadline, "no checkpoint ran"
            time.sleep(0.02)
        closed = threading.Event()

        def close() -> None:
            store.close()
            closed.set()

        threading.Thread(target=close, daemon=True).start()
        # close() waits for the checkpoint thread's round: it must end with the lock still held
        assert closed.wait(10), "the checkpoint waited for the write lock"
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "released"
    finally:
        if holder is not None:
            holder.kill()
            holder.wait(5)
        store.close()
    store = open_store(sqlite_url)
    try:
        insert(store, clock.now(), new())  # the next write starts the log over
        with sqlite3.connect(db) as conn:
            busy, log, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert busy == 0 and log < 50 and copied == log
    finally:
        store.close()


def _log_pages(db: Path) -> tuple[int, int]:
    """(pages in the log, pages of it copied into the database), from a connection of its own."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(row[1]), int(row[2])
    finally:
        conn.close()


def test_the_checkpoint_thread_starts_a_copied_log_over_itself(
    sqlite_url: str, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Starting the log over writes its header and syncs it: the first submission after each
    checkpoint paid that, ~0.25-0.8 ms with the write lock held (W3's tail). Now the thread
    that copied the log starts it over, with a write of nothing: the log is a page or two
    long, not the hundreds the writes left in it."""
    monkeypatch.setattr(sqlite_store, "_CHECKPOINT_PAGES", 10**9)  # only when asked below
    store = open_store(sqlite_url)
    db = Path(store.path)  # type: ignore[attr-defined]
    try:
        for _ in range(100):
            insert(store, clock.now(), new())
        before = db.stat().st_size
        assert _log_pages(db)[0] > 100
        store._checkpoint_soon()  # type: ignore[attr-defined]
        deadline = time.monotonic() + 20
        while _log_pages(db)[0] > 2:
            assert time.monotonic() < deadline, f"the log was not started over: {_log_pages(db)}"
            time.sleep(0.02)
        assert db.stat().st_size > before  # the pages were copied
        user_version = sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0]
        assert user_version == 0
        [job] = insert(store, clock.now(), new())  # and writing goes on
        assert store.job_get(job.id) is not None
    finally:
        store.close()
