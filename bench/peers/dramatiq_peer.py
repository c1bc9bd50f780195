"""Dramatiq, Redis broker, no result backend."""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from . import common
from .base import BIN_DIR, Peer

QUEUE = "default"

broker = RedisBroker(url=common.REDIS_URL)
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def noop(n: int) -> None:
    common.record(n)


class DramatiqPeer(Peer):
    name = "dramatiq"
    backend = "redis"
    bulk_api = None  # dramatiq.group(...).run() enqueues each message separately
    worker_layout = "1 `dramatiq` CLI: --processes 2 --threads 8 (the CLI defaults on 2 cores)"

    def version(self) -> str:
        return f"dramatiq {dramatiq.__version__}"

    def flush(self) -> None:
        common.counter_redis().flushdb()

    def enqueue_one(self, n: int) -> None:
        noop.send(n)

    def queue_depth(self) -> int | None:
        return int(common.counter_redis().llen(f"dramatiq:{QUEUE}"))

    def worker_commands(self, concurrency: int) -> list[list[str]]:
        return [
            [
                str(BIN_DIR / "dramatiq"),
                "peers.dramatiq_peer",
                "--processes",
                str(concurrency),
                "--threads",
                "8",
            ]
        ]


PEER = DramatiqPeer
