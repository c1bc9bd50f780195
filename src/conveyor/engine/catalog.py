"""Queues, compute environments and job definitions: validated changes to the catalogue."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from conveyor import errors
from conveyor.clock import Clock
from conveyor.engine import validate
from conveyor.model import ComputeEnvironment, JobDefinition, Queue
from conveyor.store import Store

MAX_REVISION = 2**31 - 1  # definition revisions: PostgreSQL's INTEGER


class CatalogService:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def put_environment(
        self,
        name: str,
        *,
        max_vcpus: float | None = None,
        max_memory_mb: int | None = None,
        enabled: bool = True,
    ) -> ComputeEnvironment:
        env = ComputeEnvironment(
            name=validate.name("name", name),
            max_vcpus=None
            if max_vcpus is None
            else validate.number("max_vcpus", max_vcpus, 0, 1_000_000, low_open=True),
            max_memory_mb=None
            if max_memory_mb is None
            else validate.integer("max_memory_mb", max_memory_mb, 1, 2**40),
            enabled=enabled,
        )
        return self.store.environment_put(env, self.clock.now())

    def update_environment(self, name: str, **changes: Any) -> ComputeEnvironment:
        env = self.store.environment_get(name)
        if env is None:
            raise errors.NotFound("compute environment", name)
        values: dict[str, Any] = {
            "max_vcpus": env.max_vcpus,
            "max_memory_mb": env.max_memory_mb,
            "enabled": env.enabled,
        }
        values.update({k: v for k, v in changes.items() if v is not None})
        return self.put_environment(name, **values)

    def put_queue(
        self,
        name: str,
        *,
        priority: int = 0,
        enabled: bool = True,
        environments: Sequence[str] = ("default",),
    ) -> Queue:
        if not environments:
            raise errors.ValidationError(
                "environments", "a queue needs at least one compute environment", "e.g. default"
            )
        if len(set(environments)) != len(environments):
            raise errors.ValidationError(
                "environments", "lists an environment twice", "distinct names in fallback order"
            )
        queue = Queue(
            name=validate.name("name", name),
            priority=validate.integer("priority", priority, -1000, 1000),
            enabled=enabled,
            environments=tuple(environments),
        )
        return self.store.queue_put(queue, self.clock.now())

    def update_queue(self, name: str, **changes: Any) -> Queue:
        queue = self.store.queue_get(name)
        if queue is None:
            raise errors.UnknownQueue(name, [q.name for q in self.store.queue_list()])
        values: dict[str, Any] = {
            "priority": queue.priority,
            "enabled": queue.enabled,
            "environments": queue.environments,
        }
        values.update({k: v for k, v in changes.items() if v is not None})
        return self.put_queue(name, **values)

    def register_definition(self, name: str, spec: Mapping[str, Any]) -> tuple[JobDefinition, bool]:
        validate.name("name", name)
        parsed = validate.definition_spec(spec)
        known = {q.name for q in self.store.queue_list()}
        for pattern in parsed.follow_up_queues:
            if not any(ch in pattern for ch in "*?[") and pattern not in known:
                raise errors.ValidationError(
                    "follow_up_queues", f"queue {pattern!r} does not exist", ", ".join(sorted(known))
                )
        return self.store.definition_register(name, parsed, self.clock.now())

    def definition(self, name: str, revision: int | None = None) -> JobDefinition:
        if revision is not None and not 1 <= revision <= MAX_REVISION:  # the column's range
            raise errors.ValidationError("revision", f"{revision} is out of range", "1 or more")
        found = self.store.definition_get(name, revision)
        if found is None:
            raise errors.UnknownDefinition(name)
        return found
