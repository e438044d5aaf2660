"""A broadcast's files on a guardian's personal page: the list and each download.

The token is the personal page's (purpose ``page``, naming the delivery; ``engine/message/links.py``
``personal_page_url``). ``GET /m/{token}/files/{n}`` sends file n of the delivery's broadcast
as a download (RFC 6266 ``Content-Disposition: attachment`` with an ASCII fallback name and
the real one as RFC 5987 ``filename*=UTF-8''...``), with its stored type and ``nosniff``, and
logs the use. ``GET /m/{token}/files`` is a page of its own listing them, through the include
``_files.html`` that the personal page at ``/m/{token}`` uses too. A forged link or no such
file is 404, an expired or withdrawn file or a contact who left is 410, each a plain page.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse

from admin_api.pages.common import client_ip, message_page
from admin_api.pages.page_guard import verified
from admin_api.site import Site, site_of
from admin_api.templating import templates
from engine.message.links import PAGE, InvalidLink
from engine.staff import attachments
from engine.staff.models import NotFoundError

router = APIRouter(include_in_schema=False)
TITLE = "添付資料"
_MAX_POSITION = 100


def _refusal(request: Request, exc: Exception) -> HTMLResponse:
    if isinstance(exc, InvalidLink):
        if exc.expired:
            return message_page(request, TITLE, attachments.GONE_EXPIRED, 410)
        return message_page(request, TITLE, attachments.NO_FILE, 404)
    if isinstance(exc, attachments.FileGone):
        return message_page(request, TITLE, str(exc), 410)
    return message_page(request, TITLE, attachments.NO_FILE, 404)


def content_disposition(name: str) -> str:
    """``attachment`` with an ASCII-only fallback and the exact name in RFC 5987 form."""
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    suffix = f".{ext}" if ext.isascii() and ext.isalnum() else ""
    fallback = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_ ()") else "_"
                       for ch in stem)
    if not any(ch.isalnum() for ch in fallback):
        fallback = "file"
    fallback += suffix
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


@router.get("/m/{token}/files", response_class=HTMLResponse)
async def files_page(
    token: str, request: Request, site: Annotated[Site, Depends(site_of)]
) -> HTMLResponse:
    delivery_id = await verified(request, site, PAGE, token, "f", _refusal)
    if isinstance(delivery_id, HTMLResponse):
        return delivery_id
    try:
        files = await attachments.page_files(site.people, site.queue, delivery_id)
    except (attachments.FileGone, NotFoundError) as exc:
        return _refusal(request, exc)
    return templates.TemplateResponse(
        request, "files.html", {"title": TITLE, "files": files, "files_url": f"/m/{token}/files"}
    )


@router.get("/m/{token}/files/{n}")
async def download(
    token: str, n: str, request: Request, site: Annotated[Site, Depends(site_of)]
) -> Response:
    delivery_id = await verified(request, site, PAGE, token, "f", _refusal)
    if isinstance(delivery_id, HTMLResponse):
        return delivery_id
    try:
        if not n.isascii() or not n.isdigit() or not 1 <= int(n) <= _MAX_POSITION:
            raise NotFoundError(attachments.NO_FILE)
        f = await attachments.download(
            site.people, site.queue, delivery_id, int(n), client_ip(request)
        )
    except (attachments.FileGone, NotFoundError) as exc:
        return _refusal(request, exc)
    return Response(
        f.data, media_type=f.media_type,
        headers={
            "Content-Disposition": content_disposition(f.name),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )
