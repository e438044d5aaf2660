"""``/docs``: the API's reference for application developers, rendered on the server from the
app's own OpenAPI document. No CDN, no script, no other site: it works on a school network
without internet access (FastAPI's own ``/docs`` loads Swagger UI from a CDN, so it is off).
The machine-readable document stays at ``/openapi.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from admin_api.screens.web import render

router = APIRouter(include_in_schema=False)

_METHODS = ("get", "post", "put", "patch", "delete")
_REF = "#/components/schemas/"


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    required: bool
    description: str
    where: str = ""


@dataclass
class Operation:
    method: str
    path: str
    summary: str
    description: str
    anchor: str
    params: list[Field] = field(default_factory=list)
    body: str = ""
    body_type: str = ""
    responses: list[tuple[str, str, str]] = field(default_factory=list)


def type_of(schema: dict[str, Any]) -> str:
    """A short readable type: ``OrganisationOut``, ``list[int]``, ``string (date-time)``..."""
    if "$ref" in schema:
        return str(schema["$ref"]).removeprefix(_REF)
    if "anyOf" in schema or "oneOf" in schema:
        return " | ".join(type_of(s) for s in schema.get("anyOf", schema.get("oneOf", [])))
    if "enum" in schema:
        return " | ".join(repr(v) if isinstance(v, str) else str(v) for v in schema["enum"])
    if "const" in schema:
        return repr(schema["const"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list[{type_of(schema.get('items', {}))}]"
    if kind == "object" and "additionalProperties" in schema:
        extra = schema["additionalProperties"]
        return f"dict[str, {type_of(extra) if isinstance(extra, dict) else 'any'}]"
    fmt = schema.get("format")
    return f"{kind} ({fmt})" if fmt else str(kind)


def _media(content: dict[str, Any]) -> tuple[str, str]:
    """(media type, type of its schema) of a request or response body."""
    for media, spec in content.items():
        return media, type_of(spec.get("schema", {})) if spec.get("schema") else ""
    return "", ""


def operations(doc: dict[str, Any]) -> dict[str, list[Operation]]:
    """The operations by tag, in the document's order."""
    out: dict[str, list[Operation]] = {}
    for path, item in doc.get("paths", {}).items():
        for method in _METHODS:
            op = item.get(method)
            if op is None:
                continue
            o = Operation(
                method.upper(), path, op.get("summary", ""), op.get("description", ""),
                op.get("operationId", f"{method}-{path}"),
            )
            for p in op.get("parameters", []):
                o.params.append(Field(
                    p["name"], type_of(p.get("schema", {})), bool(p.get("required")),
                    p.get("description", "") or p.get("schema", {}).get("description", ""),
                    p.get("in", ""),
                ))
            if "requestBody" in op:
                o.body, o.body_type = _media(op["requestBody"].get("content", {}))
            for status, r in op.get("responses", {}).items():
                _, kind = _media(r.get("content", {}))
                o.responses.append((status, r.get("description", ""), kind))
            out.setdefault((op.get("tags") or ["other"])[0], []).append(o)
    return out


def schemas(doc: dict[str, Any]) -> list[tuple[str, str, list[Field]]]:
    """(name, description, fields) of every schema."""
    out = []
    for name, s in sorted(doc.get("components", {}).get("schemas", {}).items()):
        required = set(s.get("required", []))
        fields = [
            Field(key, type_of(spec), key in required, spec.get("description", ""))
            for key, spec in s.get("properties", {}).items()
        ]
        if "enum" in s:
            fields.append(Field("(値)", type_of(s), True, ""))
        out.append((name, s.get("description", ""), fields))
    return out


@router.get("/docs", response_class=HTMLResponse)
async def reference(request: Request) -> Response:
    doc = request.app.openapi()
    return render(
        request, "apidocs.html", title="API リファレンス (アプリケーション開発者向け)",
        info=doc.get("info", {}), tags=operations(doc), schemas=schemas(doc),
    )
