"""The role matrix of the health questions screen over HTTP, with two boards, following the
staff API's ``PUT /api/staff/reports/settings``: a teacher is refused the screen and every form
(403); a school's administrator changes their own school's questions only (another school: 403);
the board its own schools' (another board's school: unknown). Every refused POST is a Japanese
page, audited as denied or failed, and changes nothing; the same forms work within the rights."""

from __future__ import annotations

from screens.helpers import always_open, client, csrf_of, signed_in
from staff.conftest import World

from engine.twoway import report_settings, set_report_settings
from engine.twoway.questions import Question, QuestionKind

from .test_screens_roles import two_boards  # noqa: F401  (the fixture, reused)

_Q = Question("q1", "今朝の体温", QuestionKind.NUMBER, unit="℃")
_OFF = Question("q2", "せき", QuestionKind.SINGLE, options=("はい", "いいえ"))


async def _state(w: World) -> list[object]:
    return list(await w.api.staff.pool.fetch(
        "SELECT * FROM report_settings ORDER BY school_id"))


async def test_health_questions_change_only_within_the_rights(
    two_boards: World,  # noqa: F811
) -> None:
    w = two_boards
    pool = w.api.staff.pool
    for school in ("sho1", "sho2", "tsho"):
        await always_open(w, school)
        s = await report_settings(pool, w.orgs[school])
        assert s is not None
        await set_report_settings(w.api.people, w.orgs[school], s.opens, s.closes, s.reasons,
                                  [_Q], [_OFF])
    sho1, sho2, tsho = (w.orgs[k] for k in ("sho1", "sho2", "tsho"))

    def forms(school: int) -> list[tuple[str, dict[str, str]]]:
        at = {"school_id": str(school)}
        return [
            ("/staff/settings/health/question",
             {**at, "key": "", "label": "脈拍", "kind": "number"}),
            ("/staff/settings/health/question",
             {**at, "key": "q1", "label": "体温", "kind": "number"}),
            ("/staff/settings/health/move", {**at, "key": "q1", "to": "down"}),
            ("/staff/settings/health/off", {**at, "key": "q1"}),
            ("/staff/settings/health/on", {**at, "key": "q2"}),
        ]

    pages = {
        "teacher31": [("/staff/settings/health", 403),
                      (f"/staff/settings/health/question?school_id={sho1}", 403)],
        "admin1": [(f"/staff/settings/health?school_id={sho2}", 403),
                   (f"/staff/settings/health/question?school_id={sho2}&key=q1", 403),
                   (f"/staff/settings/health?school_id={tsho}", 403)],
        "board": [(f"/staff/settings/health?school_id={tsho}", 404),
                  (f"/staff/settings/health/question?school_id={tsho}&key=q1", 404)],
        "tboard": [(f"/staff/settings/health?school_id={sho1}", 404)],
    }
    posts = {
        "teacher31": [(p, f, (403,)) for p, f in forms(sho1)],
        "admin1": [(p, f, (403,)) for p, f in forms(sho2) + forms(tsho)],
        "board": [(p, f, (403, 404, 422)) for p, f in forms(tsho)],
        "tboard": [(p, f, (403, 404, 422)) for p, f in forms(sho1)],
    }
    before = await _state(w)
    for login in pages:
        async with client(w) as c:
            await signed_in(c, login)
            home = await c.get("/staff/home")
            token = csrf_of(home.text)
            for url, status in pages[login]:
                got = await c.get(url)
                assert got.status_code == status, (login, url, got.status_code)
                assert "今朝の体温" not in got.text, (login, url)
            for path, form, statuses in posts[login]:
                got = await c.post(path, data={"csrf": token, **form})
                assert got.status_code in statuses, (login, path, got.status_code)
                assert any(t in got.text for t in (
                    "権限がありません", "見つかりません", "入力を確認してください")), (login, path)
                assert "今朝の体温" not in got.text, (login, path)
    assert await _state(w) == before
    refused = sum(len(p) for p in posts.values())
    assert await w.count(
        "SELECT count(*) FROM audit_log WHERE action = 'twoway.report_settings' "
        "AND result IN ('denied', 'failed')") == refused
    assert await w.count(
        "SELECT count(*) FROM audit_log WHERE action = 'twoway.report_settings' "
        "AND result = 'ok'") == 0
    # Within the rights: the school's administrator and the board, each at sho1.
    for login in ("admin1", "board"):
        async with client(w) as c:
            token = await signed_in(c, login)
            page = await c.get(f"/staff/settings/health?school_id={sho1}")
            assert page.status_code == 200 and "今朝の体温" in page.text
            got = await c.post("/staff/settings/health/off",
                               data={"csrf": token, "school_id": str(sho1),
                                     "key": "q1" if login == "admin1" else "q2"})
            assert got.status_code == 303, login
            if login == "admin1":
                await c.post("/staff/settings/health/on",
                             data={"csrf": token, "school_id": str(sho1), "key": "q2"})
    s = await report_settings(pool, sho1)
    assert s is not None and s.health_questions == () and [
        q.key for q in s.questions_off] == ["q1", "q2"]
