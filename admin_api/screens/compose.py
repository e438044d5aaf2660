"""Compose, confirm, send: the teacher's path from an empty form to a broadcast.

1. ``GET /staff/compose``: the audience picker (``engine.staff.audiences.choices``: only
   what the actor may send to), the sender (the organisation's allowed addresses, as
   ``GET /api/staff/senders``), category, priority, subject and body.
2. ``POST /staff/compose/confirm``: everything checked as sending would check it, nothing
   stored; the confirmation names the schools, the recipient count, those skipped and the
   category ("the wrong school" guard), with a phone-width preview.
3. ``POST /staff/compose/send``: ``engine.staff.sending.create``, audited as the API's
   ``broadcast.create``; then the broadcast page. ``POST /staff/compose`` goes back to the
   form with what was typed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from starlette.datastructures import FormData

from admin_api.screens.web import ScreenRoute, Visit, field, see_other, visit
from engine.people import Audience, Category
from engine.platform.errors import InputError
from engine.queue import Priority
from engine.staff import audiences, sending
from engine.staff.senders import list_senders, sender_for

router = APIRouter(prefix="/staff", route_class=ScreenRoute, include_in_schema=False)

PRIORITIES = {"normal": "通常", "emergency": "緊急 (最優先で送信)"}
_KINDS = ("board", "school", "grade", "class", "group")


@dataclass(frozen=True)
class Draft:
    """What the form holds, as typed (re-shown after a refusal or from the confirmation)."""

    targets: tuple[str, ...] = ()
    sender: str = ""
    category: str = Category.NOTICE.value
    priority: str = "normal"
    subject: str = ""
    body: str = ""

    @classmethod
    def of(cls, form: FormData) -> Draft:
        targets = tuple(dict.fromkeys(
            t[:40] for t in form.getlist("to") if isinstance(t, str)
        ))[:500]
        return cls(
            targets, field(form, "sender", 320), field(form, "category", 40),
            field(form, "priority", 20), field(form, "subject", 1000),
            field(form, "body", 200_000).replace("\r\n", "\n"),
        )

    def audience(self, board_id: int | None) -> Audience:
        """The audience the checkboxes name; InputError for a value no form of ours makes."""
        ids: dict[str, list[int]] = {k: [] for k in _KINDS}
        for t in self.targets:
            kind, _, ident = t.partition(":")
            if kind not in ids or not ident.isascii() or not ident.isdigit():
                raise InputError(f"配信先「{t}」を読み取れません (unknown audience value)")
            ids[kind].append(int(ident))
        if ids["board"] and (board_id is None or set(ids["board"]) != {board_id}):
            raise InputError("教育委員会の指定が正しくありません (not your board)")
        return Audience(
            tuple(ids["board"]), tuple(ids["school"]), tuple(ids["grade"]),
            tuple(ids["class"]), tuple(ids["group"]),
        )

    def request(self, board_id: int | None) -> sending.BroadcastRequest:
        try:
            category = Category(self.category)
        except ValueError:
            raise InputError("区分を選んでください (unknown category)") from None
        if self.priority not in PRIORITIES:
            raise InputError("優先度を選んでください (unknown priority)")
        return sending.BroadcastRequest(
            sender=self.sender, subject=self.subject, body=self.body,
            audience=self.audience(board_id), category=category,
            priority=Priority[self.priority.upper()],
        )


async def _form_page(v: Visit, draft: Draft, error: str = "", status: int = 200) -> Response:
    api, actor = v.api, v.actor
    choices = await audiences.choices(api.staff.pool, actor, api.staff.now())
    org = actor.organisation_id
    senders = await list_senders(api.staff.pool, org) if org is not None else []
    sections = [
        ("教育委員会", choices.board), ("学校全体", choices.schools), ("学年", choices.grades),
        ("組", choices.classes), ("グループ", choices.groups),
    ]
    return v.page(
        "compose.html", status, title="新しい配信", draft=draft, error=error,
        sections=[(name, items) for name, items in sections if items],
        senders=senders, categories=[(c.value, c.label_ja) for c in Category],
        priorities=PRIORITIES,
    )


@router.get("/compose", response_class=HTMLResponse)
async def compose(request: Request) -> Response:
    v = await visit(request)
    return await _form_page(v, Draft())


@router.post("/compose", response_class=HTMLResponse)
async def back_to_form(request: Request) -> Response:
    """From the confirmation back to the form, with everything as it was typed."""
    v = await visit(request)
    return await _form_page(v, Draft.of(await v.form()))


@router.post("/compose/confirm", response_class=HTMLResponse)
async def confirm(request: Request) -> Response:
    v = await visit(request)
    draft = Draft.of(await v.form())
    api, actor = v.api, v.actor
    try:
        req = draft.request(actor.board_id)
        sending.check_content(req)
        sender = await sender_for(api.staff.pool, actor, req.sender, api.staff.dkim)
        counted = await audiences.count(
            api.staff.pool, api.people, actor, req.audience, req.category, req.priority,
            api.staff.now(),
        )
    except InputError as exc:
        return await _form_page(v, draft, str(exc), 422)
    return v.page(
        # ``once``: the send's idempotency key, so a second click finds the first broadcast.
        "confirm.html", title="送信内容の確認", draft=draft, count=counted, sender=sender,
        once=secrets.token_urlsafe(18),
        category=req.category.label_ja, priority=PRIORITIES[draft.priority],
        targets=_target_labels(await audiences.choices(api.staff.pool, actor, api.staff.now()),
                               draft.targets),
    )


def _target_labels(choices: audiences.Choices, targets: tuple[str, ...]) -> list[str]:
    names = {f"{c.kind}:{c.id}": c.label for c in choices.all()}
    return [names.get(t, t) for t in targets]


@router.post("/compose/send", response_class=HTMLResponse)
async def send(request: Request) -> Response:
    v = await visit(request)
    form = await v.form()
    draft = Draft.of(form)
    api, actor = v.api, v.actor
    try:
        req = draft.request(actor.board_id)
        once = field(form, "once", 64)
        made = await api.staff.audited(
            actor, "broadcast.create", "",
            sending.create(api.staff, api.people, api.queue, actor, req, api.max_age,
                           idempotency_key=once or None),
            object_of=lambda c: f"broadcast {c.broadcast_id}",
            detail=f"audience={','.join(draft.targets)} (screens)"[:300],
        )
    except InputError as exc:
        return await _form_page(v, draft, str(exc), 422)
    return see_other(f"/staff/broadcasts/{made.broadcast_id}")
