"""/docs: the API reference is rendered by the server from its OpenAPI document and loads
nothing from another site (it works on a school network without internet); the screens'
unknown pages answer in the staff's wording, not the guardians'."""

from __future__ import annotations

import re

import httpx
from markupsafe import escape

from screens.conftest import ScreensWorld

# Every place a page can make the browser fetch or go somewhere.
_URLS = re.compile(r"""(?:src|href|action|content)\s*=\s*["']([^"']*)["']""", re.I)


async def test_docs_lists_every_operation_and_needs_no_other_site(sw: ScreensWorld) -> None:
    async with httpx.AsyncClient(base_url=sw.url, timeout=10) as c:
        page = await c.get("/docs")
        doc = (await c.get("/openapi.json")).json()
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    # Every operation of the document is there, with its path and summary.
    ops = [(m.upper(), p, op["summary"]) for p, item in doc["paths"].items()
           for m, op in item.items()]
    assert len(ops) >= 50
    for method, path, summary in ops:
        assert f'<span class="method">{method}</span> <code>{path}</code>' in html, path
        assert str(escape(summary)) in html, summary
    assert "/api/staff/organisation" in html and "OrganisationOut" in html
    # Nothing outside this server: every URL in the page is a path or a fragment.
    urls = _URLS.findall(html)
    assert urls and all(u.startswith(("/", "#")) or u == "width=device-width, initial-scale=1"
                        or u == "noindex" for u in urls), [u for u in urls if "//" in u]
    assert "//" not in "".join(u for u in urls if not u.startswith("#"))
    assert "cdn" not in html.lower()
    # The browser is told so too: only this server's own scripts and styles.
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "script-src 'self'" in page.headers["content-security-policy"]


async def test_unknown_staff_pages_answer_in_the_staff_wording(sw: ScreensWorld) -> None:
    async with httpx.AsyncClient(base_url=sw.url, timeout=10) as c:
        page = await c.get("/staff/no-such-screen")
        guardians = await c.get("/no-such-page")
    assert page.status_code == 404
    assert "メニューから開き直してください" in page.text
    assert "メールのリンク" not in page.text
    # The guardians keep theirs.
    assert guardians.status_code == 404 and "メールのリンク" in guardians.text
