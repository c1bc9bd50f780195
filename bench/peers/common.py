"""Shared configuration and the no-op task body used by every peer.

Every peer's task takes ONE integer ``n`` and does nothing except the
measurement bookkeeping below, which is identical for all peers:

* ``n >= LATENCY_THRESHOLD_US``: ``n`` is the enqueue time in microseconds
  since the epoch (W3); the task pushes ``"<enqueue_us> <start_us>"`` onto
  ``bench:lat`` before anything else (one Redis RPUSH, W3 runs at 50 jobs/s).
* every job is counted. ``BENCH_COUNTER`` (set by ``Peer.start_workers`` from the
  peer's ``counter_mode``) says how:

  - ``batched`` (default): the job adds 1 to a counter in its own process, with
    its completion time; a thread of that process sends what has piled up to
    Redis at most every 2 ms (``INCRBY bench:cnt``, and the process's first and
    last completion times in the hashes ``bench:firsts`` / ``bench:lasts``). The
    job body itself costs ~1 µs, so W2 measures the queue, not redis-py: the
    issue's workload is "a no-op job taking one integer".
  - ``per-job``: one Redis INCR per job inside the job (~100 µs of CPU and a
    round trip per job, identical for every peer). Used for RQ's fork-per-job
    worker, whose work-horse exits right after its job, and available to any
    run (``BENCH_COUNTER=per-job``) to compare with earlier results.

W2's drain rate is (N - 1) / (max(lasts) - min(firsts)). The counter lives in a
dedicated Redis logical DB (``BENCH_REDIS_URL``, default db 9) for all peers,
including the PostgreSQL ones.
"""

from __future__ import annotations

import os
import threading
import time

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
PG_DSN = os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/conveyor_bench")
PG_ADMIN_DSN = os.environ.get("BENCH_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")

CNT_KEY = "bench:cnt"
FIRSTS_KEY = "bench:firsts"
LASTS_KEY = "bench:lasts"
LAT_KEY = "bench:lat"
COUNTER_KEYS = (CNT_KEY, FIRSTS_KEY, LASTS_KEY, LAT_KEY)
COUNTER_MODES = ("batched", "per-job")
FLUSH_INTERVAL = 0.002

# 2001-09-09 in microseconds: any real time.time()*1e6 is larger, and job
# numbers 0..N-1 used by W1/W2 are far smaller.
LATENCY_THRESHOLD_US = 10**15

_redis = None
_target: int | None = None
_mode = os.environ.get("BENCH_COUNTER", "batched")
if _mode not in COUNTER_MODES:
    raise SystemExit(f"BENCH_COUNTER={_mode!r}: expected one of {', '.join(COUNTER_MODES)}")

# batched mode: [count, first completion, last completion] not yet sent, per process
_pending: list = [0, None, None]
_lock = threading.Lock()
_wake = threading.Event()
_flusher_pid: int | None = None


def counter_redis():
    """Redis client for the completion counter (lazy, fork-safe via redis-py's pid check)."""
    global _redis
    if _redis is None:
        import redis

        _redis = redis.Redis.from_url(REDIS_URL, socket_timeout=10, socket_connect_timeout=5)
    return _redis


def _get_target() -> int:
    global _target
    if _target is None:
        _target = int(os.environ.get("BENCH_TARGET", "0"))
    return _target


def record(n: int) -> None:
    """The body of every peer's no-op task."""
    start = time.time()
    if n >= LATENCY_THRESHOLD_US:
        counter_redis().rpush(LAT_KEY, f"{n} {int(start * 1_000_000)}")
    if _mode == "per-job":
        _record_now()
        return
    now = time.time()
    with _lock:
        p = _pending
        p[0] += 1
        if p[1] is None:
            p[1] = now
        p[2] = now
        was_idle = p[0] == 1
    if _flusher_pid != os.getpid():
        _start_flusher()
    if was_idle:
        _wake.set()


def _record_now() -> None:
    r = counter_redis()
    v = r.incr(CNT_KEY)
    if v == 1:
        r.hset(FIRSTS_KEY, str(os.getpid()), repr(time.time()))
    if v == _get_target():
        r.hset(LASTS_KEY, str(os.getpid()), repr(time.time()))


def _start_flusher() -> None:
    global _flusher_pid
    with _lock:
        if _flusher_pid == os.getpid():
            return
        _flusher_pid = os.getpid()
    threading.Thread(target=_flush_loop, name="bench-counter", daemon=True).start()
    _wake.set()


def _after_fork_in_child() -> None:
    # a forked worker child starts with nothing pending and no flusher thread
    global _pending, _lock, _wake, _flusher_pid
    _pending, _lock, _wake, _flusher_pid = [0, None, None], threading.Lock(), threading.Event(), None


os.register_at_fork(after_in_child=_after_fork_in_child)


def _flush_loop() -> None:
    r = counter_redis()
    pid = str(os.getpid())
    while True:
        _wake.wait()
        time.sleep(FLUSH_INTERVAL)
        with _lock:
            _wake.clear()
            count, first, last = _pending
            _pending[:] = [0, None, None]
        if not count:
            continue
        pipe = r.pipeline(transaction=False)
        pipe.hsetnx(FIRSTS_KEY, pid, repr(first))
        pipe.hset(LASTS_KEY, pid, repr(last))
        pipe.incrby(CNT_KEY, count)  # last: whoever sees the count sees the times
        pipe.execute()


def first_last() -> tuple[float | None, float | None]:
    """The first and the last completion recorded since the last reset."""
    r = counter_redis()
    firsts = [float(v) for v in r.hvals(FIRSTS_KEY)]
    lasts = [float(v) for v in r.hvals(LASTS_KEY)]
    return (min(firsts) if firsts else None, max(lasts) if lasts else None)


def reset_counters() -> None:
    counter_redis().delete(*COUNTER_KEYS)


def ensure_pg_database() -> None:
    """Create the benchmark database (BENCH_PG_DSN's dbname) if it is missing."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    dbname = conninfo_to_dict(PG_DSN).get("dbname")
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=10) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{dbname}"')
