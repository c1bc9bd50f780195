"""The OpenAPI 3.1 document and a small offline page that renders it (no CDN)."""

from __future__ import annotations

import html
import json
from typing import Any

from conveyor.api.routes import OPERATIONS, Op, list_schemas
from conveyor.api.schema import SCHEMAS, ref

PROBLEM_STATUSES = {
    400: "Malformed request (not JSON, unreadable)",
    401: "No valid bearer token",
    403: "The token's scopes do not cover this",
    404: "Not found",
    409: "Conflicts with the current state",
    413: "Body too large",
    422: "Validation failed: `field` names the input",
    429: "Rate limit: see Retry-After",
    503: "Store unavailable",
}


def _operation(op: Op) -> dict[str, Any]:
    out: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
        "security": [{"bearer": []}],
    }
    if op.params:
        out["parameters"] = [
            {
                "name": p.name,
                "in": p.where,
                "required": p.where == "path",
                "schema": p.schema,
                **({"description": p.description} if p.description else {}),
            }
            for p in op.params
        ]
    if op.body:
        out["requestBody"] = {
            "required": op.body_required,
            "content": {"application/json": {"schema": ref(op.body)}},
        }
    responses: dict[str, Any] = {}
    for status in (op.ok, *op.extra_status):
        if status == 204:
            responses["204"] = {"description": "Done"}
        elif op.text:
            responses[str(status)] = {
                "description": "The log bytes (chunked while following)",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        else:
            responses[str(status)] = {
                "description": "Success",
                "content": {"application/json": {"schema": ref(op.response) if op.response else {}}},
            }
    for status, text in PROBLEM_STATUSES.items():
        if status == 413 and not op.body:
            continue
        responses[str(status)] = {
            "description": text,
            "content": {"application/problem+json": {"schema": ref("Problem")}},
        }
    out["responses"] = responses
    return out


def document(version: str = "0.1.0") -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    plain = {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}
    paths["/healthz"] = {
        "get": {"operationId": "healthz", "summary": "Liveness", "security": [], "responses": {"200": plain}}
    }
    paths["/readyz"] = {
        "get": {
            "operationId": "readyz",
            "summary": "Readiness: the store is reachable and its schema current",
            "security": [],
            "responses": {"200": plain, "503": {"description": "Not ready", **plain}},
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Conveyor API",
            "version": version,
            "description": (
                "Scheduled and on-demand batch jobs. Every /v1 call needs `Authorization: Bearer <token>`;"
                " scopes: admin, read, submit:<queue-glob>, schedules:write, checks:write (reserved: no heartbeat checks are served yet)."
                " Errors are RFC 9457 problem+json. JSON members are snake_case."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": {**SCHEMAS, **list_schemas()},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


def docs_page(doc: dict[str, Any]) -> str:
    """One self-contained page: every operation, its parameters, body and answers."""
    rows: list[str] = []
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            params = ", ".join(f"{p['name']} ({p['in']})" for p in op.get("parameters", []))
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            body_name = body.get("$ref", "").rsplit("/", 1)[-1]
            statuses = " ".join(sorted(op.get("responses", {})))
            rows.append(
                "<tr>"
                f"<td class=m>{html.escape(method.upper())}</td>"
                f"<td><code>{html.escape(path)}</code></td>"
                f"<td>{html.escape(op.get('summary', ''))}</td>"
                f"<td>{html.escape(params)}</td>"
                f"<td>{f'<a href=#{body_name}>{html.escape(body_name)}</a>' if body_name else ''}</td>"
                f"<td>{html.escape(statuses)}</td>"
                "</tr>"
            )
    schemas = "".join(
        f"<h3 id={html.escape(name)}>{html.escape(name)}</h3><pre>{html.escape(json.dumps(s, indent=2))}</pre>"
        for name, s in doc["components"]["schemas"].items()
    )
    return f"""<!doctype html>
<html lang=en><head><meta charset=utf-8><title>{html.escape(doc["info"]["title"])}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222 }}
table {{ border-collapse: collapse; width: 100% }}
td, th {{ border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top }}
td.m {{ font-weight: bold; font-family: monospace }}
pre {{ background: #f6f6f6; padding: 8px; overflow: auto }}
</style></head><body>
<h1>{html.escape(doc["info"]["title"])} {html.escape(doc["info"]["version"])}</h1>
<p>{html.escape(doc["info"]["description"])}</p>
<p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).</p>
<table><tr><th>method</th><th>path</th><th>what</th><th>parameters</th><th>body</th><th>answers</th></tr>
{"".join(rows)}</table>
<h2>Schemas</h2>{schemas}
</body></html>"""
