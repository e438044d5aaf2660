"""Staff accounts and API keys (administrators), over the engine calls of the staff API's
``admin_routes`` (engine/staff/managing.py) with the same audit entries:

    /staff/accounts                   the staff in the actor's scope (the board: its board and
                                      schools; a school's administrator: their school) + add
    /staff/accounts/{id}/role         the board makes a school's member administrator/teacher
    /staff/accounts/{id}/password     another account's new password (and TOTP cleared)
    /staff/accounts/{id}/disable      disabled, never deleted; its sessions end
    /staff/keys                       API keys of the board and its schools (board) + issue
    /staff/keys/{id}/disable          revoke

A new key's secret is on the answer to its creation only (``no-store``); mamoru keeps its hash.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import HTMLResponse
from starlette.datastructures import FormData

from admin_api.screens.web import ScreenRoute, Visit, field, see_other, visit
from engine.platform.errors import InputError
from engine.staff import accounts, managing
from engine.staff.models import Role
from engine.staff.organisation import organisation
from engine.staff.rights import require_board

router = APIRouter(prefix="/staff", route_class=ScreenRoute, include_in_schema=False)

StaffId = Annotated[int, Path(ge=1, le=2**62)]
_DONE = {
    "added": "職員を追加しました。",
    "role": "役割を変更しました (その職員は次回のログインから新しい役割です)。",
    "password": "パスワードを再設定しました (その職員のログイン中の画面は終了しました)。",
    "disabled": "職員を無効にしました (ログイン中の画面も終了しました)。",
    "key_disabled": "API キーを無効にしました。",
}


def _int(form: FormData, name: str) -> int:
    text = field(form, name, 20).strip()
    if not text.isdigit() or not 1 <= int(text) <= 2**62:
        raise InputError(f"{name} を選んでください (choose {name})")
    return int(text)


def _ints(form: FormData, name: str) -> tuple[int, ...]:
    values = [x for x in form.getlist(name)[:200] if isinstance(x, str) and x.isdigit()]
    return tuple(sorted({int(x) for x in values if int(x) <= 2**62}))


async def _places(v: Visit) -> dict[str, Any]:
    """The organisations and classes an administrator may put staff in, with their names."""
    org = await organisation(v.api.staff.pool, v.actor, v.api.staff.now())
    units = ([org.board] if org.board and v.actor.role is Role.BOARD else []) + org.schools
    names = {u.id: u.name for u in units}
    classes = [{"id": c.id, "label": f"{names.get(c.school_id, '')} {c.grade}年{c.name}組"}
               for c in org.classes]
    roles = list(Role) if v.actor.role is Role.BOARD else [Role.TEACHER]
    return {"units": units, "names": names, "classes": classes, "roles": roles}


@router.get("/accounts", response_class=HTMLResponse)
async def accounts_page(request: Request, done: str = "") -> Response:
    v = await visit(request)
    members = await managing.list_accounts(v.api.staff, v.actor)
    return v.page(
        "staff_accounts.html", title="職員の管理", members=members, done=_DONE.get(done, ""),
        board=v.actor.role is Role.BOARD, my_id=v.actor.id, **await _places(v),
    )


@router.post("/accounts/add", response_class=HTMLResponse)
async def add_account(request: Request) -> Response:
    v = await visit(request)
    form = await v.form()
    password = field(form, "password", 200)
    if password != field(form, "password_again", 200):
        raise InputError("パスワードが 2 回とも同じではありません (the passwords differ)")
    role = Role.parse(field(form, "role", 20))
    new = accounts.NewStaff(
        field(form, "login", 100), field(form, "name", 200), role, _int(form, "organisation_id"),
        password, _ints(form, "class_ids") if role is Role.TEACHER else (),
    )
    await v.api.staff.audited(
        v.actor, "staff.add", new.login.strip().lower()[:64],
        managing.add_account(v.api.staff, v.actor, new),
        detail=f"role={role.value} organisation={new.organisation_id} (screens)",
    )
    return see_other("/staff/accounts?done=added")


@router.post("/accounts/{staff_id}/role", response_class=HTMLResponse)
async def change_role(request: Request, staff_id: StaffId) -> Response:
    v = await visit(request)
    form = await v.form()
    role = Role.parse(field(form, "role", 20))
    await v.api.staff.audited(
        v.actor, "staff.role", f"staff {staff_id}",
        managing.change_role(v.api.staff, v.actor, staff_id, role), detail=f"role={role.value}",
    )
    return see_other("/staff/accounts?done=role")


@router.post("/accounts/{staff_id}/password", response_class=HTMLResponse)
async def reset_password(request: Request, staff_id: StaffId) -> Response:
    v = await visit(request)
    form = await v.form()
    password = field(form, "password", 200)
    if password != field(form, "password_again", 200):
        raise InputError("パスワードが 2 回とも同じではありません (the passwords differ)")
    clear_totp = field(form, "clear_totp", 10) == "1"
    await v.api.staff.audited(
        v.actor, "staff.reset_password", f"staff {staff_id}",
        managing.reset_password(v.api.staff, v.actor, staff_id, password, clear_totp),
        detail="clear_totp" if clear_totp else "",
    )
    return see_other("/staff/accounts?done=password")


@router.post("/accounts/{staff_id}/disable", response_class=HTMLResponse)
async def disable_account(request: Request, staff_id: StaffId) -> Response:
    v = await visit(request)
    await v.form()
    await v.api.staff.audited(
        v.actor, "staff.disable", f"staff {staff_id}",
        managing.disable_account(v.api.staff, v.actor, staff_id),
    )
    return see_other("/staff/accounts?done=disabled")


async def _keys_page(v: Visit, status: int = 200, secret: str = "", done: str = "") -> Response:
    keys = await managing.list_keys(v.api.staff, v.actor)
    places = await _places(v)
    return v.page("api_keys.html", status, title="API キー", keys=keys, secret=secret,
                  done=done, units=places["units"], names=places["names"])


@router.get("/keys", response_class=HTMLResponse)
async def keys_page(request: Request, done: str = "") -> Response:
    v = await visit(request)
    require_board(v.actor)
    return await _keys_page(v, done=_DONE.get(done, ""))


@router.post("/keys/create", response_class=HTMLResponse)
async def create_key(request: Request) -> Response:
    """The answer shows the key once; reloading it does not (it is not kept)."""
    v = await visit(request)
    form = await v.form()
    org = _int(form, "organisation_id")
    text, _ = await v.api.staff.audited(
        v.actor, "api_key.create", f"organisation {org}",
        managing.create_key(v.api.staff, v.actor, org, field(form, "name", 200)),
        object_of=lambda made: f"api_key {made[1].id} ({made[1].prefix}…)",
    )
    return await _keys_page(v, secret=text)


@router.post("/keys/{key_id}/disable", response_class=HTMLResponse)
async def disable_key(request: Request, key_id: StaffId) -> Response:
    v = await visit(request)
    await v.form()
    await v.api.staff.audited(
        v.actor, "api_key.disable", f"api_key {key_id}",
        managing.disable_key(v.api.staff, v.actor, key_id),
    )
    return see_other("/staff/keys?done=key_disabled")
