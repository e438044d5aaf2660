"""What every personal page does before it shows anything: rate limits and the link check.

Forged links are counted against the client's network and, after a few, refused for a while;
genuine ones are counted per link (engine/twoway/page_limits.py). Either refusal is a plain
Japanese page with 429 and ``Retry-After``; a forged or expired link changes nothing.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse

from admin_api.pages.common import client_ip, link_error, message_page
from admin_api.site import Site
from engine.message.links import InvalidLink
from engine.twoway.page_limits import PageBusy, check_network, count_request, record_forged


def busy(request: Request, exc: PageBusy) -> HTMLResponse:
    response = message_page(request, "しばらくお待ちください", str(exc), 429)
    response.headers["Retry-After"] = str(max(1, int(exc.retry_after.total_seconds())))
    return response


async def verified(
    request: Request, site: Site, purpose: str, token: str, key_prefix: str
) -> int | HTMLResponse:
    """The id the link names, counted; or the page that says why not."""
    pool, now, ip = site.people.pool, site.people.clock.now(), client_ip(request)
    try:
        await check_network(pool, ip, now)
        try:
            subject = site.links.verify(purpose, token, now)
        except InvalidLink as exc:
            if not exc.expired:
                await record_forged(pool, ip, now)
            return link_error(request, exc)
        await count_request(pool, f"{key_prefix}:{subject}", now)
    except PageBusy as exc:
        return busy(request, exc)
    return subject
