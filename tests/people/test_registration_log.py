"""serve's log: one line per registration and per HTTP request, with no token, address or
registration code in any line (issue 23)."""

from __future__ import annotations

import json
import logging

import pytest

from admin_api.site import REGISTER
from engine.people import People
from engine.people.registration import create_request
from engine.platform.logs import JsonFormatter

from .conftest import import_csv
from .registration_helpers import codes_by_name, page_settings, pages

ADDRESS = "Hogosha.Hanako@docomo.ne.jp"


async def test_a_registration_logs_ids_and_the_request_its_route_never_the_token(
    schools: People, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    await import_csv(schools, "sho1,3,1,1,山田一郎,,,\n")
    code = (await codes_by_name(schools))["山田一郎"]
    caplog.set_level(logging.INFO)
    async with pages(schools, page_settings(db_url)) as (site, client):
        request = await create_request(schools, ADDRESS, None)
        token = site.links.token(REGISTER, request.id, request.expires_at)
        done = await client.post(f"/r/{token}?from=mail&secret=s3cr3t", data={"code": code})
        assert done.status_code == 200, done.text
        missing = await client.get(f"/nothing/{token}")
        assert missing.status_code == 404

    # What this process logged, less the test's own HTTP client (httpx logs its URLs).
    records = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    completed = [r for r in records if r.getMessage().startswith("登録完了")]
    assert len(completed) == 1
    line = json.loads(JsonFormatter("host-a").format(completed[0]))
    assert line["event"] == "registration.completed" and line["host"] == "host-a"
    assert line["request_id"] == request.id and line["accounts"] == 1 and line["groups"] == 0

    http = [json.loads(JsonFormatter("h").format(r)) for r in records
            if r.name == "mamoru.http"]
    assert [(h["method"], h["route"], h["status"]) for h in http] == [
        ("POST", "/r/{token}", 200), ("GET", "/nothing/… (no route)", 404),
    ]
    assert all(isinstance(h["ms"], float) for h in http)
    text = "\n".join(JsonFormatter("h").format(r) for r in records)
    for secret in (token, token[:16], "s3cr3t", ADDRESS, ADDRESS.lower(), "Hogosha", code):
        assert secret not in text


async def test_request_lines_can_be_turned_off(
    schools: People, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from dataclasses import replace

    settings = page_settings(db_url)
    settings = replace(settings, log=replace(settings.log, requests=False))
    caplog.set_level(logging.INFO)
    async with pages(schools, settings) as (_site, client):
        assert (await client.get("/healthz")).status_code == 200
    assert not [r for r in caplog.records if r.name == "mamoru.http"]
