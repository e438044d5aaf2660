"""Signing in and out, and one's own factors: the password and the TOTP set-up.

The same engine calls and audit entries as the staff API's ``auth_routes``: a refused sign-in
is logged as denied under the login it named; a password change and a TOTP set-up need the
current password (and code, when the account has TOTP).

An account with TOTP signs in in two steps: the right password gives a pending sign-in
(engine/staff/pending_login.py) kept in an HttpOnly cookie for 5 minutes and bound to the
sign-in form's cookie, and ``/staff/login/code`` then asks for the 6-digit code alone (a wrong
code counts as a failure, as a wrong password does). A form that posts the code with the
password (a password manager) signs in in one step.
"""

from __future__ import annotations

import segno
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from admin_api.screens.web import (
    HOME,
    LOGIN,
    LOGIN_CSRF_COOKIE,
    PENDING_COOKIE,
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
from engine.staff import audit, credentials, pending_login, sessions
from engine.staff.models import ActorKind, AuthError, LoginRefused, Principal, Role
from engine.staff.password_list import MIN_LENGTH

router = APIRouter(prefix="/staff", route_class=ScreenRoute, include_in_schema=False)

@router.get("", response_class=HTMLResponse)
async def root(request: Request) -> Response:
    """The screens' entry: the dashboard when signed in, else the sign-in screen."""
    try:
        await visit(request, limited_ok=True)
    except SignInFirst:
        return see_other(LOGIN)
    return see_other(HOME)


def _login_page(request: Request, status: int = 200, error: str = "", login: str = "",
                note: str = "") -> Response:
    token = login_csrf(request)
    response = render(
        request, "login.html", status, title="ログイン", csrf=token, error=error, login=login,
        note=note,
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


async def _refused(request: Request, login_id: str, exc: AuthError) -> None:
    """The refused sign-in in the audit log, under the login it named."""
    api = staff_api(request)
    who = Principal(ActorKind.ANONYMOUS, None, sessions.normal_login(login_id), Role.TEACHER,
                    None, address=client_address(request))
    detail = exc.reason if isinstance(exc, LoginRefused) else str(exc)
    await api.staff.log(who, "login", sessions.normal_login(login_id),
                        audit.Result.DENIED, detail[:300])


async def _signed_in(request: Request, done: sessions.Login) -> Response:
    api = staff_api(request)
    await api.staff.log(done.session.principal, "login", done.session.member.login)
    response = see_other(HOME)
    set_cookie(request, api, response, SESSION_COOKIE, done.token)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/staff")
    response.delete_cookie(PENDING_COOKIE, path="/staff")
    return response


def _code_page(request: Request, status: int = 200, error: str = "") -> Response:
    token = login_csrf(request)
    return render(request, "login_code.html", status, title="確認コードの入力", csrf=token,
                  error=error, minutes=pending_login.PENDING_SECONDS // 60)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    api = staff_api(request)
    form = await request.form()
    binding = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    check_token(binding, form)
    login_id = field(form, "login", 200)
    address = client_address(request)
    code = field(form, "code", 20)
    try:
        if code:
            done: sessions.Login | pending_login.Pending = await sessions.login(
                api.staff, login_id, field(form, "password"), code, address)
        else:
            done = await pending_login.begin(
                api.staff, login_id, field(form, "password"), binding, address)
    except AuthError as exc:
        await _refused(request, login_id, exc)
        return _login_page(request, 401, str(exc), login_id)
    if isinstance(done, pending_login.Pending):
        response = _code_page(request)
        set_cookie(request, api, response, PENDING_COOKIE, done.value,
                   max_age=pending_login.PENDING_SECONDS)
        return response
    return await _signed_in(request, done)


@router.get("/login/code", response_class=HTMLResponse)
async def code_form(request: Request) -> Response:
    if not request.cookies.get(PENDING_COOKIE):
        return see_other(LOGIN)
    return _code_page(request)


@router.post("/login/code", response_class=HTMLResponse)
async def login_code(request: Request) -> Response:
    """The code of a pending sign-in: the session, or the code form again (the pending
    sign-in over: back to the password)."""
    api = staff_api(request)
    form = await request.form()
    binding = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    check_token(binding, form)
    pending = request.cookies.get(PENDING_COOKIE, "")
    try:
        done = await pending_login.finish(
            api.staff, pending, binding, field(form, "code", 20), client_address(request))
    except pending_login.PendingExpired as exc:
        await _refused(request, pending_login.login_of(api.staff, pending), exc)
        response = _login_page(request, 401, str(exc))
        response.delete_cookie(PENDING_COOKIE, path="/staff")
        return response
    except AuthError as exc:
        await _refused(request, pending_login.login_of(api.staff, pending), exc)
        return _code_page(request, 401, str(exc))
    return await _signed_in(request, done)


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

