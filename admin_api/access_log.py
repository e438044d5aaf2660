"""One log line per HTTP request: method, route, status, milliseconds (``[log] requests``).

The guardians' links carry signed tokens in the path (``/m/<token>``, ``/u/<token>``, ...), and
a query string may carry anything: the line names the **route** that answered
(``/m/{token}/files/{n}``), never the path as requested, and never the query. A request no
route took is logged by its first path segment only, when that is a short plain word.
Plain ASGI, like ``SafetyHeaders``: FastAPI's ``@app.middleware("http")`` would cost about as
much CPU as a whole page.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.platform.logs import fields

log = logging.getLogger("mamoru.http")

_WORD = re.compile(r"[a-z][a-z0-9_-]{0,19}")


def loggable_path(scope: Scope) -> str:
    """The route's template when a route answered, else ``/first-word/…`` (or ``/…``)."""
    route: Any = scope.get("route")
    template = getattr(route, "path", None)
    if isinstance(template, str) and template:
        return template
    parts = str(scope.get("path", "/")).split("/")
    first = parts[1] if len(parts) > 1 else ""
    if not first:
        return "/"
    head = f"/{first}" if _WORD.fullmatch(first) else "/…"
    return head + ("/…" if len(parts) > 2 else "") + " (no route)"


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, noting_status)
        finally:
            ms = round((time.perf_counter() - started) * 1000, 1)
            method = str(scope.get("method", ""))
            route = loggable_path(scope)
            log.info("%s %s %d %.1f ms", method, route, status, ms,
                     extra=fields(event="http.request", method=method, route=route,
                                  status=status, ms=ms))
