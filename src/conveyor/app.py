"""The application object: one store, one clock, the services. Passed explicitly, never global."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.clock import Clock, SystemClock
from conveyor.engine.catalog import CatalogService
from conveyor.engine.jobs import JobService, Limits
from conveyor.engine.schedules import Scheduler, SchedulerConfig, ScheduleService
from conveyor.engine.tokens import TokenService
from conveyor.store import Store, absolute_url, database_url, open_store
from conveyor.store.blobs import DirectoryBlobStore, default_blob_dir

if TYPE_CHECKING:  # imported when a worker is made: a one-shot command never loads them
    from conveyor.worker.loop import Worker, WorkerConfig


@dataclass
class App:
    store: Store
    url: str
    clock: Clock = field(default_factory=SystemClock)
    blob_dir: Path = Path("conveyor-blobs")
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        self.blobs = DirectoryBlobStore(self.blob_dir)
        self.jobs = JobService(self.store, self.clock, self.blobs, self.limits)
        self.catalog = CatalogService(self.store, self.clock, self.jobs.cache.forget)
        self.schedules = ScheduleService(self.store, self.clock, self.jobs)
        self.tokens = TokenService(self.store, self.clock)

    @classmethod
    def open(
        cls,
        url: str | None = None,
        *,
        migrate: bool = True,
        clock: Clock | None = None,
        blob_dir: str | Path | None = None,
        wait_for_database: bool = False,
    ) -> App:
        """Open the store at ``url`` (default ``CONVEYOR_DATABASE_URL`` or ``./conveyor.db``),
        migrating it. ``wait_for_database``: a PostgreSQL server that refuses the first
        connection gets its whole connect timeout (10 s) to accept one, instead of failing at once."""
        resolved = database_url(url)
        store = open_store(resolved, **({"wait_for_server": True} if wait_for_database else {}))
        clk = clock or SystemClock()
        try:
            if migrate:
                store.migrate(clk.now())
        except BaseException:
            store.close()
            raise
        return cls(
            store=store,
            url=resolved,
            clock=clk,
            blob_dir=Path(blob_dir) if blob_dir else default_blob_dir(resolved),
        )

    def worker(self, config: WorkerConfig | None = None) -> Worker:
        from conveyor.worker.loop import Worker, WorkerConfig

        config = config or WorkerConfig()
        executor = config.executor
        if not executor.database_url:
            from dataclasses import replace

            executor = replace(
                executor, database_url=absolute_url(self.url), blob_dir=str(self.blob_dir.resolve())
            )
            config = replace(config, executor=executor)
        return Worker(self.store, self.clock, self.blobs, config)

    def scheduler(self, config: SchedulerConfig | None = None) -> Scheduler:
        return Scheduler(self.store, self.clock, config)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["App", "SchedulerConfig"]
