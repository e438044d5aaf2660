"""What every staff screen shares: the cookie session, CSRF tokens, rendering, errors.

The screens sit on the staff API's sessions (engine/staff/sessions.py): signing in stores the
session token (``mss_...``) in an HttpOnly, SameSite=Strict cookie, Secure when the request
came over HTTPS or ``[http] public_url`` is https. Each request resolves it with
``sessions.session``, which honours the idle timeout and the absolute end; a dead session
sends the browser back to the sign-in screen.

CSRF: every form carries a token. Signed in, it is bound to the session (an HMAC of the
session token, which only the browser holding the cookie knows); before sign-in (the sign-in
form itself) it is a double-submit cookie. A missing or wrong token is a Japanese 403 page and
nothing happens. GET requests never change anything.

Routers made with ``ScreenRoute`` turn mamoru's errors into Japanese pages themselves.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from admin_api import proxies
from admin_api.staff.deps import StaffApi, staff_api
from engine.platform.clock import jst_text
from engine.platform.errors import InputError, MamoruError
from engine.staff import sessions
from engine.staff.models import AuthError, NotFoundError, Principal, RightsError
from engine.staff.sessions import Session

#: The session cookie (the token of engine/staff/sessions.py) and the sign-in form's CSRF cookie.
SESSION_COOKIE = "mamoru_staff"
LOGIN_CSRF_COOKIE = "mamoru_staff_login"
# A sign-in waiting for its TOTP code (engine/staff/pending_login.py): 5 minutes at most.
PENDING_COOKIE = "mamoru_staff_pending"
CSRF_FIELD = "csrf"

HOME = "/staff/home"
LOGIN = "/staff/login"

# Our own CSS and script only: no inline script, no other site.
CSP = (
    "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; "
    "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

_env = jinja2.Environment(
    # "guardian/...": the guardians' pages' templates, for previews of what they show.
    loader=jinja2.ChoiceLoader([
        jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
        jinja2.PrefixLoader({"guardian": jinja2.FileSystemLoader(
            Path(__file__).parent.parent / "templates")}),
    ]),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
_env.filters["jst"] = lambda moment: jst_text(moment, seconds=False) if moment else ""
templates = Jinja2Templates(env=_env)


class SignInFirst(MamoruError):
    """No live session: back to the sign-in screen (the message says why, if known)."""


class Redirect(MamoruError):
    """Go to ``url`` first (a password to change, TOTP to set up)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


class CsrfRefused(MamoruError):
    """A form without the right token: refused, nothing done."""


def is_secure(request: Request, api: StaffApi) -> bool:
    return request.url.scheme == "https" or api.public_url.startswith("https://")


def set_cookie(request: Request, api: StaffApi, response: Response, name: str, value: str,
               max_age: int | None = None) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path="/staff", httponly=True,
        secure=is_secure(request, api), samesite="strict",
    )


def clear_session_cookie(request: Request, api: StaffApi, response: Response) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/staff", httponly=True, secure=is_secure(request, api),
        samesite="strict",
    )


def session_csrf(token: str) -> str:
    """The forms' token of one session: only whoever holds the session cookie can make it."""
    return hmac.new(token.encode("utf-8"), b"mamoru screens csrf", hashlib.sha256).hexdigest()


def login_csrf(request: Request) -> str:
    """The sign-in form's double-submit token: the cookie's value, or a new one."""
    value = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if len(value) == 43 and value.isascii():
        return value
    return secrets.token_urlsafe(32)


def check_token(expected: str, form: FormData) -> None:
    got = form.get(CSRF_FIELD)
    if not isinstance(got, str) or not expected or not hmac.compare_digest(
        got.encode("utf-8"), expected.encode("utf-8")
    ):
        raise CsrfRefused("フォームの確認用の値が正しくありません (CSRF token missing or wrong)")


def field(form: FormData, name: str, limit: int = 1000) -> str:
    """A text field of a posted form ("" when missing or a file), cut at ``limit``."""
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


def client_address(request: Request) -> str:
    return proxies.client_address(request)


@dataclass(frozen=True)
class Visit:
    """A signed-in request: the API's parts, the session and its token."""

    request: Request
    api: StaffApi
    session: Session
    token: str

    @property
    def actor(self) -> Principal:
        return self.session.principal

    @property
    def csrf(self) -> str:
        return session_csrf(self.token)

    async def form(self) -> FormData:
        """The posted form, its CSRF token checked."""
        form = await self.request.form()
        check_token(self.csrf, form)
        return form

    def page(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        return render(self.request, template, status, me=self.session, csrf=self.csrf, **context)


async def visit(request: Request, limited_ok: bool = False, touch: bool = True) -> Visit:
    """The signed-in staff member's request, or ``SignInFirst``. Unless ``limited_ok`` (the
    screens that fix it), a session that must change its password or set TOTP up is sent
    there first. ``touch=False`` (the progress script's polling) leaves the idle time running:
    a screen left open ends like any other."""
    api = staff_api(request)
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token:
        raise SignInFirst("")
    try:
        s = await sessions.session(api.staff, token, client_address(request), touch)
    except AuthError as exc:
        raise SignInFirst(str(exc)) from None
    if not limited_ok:
        if s.password_change_required:
            raise Redirect("/staff/password")
        if s.limited:
            raise Redirect("/staff/totp")
    v = Visit(request, api, s, token)
    # For the error pages of ``ScreenRoute``: they show the menu to whoever is signed in.
    request.state.screens_visit = v
    return v


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("me", None)
    context.setdefault("csrf", "")
    response = templates.TemplateResponse(request, template, context, status_code=status)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Cache-Control"] = "no-store"
    return response


def message(request: Request, title: str, text: str, status: int) -> HTMLResponse:
    v = getattr(request.state, "screens_visit", None)
    if isinstance(v, Visit):
        return v.page("message.html", status, title=title, text=text)
    return render(request, "message.html", status, title=title, text=text)


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


class ScreenRoute(APIRoute):
    """An APIRoute whose errors come out as Japanese pages (or a trip to the sign-in)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInFirst as exc:
                response = see_other(LOGIN + ("?ended=1" if str(exc) else ""))
                clear_session_cookie(request, staff_api(request), response)
                return response
            except Redirect as exc:
                return see_other(exc.url)
            except CsrfRefused:
                return message(
                    request, "操作を受け付けられません",
                    "画面の有効期限が切れたか、別のサイトから送られた操作です。"
                    "画面を開き直してから、もう一度お試しください。", 403,
                )
            except RequestValidationError:
                return message(request, "入力を確認できません",
                               "送信された内容を読み取れませんでした。", 400)
            except NotFoundError as exc:
                return message(request, "見つかりません", str(exc), 404)
            except RightsError as exc:
                return message(request, "権限がありません", str(exc), 403)
            except InputError as exc:
                return message(request, "入力を確認してください", str(exc), 422)

        return route
