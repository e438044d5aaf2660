"""Fixtures for the attachment tests: the staff world of tests/staff (a board, two schools,
their families and staff) served together with the guardians' pages by one real uvicorn on
127.0.0.1, as ``mamoru serve`` serves them, with small attachment limits."""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from staff.conftest import World, new_world
from support import make_settings, served

from admin_api.app import create_app
from admin_api.site import Site, open_site
from admin_api.staff import StaffApi, mount_staff
from engine.delivery.context import Engine
from engine.message.links import PAGE
from engine.platform.clock import FakeClock
from engine.platform.sealing import new_key_text

SECRET = b"attachment-test-secret-0123456789"
SENDER = "sho1@example.jp"
# Small limits, so that the refusals need no large uploads.
LIMITS = {"max_size": 64 * 1024, "max_total": 100 * 1024, "max_files": 3, "link_days": 30,
          "keep_days": 90}

PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(64))
# The start of a Windows executable (the "MZ" DOS header).
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(200)


def office(kind: str, macro: bool = False) -> bytes:
    """A minimal .docx or .xlsx: the parts that tell them apart (ECMA-376 Part 2)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        ctype = "application/vnd.ms-word.document.macroEnabled.main+xml" if macro else (
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
        )
        z.writestr("[Content_Types].xml", f'<Types><Override ContentType="{ctype}"/></Types>')
        z.writestr("word/document.xml" if kind == "docx" else "xl/workbook.xml", "<x/>")
        if macro:
            z.writestr("word/vbaProject.bin", b"\x00" * 10)
    return buf.getvalue()


@dataclass
class FilesWorld:
    w: World
    site: Site

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        return self.w.client(token)

    async def send(
        self, token: str, files: list[tuple[str, bytes, str]],
        audience: dict[str, Any] | None = None, **extra: Any,
    ) -> httpx.Response:
        """POST /api/staff/broadcasts/with-files with these (name, content, declared type)."""
        import json

        if audience is None:
            audience = {"classes": [self.w.classes["sho1-3-1"]]}
        broadcast = {
            "sender": SENDER, "subject": "学年だよりの送付", "body": "添付の資料をご覧ください。",
            "audience": audience, **extra,
        }
        async with self.client(token) as c:
            return await c.post(
                "/api/staff/broadcasts/with-files",
                data={"broadcast": json.dumps(broadcast, ensure_ascii=False)},
                files=[("files", f) for f in files],
            )

    async def deliveries(self, broadcast_id: int) -> dict[str, int]:
        rows = await self.w.api.queue.deliveries_of(broadcast_id)
        return {r["recipient"]: r["id"] for r in rows}

    def page(self, delivery_id: int, days: int = 30) -> str:
        """The personal page path of a delivery, as the mail would carry it."""
        expires = int(self.w.clock.now().timestamp()) + days * 86400
        return f"/m/{self.site.links.token(PAGE, delivery_id, expires)}"


@pytest.fixture
async def fw(db_url: str) -> AsyncIterator[FilesWorld]:
    settings = make_settings(
        db_url, people={"key": new_key_text()}, attachments=dict(LIMITS),
        staff={"max_failures": 3, "session_ttl": 3600.0, "lockout_time": 900.0},
        http={"public_url": "http://pages.test", "listen": ""},
    )
    clock = FakeClock(datetime.now(UTC))
    engine = await Engine.open(settings, clock)
    api = await StaffApi.open(engine.pool, settings, clock)
    site = await open_site(settings, api.people, SECRET)
    app = create_app(site)
    mount_staff(app, api)
    try:
        async with served(app) as base_url:
            w = await new_world(settings, clock, api, base_url)
            yield FilesWorld(w, site)
    finally:
        await engine.close()
