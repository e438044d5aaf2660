"""Templates (a school's or the board's) and drafts (one's own), and sending a draft."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from admin_api.staff.broadcast_routes import create_broadcast
from admin_api.staff.deps import Actor, Api, FullSession, audited, id_url_for
from admin_api.staff.errors import ERROR_RESPONSES, StaffRoute
from admin_api.staff.schemas import (
    AudienceIn,
    BroadcastCreatedOut,
    BroadcastIn,
    DraftIn,
    IdPath,
    SavedOut,
    TemplateIn,
)
from engine.platform.errors import InputError
from engine.queue import Priority
from engine.staff import saved
from engine.staff.saved import Content, Kind

router = APIRouter(
    prefix="/api/staff", tags=["templates and drafts"], route_class=StaffRoute,
    responses=ERROR_RESPONSES,
)


def _content(body: TemplateIn) -> Content:
    draft = body if isinstance(body, DraftIn) else None
    return Content(
        body.name, body.sender, body.subject, body.body, body.category,
        Priority[body.priority.upper()],
        draft.audience.model_dump() if draft and draft.audience else None,
        draft.send_at if draft else None,
    )


def _out(s: saved.Saved) -> SavedOut:
    c = s.content
    return SavedOut(
        id=s.id, kind=s.kind.value, organisation_id=s.organisation_id, staff_id=s.staff_id,
        name=c.name, sender=c.sender, subject=c.subject, body=c.body, category=c.category,
        priority=c.priority.name.lower(),  # type: ignore[arg-type]
        audience=AudienceIn(**c.audience) if c.audience else None, send_at=c.send_at,
        created_at=s.created_at, updated_at=s.updated_at,
    )


@router.get("/templates", response_model=list[SavedOut], summary="テンプレート / templates")
async def list_templates(s: FullSession, api: Api) -> list[SavedOut]:
    """The caller's school's templates and the board's."""
    return [_out(x) for x in await saved.list_saved(api.staff, s.principal, Kind.TEMPLATE)]


@router.post("/templates", response_model=SavedOut, status_code=201,
             summary="テンプレートの作成 / new template")
async def create_template(body: TemplateIn, s: FullSession, api: Api) -> SavedOut:
    made = await audited(api, s.principal, "template.create", body.name[:100],
                         saved.create(api.staff, s.principal, Kind.TEMPLATE, _content(body)),
                         object_of=lambda x: f"template {x.id}")
    return _out(made)


@router.get("/templates/{saved_id}", response_model=SavedOut, summary="テンプレート / one")
async def get_template(saved_id: IdPath, s: FullSession, api: Api) -> SavedOut:
    return _out(await saved.get(api.staff, s.principal, Kind.TEMPLATE, saved_id))


@router.put("/templates/{saved_id}", response_model=SavedOut, summary="テンプレートの変更")
async def update_template(
    saved_id: IdPath, body: TemplateIn, s: FullSession, api: Api
) -> SavedOut:
    return _out(await audited(
        api, s.principal, "template.update", f"template {saved_id}",
        saved.update(api.staff, s.principal, Kind.TEMPLATE, saved_id, _content(body)),
    ))


@router.delete("/templates/{saved_id}", status_code=204, response_class=Response,
               summary="テンプレートの削除 / delete")
async def delete_template(saved_id: IdPath, s: FullSession, api: Api) -> Response:
    await audited(api, s.principal, "template.delete", f"template {saved_id}",
                  saved.delete(api.staff, s.principal, Kind.TEMPLATE, saved_id))
    return Response(status_code=204)


@router.get("/drafts", response_model=list[SavedOut], summary="下書き / my drafts")
async def list_drafts(s: FullSession, api: Api) -> list[SavedOut]:
    return [_out(x) for x in await saved.list_saved(api.staff, s.principal, Kind.DRAFT)]


@router.post("/drafts", response_model=SavedOut, status_code=201,
             summary="下書きの保存 / save a draft")
async def create_draft(body: DraftIn, s: FullSession, api: Api) -> SavedOut:
    made = await saved.create(api.staff, s.principal, Kind.DRAFT, _content(body))
    return _out(made)


@router.get("/drafts/{saved_id}", response_model=SavedOut, summary="下書き / one draft")
async def get_draft(saved_id: IdPath, s: FullSession, api: Api) -> SavedOut:
    return _out(await saved.get(api.staff, s.principal, Kind.DRAFT, saved_id))


@router.put("/drafts/{saved_id}", response_model=SavedOut, summary="下書きの変更")
async def update_draft(saved_id: IdPath, body: DraftIn, s: FullSession, api: Api) -> SavedOut:
    return _out(
        await saved.update(api.staff, s.principal, Kind.DRAFT, saved_id, _content(body))
    )


@router.delete("/drafts/{saved_id}", status_code=204, response_class=Response,
               summary="下書きの削除 / delete")
async def delete_draft(saved_id: IdPath, s: FullSession, api: Api) -> Response:
    await saved.delete(api.staff, s.principal, Kind.DRAFT, saved_id)
    return Response(status_code=204)


@router.post("/drafts/{saved_id}/send", response_model=BroadcastCreatedOut, status_code=201,
             summary="下書きの送信 / send a draft")
async def send_draft(
    saved_id: IdPath, actor: Actor, api: Api, request: Request
) -> BroadcastCreatedOut:
    """Sends the draft as saved (same checks as a new broadcast); the draft is removed in the
    same transaction, so it goes out once."""
    d = (await saved.get(api.staff, actor, Kind.DRAFT, saved_id)).content
    if d.audience is None:
        raise InputError("下書きに配信先がありません (the draft has no audience)")
    body = BroadcastIn(
        sender=d.sender, subject=d.subject, body=d.body, audience=AudienceIn(**d.audience),
        category=d.category, priority=d.priority.name.lower(),  # type: ignore[arg-type]
        send_at=d.send_at,
    )
    url = id_url_for(request, api, "broadcast_status")
    return await create_broadcast(api, actor, body, url, draft_id=saved_id)
