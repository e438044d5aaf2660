"""What every personal page does before it shows anything: rate limits and the link check.

A genuine link is always served (counted per link); forged links are counted against the
client's network (through trusted proxies, admin_api/proxies.py) and the link id they claim
and, after a few, refused for a while (engine/twoway/page_limits.py). Either refusal is a plain
Japanese page with 429 and ``Retry-After``; a forged or expired link changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request
from fastapi.responses import HTMLResponse

from admin_api.pages.common import client_ip, link_error, message_page
from admin_api.site import Site
from engine.message.links import InvalidLink
from engine.twoway.page_limits import PageBusy, count_request, refuse_forged


def busy(request: Request, exc: PageBusy) -> HTMLResponse:
    response = message_page(request, "しばらくお待ちください", str(exc), 429)
    response.headers["Retry-After"] = str(max(1, int(exc.retry_after.total_seconds())))
    return response


async def verified(
    request: Request, site: Site, purpose: str, token: str, key_prefix: str,
    refuse: Callable[[Request, InvalidLink], HTMLResponse] = link_error,
) -> int | HTMLResponse:
    """The id the link names, counted; or the page that says why not.

    The signature is checked first: a genuine link is served (within its own per-link limit)
    whatever forged links came from the same network. Only a forged or malformed one is
    counted against its sender and the link id it claims (engine/twoway/page_limits.py); its
    page is ``refuse``'s (by default the pages' own "link not valid" page)."""
    pool, now = site.people.pool, site.people.clock.now()
    try:
        subject = site.links.verify(purpose, token, now)
    except InvalidLink as exc:
        if not exc.expired:
            try:
                await refuse_forged(pool, client_ip(request), purpose, token, now)
            except PageBusy as busy_exc:
                return busy(request, busy_exc)
        return refuse(request, exc)
    try:
        await count_request(pool, f"{key_prefix}:{subject}", now)
    except PageBusy as exc:
        return busy(request, exc)
    return subject
