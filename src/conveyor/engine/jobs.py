"""Submitting and managing jobs: the rules between the edges and the store."""

from __future__ import annotations

import fnmatch
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from conveyor import errors, templates, values
from conveyor.clock import Clock
from conveyor.engine import validate
from conveyor.engine.catalog import MAX_REVISION
from conveyor.model import (
    MAX_ID,
    Attempt,
    DefinitionSpec,
    Dependency,
    DependencyType,
    Event,
    Inserted,
    InsertResult,
    Job,
    JobState,
    NewJob,
    Queue,
    WorkerInfo,
)
from conveyor.store import Store
from conveyor.store.blobs import DirectoryBlobStore

log = logging.getLogger(__name__)
_PRIORITY_LOW, _PRIORITY_HIGH = validate.PRIORITY_RANGE
# bulk submissions of more jobs than this reach the store in chunks of this size (of 1000
# jobs, 2 chunks went faster than 1 or 4: overlap against a statement's fixed cost)
BULK_CHUNK = 500
MAX_NAME = 256  # characters of a job's name
MAX_KEY = 512  # characters of a unique or idempotency key
MAX_REASON = 1000  # characters of a reason given to cancel or terminate
MAX_EVENTS_PAGE = 1000  # a job's events read at once (GET /v1/jobs/{id}/events)
# bulk actions: jobs per transaction, and listed ids per call
BULK_PAGE = 500
BULK_WINDOW = 5_000  # ids a filter's query covers at a time
MAX_BULK_IDS = 100_000
MAX_FILTER_STATES = 10  # states listed in a bulk action's filter
# the states each bulk action applies to (a filter's states must be among them)
BULK_STATES: dict[str, tuple[JobState, ...]] = {
    "cancel": (JobState.SUBMITTED, JobState.PENDING, JobState.RUNNABLE),
    "terminate": (
        JobState.SUBMITTED,
        JobState.PENDING,
        JobState.RUNNABLE,
        JobState.STARTING,
        JobState.RUNNING,
    ),
    "retry": (JobState.FAILED, JobState.CANCELLED),
}


@dataclass(frozen=True, slots=True)
class JobSelection:
    """The jobs a bulk action applies to: listed ids, or the jobs matching a filter (every one
    of its fields that is set; array children are reached through their array job), or,
    with ``everything``, all jobs in the action's states."""

    ids: tuple[int, ...] = ()
    states: tuple[JobState, ...] = ()
    queue: str | None = None
    tag: str | None = None
    everything: bool = False


@dataclass(frozen=True, slots=True)
class BulkOutcome:
    """What a bulk action did (in a dry run: would do): the jobs it changed, those it found
    already done, and those it left alone with why (unknown, running when cancelled, not
    retryable); ``matched``: the jobs selected that exist."""

    action: str
    matched: int
    changed: list[int]
    unchanged: list[int]
    skipped: list[tuple[int, str]]
    dry_run: bool


def _reason(reason: Any) -> str:
    """A cancel's or terminate's reason, in the words of the HTTP schema (``Reason``)."""
    return validate.string("reason", reason, None, MAX_REASON)


# the order of NewJob's fields, which ``JobService._build`` passes positionally (a unit test
# holds the two together)
NEW_JOB_FIELDS = (
    "queue",
    "spec",
    "definition",
    "definition_revision",
    "payload",
    "payload_ref",
    "priority",
    "run_at",
    "depends_on",
    "array_size",
    "array_sequential",
    "unique_key",
    "unique_ttl_seconds",
    "idempotency_key",
    "tags",
    "parent_id",
    "name",
    "payload_json",
)


def _lean_key(req: SubmitRequest) -> tuple[Any, ...] | None:
    """The key of a submission the lean path may take (``JobService.submit``), or None.

    Lean: what to run (a function, a command, or a definition's latest revision), a queue, a
    priority and a payload, nothing else: no parameters or overrides, no time, no relations,
    no keys, tags or name. The key holds everything but the payload, each value of the type
    validation accepts, so that two requests with one key validate alike (``True == 1``
    and ``"ab"`` spells the list ``["a", "b"]`` as a tuple: both are kept out)."""
    command = req.command
    if (
        req.parameters
        or req.run_at is not None
        or req.delay_seconds is not None
        or req.depends_on
        or req.array_size is not None
        or req.array_sequential
        or req.unique_key is not None
        or req.unique_ttl_seconds is not None
        or req.idempotency_key is not None
        or req.timeout_seconds is not None
        or req.retry is not None
        or req.vcpus is not None
        or req.memory_mb is not None
        or req.environment
        or req.working_dir is not None
        or req.tags
        or req.name is not None
        or req.parent_id is not None
        or req.definition_revision is not None
        or type(req.priority) is not int
        or type(req.queue) is not str
        or (req.function is not None and type(req.function) is not str)
        or (req.definition is not None and type(req.definition) is not str)
    ):
        return None
    if command is None:
        return (req.queue, req.definition, req.function, None, req.priority)
    if type(command) is not list and type(command) is not tuple:
        return None
    return (req.queue, req.definition, req.function, tuple(command), req.priority)


def _plain(req: SubmitRequest) -> bool:
    """No keys, dependencies or array: the store inserts the job without reading anything."""
    return (
        req.unique_key is None
        and req.idempotency_key is None
        and not req.depends_on
        and req.array_size is None
    )


@dataclass(frozen=True, slots=True)
class Limits:
    max_payload_bytes: int = 16 * 1024 * 1024  # larger payloads are refused
    inline_payload_bytes: int = 256 * 1024  # larger payloads go to the blob store
    max_batch: int = 50_000


@dataclass(slots=True)
class SubmitRequest:
    """One submission as the edges hand it over (plain values, not yet validated).

    Not frozen: callers build one per job (a bulk submission, thousands), and a frozen
    dataclass sets each of these 24 fields through ``object.__setattr__`` (2.2 µs per
    request against 0.5 µs). Validation copies what it keeps, so changing a request after
    submitting it changes nothing."""

    queue: str = "default"
    definition: str | None = None
    definition_revision: int | None = None
    command: Sequence[str] | None = None
    function: str | None = None
    parameters: Mapping[str, Any] | None = None
    payload: Any = None
    priority: int = 0
    run_at: datetime | None = None
    delay_seconds: float | None = None
    depends_on: Sequence[int | Dependency] = ()
    array_size: int | None = None
    array_sequential: bool = False
    unique_key: str | None = None
    unique_ttl_seconds: float | None = None
    idempotency_key: str | None = None
    timeout_seconds: float | None = None
    retry: Any = None  # attempts (int) or a retry strategy object
    vcpus: float | None = None
    memory_mb: int | None = None
    environment: Mapping[str, str] | None = None
    working_dir: str | None = None
    tags: Sequence[str] = ()
    name: str | None = None
    parent_id: int | None = None


class CatalogCache:
    """Queues, environments and definitions, re-read at most every ``ttl`` seconds.

    Submissions then cost one store transaction. A queue created on another machine is
    seen within ``ttl``; a miss re-reads at once, so a new name never fails spuriously.
    What a submission finds older than half the ``ttl`` it still uses, and marks: the
    submitter re-reads it after its job is stored (``revalidate``), off the job's latency
    path. Only what is older than ``ttl`` is re-read before a submission. A re-read that
    finds the same catalog keeps the same objects, so what was built against them (the
    validated specs) stays valid.
    """

    def __init__(self, store: Store, clock: Clock, ttl: float = 2.0) -> None:
        self.store, self.clock, self.ttl = store, clock, ttl
        self._at = -1e18
        self.queues: dict[str, Queue] = {}
        self.envs: dict[str, Any] = {}
        self._definitions: dict[tuple[str, int | None], tuple[float, Any]] = {}
        self._stale = False  # the queues and environments are due for a re-read
        self._stale_definitions: set[tuple[str, int | None]] = set()

    def fresh(self, force: bool = False) -> None:
        now = self.clock.monotonic()
        age = now - self._at
        if force or age > self.ttl:
            self._reload(now)
        elif age > self.ttl / 2:
            self._stale = True

    def _reload(self, now: float) -> None:
        queue_list, env_list = self.store.catalog_snapshot()
        queues = {q.name: q for q in queue_list}
        envs = {e.name: e for e in env_list}
        if queues != self.queues:
            self.queues = queues
        if envs != self.envs:
            self.envs = envs
        self._at, self._stale = now, False

    def forget(self) -> None:
        """Re-read everything before the next submission (this process changed the catalog)."""
        self._at = -1e18
        self._definitions = {}

    def queue(self, name: str) -> Queue | None:
        self.fresh()
        if name not in self.queues:
            self.fresh(force=True)
        return self.queues.get(name)

    def definition(self, name: str, revision: int | None) -> Any:
        now = self.clock.monotonic()
        key = (name, revision)
        hit = self._definitions.get(key)
        if hit is not None:
            age = now - hit[0]
            if age <= self.ttl:
                if age > self.ttl / 2:
                    self._stale_definitions.add(key)
                return hit[1]
        return self._load_definition(key, now)

    def runnable(self, name: str, revision: int | None) -> Any:
        """The definition a submission runs: the active revision, or the given one while the
        definition has an active revision (a deactivated one runs no new job, by revision
        neither); None otherwise."""
        found = self.definition(name, revision)
        if found is not None and not found.active and self.definition(name, None) is None:
            return None
        return found

    def _load_definition(self, key: tuple[str, int | None], now: float) -> Any:
        found = self.store.definition_get(*key)
        if found is not None:
            hit = self._definitions.get(key)
            if hit is not None and hit[1] == found:
                found = hit[1]  # the same definition: keep the object the specs were built on
            self._definitions[key] = (now, found)
        else:
            self._definitions.pop(key, None)
        return found

    def revalidate(self) -> None:
        """Re-read what submissions marked as due (see the class). Never raises: it runs after
        a job was stored, whose submission must not then fail; what cannot be re-read now is
        re-read before the next submission once it is older than ``ttl``."""
        if not self._stale and not self._stale_definitions:
            return
        now = self.clock.monotonic()
        try:
            if self._stale:
                self._reload(now)
            while self._stale_definitions:
                try:
                    key = self._stale_definitions.pop()
                except KeyError:  # another thread's submission took the last one
                    break
                self._load_definition(key, now)
        except Exception:  # see the docstring
            log.debug("catalog re-read after a submission failed", exc_info=True)


def _length(value: Any) -> str:
    return (
        f"is {len(value):,} characters"
        if isinstance(value, str)
        else f"is a {type(value).__name__}, not text"
    )


def _known_range(job_id: int) -> None:
    """An id outside 1..2**62 (the API's range; SQLite's INTEGER ends at 2**63 - 1, where the
    driver raised OverflowError) names no job."""
    if type(job_id) is not int or not 1 <= job_id <= MAX_ID:
        raise errors.UnknownJob(job_id)


class JobService:
    def __init__(
        self, store: Store, clock: Clock, blobs: DirectoryBlobStore, limits: Limits = Limits()
    ) -> None:
        self.store = store
        self.clock = clock
        self.blobs = blobs
        self.limits = limits
        self.cache = CatalogCache(store, clock)
        # validated specs, reused across submissions while the catalog snapshot is the same
        # (the store then also reuses their stored form); keyed like ``_build``'s key
        self._specs: dict[Any, Any] = {}
        self._specs_for: tuple[Any, Any] = ({}, {})
        # lean submissions (``_lean_key``): (store template, queues, environments, definition)
        # of the first of each key, validated against that catalog snapshot
        self._lean: dict[tuple[Any, ...], tuple[Any, ...]] = {}

    # -- submission -----------------------------------------------------------------------
    def submit(self, req: SubmitRequest) -> InsertResult:
        """``submit_many`` of one, without the batch's lists and closures.

        A lean submission (``_lean_key``: what to run, a queue, a priority, a payload) whose
        like was validated against the same catalog snapshot takes the lean path: its payload
        is checked and the store inserts it from that earlier job's template
        (``Store.job_template``, ``Store.job_insert_like``), the same rows ``_build`` and
        ``job_insert_many`` would write. The task submitted over and over, the usual case,
        then costs the payload's encoding and one statement (~2.5x less Python a call)."""
        if self.limits.max_batch < 1:  # refused as a batch too big, as submit_many words it
            return self.submit_many([req])[0]
        key = _lean_key(req)
        if key is not None:
            lean = self._lean.get(key)
            if lean is not None:
                done = self._submit_lean(req, lean)
                if done is not None:
                    return done
        now = self.clock.now()
        queues, envs, specs = self._catalog((req.queue,))
        nj = self._build(req, "", now, queues, envs, {}, {}, specs)
        done = self.store.job_insert_many((nj,), now)[0]
        if key is not None and nj.payload_ref is None:
            if len(self._lean) >= 256:
                self._lean.clear()
            self._lean[key] = (
                self.store.job_template(nj),
                queues,
                envs,
                None if req.definition is None else self.cache.definition(req.definition, None),
            )
        self.cache.revalidate()
        return done

    def _submit_lean(self, req: SubmitRequest, lean: tuple[Any, ...]) -> InsertResult | None:
        """``req`` inserted from the template ``lean`` holds, when that was validated against
        the catalog as it is now (the same snapshot objects: a re-read that finds the same
        catalog keeps them) and the payload stays inline; None: take the general path."""
        cache = self.cache
        cache.fresh()
        template, queues, envs, definition = lean
        if queues is not cache.queues or envs is not cache.envs:
            return None
        if definition is not None and cache.definition(req.definition, None) is not definition:  # type: ignore[arg-type]
            return None
        payload = req.payload
        payload_json = None
        if payload is not None:
            if req.function is not None or (definition is not None and definition.spec.function is not None):
                values.call_payload("payload", payload)
            payload_json = values.payload_json("payload", payload, named=True)
            size = len(payload_json)
            if size > self.limits.inline_payload_bytes or size > self.limits.max_payload_bytes:
                return None  # too big for the row: the general path refuses it or stores a blob
        done = self.store.job_insert_like(template, payload, payload_json, self.clock.now())
        cache.revalidate()
        return done

    def submit_many(self, reqs: Sequence[SubmitRequest]) -> list[InsertResult]:
        """Validate every submission, then insert them all in one transaction (all or none)."""
        if not reqs:
            return []
        built, now = self._build_all(reqs)
        done = self.store.job_insert_many(built, now)
        self.cache.revalidate()
        return done

    def submit_many_brief(self, reqs: Sequence[SubmitRequest]) -> list[Inserted]:
        """``submit_many`` answering ids and states only (cheaper for large batches).

        A large batch of plain submissions (no keys, dependencies or arrays) reaches the store
        in chunks built while it inserts the previous ones (see ``Store.job_insert_chunks``);
        a submission that fails validation still inserts nothing."""
        if not reqs:
            return []
        now, build = self._builder(reqs)
        if len(reqs) <= BULK_CHUNK or not all(_plain(r) for r in reqs):
            done = self.store.job_insert_brief([build(i, r) for i, r in enumerate(reqs)], now)
        else:
            chunks = (
                [build(i, reqs[i]) for i in range(start, min(start + BULK_CHUNK, len(reqs)))]
                for start in range(0, len(reqs), BULK_CHUNK)
            )
            done = self.store.job_insert_chunks(chunks, now)
        self.cache.revalidate()
        return done

    def _build_all(self, reqs: Sequence[SubmitRequest]) -> tuple[list[NewJob], datetime]:
        now, build = self._builder(reqs)
        return [build(i, r) for i, r in enumerate(reqs)], now

    def _builder(
        self, reqs: Sequence[SubmitRequest]
    ) -> tuple[datetime, Callable[[int, SubmitRequest], NewJob]]:
        """The batch's time and a function validating its ``i``-th submission into a ``NewJob``."""
        if len(reqs) > self.limits.max_batch:
            raise errors.ValidationError(
                "jobs", f"{len(reqs)} jobs in one batch", f"at most {self.limits.max_batch}"
            )
        now = self.clock.now()
        queues, envs, specs = self._catalog({req.queue for req in reqs})
        definitions: dict[tuple[str, int | None], Any] = {}
        parents: dict[int, Job] = {}
        many = len(reqs) > 1

        def build(i: int, req: SubmitRequest) -> NewJob:
            prefix = f"jobs[{i}]." if many else ""
            return self._build(req, prefix, now, queues, envs, definitions, parents, specs)

        return now, build

    def _catalog(self, names: Iterable[str]) -> tuple[dict[str, Queue], dict[str, Any], dict[Any, Any]]:
        """The queues and environments of the catalog snapshot (re-read when one of ``names``
        is missing), and the validated specs built against that snapshot."""
        cache = self.cache
        for name in names:
            cache.queue(name)  # refreshes on a miss
        queues, envs = cache.queues, cache.envs
        if self._specs_for[0] is not queues or self._specs_for[1] is not envs or len(self._specs) > 1024:
            self._specs, self._specs_for = {}, (queues, envs)
        return queues, envs, self._specs

    def _build(
        self,
        req: SubmitRequest,
        prefix: str,
        now: datetime,
        queues: dict[str, Queue],
        envs: dict[str, Any],
        definitions: dict[tuple[str, int | None], Any],
        parents: dict[int, Job],
        specs: dict[Any, Any] | None = None,
    ) -> NewJob:
        if req.queue not in queues:
            raise errors.ValidationError(
                f"{prefix}queue",
                f"queue {req.queue!r} does not exist",
                ", ".join(sorted(queues)) or "create one first",
            )
        queue = queues[req.queue]
        # the same spec recurs in a bulk submission: build and validate it once
        command = req.command
        if command is not None:
            command = (
                tuple(command)
                if (type(command) is list or type(command) is tuple) and all(type(a) is str for a in command)
                else ("not argv", repr(command))  # refused by validation, never split or matched
            )
        key: tuple[Any, ...] | None = (
            req.queue,
            req.definition,
            req.definition_revision,
            command,
            req.function,
            repr(sorted(req.parameters.items())) if req.parameters else None,
            req.timeout_seconds,
            None if req.retry is None else repr(req.retry),
            req.vcpus,
            req.memory_mb,
            repr(sorted(req.environment.items())) if req.environment else None,
            req.working_dir
            if req.working_dir is None or type(req.working_dir) is str
            else ("not a path", repr(req.working_dir)),
        )
        if (
            type(req.definition_revision) is bool
            or type(req.timeout_seconds) is bool
            or type(req.vcpus) is bool
            or type(req.memory_mb) is bool
        ):
            key = None  # True == 1: validated on its own (and refused), never matched with 1
        if specs is None:
            specs = {}
        try:
            cached = None if key is None else specs.get(key)
        except TypeError:  # unhashable (a list where a number goes): validation names it
            cached = key = None
        if (
            cached is not None
            and req.definition is not None
            and cached[4] is not self.cache.runnable(req.definition, req.definition_revision)
        ):
            cached = None  # the definition was re-read (or deactivated) since
        if cached is None:
            cached = self._spec(req, prefix, queue, envs, definitions)
            if key is not None:
                specs[key] = cached
        spec, def_name, def_rev, params, _ = cached
        # when
        run_at = req.run_at
        if req.delay_seconds is not None:
            if run_at is not None:
                raise errors.ValidationError(
                    f"{prefix}delay_seconds", "is given with run_at", "run_at or delay_seconds, not both"
                )
            delay = validate.number(
                f"{prefix}delay_seconds", req.delay_seconds, 0, validate.MAX_DELAY_SECONDS
            )
            run_at = now + timedelta(seconds=delay)
        if run_at is not None:
            run_at = validate.moment(f"{prefix}run_at", run_at)
        # relations (most submissions have none: skip the generators then)
        deps: tuple[Dependency, ...] = ()
        if req.depends_on:
            if isinstance(req.depends_on, str | bytes):  # "12" is not jobs 1 and 2
                raise errors.ValidationError(
                    f"{prefix}depends_on", f"{req.depends_on!r} is not a list of job ids", "[12, 15]"
                )
            deps = tuple(
                d
                if isinstance(d, Dependency)
                else Dependency(validate.integer(f"{prefix}depends_on", d, 1, MAX_ID))
                for d in req.depends_on
            )
            if len({d.job_id for d in deps}) != len(deps):
                raise errors.ValidationError(f"{prefix}depends_on", "lists a job twice", "distinct job ids")
        array_size = None
        if req.array_size is not None:
            array_size = validate.integer(
                f"{prefix}array_size", req.array_size, validate.MIN_ARRAY, validate.MAX_ARRAY
            )
        elif req.array_sequential or (deps and any(d.type is DependencyType.N_TO_N for d in deps)):
            raise errors.ValidationError(
                f"{prefix}array_size",
                "SEQUENTIAL and N_TO_N dependencies need an array job",
                "--array-size 2..10000",
            )
        if req.parent_id is not None:
            self._check_follow_up(prefix, req.parent_id, queue.name, parents)
        # payload
        payload, payload_ref, payload_json = req.payload, None, None
        if payload is not None:
            if spec.function is not None:
                values.call_payload(f"{prefix}payload", payload)
            payload_json = values.payload_json(f"{prefix}payload", payload, named=True)
            # the JSON is ASCII (ensure_ascii), so its length is its size in bytes
            size = len(payload_json)
            if size > self.limits.max_payload_bytes:
                raise errors.ValidationError(
                    f"{prefix}payload",
                    f"is {size:,} bytes",
                    f"at most {self.limits.max_payload_bytes:,} bytes",
                )
            if size > self.limits.inline_payload_bytes:
                payload, payload_ref, payload_json = None, self.blobs.put(payload_json.encode()), None
        unique_key = req.unique_key
        if unique_key is not None:
            if "{" in unique_key:
                unique_key = templates.render_text(f"{prefix}unique_key", unique_key, params)
            if not unique_key or len(unique_key) > MAX_KEY:
                raise errors.ValidationError(
                    f"{prefix}unique_key", _length(unique_key), f"1-{MAX_KEY} characters"
                )
        ttl = None
        if req.unique_ttl_seconds is not None:
            if unique_key is None:
                raise errors.ValidationError(
                    f"{prefix}unique_ttl_seconds", "is given without a unique_key", "a unique_key with it"
                )
            ttl = validate.number(
                f"{prefix}unique_ttl_seconds", req.unique_ttl_seconds, 0, validate.MAX_DELAY_SECONDS
            )
        if req.name is not None and (not isinstance(req.name, str) or not 1 <= len(req.name) <= MAX_NAME):
            raise errors.ValidationError(
                f"{prefix}name", _length(req.name), f"1-{MAX_NAME} characters, or no name"
            )
        if req.idempotency_key is not None and (
            not isinstance(req.idempotency_key, str) or not 1 <= len(req.idempotency_key) <= MAX_KEY
        ):
            raise errors.ValidationError(
                f"{prefix}idempotency_key", _length(req.idempotency_key), f"1-{MAX_KEY} characters"
            )
        tags: tuple[str, ...] = ()
        if req.tags:
            if isinstance(req.tags, str):  # not split into one-letter tags
                raise errors.ValidationError(
                    f"{prefix}tags", f"{req.tags!r} is not a list of tags", '["nightly"]'
                )
            tags = tuple(str(t) for t in req.tags)
        for t in tags:
            if not t or len(t) > 128 or '"' in t:
                raise errors.ValidationError(
                    f"{prefix}tags",
                    f"{values.shown(t)} is not a valid tag",
                    "1-128 characters, no double quotes",
                )
        if tags or req.name is not None or unique_key is not None or req.idempotency_key is not None:
            for field, value in (
                ("tags", tags),
                ("name", req.name),
                ("unique_key", unique_key),
                ("idempotency_key", req.idempotency_key),
            ):
                values.text(f"{prefix}{field}", value)
        # positional, in NEW_JOB_FIELDS order: 18 keyword arguments cost ~1 µs a job more
        return NewJob(
            queue.name,
            spec,
            def_name,
            def_rev,
            payload,
            payload_ref,
            req.priority
            if type(req.priority) is int and _PRIORITY_LOW <= req.priority <= _PRIORITY_HIGH
            else validate.integer(f"{prefix}priority", req.priority, *validate.PRIORITY_RANGE),
            run_at,
            deps,
            array_size,
            req.array_sequential,
            unique_key,
            ttl,
            req.idempotency_key,
            tags,
            req.parent_id,
            req.name,
            payload_json,
        )

    def _spec(
        self,
        req: SubmitRequest,
        prefix: str,
        queue: Queue,
        envs: dict[str, Any],
        definitions: dict[tuple[str, int | None], Any],
    ) -> tuple[DefinitionSpec, str | None, int | None, dict[str, str], Any]:
        # what to run: a definition (with overrides) or an ad-hoc command/function
        if req.definition is not None:
            if req.definition_revision is not None:  # the column's range (a larger one overflowed)
                validate.integer(f"{prefix}definition_revision", req.definition_revision, 1, MAX_REVISION)
            if req.command is not None or req.function is not None:
                raise errors.ValidationError(
                    f"{prefix}definition", "give a definition or a command/function, not both"
                )
            key = (req.definition, req.definition_revision)
            if key not in definitions:
                found = self.cache.runnable(req.definition, req.definition_revision)
                if found is None:
                    latest = self.store.definition_latest(req.definition)  # which refusal it is
                    if latest is not None and not latest.active:
                        raise errors.ValidationError(
                            f"{prefix}definition",
                            f"job definition {req.definition!r} is deactivated; register it again to re-activate it",
                            "an active definition, see `conveyor definitions list`",
                        )
                    raise errors.ValidationError(
                        f"{prefix}definition",
                        f"job definition {req.definition!r}"
                        + (f" revision {req.definition_revision}" if req.definition_revision else "")
                        + " does not exist",
                        "see `conveyor definitions list`",
                    )
                definitions[key] = found
            definition = definitions[key]
            spec: DefinitionSpec = definition.spec
            def_name, def_rev = definition.name, definition.revision
        else:
            if req.definition_revision is not None:
                raise errors.ValidationError(
                    f"{prefix}definition_revision", "is given without a definition", "a definition's revision"
                )
            if req.command is None and req.function is None:
                raise errors.ValidationError(
                    f"{prefix}command", "nothing to run", "a definition, a command (argv) or a function"
                )
            if req.command is not None and req.function is not None:
                raise errors.ValidationError(
                    f"{prefix}function",
                    "give a command or a function, not both",
                    "a command (argv) or a function (module:callable)",
                )
            spec = validate.definition_spec(
                # a str is refused there ("a non-empty list of strings"), not split into letters
                {"command": list(req.command) if isinstance(req.command, list | tuple) else req.command}
                if req.command is not None
                else {"function": req.function},
                field=prefix.rstrip("."),
            )
            def_name, def_rev = None, None
        params = {**spec.parameters, **validate.parameters(f"{prefix}parameters", req.parameters)}
        if spec.command is not None:
            templates.render_command(spec.command, params)
        spec = replace(
            spec,
            parameters=params,
            timeout_seconds=spec.timeout_seconds
            if req.timeout_seconds is None
            else validate.number(
                f"{prefix}timeout_seconds",
                req.timeout_seconds,
                0,
                validate.MAX_TIMEOUT_SECONDS,
                low_open=True,
            ),
            retry=validate.retry_strategy(f"{prefix}retry", req.retry, spec.retry),
            vcpus=spec.vcpus
            if req.vcpus is None
            else validate.number(f"{prefix}vcpus", req.vcpus, 0, validate.MAX_VCPUS, low_open=True),
            memory_mb=spec.memory_mb
            if req.memory_mb is None
            else validate.integer(f"{prefix}memory_mb", req.memory_mb, 0, 16_777_216),
            environment={**spec.environment, **validate.environment(f"{prefix}environment", req.environment)},
            working_dir=spec.working_dir
            if req.working_dir is None
            else validate.directory(f"{prefix}working_dir", req.working_dir),
        )
        self._check_fits(prefix, spec, queue, envs)
        found = None if req.definition is None else definitions.get((req.definition, req.definition_revision))
        return spec, def_name, def_rev, params, found

    @staticmethod
    def _check_fits(prefix: str, spec: DefinitionSpec, queue: Queue, envs: dict[str, Any]) -> None:
        """Refuse a job that could never run: bigger than every environment of its queue."""
        candidates = [envs[n] for n in queue.environments if n in envs]
        for env in candidates:
            if (env.max_vcpus is None or spec.vcpus <= env.max_vcpus) and (
                env.max_memory_mb is None or spec.memory_mb <= env.max_memory_mb
            ):
                return
        biggest = ", ".join(
            f"{e.name}: {'any' if e.max_vcpus is None else format(e.max_vcpus, '.12g')} vCPUs"
            f" / {e.max_memory_mb or 'any'} MB"
            for e in candidates
        )
        vcpus_fit = any(e.max_vcpus is None or spec.vcpus <= e.max_vcpus for e in candidates)
        raise errors.ValidationError(
            f"{prefix}{'memory_mb' if vcpus_fit else 'vcpus'}",
            f"{spec.vcpus:.12g} vCPUs / {spec.memory_mb} MB fits no compute environment of queue {queue.name!r}",
            biggest or "the queue has no environments",
        )

    def _check_follow_up(self, prefix: str, parent_id: int, queue: str, parents: dict[int, Job]) -> None:
        if parent_id not in parents:
            parent = self.store.job_get(parent_id)
            if parent is None:
                raise errors.ValidationError(f"{prefix}parent_id", f"job {parent_id} does not exist")
            parents[parent_id] = parent
        allowed = parents[parent_id].spec.follow_up_queues
        if not any(fnmatch.fnmatchcase(queue, pattern) for pattern in allowed):
            raise errors.Forbidden(
                f"job {parent_id} may not submit follow-up jobs to queue {values.shown(queue)}; its definition allows: "
                + (", ".join(allowed) if allowed else "no queues (set follow_up_queues)")
            )

    # -- reading ----------------------------------------------------------------------------
    def get(self, job_id: int) -> Job:
        _known_range(job_id)
        job = self.store.job_get(job_id)
        if job is None:
            raise errors.UnknownJob(job_id)
        return job

    def payload(self, job: Job) -> Any:
        """The job's payload, fetched from the blob store when it lives there (array children: the parent's)."""
        if job.payload_ref:
            return json.loads(self.blobs.get(job.payload_ref))
        if job.payload is None and job.array_parent_id is not None:
            parent = self.store.job_get(job.array_parent_id)
            if parent is not None:
                return self.payload(parent)
        return job.payload

    def attempts(self, job_id: int) -> list[Attempt]:
        self.get(job_id)
        return self.store.job_attempts(job_id)

    def log_job(self, job_id: int, attempt: int | None = None) -> Job:
        """The job whose log (all attempts, or ``attempt``) is asked for, checked: an array job
        runs nothing itself (its children have the logs), and ``attempt`` is one the job has
        had. ``UnknownJob`` as ``get``."""
        if attempt is not None:
            validate.integer("attempt", attempt, 1, 10_000)
        job = self.get(job_id)
        if job.array_size:
            raise errors.ValidationError(
                "job_id",
                f"job {job.id} is an array job: it runs nothing itself, its {job.array_size} children have the logs",
                f"a child's id (conveyor jobs list --array {job.id})",
            )
        if attempt is not None and attempt > job.attempt:
            raise errors.ValidationError(
                "attempt",
                f"job {job.id} has had no attempt {attempt}",
                f"1..{job.attempt}" if job.attempt else "none yet: the job has not started",
            )
        return job

    def events(self, job_id: int, after_id: int = 0, limit: int = MAX_EVENTS_PAGE) -> list[Event]:
        """The job's history (state changes, terminate requests), oldest first: up to ``limit``
        events after event ``after_id`` (page on with the last one's id). ``UnknownJob`` as ``get``."""
        validate.integer("after_id", after_id, 0, MAX_ID)
        validate.integer("limit", limit, 1, MAX_EVENTS_PAGE)
        self.get(job_id)
        return self.store.events_list(after_id, limit, entity="job", entity_id=str(job_id))

    def explain(self, job: Job) -> str:
        """Why the job is where it is, in words a person understands."""
        now = self.clock.now()
        if job.state is JobState.SUBMITTED and job.run_at is not None:
            wait = (job.run_at - now).total_seconds()
            when = f"in {wait:.0f} s" if wait > 0 else "now: promoted at the next claim"
            return f"{job.status_reason} (runs {when})"
        if job.state is JobState.PENDING:
            if job.array_size:
                return job.status_reason
            deps = [
                (i, s) for i, s in self.store.job_dependency_states(job.id) if s is not JobState.SUCCEEDED
            ]
            if deps:
                shown = ", ".join(f"job {i} ({s.value})" for i, s in deps[:5])
                return f"waiting for {shown}" + (f" and {len(deps) - 5} more" if len(deps) > 5 else "")
            return job.status_reason
        if job.state is not JobState.RUNNABLE:
            return job.status_reason
        queue = self.store.queue_get(job.queue)
        if queue is None:
            return f"queue {job.queue!r} no longer exists"
        if not queue.enabled:
            return f"queue `{queue.name}` is disabled (enable it: conveyor queues enable {queue.name})"
        usage = self.store.environment_usage(now)
        envs = {e.name: e for e in self.store.environment_list()}
        workers: list[WorkerInfo] | None = None  # read when needed
        reasons = []
        for name in queue.environments:
            env = envs.get(name)
            if env is None:
                continue
            if not env.enabled:
                reasons.append(f"environment `{name}` is disabled")
                continue
            # bigger than the environment: it waits there for ever (its limits were lowered
            # after it was submitted), which "0 of 2 free" did not say
            if env.max_vcpus is not None and job.spec.vcpus > env.max_vcpus:
                reasons.append(
                    f"needs {job.spec.vcpus:.12g} vCPUs, more than environment `{name}` has ({env.max_vcpus:.12g})"
                )
                continue
            if env.max_memory_mb is not None and job.spec.memory_mb > env.max_memory_mb:
                reasons.append(
                    f"needs {job.spec.memory_mb} MB, more than environment `{name}` has ({env.max_memory_mb} MB)"
                )
                continue
            u = usage.get(name)
            if u is None or u.live_workers == 0:
                reasons.append(
                    f"no worker is serving environment `{name}` (start one: conveyor worker --environment {name})"
                )
                continue
            if workers is None:
                workers = self.store.worker_list(now)
            here = [w for w in workers if w.environment == name]
            if here and not any(not w.queues or queue.name in w.queues for w in here):
                served = ", ".join(sorted({q for w in here for q in w.queues}))
                reasons.append(
                    f"no worker in environment `{name}` serves queue `{queue.name}` (its workers serve {served};"
                    f" start one: conveyor worker --environment {name} --queues {queue.name})"
                )
                continue
            # rounded as the claim does: 0.3 - 0.1 - 0.1 leaves room for 0.1
            if env.max_vcpus is not None and job.spec.vcpus > round(env.max_vcpus - u.used_vcpus, 6):
                free = max(0.0, round(env.max_vcpus - u.used_vcpus, 6))
                reasons.append(
                    f"waiting for {job.spec.vcpus:.12g} vCPUs in environment `{name}` ({free:.12g} of {env.max_vcpus:.12g} free)"
                )
                continue
            if env.max_memory_mb is not None and job.spec.memory_mb > env.max_memory_mb - u.used_memory_mb:
                free_m = max(0, env.max_memory_mb - u.used_memory_mb)
                reasons.append(
                    f"waiting for {job.spec.memory_mb} MB in environment `{name}` ({free_m} of {env.max_memory_mb} MB free)"
                )
                continue
            ahead = self.store.job_queue_position(job)
            # jobs of enabled queues of higher priority that run here start first too
            higher = sorted(
                q.name
                for q in self.store.queue_list()
                if q.enabled and q.priority > queue.priority and name in q.environments
            )
            above = self.store.job_count_runnable(higher)
            named = ", ".join(higher[:3]) + (f" and {len(higher) - 3} more" if len(higher) > 3 else "")
            return (
                f"waiting for a free worker slot in environment `{name}`: {ahead} job(s) ahead in queue `{queue.name}`"
                + (f" and {above} in queues of higher priority ({named})" if above else "")
                + f", {u.running} running on {u.live_workers} worker(s)"
            )
        return "; ".join(reasons) if reasons else job.status_reason

    # -- actions ------------------------------------------------------------------------------
    def cancel(self, job_id: int, reason: str = "") -> tuple[Job, bool]:
        _known_range(job_id)
        return self.store.job_cancel(job_id, _reason(reason), self.clock.now())

    def terminate(self, job_id: int, reason: str = "") -> tuple[Job, bool]:
        _known_range(job_id)
        return self.store.job_terminate(job_id, _reason(reason), self.clock.now())

    def retry(self, job_id: int) -> Job:
        _known_range(job_id)
        return self.store.job_retry(job_id, self.clock.now())

    def act_on_many(
        self, action: str, selection: JobSelection, reason: str = "", dry_run: bool = False
    ) -> BulkOutcome:
        """Cancel, terminate or retry (``action``) every job of ``selection``, as the single
        actions would one by one, in transactions of ``BULK_PAGE`` jobs. A filter selects the
        jobs that match it when each page is read, newest first, and none submitted after
        the call began; a job that changed meanwhile (started, finished) gets what the single
        action would give it now. ``dry_run``: the same pages through the same statements,
        each transaction rolled back, so the answer is what the action would do now."""
        allowed = BULK_STATES.get(action)
        if allowed is None:
            raise errors.ValidationError(
                "action", f"{values.shown(action)} is not a bulk action", ", ".join(BULK_STATES)
            )
        reason = _reason(reason)
        if action == "retry" and reason:
            raise errors.ValidationError("reason", "is not taken by retry", "no reason")
        sel = self._check_selection(action, selection, allowed)
        now = self.clock.now()
        changed: list[int] = []
        unchanged: list[int] = []
        skipped: list[tuple[int, str]] = []
        unknown = 0
        known = list(sel.ids)  # in 1..2**62 (_check_selection)
        # a retry takes the oldest first: a dependency (always older than its dependants) is
        # then waiting again when a dependant on a later page is taken, which then waits for it
        # (in a dry run, where each page is rolled back, because it is in ``retried``)
        oldest_first = action == "retry"
        retried: set[int] = set()
        for ids in self._pages(sel, sorted(known) if oldest_first else known, oldest_first):
            if action == "retry":
                results = self.store.job_retry_many(ids, now, dry_run, retried)
            else:
                results = self.store.job_stop_many(ids, reason, now, action == "terminate", dry_run)
            for job_id, did, why in results:
                if why:
                    skipped.append((job_id, why))
                    unknown += why == str(errors.UnknownJob(job_id))
                else:
                    (changed if did else unchanged).append(job_id)
                    if dry_run and did and action == "retry":
                        retried.add(job_id)
        if sel.ids and skipped:  # in the order listed
            at = {job_id: i for i, job_id in enumerate(sel.ids)}
            skipped.sort(key=lambda item: at[item[0]])
        if oldest_first:  # reported as the other actions are: in the order listed, or newest first
            at = {job_id: i for i, job_id in enumerate(sel.ids)}
            for taken in (changed, unchanged):
                taken.sort(key=(lambda job_id: at[job_id]) if sel.ids else (lambda job_id: -job_id))
        matched = len(changed) + len(unchanged) + len(skipped) - unknown
        return BulkOutcome(action, matched, changed, unchanged, skipped, dry_run)

    def _check_selection(self, action: str, sel: JobSelection, allowed: tuple[JobState, ...]) -> JobSelection:
        """``sel`` validated for ``action``: ids or a filter (or ``everything``), not both; its
        states among ``allowed`` (default: all of them, FAILED for retry). Each member is
        refused as the HTTP schema (``BulkStop``) words it: a listed id is a whole number in
        1..2**62, as every job id of a request body is (one that names no job is skipped)."""
        if len(sel.ids) > MAX_BULK_IDS:
            raise errors.ValidationError(
                "ids", validate.count(len(sel.ids)), f"at most {MAX_BULK_IDS:,} items"
            )
        for i, job_id in enumerate(sel.ids):
            validate.integer(f"ids[{i}]", job_id, 1, MAX_ID)
        if sel.queue is not None:
            validate.name("queue", sel.queue)
        if sel.tag is not None:
            validate.string("tag", sel.tag, 1, 128)
        has_filter = bool(sel.states) or sel.queue is not None or sel.tag is not None
        if sel.ids:
            if has_filter or sel.everything:
                raise errors.ValidationError("ids", "cannot be given with a filter", "ids, or a filter")
            return replace(sel, ids=tuple(dict.fromkeys(sel.ids)))  # each once, in the order given
        if not has_filter and not sel.everything:
            raise errors.ValidationError(
                "filter",
                f"no jobs selected: give job ids, or a filter (queue, states, tag), or all to {action} every one",
            )
        for state in sel.states:
            if state not in allowed:
                raise errors.ValidationError(
                    "states",
                    f"{action} does not apply to {state.value} jobs",
                    ", ".join(s.value for s in allowed),
                )
        if sel.queue is not None and self.cache.queue(sel.queue) is None:
            raise errors.UnknownQueue(sel.queue)
        states = sel.states or (allowed if action != "retry" else (JobState.FAILED,))
        return replace(sel, states=tuple(dict.fromkeys(states)))

    def _pages(self, sel: JobSelection, known: list[int], oldest_first: bool = False) -> Iterable[list[int]]:
        """The selected ids, ``BULK_PAGE`` at a time: the listed ones in range (``known``) in
        their order, or the filter's, newest first (``oldest_first``: oldest first), read
        ``BULK_WINDOW`` ids at a time."""
        if sel.ids:
            for start in range(0, len(known), BULK_PAGE):
                yield known[start : start + BULK_PAGE]
            return
        # windows of BULK_WINDOW ids, newest first: each query then reads a bounded range
        # whatever plan the database picks (PostgreSQL, without statistics on a freshly
        # filled table, sorted every matching row for each page of a LIMIT query: 60-120 ms
        # a page at 200,000 waiting jobs, the whole action quadratic)
        bounds = self.store.job_id_range()
        if bounds is None:
            return
        low, before = bounds[0], bounds[1] + 1
        windows: list[tuple[int, int]] = []  # [start, before)
        while before > low:
            start = max(low, before - BULK_WINDOW)
            windows.append((start, before))
            before = start
        if oldest_first:
            windows.reverse()
        for start, before in windows:
            ids = self.store.job_ids(
                states=sel.states, queue=sel.queue, tag=sel.tag, before_id=before, from_id=start, limit=None
            )
            if oldest_first:
                ids.reverse()
            for at in range(0, len(ids), BULK_PAGE):
                yield ids[at : at + BULK_PAGE]
