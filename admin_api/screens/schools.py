"""Schools (the board's administrators): ``/staff/roster/schools`` lists the board's schools,
adds, renames and (after a confirmation step) closes one; and for every administrator of a
school: ``/staff/roster/notices`` the registration notices (PDF, per class, by default only
the children no confirmed contact receives for yet) and ``/staff/roster/invitations`` the
invitation mail to the unconfirmed contacts, after a step that shows how many it goes to.

Rights: ``roster.schools_of`` / ``may_change_school`` (the board its schools) and the scope of
``people.admin_scope`` (a school's administrator their own school). Everything is audited.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse

from admin_api.screens.people import Id, admin_scope, refused
from admin_api.screens.web import ScreenRoute, Visit, field, see_other, visit
from admin_api.site import site_of
from engine.people import changes as ch
from engine.people.directory import add_organisation, find_organisation
from engine.people.invitations import invitation_count, invite
from engine.people.models import Organisation, OrgKind
from engine.people.notices import notices_for, notices_pdf
from engine.platform.errors import InputError
from engine.staff import roster
from engine.staff.models import RightsError
from engine.staff.rights import not_found, tenant

router = APIRouter(prefix="/staff/roster", route_class=ScreenRoute, include_in_schema=False)

KINDS = {k.value: k.label_ja for k in OrgKind if k is not OrgKind.BOARD}


async def _schools_page(v: Visit, status: int = 200, done: str = "", failed: str = "",
                        error: str = "", values: dict[str, str] | None = None) -> Response:
    """The board's schools; after a refused form, that form with its values and the reason
    next to it (``failed``: add or rename-ID)."""
    rows = await roster.schools_of(v.api.staff.pool, v.actor)
    return v.page("schools.html", status, title="学校", rows=rows, kinds=KINDS,
                  done={"add": "学校を登録しました。", "rename": "校名を変更しました。",
                        "close": "学校を閉じました。"}.get(done, ""),
                  failed=failed, error=error, values=values or {})


@router.get("/schools", response_class=HTMLResponse)
async def schools(request: Request, done: str = "") -> Response:
    v = await visit(request)
    return await _schools_page(v, done=done)


@router.post("/schools", response_class=HTMLResponse)
async def add_school(request: Request) -> Response:
    v = await visit(request)
    form = await v.form()
    board = await roster.board_code(v.api.staff.pool, v.actor)
    values = {k: field(form, k, n) for k, n in (("code", 40), ("name", 100), ("kind", 20),
                                                 ("final_grade", 3))}
    final = values["final_grade"].strip()
    try:
        kind = OrgKind.parse(values["kind"])
        if kind is OrgKind.BOARD:
            raise InputError("学校の種別を選んでください (a school's kind)")
        if final and not final.isdigit():
            raise InputError("最終学年は数字です (final grade)")
        await v.api.staff.audited(
            v.actor, "school.add", values["code"],
            add_organisation(v.api.people, kind, values["code"], values["name"], board,
                             int(final) if final else None),
            detail="(screens)",
        )
    except InputError as exc:
        return await _schools_page(v, 422, failed="add", error=refused(exc), values=values)
    return see_other("/staff/roster/schools?done=add")


async def _school(v: Visit, school_id: int) -> Organisation:
    """A school of the board the actor administers (another board's: not found)."""
    lines = await roster.schools_of(v.api.staff.pool, v.actor)
    match = [s for s in lines if s.id == school_id]
    if not match:
        raise not_found(f"学校 {school_id} ")
    return await roster.may_change_school(v.api.staff.pool, v.actor, match[0].code)


@router.post("/schools/{school_id}/rename", response_class=HTMLResponse)
async def rename(request: Request, school_id: int) -> Response:
    v = await visit(request)
    form = await v.form()
    org = await _school(v, school_id)
    name = field(form, "name", 200)
    try:
        await v.api.staff.audited(v.actor, "school.rename", org.code,
                                  ch.rename_school(v.api.people, org.code, name),
                                  detail="(screens)")
    except InputError as exc:
        return await _schools_page(v, 422, failed=f"rename-{school_id}", error=refused(exc),
                                   values={"name": name})
    return see_other("/staff/roster/schools?done=rename")


@router.get("/schools/{school_id}/close", response_class=HTMLResponse)
async def close_confirm(request: Request, school_id: int) -> Response:
    v = await visit(request)
    org = await _school(v, school_id)
    return v.page("roster_confirm.html", title="閉校の確認",
                  lines=[f"{org.name} ({org.code}) を閉じ、その学校のアカウントを"
                         "すべて終了します。",
                         "元に戻せません。統合のときは、先に新しい学校へ名簿を取り込んでください。"],
                  action=f"/staff/roster/schools/{school_id}/close", hidden={}, choices={},
                  button=f"{org.name}を閉じる", back="/staff/roster/schools")


@router.post("/schools/{school_id}/close")
async def close(request: Request, school_id: int) -> Response:
    v = await visit(request)
    await v.form()
    org = await _school(v, school_id)
    await v.api.staff.audited(v.actor, "school.close", org.code,
                              ch.close_school(v.api.people, org.code), detail="(screens)")
    return see_other("/staff/roster/schools?done=close")


async def _organisation(v: Visit, code: str) -> Organisation:
    return await find_organisation(v.api.staff.pool, code, tenant(v.actor))


@router.get("/notices", response_class=HTMLResponse)
async def notices_form(request: Request, school_id: Id = None) -> Response:
    v = await visit(request)
    s = await admin_scope(v, school_id)
    address = site_of(request).settings.people.registration_address
    return v.page("notices.html", title="登録のご案内 (印刷用 PDF)", scope=s, address=address)


@router.get("/notices.pdf")
async def notices_file(
    request: Request, school_id: Id = None, class_id: Id = None, address: str = "",
    everyone: Annotated[str, Query(max_length=1)] = "",
) -> Response:
    v = await visit(request)
    s = await admin_scope(v, school_id)
    unit = next((c for c in s.classes if c.id == class_id), None)
    if class_id is not None and unit is None:
        raise RightsError("この組の名簿は扱えません (not within your rights: class)")
    org = await _organisation(v, s.school.code)
    if not address.strip():
        raise InputError("登録用のアドレスを入力してください (registration address)")

    async def made() -> bytes:
        found = await notices_for(v.api.people, v.api.people.pool, org,
                                  unit.grade if unit else None, unit.name if unit else None,
                                  unregistered=everyone != "1")
        return notices_pdf(found, address[:320]).pdf

    pdf = await v.api.staff.audited(v.actor, "roster.notices", org.code, made(),
                                    detail=f"class={class_id or 'all'} (screens)")
    name = f"notices-{org.code}-{unit.grade}-{unit.name}.pdf" if unit else f"notices-{org.code}.pdf"
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/invitations", response_class=HTMLResponse)
async def invitations(request: Request, school_id: Id = None,
                      again: Annotated[str, Query(max_length=1)] = "") -> Response:
    v = await visit(request)
    s = await admin_scope(v, school_id)
    org = await _organisation(v, s.school.code)
    count = await invitation_count(v.api.people, org, again == "1")
    return v.page("invitations.html", title="登録確認の案内メール", scope=s, count=count,
                  again=again == "1")


@router.post("/invitations", response_class=HTMLResponse)
async def send_invitations(request: Request) -> Response:
    v = await visit(request)
    form = await v.form()
    s = await admin_scope(v, _id(field(form, "school_id", 20)))
    org = await _organisation(v, s.school.code)
    again = field(form, "again", 1) == "1"
    site = site_of(request)
    done = await v.api.staff.audited(
        v.actor, "contacts.invite", org.code,
        invite(v.api.people, v.api.queue, site.settings, org, again),
        detail=f"again={again} (screens)",
    )
    text = (f"{done.invited} 件に案内メールを送りました (配信 {done.broadcast_id})。"
            if done.invited else "案内を送る連絡先はありませんでした。")
    return v.page("message_ok.html", title="案内メールを送りました", text=text,
                  back=f"/staff/roster/invitations?school_id={s.school.id}")


def _id(text: str) -> int | None:
    text = text.strip()
    if text and (not text.isdigit() or len(text) > 18):
        raise InputError("学校の指定が正しくありません (school)")
    return int(text) if text else None
