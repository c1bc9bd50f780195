"""Queues, compute environments and job definitions: validated changes to the catalogue."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from conveyor import errors, values
from conveyor.clock import Clock
from conveyor.engine import validate
from conveyor.model import ComputeEnvironment, JobDefinition, Queue
from conveyor.store import Store

MAX_REVISION = 2**31 - 1  # definition revisions: PostgreSQL's INTEGER


# update_environment: a limit lifted (None there means "unchanged")
UNLIMITED: Any = object()
# the members of a queue's and an environment's JSON body (QueueIn, EnvironmentIn)
_QUEUE_FIELDS = ("priority", "enabled", "environments")
_ENVIRONMENT_FIELDS = ("max_vcpus", "max_memory_mb", "enabled")


class CatalogService:
    """``changed``: called after each change, so that this process's submissions see it at
    once (``CatalogCache.forget``); other processes see it within their cache's ttl."""

    def __init__(self, store: Store, clock: Clock, changed: Callable[[], None] = lambda: None) -> None:
        self.store = store
        self.clock = clock
        self.changed = changed

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
            else validate.number("max_vcpus", max_vcpus, 0, validate.MAX_ENV_VCPUS, low_open=True),
            max_memory_mb=None
            if max_memory_mb is None
            else validate.integer("max_memory_mb", max_memory_mb, 1, validate.MAX_ENV_MEMORY_MB),
            enabled=validate.boolean("enabled", enabled),
        )
        put = self.store.environment_put(env, self.clock.now())
        self.changed()
        return put

    def apply_environment(self, name: str, body: Mapping[str, Any]) -> tuple[ComputeEnvironment, bool]:
        """Create or update from a JSON body (``PUT /v1/environments/{name}``, the SDK on either
        path): members left out keep their value; null limits mean unlimited. True: created."""
        validate.members("", body, _ENVIRONMENT_FIELDS)
        validate.name("name", name)  # before the store reads it: PostgreSQL refuses a NUL
        current = self.store.environment_get(name)
        settings: dict[str, Any] = {
            "max_vcpus": current.max_vcpus if current else None,
            "max_memory_mb": current.max_memory_mb if current else None,
            "enabled": current.enabled if current else True,
        }
        return self.put_environment(name, **{**settings, **body}), current is None

    def delete_environment(self, name: str) -> None:
        self.store.environment_delete(name, self.clock.now())
        self.changed()

    def update_environment(self, name: str, **changes: Any) -> ComputeEnvironment:
        """Change the settings given (None: unchanged; ``UNLIMITED`` lifts a limit)."""
        env = self.store.environment_get(name)
        if env is None:
            raise errors.NotFound("compute environment", name)
        values: dict[str, Any] = {
            "max_vcpus": env.max_vcpus,
            "max_memory_mb": env.max_memory_mb,
            "enabled": env.enabled,
        }
        values.update({k: None if v is UNLIMITED else v for k, v in changes.items() if v is not None})
        return self.put_environment(name, **values)

    def put_queue(
        self,
        name: str,
        *,
        priority: int = 0,
        enabled: bool = True,
        environments: Sequence[str] = ("default",),
    ) -> Queue:
        # the words of the QueueIn schema: "is empty (allowed: a non-empty list of strings)"
        environments = validate.strings(
            "environments", environments, validate.MAX_QUEUE_ENVIRONMENTS, 1, 128, fewest=1
        )
        if len(set(environments)) != len(environments):
            raise errors.ValidationError(
                "environments", "lists an environment twice", "distinct names in fallback order"
            )
        queue = Queue(
            name=validate.name("name", name),
            priority=validate.integer("priority", priority, *validate.QUEUE_PRIORITY),
            enabled=validate.boolean("enabled", enabled),
            environments=tuple(environments),
        )
        put = self.store.queue_put(queue, self.clock.now())
        self.changed()
        return put

    def apply_queue(self, name: str, body: Mapping[str, Any]) -> tuple[Queue, bool]:
        """Create or update from a JSON body (``PUT /v1/queues/{name}``, the SDK on either path):
        members left out keep their value (a new queue's defaults); null is refused, as the
        schema refuses it (``update_queue`` takes None for "unchanged"). True: created."""
        validate.members("", body, _QUEUE_FIELDS)
        validate.name("name", name)  # before the store reads it: PostgreSQL refuses a NUL
        current = self.store.queue_get(name)
        settings: dict[str, Any] = (
            {}
            if current is None
            else {
                "priority": current.priority,
                "enabled": current.enabled,
                "environments": current.environments,
            }
        )
        return self.put_queue(name, **{**settings, **body}), current is None

    def delete_queue(self, name: str) -> None:
        self.store.queue_delete(name, self.clock.now())
        self.changed()

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
        self._check_follow_ups(parsed.follow_up_queues)
        try:
            registered = self.store.definition_register(name, parsed, self.clock.now())
        except errors.ValidationError as exc:
            if exc.field == "follow_up_queues":  # a queue deleted since: named as above
                self._check_follow_ups(parsed.follow_up_queues)
            raise
        self.changed()
        return registered

    def _check_follow_ups(self, patterns: Sequence[str]) -> None:
        """Each queue named exactly must exist; a refusal names the item of the request body
        (``spec.follow_up_queues[1]``), as every other check of a definition does."""
        known = {q.name for q in self.store.queue_list()}
        for i, pattern in enumerate(patterns):
            if not values.is_glob(pattern) and pattern not in known:
                raise errors.ValidationError(
                    f"spec.follow_up_queues[{i}]",
                    f"queue {values.shown(pattern)} does not exist",
                    ", ".join(sorted(known)),
                )

    def deactivate_definition(self, name: str) -> bool:
        """No new jobs from any revision of ``name``. False: it was inactive already."""
        changed = self.store.definition_deactivate(name, self.clock.now(), idempotent=True)
        self.changed()
        return changed

    def definition(self, name: str, revision: int | None = None) -> JobDefinition:
        """The given revision, else the latest: the active one, or a deactivated definition's
        last (``active`` False)."""
        if revision is not None and not 1 <= revision <= MAX_REVISION:  # the column's range
            raise errors.ValidationError("revision", f"{revision} is out of range", f"1..{MAX_REVISION}")
        found = (
            self.store.definition_latest(name)
            if revision is None
            else self.store.definition_get(name, revision)
        )
        if found is None:
            raise errors.UnknownDefinition(name)
        return found
