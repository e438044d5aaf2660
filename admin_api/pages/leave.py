"""The settings page every mail links to (配信の設定), and RFC 8058 one-click unsubscribe.

The link is the one engine/message/compose.py writes into every mail with a public URL
(``List-Unsubscribe: <{public_url}/u/{token}>``, token purpose ``unsubscribe`` naming the
delivery). ``POST /u/{token}`` is the one-click unsubscribe: it takes effect at once and needs
no cookie, login or further confirmation (RFC 8058 §3.1; mail clients post
``List-Unsubscribe=One-Click``). The page itself never stops mail in one tap:

- ``GET /u/{token}`` shows each group's real state (engine.people.choices);
  ``POST /u/{token}/groups`` changes it;
- 「配信を停止する」 opens ``GET /u/{token}/stop``, a confirmation that says emergencies stop
  too and offers 「緊急連絡だけは受け取る」 first and pre-selected; ``POST /u/{token}/stop``
  does what was chosen;
- every result page has 「再開する」 (``POST /u/{token}/rejoin``);
- ``POST /u/{token}/confirm`` confirms a contact imported without confirmation.

Every change ends with a completion mail to the address (engine.people.replies, through the
queue). Every request passes the page guard (admin_api/pages/page_guard.py): per-link limits,
forged links counted against their network. Plain forms: no JavaScript needed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse

from admin_api.pages.common import group_ids, message_page
from admin_api.pages.page_guard import verified
from admin_api.site import REPORT, UNSUBSCRIBE, Site, site_of
from admin_api.templating import templates
from engine.message.compose import LINK_LIFETIME
from engine.people.choices import (
    BY_PAGE,
    choices_of,
    choose_groups,
    keep_emergencies_only,
    leave_address,
    rejoin_address,
)
from engine.people.invitations import confirm_address
from engine.platform.errors import InputError
from engine.twoway.family import accepts_reports

router = APIRouter(include_in_schema=False)
TITLE = "配信の設定"
GONE = "この配信の記録はもう残っていません。新しいお知らせのメールのリンクをお使いください。"
STOPPED = "すべてのお知らせの配信を停止しました（緊急のお知らせも届きません）。"
EMERGENCY_ONLY = "緊急連絡だけを受け取るように変更しました（ほかのお知らせは届きません）。"
RESUMED = "すべてのお知らせの配信を再開しました。"
_MAILED = "確認のメールをこのアドレスにお送りしました。"


async def _address(request: Request, site: Site, token: str) -> str | HTMLResponse:
    """The recipient the link names, or the page that says why there is none."""
    delivery_id = await verified(request, site, UNSUBSCRIBE, token, "u")
    if isinstance(delivery_id, HTMLResponse):
        return delivery_id
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


async def _done(
    request: Request, site: Site, token: str, address: str, notice: str,
    changes: tuple[str, ...], mail: bool = True,
) -> HTMLResponse:
    """The page after a change, and the completion mail saying what changed."""
    if mail and changes:
        await site.replies.send_settings_changed(address, changes, site.people.clock.now())
        notice = f"{notice}{_MAILED}"
    return await _page(request, site, token, address, notice=notice)


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
    """RFC 8058: at once, no confirmation (the mail client's unsubscribe button)."""
    address = await _address(request, site, token)
    if isinstance(address, HTMLResponse):
        return address
    contact = await leave_address(site.people, address)
    # An address that is no contact is now on the suppression list: no mail could reach it.
    return await _done(request, site, token, address, STOPPED, (STOPPED,), mail=contact)


@router.get("/u/{token}/stop", response_class=HTMLResponse)
async def stop_confirmation(
    token: str, request: Request, site: Annotated[Site, Depends(site_of)]
) -> HTMLResponse:
    address = await _address(request, site, token)
    if isinstance(address, HTMLResponse):
        return address
    choices = await choices_of(site.people, address)
    return templates.TemplateResponse(
        request, "stop.html",
        {"title": "配信の停止", "choices": choices, "action": f"/u/{token}"},
    )


@router.post("/u/{token}/stop", response_class=HTMLResponse)
async def stop(
    token: str,
    request: Request,
    site: Annotated[Site, Depends(site_of)],
    mode: Annotated[str, Form()] = "",
) -> HTMLResponse:
    address = await _address(request, site, token)
    if isinstance(address, HTMLResponse):
        return address
    if mode == "emergency":
        try:
            await keep_emergencies_only(site.people, address)
        except InputError as exc:
            return await _page(request, site, token, address, error=str(exc), status=400)
        return await _done(request, site, token, address, EMERGENCY_ONLY, (EMERGENCY_ONLY,))
    if mode == "all":
        contact = await leave_address(site.people, address, BY_PAGE)
        return await _done(request, site, token, address, STOPPED, (STOPPED,), mail=contact)
    return await _page(
        request, site, token, address, status=400,
        error="停止のしかたを選んでください。何も変更していません。 (choose how to stop)",
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
        changed = await choose_groups(site.people, address, ids)
    except InputError as exc:
        return await _page(request, site, token, address, error=str(exc), status=400)
    if not changed.lines():
        return await _page(request, site, token, address, notice="変更はありませんでした。")
    return await _done(
        request, site, token, address, "受け取るグループを変更しました。", changed.lines()
    )


@router.post("/u/{token}/confirm", response_class=HTMLResponse)
async def confirm(
    token: str, request: Request, site: Annotated[Site, Depends(site_of)]
) -> HTMLResponse:
    """A contact imported without confirmation confirms from its invitation's link."""
    address = await _address(request, site, token)
    if isinstance(address, HTMLResponse):
        return address
    if not await confirm_address(site.people, address):
        return await _page(request, site, token, address)
    done = "登録を確認しました。これからお知らせをお届けします。"
    return await _done(request, site, token, address, done, (done,))


@router.post("/u/{token}/rejoin", response_class=HTMLResponse)
async def rejoin(
    token: str, request: Request, site: Annotated[Site, Depends(site_of)]
) -> HTMLResponse:
    address = await _address(request, site, token)
    if isinstance(address, HTMLResponse):
        return address
    contact = await rejoin_address(site.people, address)
    return await _done(request, site, token, address, RESUMED, (RESUMED,), mail=contact)
