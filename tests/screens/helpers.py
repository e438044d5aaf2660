"""Helpers of the screens' HTTP-level tests: a cookie-keeping client signed in through the
sign-in form (as a browser without JavaScript would), and reports made as a guardian's page
makes them."""

from __future__ import annotations

import re
from datetime import time, timedelta

import httpx
from staff.conftest import PASSWORD, World
from twoway_staff.conftest import account_of, contact, report_day

from engine.platform.clock import jst
from engine.twoway import NewReport, ReportKind, set_report_settings, submit_report


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def client(w: World) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=w.base_url, timeout=10, follow_redirects=False)


async def signed_in(c: httpx.AsyncClient, login: str) -> str:
    """Sign ``c`` in as ``login``; the session's CSRF token."""
    form = await c.get("/staff/login")
    r = await c.post("/staff/login", data={
        "csrf": csrf_of(form.text), "login": login, "password": PASSWORD,
    })
    assert r.status_code == 303 and r.headers["location"] == "/staff/home", r.text
    home = await c.get("/staff/home")
    assert home.status_code == 200
    return csrf_of(home.text)


async def always_open(w: World, school: str) -> None:
    """The school takes reports for the next hours (the screens' worlds run on the real
    clock)."""
    now = jst(w.api.people.clock.now())
    opens, closes = (now - timedelta(hours=2)).time(), (now + timedelta(hours=2)).time()
    await set_report_settings(w.api.people, w.orgs[school], time(opens.hour, opens.minute),
                              time(closes.hour, closes.minute), ["発熱", "通院"])


async def report(w: World, address: str, kind: ReportKind = ReportKind.ABSENCE,
                 note: str = "") -> int:
    people = w.api.people
    # Reports are refused on days off: the first school day on or after today.
    at = time(9, 30) if kind in (ReportKind.LATE, ReportKind.EARLY_LEAVE) else None
    done = await submit_report(people, await contact(w, address), NewReport(
        await account_of(w, address), kind, report_day(w), reason="発熱", note=note,
        at_time=at,
    ))
    return done.report_id
