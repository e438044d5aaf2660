"""What the page routers share: a message page, reading form fields, the link check, and how
a question is filled in on a form."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from admin_api.proxies import client_address
from admin_api.templating import templates
from engine.message.links import InvalidLink
from engine.twoway import Answer, Question, QuestionKind


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
    """The client's address, through trusted proxies (admin_api/proxies.py)."""
    return client_address(request) or "unknown"


def question_fields(
    questions: Sequence[Question], answers: dict[str, Answer], posted: dict[str, list[str]]
) -> list[dict[str, Any]]:
    """Each question with what the form shows checked or filled in: the posted values after
    a refusal (so nothing typed is lost), else the stored answers."""
    out: list[dict[str, Any]] = []
    for q in questions:
        checked: set[int] = set()
        value = ""
        if posted:
            values = posted.get(q.key, [])
            checked = {int(v) for v in values if v.isascii() and v.isdigit() and len(v) < 4}
            value = values[0] if values else ""
        else:
            a = answers.get(q.key)
            if isinstance(a, tuple):
                checked = set(a)
            elif isinstance(a, int):
                checked = {a}
            elif a is not None:
                value = str(a)
        multiline = q.kind is QuestionKind.TEXT and q.max_length > 100
        out.append({"q": q, "checked": checked, "value": value, "multiline": multiline})
    return out
