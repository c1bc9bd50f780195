"""Huey, RedisHuey storage (blocking reads), results disabled."""

from __future__ import annotations

import huey as huey_mod
from huey import RedisHuey

from . import common
from .base import BIN_DIR, Peer

huey = RedisHuey("bench", url=common.REDIS_URL, results=False)


@huey.task()
def noop(n: int) -> None:
    common.record(n)


class HueyPeer(Peer):
    name = "huey"
    backend = "redis"
    bulk_api = None  # task.map()/group enqueue one by one
    worker_layout = "1 `huey_consumer` -k process -w 2 (default -d 0.1, blocking Redis reads)"

    def version(self) -> str:
        return f"huey {huey_mod.__version__}"

    def flush(self) -> None:
        common.counter_redis().flushdb()

    def enqueue_one(self, n: int) -> None:
        noop(n)

    def queue_depth(self) -> int | None:
        return int(huey.pending_count())

    def worker_commands(self, concurrency: int) -> list[list[str]]:
        return [
            [
                str(BIN_DIR / "huey_consumer"),
                "peers.huey_peer.huey",
                "-k",
                "process",
                "-w",
                str(concurrency),
                "-q",
            ]
        ]


PEER = HueyPeer
