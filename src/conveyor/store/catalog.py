"""Store operations on the catalogue: environments, queues, definitions, workers, logs, events."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from conveyor import errors, values
from conveyor.model import (
    ComputeEnvironment,
    DefinitionSpec,
    EnvironmentUsage,
    Event,
    JobDefinition,
    Queue,
    WorkerInfo,
    spec_from_dict,
    spec_to_dict,
)
from conveyor.store.base import Tx
from conveyor.store.core import SqlStoreBase

# a worker that has not beaten for this long counts as gone (a killed spot worker no longer
# holds its queues' jobs back from the fallback environment). A worker beats every
# min(lease / 4, 5) s, at least every 0.5 s (worker/loop.py): four beats missed
WORKER_LIVENESS = timedelta(seconds=20)


# every queue and every environment, as the lists and the catalog snapshot read them
_QUEUES = "SELECT * FROM queues ORDER BY priority DESC, name"
_ENVIRONMENTS = "SELECT * FROM compute_environments ORDER BY name"


class CatalogOps(SqlStoreBase):
    # -- compute environments ------------------------------------------------------------
    def environment_put(self, env: ComputeEnvironment, now: datetime) -> ComputeEnvironment:
        """Create or update a compute environment."""
        ts = self.d.ts(now)
        with self._write() as tx:
            tx.x(
                "INSERT INTO compute_environments (name, max_vcpus, max_memory_mb, enabled, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
                " max_vcpus = excluded.max_vcpus, max_memory_mb = excluded.max_memory_mb,"
                " enabled = excluded.enabled, updated_at = excluded.updated_at",
                (env.name, env.max_vcpus, env.max_memory_mb, env.enabled, ts, ts),
            )
            self._events(tx, [("environment", env.name, "environment.put", _env_dict(env))], now)
        return env

    def environment_get(self, name: str) -> ComputeEnvironment | None:
        with self._read() as tx:
            row = tx.one("SELECT * FROM compute_environments WHERE name = ?", (name,))
        return self._env(row) if row else None

    def environment_list(self) -> list[ComputeEnvironment]:
        with self._read() as tx:
            return [self._env(r) for r in tx.q(_ENVIRONMENTS)]

    def environment_delete(self, name: str, now: datetime) -> None:
        with self._write() as tx:
            users = [
                self._queue(r).name
                for r in tx.q("SELECT * FROM queues")
                if name in self.d.unjs(r["environments"])
            ]
            if users:
                raise errors.Conflict(
                    f"environment {name!r} is used by queue(s) {', '.join(sorted(users))}; remove it there first"
                )
            if not tx.x("DELETE FROM compute_environments WHERE name = ?", (name,)):
                raise errors.NotFound("compute environment", name)
            self._events(tx, [("environment", name, "environment.deleted", {})], now)

    def environment_usage(self, now: datetime) -> dict[str, EnvironmentUsage]:
        """Capacity in use per environment, and how many live workers serve each."""
        with self._read() as tx:
            used = {
                r["compute_environment"]: r
                for r in tx.q(
                    "SELECT compute_environment, SUM(vcpus) AS v, SUM(memory_mb) AS m, COUNT(*) AS n"
                    " FROM jobs WHERE state IN ('STARTING', 'RUNNING') GROUP BY compute_environment"
                )
            }
            live = {
                r["environment"]: int(r["n"])
                for r in tx.q(
                    "SELECT environment, COUNT(*) AS n FROM workers WHERE stopped_at IS NULL"
                    " AND heartbeat_at > ? GROUP BY environment",
                    (self.d.ts(now - WORKER_LIVENESS),),
                )
            }
            names = [r["name"] for r in tx.q("SELECT name FROM compute_environments")]
        out: dict[str, EnvironmentUsage] = {}
        for name in names:
            u = used.get(name)
            out[name] = EnvironmentUsage(
                name=name,
                used_vcpus=float(u["v"] or 0) if u else 0.0,
                used_memory_mb=int(u["m"] or 0) if u else 0,
                running=int(u["n"]) if u else 0,
                live_workers=live.get(name, 0),
            )
        return out

    # -- queues ---------------------------------------------------------------------------
    def queue_put(self, queue: Queue, now: datetime) -> Queue:
        """Create or update a queue; its environments must exist."""
        ts = self.d.ts(now)
        with self._write() as tx:
            known = {r["name"] for r in tx.q("SELECT name FROM compute_environments")}
            for env in queue.environments:
                if env not in known:
                    raise errors.ValidationError(
                        "environments",
                        f"compute environment {env!r} does not exist",
                        ", ".join(sorted(known)),
                    )
            tx.x(
                "INSERT INTO queues (name, priority, enabled, environments, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET priority = excluded.priority,"
                " enabled = excluded.enabled, environments = excluded.environments,"
                " updated_at = excluded.updated_at",
                (queue.name, queue.priority, queue.enabled, self.d.js(list(queue.environments)), ts, ts),
            )
            self._events(
                tx,
                [
                    (
                        "queue",
                        queue.name,
                        "queue.put",
                        {
                            "priority": queue.priority,
                            "enabled": queue.enabled,
                            "environments": list(queue.environments),
                        },
                    )
                ],
                now,
            )
        if queue.enabled:
            self.wake()
        return queue

    def queue_get(self, name: str) -> Queue | None:
        with self._read() as tx:
            row = tx.one("SELECT * FROM queues WHERE name = ?", (name,))
        return self._queue(row) if row else None

    def queue_list(self) -> list[Queue]:
        with self._read() as tx:
            return [self._queue(r) for r in tx.q(_QUEUES)]

    def catalog_snapshot(self) -> tuple[list[Queue], list[ComputeEnvironment]]:
        """``queue_list()`` and ``environment_list()`` read in one transaction."""
        with self._read() as tx:
            queues = tx.q(_QUEUES)
            envs = tx.q(_ENVIRONMENTS)
        return [self._queue(r) for r in queues], [self._env(r) for r in envs]

    def queue_delete(self, name: str, now: datetime) -> None:
        """Delete a queue nothing uses: no unfinished job, no schedule (active or paused) that
        targets it, no active definition that names it in ``follow_up_queues``."""
        with self._write() as tx:
            # the lock orders this against a definition_register naming the queue (PostgreSQL;
            # SQLite's write transactions are serial)
            if not self._lock_queue(tx, name, shared=False):
                raise errors.UnknownQueue(name)
            waiting = tx.one(
                "SELECT COUNT(*) AS n FROM jobs WHERE queue = ? AND state NOT IN ('SUCCEEDED', 'FAILED', 'CANCELLED')",
                (name,),
            )
            if waiting and int(waiting["n"]):
                some = [
                    str(r["id"])
                    for r in tx.q(
                        "SELECT id FROM jobs WHERE queue = ? AND state NOT IN ('SUCCEEDED', 'FAILED', 'CANCELLED')"
                        " ORDER BY id LIMIT 5",
                        (name,),
                    )
                ]
                n = int(waiting["n"])
                raise errors.Conflict(
                    f"queue {name!r} still has {n} unfinished job(s): {', '.join(some)}"
                    + (f" and {n - len(some)} more" if n > len(some) else "")
                    + f"; stop them (conveyor jobs terminate --queue {name}), or let them finish"
                )
            users = self._queue_users(tx, name)
            if users:
                raise errors.Conflict(f"queue {name!r} is used by {users}; remove it there first")
            if not tx.x("DELETE FROM queues WHERE name = ?", (name,)):
                raise errors.UnknownQueue(name)
            self._events(tx, [("queue", name, "queue.deleted", {})], now)

    def _lock_queue(self, tx: Tx, name: str, shared: bool = True) -> bool:
        """Whether queue ``name`` exists, its row locked for ``tx`` (PostgreSQL): what deletes it
        (``shared=False``: FOR UPDATE) and what comes to depend on it (a definition, a schedule,
        a retried job: FOR KEY SHARE, which those take together, and which a change of the
        queue's settings does not wait for) take turns."""
        lock = self.d.for_key_share if shared else self.d.for_update
        return tx.one("SELECT name FROM queues WHERE name = ?" + lock, (name,)) is not None

    def _queue_users(self, tx: Tx, name: str) -> str:
        """What pins queue ``name``, as "schedule(s) a, b and definition(s) c" ("" for nothing):
        the schedules that can still fire into it, the active definitions naming it exactly (a
        glob in ``follow_up_queues`` does not pin a queue)."""
        # the name as JSON text holds it; LIKE only narrows the rows down (its wildcards in a
        # name widen it): the parsed targets and specs decide
        pattern = "%" + json.dumps(name)[1:-1] + "%"
        schedules = sorted(
            r["name"]
            for r in tx.q(
                "SELECT name, CAST(targets AS TEXT) AS targets FROM schedules"
                " WHERE state IN ('ACTIVE', 'PAUSED') AND CAST(targets AS TEXT) LIKE ?",
                (pattern,),
            )
            if any(t.get("queue") == name for t in json.loads(r["targets"]))
        )
        definitions = sorted(
            r["name"]
            for r in tx.q(
                "SELECT name, spec FROM job_definitions WHERE active = ? AND CAST(spec AS TEXT) LIKE ?",
                (True, pattern),
            )
            if name in (self.d.unjs(r["spec"]).get("follow_up_queues") or ())
        )
        parts = [
            f"{kind}(s) {_names(found)}"
            for kind, found in (("schedule", schedules), ("definition", definitions))
            if found
        ]
        return " and ".join(parts)

    def queue_counts(self) -> dict[str, dict[str, int]]:
        """Jobs per queue and state (finished states included)."""
        with self._read() as tx:
            rows = tx.q(
                "SELECT queue, state, COUNT(*) AS n FROM jobs WHERE array_size IS NULL GROUP BY queue, state"
            )
        out: dict[str, dict[str, int]] = {}
        for r in rows:
            out.setdefault(r["queue"], {})[r["state"]] = int(r["n"])
        return out

    # -- job definitions ------------------------------------------------------------------
    def definition_register(
        self, name: str, spec: DefinitionSpec, now: datetime
    ) -> tuple[JobDefinition, bool]:
        """Register ``spec`` under ``name``: a new revision when it changed. Returns (definition, created).
        The queues ``follow_up_queues`` names exactly must exist (locked: see ``queue_delete``)."""
        with self._write() as tx:
            named = sorted({q for q in spec.follow_up_queues if not values.is_glob(q)})
            for queue in named:
                if not self._lock_queue(tx, queue):
                    raise errors.ValidationError("follow_up_queues", f"queue {queue!r} does not exist")
            row = tx.one(
                "SELECT * FROM job_definitions WHERE name = ? ORDER BY revision DESC LIMIT 1"
                + self.d.for_update,
                (name,),
            )
            if row is not None and bool(row["active"]) and spec_from_dict(self.d.unjs(row["spec"])) == spec:
                return self._definition(row), False
            revision = int(row["revision"]) + 1 if row else 1
            tx.x("UPDATE job_definitions SET active = ? WHERE name = ?", (False, name))
            tx.x(
                "INSERT INTO job_definitions (name, revision, spec, active, created_at) VALUES (?, ?, ?, ?, ?)",
                (name, revision, self.d.js(spec_to_dict(spec)), True, self.d.ts(now)),
            )
            self._events(tx, [("definition", name, "definition.registered", {"revision": revision})], now)
        return JobDefinition(name, revision, spec, True, now), True

    def definition_get(self, name: str, revision: int | None = None) -> JobDefinition | None:
        """The active revision (or the given one)."""
        with self._read() as tx:
            if revision is None:
                row = tx.one("SELECT * FROM job_definitions WHERE name = ? AND active = ?", (name, True))
            else:
                row = tx.one(
                    "SELECT * FROM job_definitions WHERE name = ? AND revision = ?", (name, revision)
                )
        return self._definition(row) if row else None

    def definition_latest(self, name: str) -> JobDefinition | None:
        """The newest revision, active or not (a deactivated definition's is inactive)."""
        with self._read() as tx:
            row = tx.one(
                "SELECT * FROM job_definitions WHERE name = ? ORDER BY revision DESC LIMIT 1", (name,)
            )
        return self._definition(row) if row else None

    def definition_list(self, include_inactive: bool = False) -> list[JobDefinition]:
        with self._read() as tx:
            if include_inactive:
                rows = tx.q("SELECT * FROM job_definitions ORDER BY name, revision")
            else:
                rows = tx.q("SELECT * FROM job_definitions WHERE active = ? ORDER BY name", (True,))
        return [self._definition(r) for r in rows]

    def definition_deactivate(self, name: str, now: datetime, *, idempotent: bool = False) -> bool:
        """Deactivate ``name``: no new jobs from any of its revisions. True when it was active;
        an already inactive one raises UnknownDefinition, or with ``idempotent`` answers False
        (a name never registered raises either way)."""
        with self._write() as tx:
            if tx.x(
                "UPDATE job_definitions SET active = ? WHERE name = ? AND active = ?", (False, name, True)
            ):
                self._events(tx, [("definition", name, "definition.deactivated", {})], now)
                return True
            if (
                not idempotent
                or tx.one("SELECT 1 AS x FROM job_definitions WHERE name = ? LIMIT 1", (name,)) is None
            ):
                raise errors.UnknownDefinition(name)
            return False

    def _definition(self, r: Any) -> JobDefinition:
        created = self.d.dt(r["created_at"])
        assert created is not None
        return JobDefinition(
            name=r["name"],
            revision=int(r["revision"]),
            spec=spec_from_dict(self.d.unjs(r["spec"])),
            active=bool(r["active"]),
            created_at=created,
        )

    # -- workers --------------------------------------------------------------------------
    def worker_register(self, info: WorkerInfo) -> None:
        with self._write() as tx:
            tx.x(
                "INSERT INTO workers (id, host, pid, environment, queues, concurrency, started_at, heartbeat_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    info.id,
                    info.host,
                    info.pid,
                    info.environment,
                    self.d.js(list(info.queues)),
                    info.concurrency,
                    self.d.ts(info.started_at),
                    self.d.ts(info.heartbeat_at),
                ),
            )
            self._events(
                tx,
                [("worker", info.id, "worker.started", {"host": info.host, "pid": info.pid})],
                info.started_at,
            )

    def worker_stop(self, worker_id: str, now: datetime) -> None:
        with self._write() as tx:
            tx.x("UPDATE workers SET stopped_at = ? WHERE id = ?", (self.d.ts(now), worker_id))
            self._events(tx, [("worker", worker_id, "worker.stopped", {})], now)

    def worker_list(self, now: datetime, include_stopped: bool = False) -> list[WorkerInfo]:
        with self._read() as tx:
            running = {
                r["worker_id"]: int(r["n"])
                for r in tx.q(
                    "SELECT worker_id, COUNT(*) AS n FROM jobs WHERE state IN ('STARTING', 'RUNNING')"
                    " GROUP BY worker_id"
                )
            }
            if include_stopped:
                rows = tx.q("SELECT * FROM workers ORDER BY started_at DESC")
            else:
                rows = tx.q(
                    "SELECT * FROM workers WHERE stopped_at IS NULL AND heartbeat_at > ? ORDER BY started_at",
                    (self.d.ts(now - WORKER_LIVENESS),),
                )
        out = []
        for r in rows:
            started, beat = self.d.dt(r["started_at"]), self.d.dt(r["heartbeat_at"])
            assert started is not None and beat is not None
            out.append(
                WorkerInfo(
                    id=r["id"],
                    host=r["host"],
                    pid=int(r["pid"]),
                    environment=r["environment"],
                    queues=tuple(self.d.unjs(r["queues"])),
                    concurrency=int(r["concurrency"]),
                    started_at=started,
                    heartbeat_at=beat,
                    stopped_at=self.d.dt(r["stopped_at"]),
                    running=running.get(r["id"], 0),
                )
            )
        return out

    # -- logs -----------------------------------------------------------------------------
    def log_append(self, job_id: int, attempt: int, chunks: Sequence[tuple[int, bytes]]) -> None:
        """Store log chunks (seq, bytes) of one attempt; an already stored seq is ignored."""
        if not chunks:
            return
        with self._write() as tx:
            tx.many(
                "INSERT INTO job_logs (job_id, attempt, seq, data) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [(job_id, attempt, seq, data) for seq, data in chunks],
            )

    def log_read(
        self, job_id: int, attempt: int | None = None, after: tuple[int, int] = (0, -1)
    ) -> list[tuple[int, int, bytes]]:
        """Log chunks (attempt, seq, data) after position ``after`` = (attempt, seq), in order."""
        with self._read() as tx:
            if attempt is None:
                rows = tx.q(
                    "SELECT attempt, seq, data FROM job_logs WHERE job_id = ? AND"
                    " (attempt > ? OR (attempt = ? AND seq > ?)) ORDER BY attempt, seq",
                    (job_id, after[0], after[0], after[1]),
                )
            else:
                rows = tx.q(
                    "SELECT attempt, seq, data FROM job_logs WHERE job_id = ? AND attempt = ? AND seq > ?"
                    " ORDER BY seq",
                    (job_id, attempt, after[1] if after[0] == attempt else -1),
                )
        return [(int(r["attempt"]), int(r["seq"]), bytes(r["data"])) for r in rows]

    # -- events ---------------------------------------------------------------------------
    def events_list(
        self, after_id: int = 0, limit: int = 1000, entity: str | None = None, entity_id: str | None = None
    ) -> list[Event]:
        """Events in order, after ``after_id``; optionally for one entity."""
        sql = "SELECT * FROM events WHERE id > ?"
        params: list[Any] = [after_id]
        if entity is not None:
            sql += " AND entity = ?"
            params.append(entity)
        if entity_id is not None:
            sql += " AND entity_id = ?"
            params.append(entity_id)
        sql += " ORDER BY id LIMIT ?"
        params.append(limit)
        with self._read() as tx:
            rows = tx.q(sql, params)
        out = []
        for r in rows:
            at = self.d.dt(r["at"])
            assert at is not None
            out.append(
                Event(int(r["id"]), at, r["entity"], r["entity_id"], r["type"], self.d.unjs(r["data"]))
            )
        return out


def _names(names: Sequence[str], shown: int = 10) -> str:
    """``a, b, c`` (the first ``shown``, then how many more)."""
    text = ", ".join(names[:shown])
    return text + (f" (and {len(names) - shown:,} more)" if len(names) > shown else "")


def _env_dict(env: ComputeEnvironment) -> dict[str, Any]:
    return {"max_vcpus": env.max_vcpus, "max_memory_mb": env.max_memory_mb, "enabled": env.enabled}
