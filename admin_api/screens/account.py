"""Signing in and out, and one's own factors: the password and the TOTP set-up.

The same engine calls and audit entries as the staff API's ``auth_routes``: a refused sign-in
is logged as denied under the login it named; a password change and a TOTP set-up need the
current password (and code, when the account has TOTP).
"""

from __future__ import annotations

import segno
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from admin_api.screens.web import (
    HOME,
    LOGIN,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    ScreenRoute,
    SignInFirst,
    check_token,
    clear_session_cookie,
    client_address,
    field,
    login_csrf,
    render,
    see_other,
    set_cookie,
    visit,
)
from admin_api.staff.deps import staff_api
from engine.platform.errors import InputError
from engine.staff import audit, credentials, sessions
from engine.staff.models import ActorKind, AuthError, LoginRefused, Principal, Role
from engine.staff.password_list import MIN_LENGTH

router = APIRouter(prefix="/staff", route_class=ScreenRoute, include_in_schema=False)

# The answer of sessions.login when the password was right and the code is missing.
_CODE_MISSING = "確認コード (6 桁) を入れてください"


@router.get("", response_class=HTMLResponse)
async def root(request: Request) -> Response:
    """The screens' entry: the dashboard when signed in, else the sign-in screen."""
    try:
        await visit(request, limited_ok=True)
    except SignInFirst:
        return see_other(LOGIN)
    return see_other(HOME)


def _login_page(request: Request, status: int = 200, error: str = "", login: str = "",
                need_code: bool = False, note: str = "") -> Response:
    token = login_csrf(request)
    response = render(
        request, "login.html", status, title="ログイン", csrf=token, error=error, login=login,
        need_code=need_code, note=note,
    )
    set_cookie(request, staff_api(request), response, LOGIN_CSRF_COOKIE, token, max_age=3600)
    return response


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, ended: int = 0, out: int = 0) -> Response:
    note = ""
    if ended:
        note = "ログインが切れました (一定時間操作がなかったか、有効期限が過ぎました)。" \
               "もう一度ログインしてください。"
    elif out:
        note = "ログアウトしました。"
    return _login_page(request, note=note)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    api = staff_api(request)
    form = await request.form()
    check_token(request.cookies.get(LOGIN_CSRF_COOKIE, ""), form)
    login_id = field(form, "login", 200)
    address = client_address(request)
    try:
        done = await sessions.login(
            api.staff, login_id, field(form, "password"), field(form, "code", 20) or None,
            address,
        )
    except AuthError as exc:
        who = Principal(ActorKind.ANONYMOUS, None, sessions.normal_login(login_id), Role.TEACHER,
                        None, address=address)
        detail = exc.reason if isinstance(exc, LoginRefused) else str(exc)
        await api.staff.log(who, "login", sessions.normal_login(login_id),
                            audit.Result.DENIED, detail[:300])
        need_code = str(exc).startswith(_CODE_MISSING) or "TOTP" in str(exc)
        return _login_page(request, 401, str(exc), login_id, need_code)
    await api.staff.log(done.session.principal, "login", done.session.member.login)
    response = see_other(HOME)
    set_cookie(request, api, response, SESSION_COOKIE, done.token)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/staff")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    v = await visit(request, limited_ok=True)
    await v.form()
    await sessions.logout(v.api.staff, v.token)
    await v.api.staff.log(v.actor, "logout", v.session.member.login)
    response = see_other(LOGIN + "?out=1")
    clear_session_cookie(request, v.api, response)
    return response


@router.get("/password", response_class=HTMLResponse)
async def password_form(request: Request) -> Response:
    v = await visit(request, limited_ok=True)
    return v.page("password.html", title="パスワードの変更", error="", done=False,
                  min_length=MIN_LENGTH)


@router.post("/password", response_class=HTMLResponse)
async def change_password(request: Request) -> Response:
    v = await visit(request, limited_ok=True)
    form = await v.form()
    new = field(form, "new_password")
    if new != field(form, "new_password_again"):
        return v.page("password.html", 422, title="パスワードの変更", done=False,
                      min_length=MIN_LENGTH,
                      error="新しいパスワードが 2 回とも同じではありません。")
    try:
        await v.api.staff.audited(
            v.actor, "password.change", v.session.member.login,
            credentials.change_password(
                v.api.staff, v.session, field(form, "current_password"),
                field(form, "code", 20) or None, new, client_address(request),
            ),
        )
    except InputError as exc:
        return v.page("password.html", 422, title="パスワードの変更", done=False,
                      min_length=MIN_LENGTH, error=str(exc))
    return v.page("password.html", title="パスワードの変更", error="", done=True,
                  min_length=MIN_LENGTH)


@router.get("/totp", response_class=HTMLResponse)
async def totp_form(request: Request) -> Response:
    v = await visit(request, limited_ok=True)
    if v.session.password_change_required:
        return see_other("/staff/password")
    return v.page("totp.html", title="確認コード (2 段階認証) の設定", error="", qr="", secret="")


@router.post("/totp", response_class=HTMLResponse)
async def totp_begin(request: Request) -> Response:
    """The current password (and code) -> a new secret, shown as a QR code and as text."""
    v = await visit(request, limited_ok=True)
    form = await v.form()
    title = "確認コード (2 段階認証) の設定"
    try:
        secret, uri = await v.api.staff.audited(
            v.actor, "totp.begin", v.session.member.login,
            credentials.begin_totp(
                v.api.staff, v.session, field(form, "current_password"),
                field(form, "code", 20) or None, client_address(request),
            ),
        )
    except InputError as exc:
        return v.page("totp.html", 422, title=title, error=str(exc), qr="", secret="")
    qr = segno.make(uri, error="m").svg_inline(scale=4, title="確認コード設定用の QR コード")
    spaced = " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))
    return v.page("totp.html", title=title, error="", qr=qr, secret=spaced)


@router.post("/totp/confirm", response_class=HTMLResponse)
async def totp_confirm(request: Request) -> Response:
    v = await visit(request, limited_ok=True)
    form = await v.form()
    try:
        await v.api.staff.audited(
            v.actor, "totp.confirm", v.session.member.login,
            credentials.confirm_totp(v.api.staff, v.session, field(form, "code", 20)),
        )
    except InputError as exc:
        return v.page("totp.html", 422, title="確認コード (2 段階認証) の設定",
                      error=str(exc) + " 設定を最初からやり直してください。",
                      qr="", secret="")
    return see_other(HOME)

