"""Processes of a lost attempt are found by their environment and killed, grandchildren too."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from conveyor.worker.orphans import attempt_processes, kill_attempts

from .helpers import process_gone

STORE = "5e1f0c0ffee"


def _spawn(job_id: int, attempt: int, store_id: str = STORE) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CONVEYOR_STORE_ID": store_id,
        "CONVEYOR_JOB_ID": str(job_id),
        "CONVEYOR_ATTEMPT": str(attempt),
    }
    # a shell with a grandchild, in its own session like a real command job
    return subprocess.Popen(["sh", "-c", "sleep 30 & sleep 30; wait"], env=env, start_new_session=True)


def test_processes_are_found_by_job_and_attempt_and_killed_with_their_group() -> None:
    mine = _spawn(987654, 1)
    other = _spawn(987654, 2)  # another attempt of the same job: must survive
    elsewhere = _spawn(987654, 1, "another-database")  # the same job id and attempt of another store
    try:
        deadline = time.monotonic() + 5
        while len(attempt_processes(987654, 1, STORE)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        found = attempt_processes(987654, 1, STORE)
        assert mine.pid in found and len(found) == 3, found  # sh and both sleeps
        killed = kill_attempts([(987654, 1)], STORE)
        assert sorted(killed) == sorted(found)
        assert mine.wait(5) == -9
        deadline = time.monotonic() + 5
        while not all(process_gone(pid) for pid in found) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(process_gone(pid) for pid in found)
        assert not process_gone(other.pid) and not process_gone(elsewhere.pid)
        assert os.getpid() not in attempt_processes(987654, 1, STORE)
    finally:
        for p in (mine, other, elsewhere):
            if p.poll() is None:
                os.killpg(p.pid, 9)
                p.wait(5)


def test_nothing_is_killed_when_no_process_matches() -> None:
    assert kill_attempts([(123456789, 1)], STORE) == []
    assert sys.platform != "linux" or attempt_processes(123456789, 1, STORE) == []
