"""Compose, confirm, send: the teacher's path from an empty form to a broadcast.

1. ``GET /staff/compose``: the audience picker (``engine.staff.audiences.choices``: only
   what the actor may send to), the sender (the organisation's allowed addresses, as
   ``GET /api/staff/senders``), category, priority, subject, body, send time (Japan time),
   read confirmation with reminders, questions with a deadline (the API's two-way fields);
   ``?draft=ID``, ``?template=ID`` and ``?copy=ID`` (a past broadcast) open it pre-filled
   (compose_saved.py).
2. ``POST /staff/compose/count`` (the 「人数を確認」 button, re-rendering the form as typed) and
   ``count.json`` (the form's script, on every change of the audience): how many the audience
   reaches now and why some are skipped (``engine.staff.audiences.count``), nothing stored.
3. ``POST /staff/compose/confirm``: everything checked as sending would check it, nothing
   stored; the confirmation names the schools, the recipient count, those skipped and the
   category ("the wrong school" guard), with a 390px phone preview of the mail as a guardian
   reads it (the personal link lines included).
4. ``POST /staff/compose/send``: ``engine.staff.sending.create``, audited as the API's
   ``broadcast.create``, with the files chosen on the confirmation stored as links in the same
   transaction (compose_files.py); then the broadcast page. ``POST /staff/compose`` goes back
   to the form with what was typed.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from admin_api.screens.compose_files import read_send_form, uploads_of
from admin_api.screens.compose_form import PRIORITIES, QUESTION_KINDS, Draft
from admin_api.screens.web import ScreenRoute, Visit, field, see_other, visit
from engine.message.compose import preview_text
from engine.people import Category
from engine.platform.errors import InputError
from engine.queue.broadcasts import refuse_past_send_at
from engine.staff import attachments, audiences, audit, saved, sending
from engine.staff.models import ActorKind
from engine.staff.saved import Kind
from engine.staff.senders import list_senders, sender_for
from engine.twoway.asks import check_way_back

router = APIRouter(prefix="/staff", route_class=ScreenRoute, include_in_schema=False)


async def form_page(v: Visit, draft: Draft, error: str = "", status: int = 200,
                    counted: audiences.Count | None = None, notice: str = "") -> Response:
    api, actor = v.api, v.actor
    choices = await audiences.choices(api.staff.pool, actor, api.staff.now())
    org = actor.organisation_id
    senders = await list_senders(api.staff.pool, org) if org is not None else []
    sections = [
        ("教育委員会", choices.board), ("学校全体", choices.schools), ("学年", choices.grades),
        ("組", choices.classes), ("グループ", choices.groups),
    ]
    offered = {f"{c.kind}:{c.id}" for c in choices.all()}
    staff = actor.kind is ActorKind.STAFF
    return v.page(
        "compose.html", status, title="新しい配信", draft=draft, error=error, notice=notice,
        sections=[(name, items) for name, items in sections if items],
        # Targets a draft or a copied broadcast names that the picker does not show
        # (accounts picked one by one): kept, and named by count.
        hidden_targets=[t for t in draft.targets if t not in offered],
        senders=senders, categories=[(c.value, c.label_ja) for c in Category],
        priorities=PRIORITIES, question_kinds=QUESTION_KINDS, counted=counted,
        drafts=await saved.list_saved(api.staff, actor, Kind.DRAFT) if staff else [],
        templates=await saved.list_saved(api.staff, actor, Kind.TEMPLATE) if staff else [],
    )


async def _count(v: Visit, draft: Draft) -> audiences.Count:
    """What the form's audience reaches now (InputError: nothing chosen, or refused)."""
    category, priority = draft.category_value(), draft.priority_value()
    audience = draft.audience(v.actor.board_id)
    if audience.is_empty():
        raise InputError("配信先を選ぶと人数を表示します (choose an audience first)")
    return await audiences.count(
        v.api.staff.pool, v.api.people, v.actor, audience, category, priority,
        v.api.staff.now(),
    )


@router.get("/compose", response_class=HTMLResponse)
async def compose(request: Request) -> Response:
    v = await visit(request)
    return await form_page(v, Draft())


@router.post("/compose", response_class=HTMLResponse)
async def back_to_form(request: Request) -> Response:
    """From the confirmation back to the form, with everything as it was typed."""
    v = await visit(request)
    return await form_page(v, Draft.of(await v.form()))


@router.post("/compose/count", response_class=HTMLResponse)
async def count_page(request: Request) -> Response:
    """「人数を確認」 without JavaScript: the form again as typed, with the count."""
    v = await visit(request)
    draft = Draft.of(await v.form())
    try:
        counted = await _count(v, draft)
    except InputError as exc:
        return await form_page(v, draft, str(exc), 422)
    return await form_page(v, draft, counted=counted)


@router.post("/compose/count.json")
async def count_json(request: Request) -> Response:
    """The form's script asks this whenever the audience changes (no personal data)."""
    v = await visit(request)
    draft = Draft.of(await v.form())
    try:
        c = await _count(v, draft)
    except InputError as exc:
        return JSONResponse({"error": str(exc)}, status_code=422,
                            headers={"Cache-Control": "no-store"})
    return JSONResponse(
        {"recipients": c.recipients, "skipped": c.skipped, "schools": c.schools},
        headers={"Cache-Control": "no-store"},
    )


@router.post("/compose/confirm", response_class=HTMLResponse)
async def confirm(request: Request) -> Response:
    v = await visit(request)
    return await confirm_page(v, Draft.of(await v.form()))


async def confirm_page(v: Visit, draft: Draft, error: str = "", status: int = 200) -> Response:
    api, actor = v.api, v.actor
    try:
        # What ``sending.create`` and the fan-out refuse, refused here with their words.
        req = draft.request(actor.board_id)
        sending.check_content(req)
        asks = req.asks()
        if asks is not None:
            asks.check(api.staff.now())
        check_way_back(asks, api.public_url)
        if req.send_at is not None:
            refuse_past_send_at(req.send_at, api.staff.now())
        sender = await sender_for(api.staff.pool, actor, req.sender, api.staff.dkim)
        counted = await audiences.count(
            api.staff.pool, api.people, actor, req.audience, req.category, req.priority,
            api.staff.now(),
        )
    except InputError as exc:
        return await form_page(v, draft, str(exc), 422)
    choices = await audiences.choices(api.staff.pool, actor, api.staff.now())
    personal = asks is not None and asks.personal_page
    return v.page(
        # ``once``: the send's idempotency key, so a second click finds the first broadcast.
        "confirm.html", status, title="送信内容の確認", draft=draft, count=counted,
        sender=sender, once=secrets.token_urlsafe(18), error=error,
        category=req.category.label_ja, priority=PRIORITIES[draft.priority],
        targets=_target_labels(choices, draft.targets), req=req,
        preview=preview_text(req.body, personal, api.public_url),
        question_kinds=QUESTION_KINDS, limits=api.attachments,
    )


def _target_labels(choices: audiences.Choices, targets: tuple[str, ...]) -> list[str]:
    names = {f"{c.kind}:{c.id}": c.label for c in choices.all()}
    accounts = sum(1 for t in targets if t.startswith("account:"))
    labels = [names.get(t, t) for t in targets if not t.startswith("account:")]
    return labels + ([f"個別に選んだ児童生徒 {accounts} 人"] if accounts else [])


@router.post("/compose/send", response_class=HTMLResponse)
async def send(request: Request) -> Response:
    v = await visit(request)
    form = await read_send_form(v)
    draft = Draft.of(form)
    api, actor = v.api, v.actor
    try:
        files = attachments.check_uploads(api.attachments, uploads_of(form))
    except InputError as exc:
        # As the API: a refused upload is in the audit log, and nothing is stored.
        await api.staff.log(actor, "attachment.upload", "", audit.Result.FAILED,
                            str(exc)[:300])
        return await confirm_page(v, draft, f"添付ファイル: {exc}", 422)
    try:
        req = draft.request(actor.board_id)
        now = api.staff.now()
        also = None
        if files:
            req = replace(req, files_digest=attachments.files_digest(files))
            also = attachments.storing(api.people.sealer, files, req.send_at or now,
                                       api.attachments, now)
        once = field(form, "once", 64)
        made = await api.staff.audited(
            actor, "broadcast.create", "",
            sending.create(api.staff, api.people, api.queue, actor, req, api.max_age,
                           idempotency_key=once or None, draft_id=draft.draft_id, also=also),
            object_of=lambda c: f"broadcast {c.broadcast_id}",
            detail=f"audience={','.join(draft.targets)} (screens)"[:300],
        )
    except InputError as exc:
        return await form_page(v, draft, str(exc), 422)
    if files and not made.replayed:
        # Names can identify a family: the log keeps kinds and sizes only.
        await api.staff.log(actor, "attachment.upload", f"broadcast {made.broadcast_id}",
                            audit.Result.OK, _files_detail(files))
    return see_other(f"/staff/broadcasts/{made.broadcast_id}")


def _files_detail(files: list[attachments.CheckedFile]) -> str:
    detail: dict[str, Any] = {
        "files": len(files), "bytes": sum(len(f.data) for f in files),
        "types": sorted({f.media_type.split(";")[0] for f in files}),
    }
    return json.dumps(detail)
