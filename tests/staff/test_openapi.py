"""The OpenAPI document of the staff routers is complete, and a bounded property-based run of
schemathesis over it, through the real server, finds no 5xx and no answer that breaks it."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import checks as st_checks

from engine.staff import apikeys

from .conftest import World

EXAMPLES = 12
# The staff ids of the accounts the runs sign in with (board, admin1).
SIGNED_IN = (1, 2)


async def test_every_operation_documents_its_answers(world: World) -> None:
    async with world.client() as c:
        doc = (await c.get("/openapi.json")).json()
    ops = [(p, m, op) for p, item in doc["paths"].items() for m, op in item.items()]
    assert len(ops) >= 20
    for path, method, op in ops:
        assert op.get("summary"), (path, method)
        ok = [s for s in op["responses"] if s.startswith("2")]
        assert ok, (path, method)
        for status in ("401", "422"):
            assert status in op["responses"], (path, method, status)
        assert "HTTPValidationError" not in str(op["responses"]), (path, method)
    assert "ErrorBody" in doc["components"]["schemas"]


def _keeps_the_session(case: Any) -> bool:
    """Not one that disables or resets the board account in use, or makes TOTP compulsory
    (the session would be ended or limited and the rest of the run would only see 401/403)."""
    if (case.path_parameters or {}).get("staff_id") in SIGNED_IN:
        return False
    return not (isinstance(case.body, dict) and case.body.get("totp_required") is True)


def _run(doc: dict[str, Any], base_url: str, token: str) -> tuple[list[str], Counter[int]]:
    """Every operation with EXAMPLES generated cases: the failures, as text, and the statuses."""
    schema = schemathesis.openapi.from_dict(doc)
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    wanted = [st_checks.not_a_server_error, st_checks.response_schema_conformance,
              st_checks.status_code_conformance, st_checks.content_type_conformance]
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path == "/api/staff/logout":
            continue  # it would end the session the run uses

        @given(case=operation.as_strategy().filter(_keeps_the_session))
        @settings(
            max_examples=EXAMPLES, deadline=None, database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            response = case.call(
                base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
            )
            statuses[response.status_code] += 1
            try:
                case.validate_response(response, checks=wanted)
            except Exception as exc:  # collected: one report for all operations
                failures.append(f"{case.method} {case.path}: {exc}"[:600])

        check()
    return failures, statuses


@pytest.mark.slow
@pytest.mark.parametrize("login", ["board", "admin1", "teacher31", "school key"])
async def test_schemathesis_finds_no_server_error_or_schema_break(
    world: World, login: str
) -> None:
    """Each role: the board, a school's administrator, a teacher and a school's API key."""
    assert (world.staff["board"], world.staff["admin1"]) == SIGNED_IN
    if login == "school key":
        token, _ = await apikeys.create(world.api.staff, world.orgs["sho1"], "警報", None)
    else:
        token = await world.login(login)
    async with world.client() as c:
        doc = (await c.get("/openapi.json")).json()
    # The generated requests are blocking calls: in a thread, so this loop keeps serving.
    failures, statuses = await asyncio.wait_for(
        asyncio.to_thread(_run, doc, world.base_url, token), timeout=240
    )
    assert failures == []
    print(dict(statuses))
    # The run reached the endpoints' logic, not only the sign-in check.
    assert sum(statuses.values()) >= 100
    assert sum(n for s, n in statuses.items() if 200 <= s < 300) >= 20


async def test_malformed_json_gets_the_documented_error_body(world: World) -> None:
    """Every operation that takes a JSON body answers a broken one (here cut short inside a
    multi-byte character, so not even UTF-8) with 400 and the documented ``{"error":
    "malformed", "message"}``, and changes nothing."""
    token = await world.login("board")
    async with world.client(token) as c:
        doc = (await c.get("/openapi.json")).json()
        before = await world.count("SELECT count(*) FROM audit_log WHERE result = 'ok'")
        tried = 0
        for path, item in doc["paths"].items():
            for method, op in item.items():
                content = op.get("requestBody", {}).get("content", {})
                if "application/json" not in content:
                    continue
                url = path.replace("{staff_id}", "3").replace("{broadcast_id}", "1")
                url = url.replace("{key_id}", "1").replace("{id}", "1")
                url = url.replace("{template_id}", "1").replace("{draft_id}", "1")
                r = await c.request(method.upper(), url, content=b'{"subject": "\xe5',
                                    headers={"Content-Type": "application/json"})
                assert r.status_code == 400, (method, path, r.status_code, r.text)
                body = r.json()
                assert set(body) == {"error", "message"}, (method, path, body)
                assert body["error"] == "malformed" and "JSON" in body["message"], body
                tried += 1
        assert tried >= 10
        assert await world.count(
            "SELECT count(*) FROM audit_log WHERE result = 'ok'") == before
