"""HTTP plumbing: problem+json errors, bounded bodies, bearer auth, per-token rate limits.

Handlers are plain sync functions taking a ``Call``; ``endpoint`` adapts them once at the
edge: it reads the body (async, bounded), then runs auth and the handler in the threadpool,
where blocking store calls belong. One execution model inside, adapted here.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from conveyor import errors
from conveyor.api import schema
from conveyor.app import App
from conveyor.engine.tokens import Principal
from conveyor.model import MAX_ID

log = logging.getLogger("conveyor.api")
PROBLEM = "application/problem+json"


@dataclass(frozen=True, slots=True)
class ApiConfig:
    max_body_bytes: int = 20 * 1024 * 1024
    rate_per_second: float = 1000.0  # per token; 0 turns the limit off
    rate_burst: float = 2000.0
    log_poll_seconds: float = 0.25  # how often a followed log is re-read
    # single submissions arriving together share one transaction (api/group.py); 1: no grouping
    group_max: int = 256
    group_concurrency: int = 1  # batches in flight at once


class BadRequest(errors.ConveyorError):
    """The request could not be read."""


class TooLarge(errors.ConveyorError):
    """The request body is too large."""


# -- problem+json --------------------------------------------------------------------------------

_STATUS: list[tuple[type[BaseException], int, str]] = [
    (BadRequest, 400, "bad-request"),
    (errors.Unauthorized, 401, "unauthorized"),
    (errors.Forbidden, 403, "forbidden"),
    (errors.NotFound, 404, "not-found"),
    (errors.Conflict, 409, "conflict"),
    (TooLarge, 413, "too-large"),
    (errors.ValidationError, 422, "validation"),
    (errors.RateLimited, 429, "rate-limited"),
    (errors.StoreUnavailable, 503, "store-unavailable"),
    (errors.ConveyorError, 400, "bad-request"),
]
_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Content too large",
    422: "Validation failed",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


def problem(status: int, detail: str, slug: str | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:conveyor:problem:{slug or str(status)}",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    headers: dict[str, str] = {}
    for k, v in extra.items():
        if k == "retry_after":
            headers["Retry-After"] = str(max(1, math.ceil(v)))
        if v is not None:
            body[k] = v
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="conveyor"'
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM)


def error_response(exc: BaseException) -> JSONResponse:
    for kind, status, slug in _STATUS:
        if isinstance(exc, kind):
            extra: dict[str, Any] = {}
            if isinstance(exc, errors.ValidationError):
                extra = {"field": exc.field, "allowed": exc.allowed}
            elif isinstance(exc, errors.NotFound):
                extra = {"kind": exc.kind, "key": str(exc.key)}
            elif isinstance(exc, errors.RateLimited):
                extra = {"retry_after": exc.retry_after}
            return problem(status, str(exc), slug, **extra)
    log.exception("unexpected error", exc_info=exc)
    return problem(500, "the server failed; see its log", "internal")


async def http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (unknown route, wrong method) as problem+json."""
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    resp = problem(exc.status_code, str(exc.detail))
    resp.headers.update(headers)
    return resp


async def unexpected(request: Request, exc: Exception) -> Response:
    return error_response(exc)


# -- rate limit ---------------------------------------------------------------------------------


class RateLimiter:
    """A token bucket per API token, in this process's memory."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, max(burst, 1.0), clock
        self._buckets: dict[int, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: int) -> None:
        if self.rate <= 0:
            return
        now = self.clock()
        with self._lock:
            level, at = self._buckets.get(key, (self.burst, now))
            level = min(self.burst, level + (now - at) * self.rate)
            if level < 1.0:
                self._buckets[key] = (level, now)
                raise errors.RateLimited((1.0 - level) / self.rate)
            self._buckets[key] = (level - 1.0, now)


# -- calls ----------------------------------------------------------------------------------------


@dataclass
class Reply:
    body: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Call:
    """What a handler gets: the app, the caller, path and query parameters, the parsed body."""

    app: App
    config: ApiConfig
    principal: Principal
    path: Mapping[str, str]
    query: QueryParams
    body: Any = None

    # query and path helpers: every error names the parameter
    def id_param(self, name: str) -> int:
        return parse_int(name, self.path[name], 1, MAX_ID)

    def q_int(self, name: str, default: int | None, low: int, high: int) -> int | None:
        value = self.query.get(name)
        return default if value is None or value == "" else parse_int(name, value, low, high)

    def q_bool(self, name: str, default: bool = False) -> bool:
        value = self.query.get(name)
        if value is None or value == "":
            return default
        if value.lower() in ("true", "1", "yes"):
            return True
        if value.lower() in ("false", "0", "no"):
            return False
        raise errors.ValidationError(name, f"{value!r} is not a boolean", "true, false")

    def q_str(self, name: str, max_len: int = 512) -> str | None:
        value = self.query.get(name)
        if value is not None and len(value) > max_len:
            raise errors.ValidationError(name, f"is longer than {max_len} characters")
        if value is not None and "\x00" in value:
            raise errors.ValidationError(name, "contains a NUL character")
        return value

    def require(self, ok: bool, what: str) -> None:
        if not ok:
            raise errors.Forbidden(f"token {self.principal.name or self.principal.token_id!r} may not {what}")


def parse_int(name: str, text: str, low: int, high: int) -> int:
    """``text`` as an integer in ``low..high``: ASCII digits with an optional minus, nothing
    else (``int()`` also takes spaces, ``_`` and other scripts' digits: a full-width one named token 1)."""
    if not _INTEGER.fullmatch(text):
        raise errors.ValidationError(name, f"{text[:40]!r} is not a whole number", f"{low}..{high}")
    value = int(text)
    if not low <= value <= high:
        raise errors.ValidationError(name, f"{value} is out of range", f"{low}..{high}")
    return value


_INTEGER = re.compile(r"-?[0-9]{1,30}")

Handler = Callable[[Call], Reply | Any]


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise TooLarge(f"the body is {int(declared):,} bytes; at most {limit:,} are accepted")
        except ValueError:
            raise BadRequest("Content-Length is not a number") from None
    size = 0
    parts: list[bytes] = []
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the body is over {limit:,} bytes")
        parts.append(chunk)
    return b"".join(parts)


def _no_constant(name: str) -> Any:
    raise BadRequest(f"{name} is not valid JSON")


# built once: json.loads/dumps with options build a new decoder/encoder on every call
_DECODER = json.JSONDecoder(parse_constant=_no_constant)
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


class Json(JSONResponse):
    """Starlette's JSONResponse, byte for byte, with a prebuilt encoder."""

    def render(self, content: Any) -> bytes:
        return _ENCODER.encode(content).encode("utf-8")


def parse_json(raw: bytes) -> Any:
    """What ``json.loads(raw)`` gives (UTF-8/16/32 detected), NaN and Infinity refused (the
    schema check refuses NULs and lone surrogates, naming the field)."""
    try:
        return _DECODER.decode(raw.decode(json.detect_encoding(raw)))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise BadRequest(f"the body is not valid JSON{where}") from None
    except ValueError:  # Python's guard against quadratic int(): no JSON number needs that many
        raise BadRequest("the body holds a number of more than 4,300 digits") from None
    except RecursionError:
        raise BadRequest("the body is nested too deeply") from None


def bearer(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise errors.Unauthorized("an Authorization: Bearer <token> header is required")
    kind, _, secret = header.partition(" ")
    if kind.lower() != "bearer" or not secret.strip():
        raise errors.Unauthorized("use Authorization: Bearer <token>")
    return secret.strip()


async def read_request(
    request: Request, body: str | None, body_required: bool, limit: int
) -> tuple[str, Principal, Any]:
    """The bearer secret, its principal and the parsed, schema-checked JSON body (None when
    there is none). The caller is verified first: an unknown token gets 401 before its body is
    read, and a body is never parsed for it. An endpoint without a body (``body`` None)
    refuses one, bar an empty object, rather than ignoring what a client meant to send."""
    secret = bearer(request)
    tokens = request.app.state.conveyor.tokens
    principal = tokens.verify_cached(secret)
    if principal is None:
        principal = await run_in_threadpool(tokens.verify, secret)
    parsed: Any = None
    raw = await read_body(request, limit)
    if body is not None:
        if raw.strip():
            parsed = parse_json(raw)
            schema.check(body, parsed, raw)
        elif body_required:
            raise errors.ValidationError("body", "is empty", "a JSON object")
    elif raw.strip() and parse_json(raw) != {}:
        raise errors.ValidationError("body", "is not taken by this endpoint", "no body, or {}")
    return secret, principal, parsed


def authorised_call(
    app: App,
    config: ApiConfig,
    limiter: RateLimiter,
    secret: str,
    path: Mapping[str, str],
    query: QueryParams,
    body: Any,
    principal: Principal | None = None,
) -> Call:
    """Verify the caller (unless ``principal`` is its verified principal) and take one request
    from its rate limit (blocking: may read the store)."""
    if principal is None:
        principal = app.tokens.verify(secret)
    limiter.take(principal.token_id)
    return Call(app, config, principal, path, query, body)


def render(result: Reply | Response | Any) -> Response:
    if isinstance(result, Response):
        return result
    reply = result if isinstance(result, Reply) else Reply(result)
    if reply.status == 204:
        return Response(status_code=204, headers=reply.headers)
    return Json(reply.body, status_code=reply.status, headers=reply.headers)


def endpoint(
    handler: Handler, body: str | None = None, body_required: bool = True
) -> Callable[[Request], Awaitable[Response]]:
    """Adapt a sync handler: auth, rate limit, bounded body, schema check, threadpool, errors."""

    async def run(request: Request) -> Response:
        state = request.app.state
        try:
            secret, principal, parsed = await read_request(
                request, body, body_required, state.config.max_body_bytes
            )

            def work() -> Reply | Any:
                call = authorised_call(
                    state.conveyor, state.config, state.limiter, secret,
                    request.path_params, request.query_params, parsed, principal,
                )  # fmt: skip
                return handler(call)

            result = await run_in_threadpool(work)
        except Exception as exc:
            return error_response(exc)
        return render(result)

    run.__name__ = handler.__name__
    run.__doc__ = handler.__doc__
    return run
