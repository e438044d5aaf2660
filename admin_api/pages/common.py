"""What the page routers share: a message page, reading form fields, the link check."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse

from admin_api.templating import templates
from engine.links import InvalidLink


def message_page(
    request: Request, title: str, message: str, status: int = 200, kind: str = "error"
) -> HTMLResponse:
    return templates.TemplateResponse(
        request, "message.html", {"title": title, "message": message, "kind": kind},
        status_code=status,
    )


def link_error(request: Request, exc: InvalidLink) -> HTMLResponse:
    """A forged, malformed or expired link: said plainly, nothing done."""
    return message_page(request, "リンクを確認できません", str(exc), 410 if exc.expired else 400)


def group_ids(values: list[str]) -> list[int] | None:
    """Group ids from checkboxes; None if any value is not one (a tampered form)."""
    out: list[int] = []
    for v in values:
        if not v.isascii() or not v.isdigit() or len(v) > 18:
            return None
        out.append(int(v))
    return list(dict.fromkeys(out))


def client_ip(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"
