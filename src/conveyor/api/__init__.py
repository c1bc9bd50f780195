"""The HTTP API: Starlette on uvicorn, JSON (snake_case) under /v1, problem+json errors.

``create_api(app, config)`` gives the ASGI application for an opened ``App``; ``conveyor
server`` serves it with an embedded worker. See ``routes.py`` for every route.
"""

from __future__ import annotations

import functools
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from conveyor.api import jobs
from conveyor.api.group import GroupCommit
from conveyor.api.http import ApiConfig, RateLimiter, endpoint, http_exception, unexpected
from conveyor.api.openapi import docs_page, document
from conveyor.api.routes import OPERATIONS
from conveyor.app import App

__all__ = ["ApiConfig", "create_api"]


class _Api(Starlette):
    """Starlette, with single submissions (the hot path) answered without its routing and middleware.

    ``jobs.submit_endpoint`` answers every outcome itself (errors as problem+json), so the
    layers it skips have nothing to add; in-process they cost ~20% of a submission's CPU time.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/jobs" and scope["method"] == "POST":
            scope["app"] = self
            response = await jobs.submit_endpoint(Request(scope, receive, send))
            await response(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_api(app: App, config: ApiConfig | None = None) -> Starlette:
    config = config or ApiConfig()
    doc = document()
    page = docs_page(doc)

    async def openapi(request: Request) -> Response:
        return JSONResponse(doc)

    async def docs(request: Request) -> Response:
        return HTMLResponse(page)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        def status() -> tuple[int, int]:
            return app.store.schema_status()

        try:
            current, latest = await run_in_threadpool(status)
        except Exception as exc:
            return JSONResponse({"status": "unavailable", "detail": str(exc)}, status_code=503)
        body: dict[str, Any] = {"status": "ok", "schema_version": current, "latest_version": latest}
        if current < latest:
            body["status"] = "migrations pending"
            return JSONResponse(body, status_code=503)
        return JSONResponse(body)

    routes = [
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]
    by_path: dict[str, list[Any]] = {}
    for op in OPERATIONS:
        by_path.setdefault(op.path, []).append(op)
    for path, ops in by_path.items():
        for op in ops:
            handler = (
                op.raw
                if op.raw is not None
                else endpoint(op.handler, op.body, op.body_required)
                if op.handler
                else None
            )
            assert handler is not None
            routes.append(Route(path, handler, methods=[op.method], name=op.operation_id))
    api = _Api(
        routes=routes,
        exception_handlers={HTTPException: http_exception, Exception: unexpected},
    )
    api.state.conveyor = app
    api.state.config = config
    api.state.limiter = limiter = RateLimiter(config.rate_per_second, config.rate_burst)
    api.state.submit_group = (
        GroupCommit(
            functools.partial(jobs.submit_group, app, config, limiter),
            config.group_max,
            config.group_concurrency,
        )
        if config.group_max > 1
        else None
    )
    return api
