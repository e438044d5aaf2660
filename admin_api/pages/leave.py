"""The change/leave page every mail links to, and RFC 8058 one-click unsubscribe.

The link is the one engine/message/compose.py writes into every mail with a public URL
(``List-Unsubscribe: <{public_url}/u/{token}>``, token purpose ``unsubscribe`` naming the
delivery). ``POST /u/{token}`` is the one-click unsubscribe: it takes effect at once and needs
no cookie, login or further confirmation (RFC 8058 §3.1; the mail client posts
``List-Unsubscribe=One-Click``, the page's own button the same). ``GET /u/{token}`` shows the
page; ``POST /u/{token}/groups`` changes the public groups followed; ``POST /u/{token}/rejoin``
undoes a leave.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse

from admin_api.pages.common import group_ids, link_error, message_page
from admin_api.site import REPORT, UNSUBSCRIBE, Site, site_of
from admin_api.templating import templates
from engine.message.compose import LINK_LIFETIME
from engine.message.links import InvalidLink
from engine.people.choices import choices_of, choose_groups, leave_address, rejoin_address
from engine.people.invitations import confirm_address
from engine.platform.errors import InputError
from engine.twoway.family import accepts_reports

router = APIRouter(include_in_schema=False)
TITLE = "配信の設定"
GONE = "この配信の記録はもう残っていません。新しいお知らせのメールのリンクをお使いください。"


async def _address(request: Request, site: Site, token: str) -> str | HTMLResponse:
    """The recipient the link names, or the page that says why there is none."""
    try:
        delivery_id = site.links.verify(UNSUBSCRIBE, token, site.people.clock.now())
    except InvalidLink as exc:
        return link_error(request, exc)
    address = await site.queue.recipient_of(delivery_id)
    if address is None:
        return message_page(request, TITLE, GONE, 410)
    return address


async def _page(
    request: Request, site: Site, token: str, address: str, notice: str = "", error: str = "",
    status: int = 200,
) -> HTMLResponse:
    choices = await choices_of(site.people, address)
    # Every mail's foot link leads here: the standing way to the absence/lateness report page
    # for a guardian whose child's school takes reports (issue 13).
    report_url = ""
    if choices.contact_id is not None and not choices.left and choices.confirmed and (
        await accepts_reports(site.people, choices.contact_id)
    ):
        until = site.people.clock.now() + LINK_LIFETIME
        report_url = f"/report/{site.links.token(REPORT, choices.contact_id, until)}"
    return templates.TemplateResponse(
        request, "choices.html",
        {"title": TITLE, "choices": choices, "action": f"/u/{token}", "notice": notice,
         "error": error, "report_url": report_url},
        status_code=status,
    )


@router.get("/u/{token}", response_class=HTMLResponse)
async def choices_page(
    token: str, request: Request, site: Annotated[Site, Depends(site_of)]
) -> HTMLResponse:
    address = await _address(request, site, token)
    if isinstance(address, HTMLResponse):
        return address
    return await _page(request, site, token, address)


@router.post("/u/{token}", response_class=HTMLResponse)
async def one_click_unsubscribe(
    token: str, request: Request, site: Annotated[Site, Depends(site_of)]
) -> HTMLResponse:
    address = await _address(request, site, token)
    if isinstance(address, HTMLResponse):
        return address
    await leave_address(site.people, address)
    return message_page(
        request, TITLE,
        "配信を停止しました。このアドレスには今後お知らせを送りません。"
        " (unsubscribed: no more mail will be sent to this address)",
        kind="ok",
    )


@router.post("/u/{token}/groups", response_class=HTMLResponse)
async def change_groups(
    token: str,
    request: Request,
    site: Annotated[Site, Depends(site_of)],
    group: Annotated[list[str] | None, Form()] = None,
) -> HTMLResponse:
    address = await _address(request, site, token)
    if isinstance(address, HTMLResponse):
        return address
    ids = group_ids(group or [])
    try:
        if ids is None:
            raise InputError("選べないグループが含まれています。 (not a group)")
        await choose_groups(site.people, address, ids)
    except InputError as exc:
        return await _page(request, site, token, address, error=str(exc), status=400)
    return await _page(request, site, token, address, notice="受け取るグループを変更しました。")


@router.post("/u/{token}/confirm", response_class=HTMLResponse)
async def confirm(
    token: str, request: Request, site: Annotated[Site, Depends(site_of)]
) -> HTMLResponse:
    """A contact imported without confirmation confirms from its invitation's link."""
    address = await _address(request, site, token)
    if isinstance(address, HTMLResponse):
        return address
    done = await confirm_address(site.people, address)
    notice = "登録を確認しました。これからお知らせをお届けします。" if done else ""
    return await _page(request, site, token, address, notice=notice)


@router.post("/u/{token}/rejoin", response_class=HTMLResponse)
async def rejoin(
    token: str, request: Request, site: Annotated[Site, Depends(site_of)]
) -> HTMLResponse:
    address = await _address(request, site, token)
    if isinstance(address, HTMLResponse):
        return address
    await rejoin_address(site.people, address)
    return await _page(request, site, token, address, notice="配信を再開しました。")
