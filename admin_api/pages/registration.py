"""The registration page a reply to an empty mail links to: a code, or public groups.

``GET /r/{token}`` shows the form; ``POST /r/{token}`` completes the request once and sends the
completion mail. The token names the registration request (purpose ``register``); what may go
wrong is said on the page in plain Japanese and changes nothing.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse

from admin_api.pages.common import client_ip, group_ids, link_error, message_page
from admin_api.site import REGISTER, Site, site_of
from admin_api.templating import templates
from engine.message.links import InvalidLink
from engine.people.attempts import TooManyAttempts
from engine.people.registration import (
    LinkNotUsable,
    Registered,
    RegistrationError,
    masked,
    open_request,
    public_groups,
    register_code,
    register_groups,
)

router = APIRouter(include_in_schema=False)
TITLE = "メール配信の登録"


@router.get("/r/{token}", response_class=HTMLResponse)
async def registration_form(
    token: str, request: Request, site: Annotated[Site, Depends(site_of)]
) -> HTMLResponse:
    return await _form(request, site, token, error="", code="", status=200)


async def _form(
    request: Request, site: Site, token: str, error: str, code: str, status: int
) -> HTMLResponse:
    try:
        request_id = site.links.verify(REGISTER, token, site.people.clock.now())
        pending = await open_request(site.people, request_id)
    except InvalidLink as exc:
        return link_error(request, exc)
    except LinkNotUsable as exc:
        return message_page(request, TITLE, str(exc), 410)
    groups = await public_groups(site.people, pending.school_id)
    return templates.TemplateResponse(
        request, "register.html",
        {"title": TITLE, "address": masked(pending.address), "groups": groups,
         "action": f"/r/{token}", "error": error, "code": code},
        status_code=status,
    )


@router.post("/r/{token}", response_class=HTMLResponse)
async def register(
    token: str,
    request: Request,
    site: Annotated[Site, Depends(site_of)],
    kind: Annotated[str, Form()] = "code",
    code: Annotated[str, Form()] = "",
    group: Annotated[list[str] | None, Form()] = None,
) -> HTMLResponse:
    people = site.people
    try:
        request_id = site.links.verify(REGISTER, token, people.clock.now())
    except InvalidLink as exc:
        return link_error(request, exc)
    try:
        done: Registered
        if kind == "groups":
            ids = group_ids(group or [])
            if ids is None:
                raise RegistrationError("選べないグループが含まれています。 (not a group)")
            done = await register_groups(people, request_id, ids)
        else:
            # Over-long text cannot be a code: it is checked (and counted) as a wrong one.
            done = await register_code(people, request_id, code[:100], client_ip(request))
    except LinkNotUsable as exc:
        return message_page(request, TITLE, str(exc), 410)
    except TooManyAttempts as exc:
        response = await _form(request, site, token, str(exc), "", 429)
        response.headers["Retry-After"] = str(max(1, int(exc.retry_after.total_seconds())))
        return response
    except RegistrationError as exc:
        # The code typed is shown again (escaped) so a typo can be corrected.
        return await _form(request, site, token, str(exc), code[:40], 400)
    await site.replies.send_completion(done.address, done.joined, people.clock.now())
    return templates.TemplateResponse(
        request, "registered.html",
        {"title": "登録が完了しました", "address": masked(done.address), "joined": done.joined},
    )
