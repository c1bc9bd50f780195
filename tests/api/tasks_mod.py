"""Functions decorated with ``@conveyor.task`` for the SDK tests (importable by the worker)."""

from __future__ import annotations

import conveyor


@conveyor.task(queue="default", attempts=2, timeout=30)
def add(a: int, b: int = 0) -> int:
    print(f"adding {a} and {b}")
    return a + b


@conveyor.task(unique_key="client:{client_id}")
def sync_client(client_id: int, full: bool = False) -> dict[str, object]:
    return {"client": client_id, "full": full}


@conveyor.task
def square(x: int) -> int:
    return x * x


@conveyor.task
def boom() -> None:
    raise RuntimeError("it broke")
