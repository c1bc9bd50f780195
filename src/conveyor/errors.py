"""One error root and its families.

Every error Conveyor raises on purpose is a ``ConveyorError``. The edges map the families
to exit codes (CLI) and status codes (HTTP); the class docstring is the default message.
"""

from __future__ import annotations

from collections.abc import Sequence


class ConveyorError(Exception):
    """Conveyor failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (type(self).__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class ValidationError(ConveyorError):
    """A value is not valid.

    ``field`` names the input (``queue``, ``retry.attempts``, ``day-of-week``), ``reason``
    says why, ``allowed`` what would have been accepted.
    """

    def __init__(self, field: str, reason: str, allowed: str | None = None) -> None:
        self.field = field
        self.reason = reason
        self.allowed = allowed
        text = f"{field}: {reason}"
        if allowed:
            text += f" (allowed: {allowed})"
        super().__init__(text)


class NotFound(ConveyorError):
    """The thing asked for does not exist."""

    def __init__(self, kind: str, key: object, hint: str | None = None) -> None:
        self.kind = kind
        self.key = key
        text = f"{kind} {key!r} does not exist"
        if hint:
            text += f"; {hint}"
        super().__init__(text)


class UnknownQueue(NotFound):
    """The queue does not exist."""

    def __init__(self, name: str, known: Sequence[str] = ()) -> None:
        hint = f"known queues: {', '.join(sorted(known))}" if known else None
        super().__init__("queue", name, hint)


class UnknownDefinition(NotFound):
    """The job definition does not exist."""

    def __init__(self, name: str) -> None:
        super().__init__("job definition", name, "list them with `conveyor definitions list`")


class UnknownJob(NotFound):
    """The job does not exist."""

    def __init__(self, job_id: int) -> None:
        super().__init__("job", job_id)


class Conflict(ConveyorError):
    """The request conflicts with the current state."""


class StoreUnavailable(ConveyorError):
    """The store cannot be reached."""


class Forbidden(ConveyorError):
    """The caller may not do this."""


class Unauthorized(ConveyorError):
    """No valid token was given (missing, unknown, expired or revoked)."""


class RateLimited(ConveyorError):
    """Too many requests; try again later."""

    def __init__(self, retry_after: float, message: str | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message or f"too many requests; retry after {retry_after:.2f} s")
