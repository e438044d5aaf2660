"""Helpers for the registration and leave tests: registration codes, the pages' app, links."""

from __future__ import annotations

import base64
import csv
import io
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from email import message_from_bytes

import httpx
from support import make_settings

from admin_api.app import create_app
from admin_api.site import Site, open_site
from engine.people import People
from engine.people.accounts import export_csv
from engine.platform.config import Settings

SECRET = b"registration-test-secret-0123456789"
PUBLIC = "http://pages.test"


def page_settings(db_url: str, public_url: str = PUBLIC) -> Settings:
    settings = make_settings(
        db_url, http={"public_url": public_url, "listen": ""},
        people={"registration_address": "entry@city.example.jp"},
    )
    return replace(settings, inbound=replace(settings.inbound, listen=""))


async def codes_by_name(people: People) -> dict[str, str]:
    """Registration code of every active account, by the child's name."""
    text = (await export_csv(people)).lstrip("\ufeff")
    return {row["氏名"]: row["登録コード"] for row in csv.DictReader(io.StringIO(text))}


@asynccontextmanager
async def pages(
    people: People, settings: Settings
) -> AsyncIterator[tuple[Site, httpx.AsyncClient]]:
    """The application in this process, spoken to through httpx's ASGI transport."""
    site = await open_site(settings, people, SECRET)
    transport = httpx.ASGITransport(app=create_app(site), client=("198.51.100.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url=PUBLIC) as client:
        yield site, client


def body_text(data: bytes) -> str:
    """The decoded text of a single-part mail."""
    msg = message_from_bytes(data)
    payload = msg.get_payload()
    assert isinstance(payload, str)
    return base64.b64decode(payload).decode("utf-8")


def link_in(text: str, path: str) -> str:
    """The first link under ``path`` ("/r/" or "/u/") in a mail's text."""
    m = re.search(r"https?://[^\s/]+" + re.escape(path) + r"[0-9A-Za-z._-]+", text)
    assert m is not None, text
    return m.group(0)
