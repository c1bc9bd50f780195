"""RQ (Redis Queue). Two flavours: default `Worker` (forks a work-horse per job)
and `SimpleWorker` (runs jobs in the worker process)."""

from __future__ import annotations

from . import common
from .base import BIN_DIR, Peer

QUEUE = "bench"


def noop(n: int) -> None:
    common.record(n)


class RQPeer(Peer):
    name = "rq"
    backend = "redis"
    bulk_api = "Queue.enqueue_many(Queue.prepare_data(...)) (one Redis pipeline per batch)"
    worker_class = "rq.worker.Worker"
    # the forked work-horse exits right after its job: count in Redis inside the job
    counter_mode = "per-job"
    worker_layout = "2 `rq worker` processes (default Worker: fork per job)"

    def __init__(self) -> None:
        super().__init__()
        import redis
        from rq import Queue

        self.redis = redis.Redis.from_url(common.REDIS_URL, socket_timeout=30)
        self.queue = Queue(QUEUE, connection=self.redis)

    def version(self) -> str:
        import redis
        import rq

        return f"rq {rq.__version__} (redis-py {redis.__version__})"

    def flush(self) -> None:
        self.redis.flushdb()

    def enqueue_one(self, n: int) -> None:
        self.queue.enqueue(noop, n)

    def enqueue_bulk(self, ns: list[int]) -> None:
        self.queue.enqueue_many([self.queue.prepare_data(noop, (n,)) for n in ns])

    def queue_depth(self) -> int | None:
        return self.queue.count

    def worker_commands(self, concurrency: int) -> list[list[str]]:
        return [
            [
                str(BIN_DIR / "rq"),
                "worker",
                QUEUE,
                "--url",
                common.REDIS_URL,
                "--worker-class",
                self.worker_class,
                "--quiet",
                "--name",
                f"bench-{self.name}-{i}",
            ]
            for i in range(concurrency)
        ]


class RQSimplePeer(RQPeer):
    name = "rq-simple"
    worker_class = "rq.worker.SimpleWorker"
    counter_mode = "batched"
    worker_layout = "2 `rq worker --worker-class SimpleWorker` processes (no fork per job)"


PEER = RQPeer
