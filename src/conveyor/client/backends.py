"""How a ``Client`` reaches Conveyor: over HTTP, or straight on the store through an ``App``.

Both speak the API's JSON forms (``conveyor.wire``), so a ``Client`` behaves the same on
either; errors come back as the same ``ConveyorError`` families.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import quote, urlencode, urlsplit

from conveyor import errors, wire
from conveyor.app import App
from conveyor.engine import validate

JSONObject = dict[str, Any]


class Backend(Protocol):
    def submit(self, body: Mapping[str, Any]) -> JSONObject: ...
    def submit_many(self, bodies: Sequence[Mapping[str, Any]]) -> JSONObject: ...
    def get_job(self, job_id: int, explain: bool = False) -> JSONObject: ...
    def list_jobs(self, query: Mapping[str, Any]) -> JSONObject: ...
    def job_action(self, job_id: int, action: str, reason: str = "") -> JSONObject: ...
    def bulk_action(self, action: str, body: Mapping[str, Any]) -> JSONObject: ...
    def attempts(self, job_id: int) -> list[JSONObject]: ...
    def events(self, job_id: int, after_id: int, limit: int) -> JSONObject: ...
    def logs(self, job_id: int, attempt: int | None = None) -> bytes: ...
    def follow_logs(self, job_id: int, attempt: int | None = None) -> Iterator[bytes]: ...
    def catalog(self, kind: str) -> list[JSONObject]: ...
    def put(self, kind: str, name: str, body: Mapping[str, Any]) -> JSONObject: ...
    def register_definition(self, name: str, spec: Mapping[str, Any]) -> JSONObject: ...
    def close(self) -> None: ...


# -- HTTP ------------------------------------------------------------------------------------------


def raise_problem(status: int, body: bytes) -> None:
    """Turn a problem+json answer into the matching ``ConveyorError``."""
    try:
        data = json.loads(body)
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    detail = str(data.get("detail") or body[:500].decode(errors="replace") or f"HTTP {status}")
    if status == 422 and data.get("field"):
        field = str(data["field"])
        reason = detail.removeprefix(f"{field}: ")
        allowed = data.get("allowed")
        if allowed:
            reason = reason.removesuffix(f" (allowed: {allowed})")
        raise errors.ValidationError(field, reason, allowed)
    if status == 404:
        exc = errors.NotFound(str(data.get("kind") or "resource"), data.get("key") or "?")
        exc.args = (detail,)
        raise exc
    if status == 429:
        raise errors.RateLimited(float(data.get("retry_after") or 1.0), detail)
    kinds: dict[int, type[errors.ConveyorError]] = {
        401: errors.Unauthorized,
        403: errors.Forbidden,
        409: errors.Conflict,
        503: errors.StoreUnavailable,
    }
    raise kinds.get(status, errors.ConveyorError)(detail)


# uvicorn closes a kept-alive connection after 5 s idle; one idle longer than this is
# replaced before use rather than raced
IDLE_RECONNECT = 4.0


class HttpBackend:
    """HTTP/1.1 with one kept-alive connection per thread (standard library only)."""

    def __init__(self, url: str, token: str, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise errors.ValidationError("url", f"{url!r} is not an http(s) URL", "http://127.0.0.1:8080")
        self.scheme, self.host, self.port = parts.scheme, parts.hostname, parts.port
        self.prefix = parts.path.rstrip("/")
        self.token, self.timeout = token, timeout
        self._local = threading.local()
        self._all: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _new(self, timeout: float | None) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=timeout)

    def _conn(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._new(self.timeout)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _headers(self, body: bytes | None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        return headers

    def request(
        self, method: str, path: str, body: Any = None, query: Mapping[str, Any] | None = None
    ) -> Any:
        raw = self.raw(method, path, body, query)
        return json.loads(raw) if raw else None

    def raw(self, method: str, path: str, body: Any = None, query: Mapping[str, Any] | None = None) -> bytes:
        target = self.prefix + path
        if query:
            target += "?" + urlencode({k: v for k, v in query.items() if v is not None}, doseq=True)
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        for retry in (True, False):
            conn = self._conn()
            if (
                conn.sock is not None
                and time.monotonic() - getattr(self._local, "used", 0.0) > IDLE_RECONNECT
            ):
                conn.close()  # the server may be closing it right now: do not race it
            reused = conn.sock is not None
            sent = False
            try:
                conn.request(method, target, body=data, headers=self._headers(data))
                sent = True
                resp = conn.getresponse()
                payload = resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                conn.close()
                # A kept-alive connection the server closed: send again only what cannot be
                # applied twice (a POST that went out may have been applied before the close).
                if retry and reused and (not sent or method in ("GET", "HEAD")):
                    continue
                if sent and method not in ("GET", "HEAD"):
                    raise errors.StoreUnavailable(
                        f"the server at {self.host}:{self.port} closed the connection after the"
                        f" request was sent: {method} {path} may or may not have been applied"
                        " (submit with an idempotency key to retry safely)"
                    ) from None
                raise errors.StoreUnavailable(
                    f"the server at {self.host}:{self.port} closed the connection"
                ) from None
            except OSError as exc:
                conn.close()
                raise errors.StoreUnavailable(f"cannot reach {self.host}:{self.port}: {exc}") from None
            self._local.used = time.monotonic()
            if resp.status >= 400:
                raise_problem(resp.status, payload)
            return payload
        raise AssertionError("unreachable")

    def submit(self, body: Mapping[str, Any]) -> JSONObject:
        out: JSONObject = self.request("POST", "/v1/jobs", dict(body))
        return out

    def submit_many(self, bodies: Sequence[Mapping[str, Any]]) -> JSONObject:
        out: JSONObject = self.request("POST", "/v1/jobs/batch", {"jobs": [dict(b) for b in bodies]})
        return out

    def get_job(self, job_id: int, explain: bool = False) -> JSONObject:
        out: JSONObject = self.request(
            "GET", f"/v1/jobs/{job_id}", query={"explain": "true"} if explain else None
        )
        return out

    def list_jobs(self, query: Mapping[str, Any]) -> JSONObject:
        # checked here, as LocalBackend checks them: a query string carries text, which the
        # server takes in more forms ("5" for 5, "yes" for true)
        wire.job_filters(**query)
        sent = dict(query)
        sent["children"] = "true" if sent.get("children") else None
        out: JSONObject = self.request("GET", "/v1/jobs", query=sent)
        return out

    def job_action(self, job_id: int, action: str, reason: str = "") -> JSONObject:
        body = {"reason": reason} if action != "retry" else None
        out: JSONObject = self.request("POST", f"/v1/jobs/{job_id}/{action}", body)
        return out

    def bulk_action(self, action: str, body: Mapping[str, Any]) -> JSONObject:
        out: JSONObject = self.request("POST", f"/v1/jobs/{action}", body)
        return out

    def attempts(self, job_id: int) -> list[JSONObject]:
        out: list[JSONObject] = self.request("GET", f"/v1/jobs/{job_id}/attempts")["attempts"]
        return out

    def events(self, job_id: int, after_id: int, limit: int) -> JSONObject:
        query = {"after_id": after_id, "limit": limit}
        out: JSONObject = self.request("GET", f"/v1/jobs/{job_id}/events", query=query)
        return out

    def logs(self, job_id: int, attempt: int | None = None) -> bytes:
        return self.raw("GET", f"/v1/jobs/{job_id}/logs", query={"attempt": attempt})

    def follow_logs(self, job_id: int, attempt: int | None = None) -> Iterator[bytes]:
        conn = self._new(None)  # a stream of its own: no read timeout while the job runs
        try:
            query = urlencode(
                {k: v for k, v in {"follow": "true", "attempt": attempt}.items() if v is not None}
            )
            conn.request("GET", f"{self.prefix}/v1/jobs/{job_id}/logs?{query}", headers=self._headers(None))
            resp = conn.getresponse()
            if resp.status >= 400:
                raise_problem(resp.status, resp.read())
            while True:
                chunk = resp.read1(65536)
                if not chunk:
                    return
                yield chunk
        finally:
            conn.close()

    def catalog(self, kind: str) -> list[JSONObject]:
        out: list[JSONObject] = self.request("GET", f"/v1/{kind}")[kind]
        return out

    def put(self, kind: str, name: str, body: Mapping[str, Any]) -> JSONObject:
        # checked here as the server checks its path: "" would name the list, not a queue
        path = f"/v1/{kind}/{quote(validate.name('name', name), safe='')}"
        out: JSONObject = self.request("PUT", path, dict(body))
        return out

    def register_definition(self, name: str, spec: Mapping[str, Any]) -> JSONObject:
        sent = dict(spec) if isinstance(spec, Mapping) else spec  # the server words what is not one
        out: JSONObject = self.request("POST", "/v1/definitions", {"name": name, "spec": sent})
        return out

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()


# -- straight on the store ------------------------------------------------------------------------


class LocalBackend:
    """The services of an ``App``: no server, no token (the database URL is the credential)."""

    def __init__(self, app: App, owned: bool = True, poll_seconds: float = 0.25) -> None:
        self.app, self.owned, self.poll_seconds = app, owned, poll_seconds

    def submit(self, body: Mapping[str, Any]) -> JSONObject:
        result = self.app.jobs.submit(wire.request_from_dict(body, ""))
        return {"job": wire.job_to_dict(result.job), "existing": result.existing, "reason": result.reason}

    def submit_many(self, bodies: Sequence[Mapping[str, Any]]) -> JSONObject:
        reqs = [wire.request_from_dict(b, f"jobs[{i}]") for i, b in enumerate(bodies)]
        return wire.batch_to_dict(self.app.jobs.submit_many_brief(reqs))

    def get_job(self, job_id: int, explain: bool = False) -> JSONObject:
        job = self.app.jobs.get(job_id)
        out = wire.job_to_dict(job)
        if explain:
            out["explanation"] = self.app.jobs.explain(job)
        return out

    def list_jobs(self, query: Mapping[str, Any]) -> JSONObject:
        """What ``GET /v1/jobs`` answers, checked as it checks (``wire.job_filters``)."""
        filters = wire.job_filters(**query)
        jobs = self.app.store.job_list(**filters)
        return {
            "jobs": [wire.job_to_dict(j) for j in jobs],
            "next_before_id": jobs[-1].id if len(jobs) == filters["limit"] else None,
        }

    def job_action(self, job_id: int, action: str, reason: str = "") -> JSONObject:
        if action == "retry":
            return {"job": wire.job_to_dict(self.app.jobs.retry(job_id)), "changed": True}
        run = self.app.jobs.cancel if action == "cancel" else self.app.jobs.terminate
        job, changed = run(job_id, reason)
        return {"job": wire.job_to_dict(job), "changed": changed}

    def bulk_action(self, action: str, body: Mapping[str, Any]) -> JSONObject:
        selection = wire.selection_from_dict(body)
        dry_run = validate.boolean("dry_run", body.get("dry_run", False))
        out = self.app.jobs.act_on_many(action, selection, body.get("reason", ""), dry_run)
        return wire.bulk_to_dict(out)

    def attempts(self, job_id: int) -> list[JSONObject]:
        return [wire.attempt_to_dict(a) for a in self.app.jobs.attempts(job_id)]

    def events(self, job_id: int, after_id: int, limit: int) -> JSONObject:
        """What ``GET /v1/jobs/{id}/events`` answers."""
        events = self.app.jobs.events(job_id, after_id, limit)
        return {
            "events": [wire.event_to_dict(e) for e in events],
            "next_after_id": events[-1].id if len(events) == limit else None,
        }

    def _read(
        self, job_id: int, attempt: int | None, pos: tuple[int, int]
    ) -> tuple[bytes, tuple[int, int], bool]:
        job = self.app.jobs.get(job_id)
        out: list[bytes] = []
        for number, seq, data in self.app.store.log_read(job_id, attempt, pos):
            if attempt is None and number != pos[0] and job.attempt > 1:
                out.append(f"--- attempt {number} ---\n".encode())
            out.append(data)
            pos = (number, seq)
        return b"".join(out), pos, job.state.terminal

    def logs(self, job_id: int, attempt: int | None = None) -> bytes:
        self.app.jobs.log_job(job_id, attempt)
        return self._read(job_id, attempt, (0, -1))[0]

    def follow_logs(self, job_id: int, attempt: int | None = None) -> Iterator[bytes]:
        self.app.jobs.log_job(job_id, attempt)
        pos = (0, -1)
        while True:
            data, pos, done = self._read(job_id, attempt, pos)
            if data:
                yield data
            if done:
                return
            time.sleep(self.poll_seconds)

    def catalog(self, kind: str) -> list[JSONObject]:
        store = self.app.store
        if kind == "queues":
            counts = store.queue_counts()
            return [wire.queue_to_dict(q, counts.get(q.name, {})) for q in store.queue_list()]
        if kind == "environments":
            usage = store.environment_usage(self.app.clock.now())
            return [wire.environment_to_dict(e, usage.get(e.name)) for e in store.environment_list()]
        if kind == "definitions":
            return [wire.definition_to_dict(d) for d in store.definition_list()]
        if kind == "workers":
            return [wire.worker_to_dict(w) for w in store.worker_list(self.app.clock.now())]
        raise errors.ValidationError(
            "kind", f"{kind!r} is not a catalogue", "queues, environments, definitions, workers"
        )

    def put(self, kind: str, name: str, body: Mapping[str, Any]) -> JSONObject:
        """What ``PUT /v1/{kind}/{name}`` does (``CatalogService.apply_queue``, ...)."""
        if kind == "queues":
            return wire.queue_to_dict(self.app.catalog.apply_queue(name, body)[0])
        if kind == "environments":
            return wire.environment_to_dict(self.app.catalog.apply_environment(name, body)[0])
        raise errors.ValidationError("kind", f"{kind!r} cannot be put", "queues, environments")

    def register_definition(self, name: str, spec: Mapping[str, Any]) -> JSONObject:
        definition, created = self.app.catalog.register_definition(name, spec)
        return {**wire.definition_to_dict(definition), "created": created}

    def close(self) -> None:
        if self.owned:
            self.app.close()
