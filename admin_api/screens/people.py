"""People (名簿): ``/staff/roster`` (what the signed-in staff member may do with the roster),
``/staff/roster/rate`` the registration rate per school, grade and class, and the accounts:
a school's list (by class, number, name; paginated), one account with its contacts (masked,
with their registration state), edit, move class, close / transfer out (after a confirmation
step), add (transfer in), add and remove an address.

Rights are the engine's (engine/staff/roster.py, rights.py): the rate for everyone within
their rights (the board its schools, a school's administrator their school, a teacher their
classes); the accounts for the board (its schools) and a school's administrators (their
school) only. Every change runs one engine function, audited under the CLI's action names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse

from admin_api.screens.web import ScreenRoute, Visit, field, see_other, visit
from engine.people import changes as ch
from engine.people.directory import parse_class, parse_grade
from engine.people.listing import account_contacts, contact_address, list_accounts
from engine.people.models import AccountKind
from engine.platform.errors import InputError
from engine.staff import roster
from engine.staff.models import NotFoundError, RightsError, Role
from engine.staff.organisation import ClassUnit, OrgUnit, organisation
from engine.staff.rights import not_found

router = APIRouter(prefix="/staff/roster", route_class=ScreenRoute, include_in_schema=False)

PAGE_SIZE = 50
Id = Annotated[int | None, Query(ge=1, le=2**62)]
DONE = {"edit": "変更しました。", "move": "組を移しました。", "added": "連絡先を追加しました。",
        "removed": "連絡先を外しました。", "new": "登録しました。"}


@dataclass(frozen=True)
class AdminScope:
    """One school the actor administers, the ones they may pick from, its classes."""

    school: OrgUnit
    schools: list[OrgUnit]
    classes: list[ClassUnit]


def require_admin(v: Visit) -> None:
    if v.actor.role not in (Role.BOARD, Role.SCHOOL):
        raise RightsError("名簿を扱えるのは学校と教育委員会の管理者だけです (administrators only)")


async def admin_scope(v: Visit, school_id: int | None) -> AdminScope:
    """The school ``school_id`` (the board's first one, a school's own) if the actor
    administers it: another board's is not found, another school refused."""
    require_admin(v)
    org = await organisation(v.api.staff.pool, v.actor, v.api.staff.now())
    if not org.schools:
        raise not_found("学校")
    if school_id is None:
        school = org.schools[0]
    else:
        match = [s for s in org.schools if s.id == school_id]
        if not match:
            if v.actor.role is Role.BOARD:
                raise not_found(f"学校 {school_id} ")
            raise RightsError("他校の名簿は扱えません (another school's roster)")
        school = match[0]
    classes = [c for c in org.classes if c.school_id == school.id]
    return AdminScope(school, org.schools if v.actor.role is Role.BOARD else [], classes)


@router.get("", response_class=HTMLResponse)
async def hub(request: Request) -> Response:
    v = await visit(request)
    return v.page("roster_hub.html", title="名簿", role=v.actor.role.value)


@router.get("/rate", response_class=HTMLResponse)
async def rate(request: Request, school_id: Id = None) -> Response:
    v = await visit(request)
    actor, staff = v.actor, v.api.staff
    org = await organisation(staff.pool, actor, staff.now())
    code = None
    if school_id is not None:
        match = [s for s in org.schools if s.id == school_id]
        if not match:
            raise not_found(f"学校 {school_id} ")
        code = match[0].code
    rows = await staff.audited(actor, "roster.rate", code or "all",
                               roster.rate_for(staff.pool, actor, code), detail="(screens)")
    return v.page("rate.html", title="登録率", rows=rows, schools=org.schools,
                  school_id=school_id, board=actor.role is Role.BOARD)


@router.get("/accounts", response_class=HTMLResponse)
async def accounts(
    request: Request, school_id: Id = None, class_id: Id = None, name: str = "",
    number: Annotated[int | None, Query(ge=1, le=999)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    unregistered: Annotated[str, Query(max_length=1)] = "",
) -> Response:
    v = await visit(request)
    s = await admin_scope(v, school_id)
    if class_id is not None and class_id not in {c.id for c in s.classes}:
        raise RightsError("この組の名簿は見られません (not within your rights: class)")
    name, only = name[:100], unregistered == "1"
    found = await list_accounts(v.api.people, s.school.id, class_id, name, number, PAGE_SIZE,
                                (page - 1) * PAGE_SIZE, unregistered=only)
    query = {"school_id": s.school.id, "class_id": class_id or "", "name": name,
             "number": number or "", "unregistered": "1" if only else ""}
    return v.page("accounts.html", title="アカウント", scope=s, found=found, class_id=class_id,
                  name=name, number=number, page=page, only=only,
                  pages=max(1, -(-found.total // PAGE_SIZE)),
                  query=urlencode({k: x for k, x in query.items() if x != ""}))


async def _account(v: Visit, account_id: int) -> ch.AccountInfo:
    """The account, if the actor may change it (an unknown or another board's: not found)."""
    require_admin(v)
    try:
        await roster.may_change_account(v.api.staff.pool, v.actor, account_id)
    except InputError:
        raise not_found(f"アカウント {account_id} ") from None
    return await ch.account_info(v.api.people.pool, v.api.people, account_id)


@router.get("/accounts/new", response_class=HTMLResponse)
async def new_account(request: Request, school_id: Id = None) -> Response:
    v = await visit(request)
    s = await admin_scope(v, school_id)
    return v.page("account_new.html", title="転入 (アカウントの追加)", scope=s, error="",
                  values={})


@router.post("/accounts/new", response_class=HTMLResponse)
async def add_account(request: Request) -> Response:
    v = await visit(request)
    form = await v.form()
    s = await admin_scope(v, _int(field(form, "school_id", 20)))
    values = {k: field(form, k, n) for k, n in (("kind", 10), ("name", 200), ("grade", 10),
                                                 ("class_name", 20), ("number", 10),
                                                 ("address", 320))}
    address = values["address"].strip()
    try:
        grade = parse_grade(values["grade"]) if values["grade"] else None
        class_name = parse_class(values["class_name"]) if values["class_name"] else None
        info = await v.api.staff.audited(
            v.actor, "accounts.add", s.school.code,
            ch.transfer_in(v.api.people, s.school.code, values["name"], grade, class_name,
                           _int(values["number"]), (address,) if address else (),
                           AccountKind.STAFF if values["kind"] == "staff" else AccountKind.CHILD),
            detail="(screens)",
        )
    except InputError as exc:
        return v.page("account_new.html", 422, title="転入 (アカウントの追加)", scope=s,
                      error=refused(exc), values=values)
    return see_other(f"/staff/roster/accounts/{info.id}?done=new")


async def _account_page(v: Visit, account_id: int, status: int = 200, done: str = "",
                        failed: str = "", error: str = "",
                        values: dict[str, str] | None = None) -> Response:
    """One account's page; after a refused form, that form with its values and the reason
    next to it (``failed``: edit, move or address)."""
    info = await _account(v, account_id)
    contacts = await account_contacts(v.api.people, account_id)
    return v.page("account.html", status, title=f"{info.name} さん", info=info,
                  contacts=contacts, done=DONE.get(done, ""), failed=failed, error=error,
                  values=values or {})


def refused(exc: InputError) -> str:
    """The reason to show next to a refused form; not found stays the 404 page."""
    if isinstance(exc, NotFoundError):
        raise exc
    return str(exc)


@router.get("/accounts/{account_id}", response_class=HTMLResponse)
async def account(request: Request, account_id: int, done: str = "") -> Response:
    v = await visit(request)
    return await _account_page(v, account_id, done=done)


@router.post("/accounts/{account_id}/edit", response_class=HTMLResponse)
async def edit(request: Request, account_id: int) -> Response:
    v = await visit(request)
    form = await v.form()
    info = await _account(v, account_id)
    name, code = field(form, "name", 200).strip(), field(form, "code", 40).strip()
    number_text = field(form, "number", 10)
    try:
        number = _int(number_text)
        await v.api.staff.audited(
            v.actor, "accounts.edit", str(account_id),
            ch.edit_account(v.api.people, account_id,
                            name if name and name != info.name else None,
                            number if number != info.number else None, code or None),
            detail="(screens)",
        )
    except InputError as exc:
        return await _account_page(v, account_id, 422, failed="edit", error=refused(exc),
                                   values={"name": name, "number": number_text, "code": code})
    return see_other(f"/staff/roster/accounts/{account_id}?done=edit")


@router.post("/accounts/{account_id}/move", response_class=HTMLResponse)
async def move(request: Request, account_id: int) -> Response:
    v = await visit(request)
    form = await v.form()
    await _account(v, account_id)
    values = {"grade": field(form, "grade", 10), "class_name": field(form, "class_name", 20),
              "number": field(form, "number", 10)}
    try:
        grade, class_name = parse_grade(values["grade"]), parse_class(values["class_name"])
        await v.api.staff.audited(
            v.actor, "accounts.move", str(account_id),
            ch.move_account(v.api.people, account_id, grade, class_name,
                            _int(values["number"])),
            detail=f"to {grade}-{class_name} (screens)",
        )
    except InputError as exc:
        return await _account_page(v, account_id, 422, failed="move", error=refused(exc),
                                   values=values)
    return see_other(f"/staff/roster/accounts/{account_id}?done=move")


@router.get("/accounts/{account_id}/close", response_class=HTMLResponse)
async def close_confirm(request: Request, account_id: int) -> Response:
    v = await visit(request)
    info = await _account(v, account_id)
    contacts = await account_contacts(v.api.people, account_id)
    return v.page("roster_confirm.html", title="転出・アカウントの終了の確認",
                  lines=[f"{info.where} {info.name} さんのアカウントを終了します。",
                         f"連絡先 {len(contacts)} 件は、ほかのアカウントやグループの分だけ"
                         "受け取り続けます。", "終了したアカウントは元に戻せません。"],
                  action=f"/staff/roster/accounts/{account_id}/close", hidden={},
                  choices={"transferred": "転出", "other": "その他"},
                  button="アカウントを終了する", back=f"/staff/roster/accounts/{account_id}")


@router.post("/accounts/{account_id}/close")
async def close(request: Request, account_id: int) -> Response:
    v = await visit(request)
    form = await v.form()
    info = await _account(v, account_id)
    reason = field(form, "reason", 20)
    if reason not in ("transferred", "other"):
        raise InputError("終了の理由を選んでください (reason)")
    await v.api.staff.audited(v.actor, "accounts.close", str(account_id),
                              ch.close_account(v.api.people, account_id, reason),
                              detail=f"reason={reason} (screens)")
    return v.page("message_ok.html", title="アカウントを終了しました",
                  text=f"{info.where} {info.name} さんのアカウントを終了しました。",
                  back=f"/staff/roster/accounts?school_id={info.school_id}")


@router.post("/accounts/{account_id}/contacts", response_class=HTMLResponse)
async def add_address(request: Request, account_id: int) -> Response:
    v = await visit(request)
    form = await v.form()
    await _account(v, account_id)
    address = field(form, "address", 320)
    try:
        await v.api.staff.audited(
            v.actor, "contacts.add", str(account_id),
            ch.add_address(v.api.people, account_id, address), detail="(screens)",
        )
    except InputError as exc:
        return await _account_page(v, account_id, 422, failed="address", error=refused(exc),
                                   values={"address": address})
    return see_other(f"/staff/roster/accounts/{account_id}?done=added")


@router.post("/accounts/{account_id}/contacts/{contact_id}/remove")
async def remove_address(request: Request, account_id: int, contact_id: int) -> Response:
    v = await visit(request)
    await v.form()
    await _account(v, account_id)
    address = await contact_address(v.api.people, account_id, contact_id)
    await v.api.staff.audited(
        v.actor, "contacts.remove", str(account_id),
        ch.remove_address(v.api.people, address, account_id), detail="(screens)",
    )
    return see_other(f"/staff/roster/accounts/{account_id}?done=removed")


def _int(text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        raise InputError(f"「{text[:10]}」は数字ではありません (not a number)")
    return int(text)
