"""SQLite writers of several processes queue on the lock file ``<database>-lock`` (flock), not on
SQLite's busy handler, which sleeps in growing steps: a real second process holds the lock."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from conveyor.clock import FrozenClock
from conveyor.store import open_store

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


def test_writes_are_checkpointed_into_the_database_file_while_the_store_is_open(
    sqlite_url: str, clock: FrozenClock
) -> None:
    # SQLite's automatic checkpoints are off on the store's connections (they ran inside
    # COMMIT, holding the write lock): the store checkpoints after it released the lock
    from conveyor.store.sqlite import CHECKPOINT_ROWS

    store = open_store(sqlite_url)
    db = Path(store.path)  # type: ignore[attr-defined]
    try:
        insert(store, clock.now(), new())
        before = db.stat().st_size
        for _ in range(CHECKPOINT_ROWS // 100 + 1):
            insert(store, clock.now(), *[new(payload="x" * 200) for _ in range(50)])  # 100 rows a commit
        assert db.stat().st_size > before + 100 * 200
    finally:
        store.close()
