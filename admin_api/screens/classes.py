"""Grades and classes (学年と組): ``/staff/roster/classes`` a school's grades and classes of
the current year with their accounts, add a class (and its grade), rename one, remove an
empty one; and ``/staff/roster/class`` a teacher's own classes' accounts with each contact's
registration state (masked), the unregistered ones filtered with one click (read-only: a
teacher changes nothing in the roster).

Rights are the engine's (engine/staff/class_rights.py): the board its schools (another
board's class is not found), a school's administrators their own school, a teacher only the
classes given to them. A refused change re-renders the page with the values kept and the
Japanese reason next to the form (422), nothing changed; every change (and every refusal) is
in the audit log under ``class.add``, ``class.rename``, ``class.remove``.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse

from admin_api.screens.people import Id, admin_scope, refused
from admin_api.screens.web import ScreenRoute, Visit, field, see_other, visit
from engine.people.directory import parse_grade
from engine.people.listing import contacts_of
from engine.platform.errors import InputError
from engine.staff import class_rights as cr
from engine.staff.models import Role
from engine.staff.organisation import organisation
from engine.staff.rights import not_found

router = APIRouter(prefix="/staff/roster", route_class=ScreenRoute, include_in_schema=False)

DONE = {"add": "組を追加しました。", "rename": "組の名前を変更しました。"}


async def _page(v: Visit, school_id: int | None, status: int = 200, done: str = "",
                failed: str = "", error: str = "", values: dict[str, str] | None = None
                ) -> Response:
    s = await admin_scope(v, school_id)
    grades = await cr.classes_of(v.api.people, v.actor, s.school.id)
    return v.page("classes.html", status, title="学年と組", scope=s, grades=grades,
                  done=done, failed=failed, error=error, values=values or {})


@router.get("/classes", response_class=HTMLResponse)
async def classes(request: Request, school_id: Id = None, done: str = "") -> Response:
    v = await visit(request)
    return await _page(v, school_id, done=DONE.get(done, ""))


@router.post("/classes/add", response_class=HTMLResponse)
async def add(request: Request) -> Response:
    v = await visit(request)
    form = await v.form()
    s = await admin_scope(v, _id(field(form, "school_id", 20)))
    grade_text, name = field(form, "grade", 10), field(form, "class_name", 20)
    try:
        grade = parse_grade(grade_text)
        place = await v.api.staff.audited(
            v.actor, "class.add", f"{s.school.code} {grade}-{name.strip()}",
            cr.add_class(v.api.people, v.actor, s.school.id, grade, name),
            object_of=lambda p: f"{s.school.code} class {p.id}", detail="(screens)",
        )
    except InputError as exc:
        return await _page(v, s.school.id, 422, failed="add", error=refused(exc),
                           values={"grade": grade_text, "class_name": name})
    return see_other(f"/staff/roster/classes?school_id={place.school_id}&done=add")


async def _class_school(v: Visit, class_id: int) -> int:
    """The class's school, if in the actor's board (else: not found)."""
    try:
        return await cr.class_school(v.api.staff.pool, v.actor, class_id)
    except InputError:
        raise not_found(f"組 {class_id} ") from None


@router.post("/classes/{class_id}/rename", response_class=HTMLResponse)
async def rename(request: Request, class_id: int) -> Response:
    v = await visit(request)
    form = await v.form()
    school_id = await _class_school(v, class_id)
    name = field(form, "name", 20)
    try:
        await v.api.staff.audited(
            v.actor, "class.rename", f"class {class_id}",
            cr.rename_class(v.api.people, v.actor, class_id, name),
            detail=f"to {name.strip()} (screens)",
        )
    except InputError as exc:
        return await _page(v, school_id, 422, failed=f"rename-{class_id}", error=refused(exc),
                           values={"name": name})
    return see_other(f"/staff/roster/classes?school_id={school_id}&done=rename")


@router.post("/classes/{class_id}/remove", response_class=HTMLResponse)
async def remove(request: Request, class_id: int) -> Response:
    v = await visit(request)
    await v.form()
    school_id = await _class_school(v, class_id)
    try:
        gone = await v.api.staff.audited(
            v.actor, "class.remove", f"class {class_id}",
            cr.remove_class(v.api.people, v.actor, class_id),
            detail="(screens)",
        )
    except InputError as exc:
        return await _page(v, school_id, 422, failed=f"remove-{class_id}", error=refused(exc))
    text = f"{gone.place.school_name} {gone.place.label}を削除しました。"
    if gone.teachers:
        text += f" 担任 {gone.teachers} 人の受け持ちからも外れました。"
    return v.page("message_ok.html", title="組を削除しました", text=text,
                  back=f"/staff/roster/classes?school_id={school_id}")


@router.get("/class", response_class=HTMLResponse)
async def my_class(
    request: Request, class_id: Id = None,
    unregistered: Annotated[str, Query(max_length=1)] = "",
) -> Response:
    """A teacher's class list; an administrator is sent to the accounts screen (theirs)."""
    v = await visit(request)
    only = unregistered == "1"
    if v.actor.role is not Role.TEACHER:
        query: dict[str, Any] = {"class_id": class_id or "", "unregistered": "1" if only else ""}
        if class_id is not None:
            query["school_id"] = await _class_school(v, class_id)
        return see_other("/staff/roster/accounts?" + urlencode(
            {k: x for k, x in query.items() if x != ""}))
    org = await organisation(v.api.staff.pool, v.actor, v.api.staff.now())
    mine = org.classes
    unit = next((c for c in mine if c.id == class_id), None) if class_id else (
        mine[0] if mine else None)
    if class_id is not None and unit is None:
        await _class_school(v, class_id)  # another board's class: not found
        await cr.may_view_class(v.api.staff.pool, v.actor, class_id)  # refused: not theirs
        raise not_found(f"組 {class_id} ")
    found = contacts = None
    if unit is not None:
        found = await v.api.staff.audited(
            v.actor, "roster.class", f"class {unit.id}",
            cr.class_accounts(v.api.people, v.actor, unit.id, only),
            detail=f"unregistered={only} (screens)",
        )
        contacts = await contacts_of(v.api.people, [a.id for a in found.accounts])
    schools = {s.id: s.name for s in org.schools}
    return v.page("my_class.html", title="受け持ちの組の名簿", classes=mine, unit=unit,
                  schools=schools, found=found, contacts=contacts or {}, only=only)


def _id(text: str) -> int | None:
    text = text.strip()
    if text and (not text.isdigit() or len(text) > 18):
        raise InputError("学校の指定が正しくありません (school)")
    return int(text) if text else None
