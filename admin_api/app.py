"""The FastAPI application: the pages' routers on one app, with the headers every page needs.

    app = create_app(site)                       # the guardians' pages
    app = create_app(site, extra=[staff_router]) # later issues add their routers

Routers live in their own modules (``admin_api.pages.registration``, ``.leave``,
``.personal``, ``.reports``; the staff screens in ``admin_api.screens``); the app only
composes them and holds the ``Site`` in ``app.state.site`` for ``site_of``.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from admin_api import health
from admin_api.access_log import AccessLog
from admin_api.pages import files, leave, personal, registration, reports
from admin_api.pages.common import message_page
from admin_api.proxies import trusted_networks
from admin_api.screens import screen_routers
from admin_api.screens.web import message as screen_message
from admin_api.site import Site

# Personal links carry their token in the path: no page may leak it to another site, be
# cached on a shared device, or be framed by another page.
_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'",
}


_RAW_HEADERS = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in _HEADERS.items()]


class SafetyHeaders:
    """Adds ``_HEADERS`` to every answer that lacks them. Plain ASGI rather than
    ``@app.middleware("http")``, whose request/response wrapping costs about as much CPU as a
    whole read-link click (bench/twoway_clicks.py)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in _RAW_HEADERS if k not in present
                ]
            await send(message)

        await self.app(scope, receive, with_headers)


def create_app(site: Site, extra: Sequence[APIRouter] = ()) -> FastAPI:
    # FastAPI's /docs and /redoc load their scripts from a CDN: ours (admin_api.screens.apidocs)
    # is rendered on the server and needs no other site.
    app = FastAPI(title="mamoru", docs_url=None, redoc_url=None)
    app.state.site = site
    app.state.trusted_proxies = trusted_networks(site.settings)
    app.include_router(registration.router)
    app.include_router(leave.router)
    app.include_router(personal.router)
    app.include_router(reports.router)
    app.include_router(files.router)
    app.include_router(health.router)
    # The staff screens (/staff/...): they use the staff API's parts, ``app.state.staff_api``
    # (admin_api.staff.mount_staff), and answer with their own headers (admin_api.screens.web).
    for router in screen_routers():
        app.include_router(router)
    for router in extra:
        app.include_router(router)

    app.add_middleware(SafetyHeaders)
    if site.settings.log.requests:
        # Outermost: it times and logs every answer, errors and safety headers included.
        app.add_middleware(AccessLog)

    @app.exception_handler(StarletteHTTPException)
    async def plain_errors(request: Request, exc: StarletteHTTPException) -> Response:
        # People reach these pages from mail on a phone: a page in Japanese, not JSON. The
        # staff API (under /api) keeps FastAPI's JSON errors.
        if request.url.path.startswith("/api/"):
            return await http_exception_handler(request, exc)
        if request.url.path == "/staff" or request.url.path.startswith("/staff/"):
            # Staff, not guardians: the screens' own page and wording.
            return screen_message(
                request, "ページが見つかりません" if exc.status_code == 404
                else "この操作は受け付けられません",
                "このページはありません。メニューから開き直してください。"
                if exc.status_code == 404 else "この画面はその操作を受け付けません。",
                exc.status_code,
            )
        text = (
            "このページはありません。メールのリンクをもう一度お確かめください。"
            if exc.status_code == 404 else "このページはその操作を受け付けません。"
        )
        return message_page(request, "ページを表示できません", text, exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def plain_bad_form(request: Request, exc: RequestValidationError) -> Response:
        if request.url.path.startswith("/api/"):
            return await request_validation_exception_handler(request, exc)
        return message_page(
            request, "入力を確認できません", "送信された内容を読み取れませんでした。"
            "ページを開き直して、もう一度お試しください。", 400,
        )

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def home(request: Request) -> HTMLResponse:
        return message_page(
            request, "メール配信",
            "登録は、学校からのお知らせにある登録用アドレスへ空メールを送って始めてください。"
            "配信の停止・変更は、届いたメールの末尾のリンクから行えます。",
            kind="note",
        )

    return app
