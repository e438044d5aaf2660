"""Compose from something kept: a draft (one's own), a template (the school's or the board's)
or a past broadcast ("copy"), and saving the form as a draft.

Drafts and templates are ``engine.staff.saved``'s, the ones ``/api/staff/drafts`` and
``/api/staff/templates`` serve, with its rights (another's draft, another school's template,
another board's anything: "not found"). A copy reads the broadcast through
``engine.staff.follow.status`` (a broadcast outside the rights is "not found") and takes its
subject, body, sender, category, priority and audience; never its send time or files.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import HTMLResponse

from admin_api.screens.compose import form_page
from admin_api.screens.compose_form import Draft, targets_of
from admin_api.screens.web import ScreenRoute, Visit, field, see_other, visit
from engine.platform.errors import InputError
from engine.queue import Priority
from engine.staff import follow, saved
from engine.staff.saved import Kind

router = APIRouter(prefix="/staff", route_class=ScreenRoute, include_in_schema=False)

SavedId = Annotated[int, Path(ge=1, le=2**62)]
IdParam = Annotated[int | None, Query(ge=1, le=2**62)]


async def copied(v: Visit, broadcast_id: int) -> Draft:
    """A new form with a past broadcast's content and audience."""
    st = await follow.status(v.api.staff.pool, v.actor, broadcast_id, v.api.staff.now())
    b = st.broadcast
    return Draft(
        targets_of(st.audience or {}, v.actor.board_id), b.sender, b.category,
        "emergency" if b.priority is Priority.EMERGENCY else "normal", b.subject, st.body,
    )


@router.get("/compose/from", response_class=HTMLResponse)
async def compose_from(
    request: Request, draft: IdParam = None, template: IdParam = None, copy: IdParam = None,
) -> Response:
    """The form pre-filled from a draft, a template or a past broadcast."""
    v = await visit(request)
    api, actor = v.api, v.actor
    if draft is not None:
        d = await saved.get(api.staff, actor, Kind.DRAFT, draft)
        return await form_page(v, Draft.from_content(d.content, actor.board_id, d.id),
                               notice=f"下書き「{d.content.name}」を開きました。")
    if template is not None:
        t = await saved.get(api.staff, actor, Kind.TEMPLATE, template)
        return await form_page(v, Draft.from_content(t.content, actor.board_id).without_draft(),
                               notice=f"テンプレート「{t.content.name}」から始めます。")
    if copy is not None:
        return await form_page(
            v, await copied(v, copy),
            notice=f"配信 {copy} の内容をコピーしました。配信先と本文を確かめてください。",
        )
    return see_other("/staff/compose")


@router.post("/compose/draft", response_class=HTMLResponse)
async def save_draft(request: Request) -> Response:
    """Save the form as a draft (the one it was opened from, or a new one) and show it again."""
    v = await visit(request)
    form = await v.form()
    draft = Draft.of(form)
    api, actor = v.api, v.actor
    name = field(form, "draft_name", 100).strip() or draft.subject.strip()[:100] or "無題"
    try:
        content = draft.content(actor.board_id, name)
        if draft.draft_id is not None:
            kept = await saved.update(api.staff, actor, Kind.DRAFT, draft.draft_id, content)
        else:
            kept = await saved.create(api.staff, actor, Kind.DRAFT, content)
    except InputError as exc:
        return await form_page(v, draft, str(exc), 422)
    return await form_page(
        v, Draft.from_content(kept.content, actor.board_id, kept.id),
        notice=f"下書き「{kept.content.name}」を保存しました。まだ送信していません。",
    )


@router.post("/drafts/{saved_id}/delete", response_class=HTMLResponse)
async def delete_draft(request: Request, saved_id: SavedId) -> Response:
    v = await visit(request)
    await v.form()
    await saved.delete(v.api.staff, v.actor, Kind.DRAFT, saved_id)
    return see_other("/staff/compose")
