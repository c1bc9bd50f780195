"""Celery, Redis broker, no result backend (task_ignore_result)."""

from __future__ import annotations

from celery import Celery

from . import common
from .base import BIN_DIR, Peer

QUEUE = "bench"

app = Celery("bench", broker=common.REDIS_URL)
app.conf.update(
    result_backend=None,
    task_ignore_result=True,
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.noop")
def noop(n: int) -> None:
    common.record(n)


class CeleryPeer(Peer):
    name = "celery"
    backend = "redis"
    bulk_api = None  # group/chunks/pipelined apply_async are not a bulk-enqueue API
    worker_layout = (
        "1 `celery worker` prefork pool, --concurrency 2 (= default on 2 cores), prefetch x4 (default)"
    )

    def version(self) -> str:
        import celery
        import kombu

        return f"celery {celery.__version__} (kombu {kombu.__version__})"

    def flush(self) -> None:
        common.counter_redis().flushdb()

    def enqueue_one(self, n: int) -> None:
        noop.apply_async((n,))

    def queue_depth(self) -> int | None:
        return int(common.counter_redis().llen(QUEUE))

    def worker_commands(self, concurrency: int) -> list[list[str]]:
        return [
            [
                str(BIN_DIR / "celery"),
                "-A",
                "peers.celery_peer",
                "worker",
                "--pool",
                "prefork",
                "--concurrency",
                str(concurrency),
                "-Q",
                QUEUE,
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel",
                "WARNING",
            ]
        ]


PEER = CeleryPeer
