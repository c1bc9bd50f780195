"""Group commit at the edge: concurrent requests in one server process share one store transaction.

A ``GroupCommit`` takes items from many request tasks and hands them, as one list, to a sync
``process`` function run in the threadpool; each request gets back its own outcome (a value
or an exception). It is self-clocking, like a database's group commit: an idle group starts
a batch at once (no added latency at low load); items arriving while ``concurrency`` batches
are in flight wait and leave together in the next one (up to ``max_items``). Under load a
transaction (its commit, its write lock) and a threadpool hop serve the whole batch.

``process`` must give every item its own outcome: one item's failure never fails another
(see ``jobs.submit_group``). A request is answered only when its batch has returned, i.e.
after the commit: durability is that of an ungrouped request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from starlette.concurrency import run_in_threadpool

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


class GroupCommit(Generic[Item, Outcome]):
    def __init__(
        self,
        process: Callable[[list[Item]], Sequence[Outcome | BaseException]],
        max_items: int = 256,
        concurrency: int = 1,
    ) -> None:
        self.process = process
        self.max_items = max(1, max_items)
        self.concurrency = max(1, concurrency)
        self._waiting: list[tuple[Item, asyncio.Future[Outcome]]] = []
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0  # for tests and curiosity: how many batches were processed
        self.items = 0

    @property
    def waiting(self) -> int:
        """Items not yet handed to ``process``."""
        return len(self._waiting)

    async def __call__(self, item: Item) -> Outcome:
        """The outcome of ``item``, once the batch holding it has been processed."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._running < self.concurrency:
            self._running += 1
            task = asyncio.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self.max_items]
                del self._waiting[: self.max_items]
                try:
                    outcomes: Sequence[Outcome | BaseException] = await run_in_threadpool(
                        self.process, [item for item, _ in batch]
                    )
                    if len(outcomes) != len(batch):
                        raise RuntimeError(f"{len(outcomes)} outcomes for {len(batch)} items")
                except Exception as exc:  # the process itself failed: every item learns it
                    outcomes = [exc] * len(batch)
                except BaseException:  # cancelled: the server is stopping
                    for _, future in batch + self._waiting:
                        future.cancel()
                    self._waiting.clear()
                    raise
                self._settle(batch, outcomes)
        finally:
            self._running -= 1

    def _settle(
        self, batch: list[tuple[Item, asyncio.Future[Outcome]]], outcomes: Sequence[Outcome | BaseException]
    ) -> None:
        self.batches += 1
        self.items += len(batch)
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():  # the request was cancelled (client gone); its work is done anyway
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
