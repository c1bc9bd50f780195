"""``@task``: a Python function that can also be dispatched as a job.

    @conveyor.task(queue="sync", attempts=3, timeout=600, unique_key="client:{client_id}")
    def sync_client(client_id: int) -> dict: ...

    sync_client(7)                       # a plain call, here and now
    handle = sync_client.submit(7)       # a job on queue "sync"; handle.result(timeout=60)
    batch = sync_client.map([1, 2, 3])   # one job per item, submitted in one transaction

The job runs ``module:qualname`` on an inline worker with the payload ``{"args": [...],
"kwargs": {...}}``; the worker calls the original function (``__conveyor_wrapped__``).
``map`` is a *bulk submit*, not an array job: every item has its own arguments, and array
children share their parent's payload. The client is the one given to ``task(client=...)``
or ``.bind(client)``, else ``Client.from_env()`` made on first use (kept on the task object,
never in a module global).
"""

from __future__ import annotations

import functools
import inspect
import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from conveyor import errors

if TYPE_CHECKING:
    from conveyor.client import Client, JobHandle

P = ParamSpec("P")
R = TypeVar("R")


def _check_json(fn_name: str, args: Sequence[Any], kwargs: dict[str, Any]) -> None:
    for i, value in enumerate(args):
        _json_value(f"{fn_name}: args[{i}]", value)
    for key, value in kwargs.items():
        _json_value(f"{fn_name}: kwargs.{key}", value)


def _json_value(field: str, value: Any) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
        raise errors.ValidationError(
            field,
            f"{type(value).__name__} value is not JSON-serialisable ({exc})",
            "JSON values: dict, list, str, int, float, bool, None",
        ) from None


class Task(Generic[P, R]):
    """A function with ``.submit`` and ``.map``; calling it runs it directly."""

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        queue: str = "default",
        attempts: int | None = None,
        timeout: float | None = None,
        unique_key: str | None = None,
        priority: int = 0,
        tags: Sequence[str] = (),
        client: Client | None = None,
    ) -> None:
        self.fn = fn
        self.__conveyor_wrapped__ = fn
        functools.update_wrapper(self, fn)
        self.queue, self.attempts, self.timeout = queue, attempts, timeout
        self.unique_key, self.priority, self.tags = unique_key, priority, _tags(tags)
        self.client = client
        self._signature = inspect.signature(fn)
        module = getattr(fn, "__module__", None)
        self.path = f"{module}:{fn.__qualname__}"
        if "<locals>" in fn.__qualname__:
            raise errors.ValidationError(
                "task", f"{fn.__qualname__} is defined inside a function", "a module-level function"
            )

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<task {self.path} queue={self.queue}>"

    def bind(self, client: Client) -> Task[P, R]:
        """The same task, submitting through ``client``."""
        other: Task[P, R] = Task(
            self.fn,
            queue=self.queue,
            attempts=self.attempts,
            timeout=self.timeout,
            unique_key=self.unique_key,
            priority=self.priority,
            tags=self.tags,
            client=client,
        )
        return other

    def _client(self) -> Client:
        if self.client is None:
            from conveyor.client import Client

            self.client = Client.from_env()
        return self.client

    def submission(
        self, args: Sequence[Any], kwargs: dict[str, Any], tags: Sequence[str] = ()
    ) -> dict[str, Any]:
        """The Submission object for one call (JSON-checked, unique key filled from the arguments)."""
        if self.path.startswith("__main__:"):
            raise errors.ValidationError(
                "task",
                f"{self.fn.__qualname__} lives in __main__, which a worker cannot import",
                "an importable module",
            )
        _check_json(self.fn.__qualname__, args, kwargs)
        try:  # a call the function cannot take fails now, not when a worker runs it
            bound = self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            plain = ", ".join(str(p.replace(annotation=p.empty)) for p in self._signature.parameters.values())
            raise errors.ValidationError(
                "args", f"{self.fn.__qualname__}({plain}): {exc}", "the function's parameters"
            ) from None
        body: dict[str, Any] = {
            "queue": self.queue,
            "function": self.path,
            "payload": {"args": list(args), "kwargs": dict(kwargs)},
            "priority": self.priority,
        }
        if self.attempts is not None:
            body["retry"] = self.attempts
        if self.timeout is not None:
            body["timeout_seconds"] = self.timeout
        if self.tags or tags:
            body["tags"] = [*self.tags, *_tags(tags)]
        if self.unique_key is not None:
            bound.apply_defaults()
            try:
                key = self.unique_key.format_map(bound.arguments)
            except (KeyError, IndexError, ValueError) as exc:
                raise errors.ValidationError(
                    "unique_key",
                    f"cannot fill {self.unique_key!r}: {exc}",
                    "{argument} names of the function",
                ) from None
            # the engine fills {param} again: keep braces that came from the arguments literal
            body["unique_key"] = key.replace("{", "{{").replace("}", "}}")
        return body

    def submit(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle:
        """Dispatch one call as a job."""
        client = self._client()
        return client.submit(**self.submission(args, dict(kwargs)))

    def map(self, items: Iterable[Any]) -> MapHandle:
        """One job per item (``fn(item)``), submitted in one transaction; tagged ``map:<id>``."""
        return self._many([((item,), {}) for item in items])

    def starmap(self, items: Iterable[Sequence[Any]]) -> MapHandle:
        """One job per argument tuple (``fn(*item)``)."""
        return self._many([(tuple(item), {}) for item in items])

    def _many(self, calls: list[tuple[tuple[Any, ...], dict[str, Any]]]) -> MapHandle:
        client = self._client()
        tag = f"map:{uuid.uuid4().hex[:12]}"
        handles = client.submit_many([self.submission(a, k, (tag,)) for a, k in calls])
        return MapHandle(handles, tag)


class MapHandle:
    """The jobs of one ``map``: ``.id`` is the tuple of their ids, in item order."""

    def __init__(self, handles: list[JobHandle], tag: str) -> None:
        self.handles, self.tag = handles, tag

    @property
    def id(self) -> tuple[int, ...]:
        return tuple(h.id for h in self.handles)

    def __len__(self) -> int:
        return len(self.handles)

    def __iter__(self) -> Iterator[JobHandle]:
        return iter(self.handles)

    def status(self) -> list[str]:
        return [h.status() for h in self.handles]

    def wait(self, timeout: float | None = None) -> list[dict[str, Any]]:
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        out = []
        for h in self.handles:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            out.append(h.wait(left))
        return out

    def result(self, timeout: float | None = None) -> list[Any]:
        """Every job's result in item order; ``JobFailed`` for the first that did not succeed."""
        from conveyor.client import JobFailed

        jobs = self.wait(timeout)
        for job in jobs:
            if job["state"] != "SUCCEEDED":
                raise JobFailed(job)
        return [job["result"] for job in jobs]

    def logs(self) -> list[str]:
        return [h.logs() for h in self.handles]


@overload
def task(fn: Callable[P, R], /) -> Task[P, R]: ...


@overload
def task(
    *,
    queue: str = "default",
    attempts: int | None = None,
    timeout: float | None = None,
    unique_key: str | None = None,
    priority: int = 0,
    tags: Sequence[str] = (),
    client: Client | None = None,
) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def task(
    fn: Callable[P, R] | None = None,
    /,
    *,
    queue: str = "default",
    attempts: int | None = None,
    timeout: float | None = None,
    unique_key: str | None = None,
    priority: int = 0,
    tags: Sequence[str] = (),
    client: Client | None = None,
) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
    """Make ``fn`` dispatchable: ``fn.submit(...)``, ``fn.map(items)``; ``fn(...)`` still runs it."""

    def wrap(f: Callable[P, R]) -> Task[P, R]:
        return Task(
            f,
            queue=queue,
            attempts=attempts,
            timeout=timeout,
            unique_key=unique_key,
            priority=priority,
            tags=tags,
            client=client,
        )

    return wrap(fn) if fn is not None else wrap


def _tags(tags: Sequence[str]) -> tuple[str, ...]:
    """``tags`` as a tuple; one string is refused, not split into one-letter tags."""
    if isinstance(tags, str) or not isinstance(tags, Sequence):
        raise errors.ValidationError("tags", f"{tags!r} is not a list of tags", '["nightly", "billing"]')
    return tuple(tags)
