"""The personal pages on their own (through httpx's ASGI transport): rate limits, a mail
without a child to answer for, the read button, and `mamoru send --read-confirmation`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from commands import config_file, mamoru
from support import make_settings, wait_until

from admin_api.app import create_app
from admin_api.site import open_site
from engine.delivery.context import Engine
from engine.message.links import PAGE, LinkSigner
from engine.people import Audience, Category, People
from engine.platform.clock import FakeClock
from engine.platform.errors import InputError
from engine.platform.sealing import new_key_text
from engine.queue import NewBroadcast
from engine.twoway import Question, QuestionKind, send_broadcast
from engine.twoway.asks import Asks, ReadPolicy
from engine.twoway.page_limits import PAGE_LIMIT, prune

from .conftest import DAYTIME

SECRET = b"personal-page-test-secret-0123456789"
PUBLIC = "http://pages.test"


@pytest.fixture
async def pages(engine: Engine) -> AsyncIterator[tuple[People, FakeClock, httpx.AsyncClient]]:
    clock = FakeClock(DAYTIME)
    settings = make_settings("", http={"public_url": PUBLIC, "listen": ""},
                             people={"key": engine.settings.people.key})
    people = await People.open(engine.pool, settings.people, clock)
    site = await open_site(settings, people, SECRET)
    transport = httpx.ASGITransport(app=create_app(site), client=("198.51.100.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url=PUBLIC) as client:
        yield people, clock, client


async def _to_stranger(engine: Engine, people: People, asks: Asks) -> str:
    """A two-way broadcast to an address given by hand; the page link of its delivery."""
    fan = await send_broadcast(
        people, engine.queue,
        NewBroadcast("school@example.jp", "お知らせ <b>", "本文 <i>です</i>\n",
                     ["visitor@example.jp"]),
        Audience(), Category.NOTICE, 86400, asks=asks,
    )
    (delivery,) = await engine.queue.deliveries_of(fan.broadcast_id)
    token = LinkSigner(SECRET).token(PAGE, delivery["id"], people.clock.now() + timedelta(days=1))
    return f"/m/{token}"


async def test_a_link_opened_too_often_waits_for_the_next_minute(
    engine: Engine, pages: tuple[People, FakeClock, httpx.AsyncClient]
) -> None:
    people, clock, client = pages
    link = await _to_stranger(engine, people, Asks(read=ReadPolicy()))
    codes = [(await client.get(link)).status_code for _ in range(PAGE_LIMIT)]
    assert codes == [200] * PAGE_LIMIT
    busy = await client.get(link)
    assert busy.status_code == 429 and "しばらく受け付けません" in busy.text
    assert 1 <= int(busy.headers["Retry-After"]) <= 60
    clock.advance(60)
    assert (await client.get(link)).status_code == 200
    # Counts of a day ago are forgotten by serve's minute task; today's are kept.
    assert await prune(people.pool, clock.now()) == 0
    clock.advance(2 * 86400)
    assert await prune(people.pool, clock.now()) == 1


async def test_a_stranger_reads_and_is_told_there_is_nobody_to_answer_for(
    engine: Engine, pages: tuple[People, FakeClock, httpx.AsyncClient]
) -> None:
    people, clock, client = pages
    question = Question("q", "出欠", QuestionKind.SINGLE, options=("出", "欠"))
    link = await _to_stranger(engine, people, Asks(
        read=ReadPolicy(), questions=(question,), deadline=clock.now() + timedelta(days=1)))
    # A prefetch records nothing; the button does, once.
    first = await client.get(link, headers={"Purpose": "prefetch"})
    assert "確認しました（" not in first.text
    assert "お知らせ &lt;b&gt;" in first.text and "本文 &lt;i&gt;です&lt;/i&gt;" in first.text
    assert "このアドレスからは回答できません" in first.text
    pressed = await client.post(link + "/read")
    assert pressed.status_code == 200 and "確認しました（11月24日 10:00）" in pressed.text
    clock.advance(600)
    again = await client.get(link)
    assert "確認しました（11月24日 10:00）" in again.text
    refused = await client.post(link + "/answers", data={"q": "0"})
    assert refused.status_code == 400 and "回答できません" in refused.text


async def test_wrong_two_way_requests_store_nothing(
    engine: Engine, pages: tuple[People, FakeClock, httpx.AsyncClient]
) -> None:
    people, clock, _ = pages
    question = Question("q", "出欠", QuestionKind.SINGLE, options=("出", "欠"))
    wrong = [
        Asks(read=ReadPolicy(timedelta(0), 1)),
        Asks(read=ReadPolicy(timedelta(seconds=59), 1)),
        Asks(read=ReadPolicy(timedelta(days=14, seconds=1), 1)),
        Asks(read=ReadPolicy(timedelta(hours=1), 11)),
        Asks(questions=(question,)),
        Asks(questions=(question,), deadline=clock.now() - timedelta(minutes=1)),
        Asks(deadline=clock.now() + timedelta(days=1)),
    ]
    for asks in wrong:
        with pytest.raises(InputError, match="再通知|締め切り"):
            await _to_stranger(engine, people, asks)
    assert await people.pool.fetchval("SELECT count(*) FROM broadcasts") == 0


async def test_send_read_confirmation_from_the_command_line(tmp_path: Path, db_url: str) -> None:
    body = tmp_path / "body.txt"
    body.write_text("本文\n", encoding="utf-8")
    # Without [http] public_url the mails could carry no link: refused, nothing stored.
    bare = config_file(tmp_path, db_url, "127.0.0.1:25")
    refused = mamoru("send", "-c", bare, "--sender", "s@example.jp", "--subject", "件名",
                     "--body-file", body, "--to", "a@example.jp", "--read-confirmation")
    assert refused.returncode == 2, refused.stderr
    assert "public_url" in refused.stderr and "既読確認" in refused.stderr
    assert "Traceback" not in refused.stderr
    cfg = config_file(tmp_path, db_url, "127.0.0.1:25",
                      http='public_url = "https://mail.city.example.jp"')
    base = ["send", "-c", cfg, "--sender", "s@example.jp", "--subject", "件名",
            "--body-file", body, "--to", "a@example.jp"]
    done = mamoru(*base, "--read-confirmation", "--remind-after", "90m", "--reminders", "3")
    assert done.returncode == 0, done.stderr
    bad = mamoru(*base, "--remind-after", "2h")
    assert bad.returncode == 2 and "--read-confirmation" in bad.stderr
    worse = mamoru(*base, "--read-confirmation", "--remind-after", "soon")
    assert worse.returncode == 2 and "2h" in worse.stderr
    # The API's bounds (1 minute to 14 days) hold on the command line too.
    late = mamoru(*base, "--read-confirmation", "--remind-after", "15d")
    assert late.returncode == 2 and "14 日" in late.stderr and "Traceback" not in late.stderr
    eng = await Engine.open(make_settings(db_url))
    try:
        rows = await eng.pool.fetch(
            "SELECT b.personal_page, r.remind_after, r.max_reminders FROM broadcasts b "
            "JOIN read_requests r ON r.broadcast_id = b.id")
        assert [(r[0], r[1], r[2]) for r in rows] == [(True, timedelta(minutes=90), 3)]
        assert await eng.pool.fetchval("SELECT count(*) FROM broadcasts") == 1
    finally:
        await eng.close()


async def test_serve_minute_task_sends_the_due_reminder(db_url: str) -> None:
    from cli.services import Reminders
    from engine.queue import AttemptResult, Outcome

    clock = FakeClock(DAYTIME)
    eng = await Engine.open(make_settings(db_url, people={"key": new_key_text()}), clock)
    try:
        people = await People.open(eng.pool, eng.settings.people, clock)
        await _to_stranger(eng, people, Asks(read=ReadPolicy(timedelta(hours=1), 1)))
        claimed = await eng.queue.claim("test", 10, clock.now(), 60)
        await eng.queue.record(
            "test", [AttemptResult(c.id, Outcome.DELIVERED, clock.now(), 250) for c in claimed])
        clock.advance(2 * 3600)
        task = Reminders(eng, interval=0.02)
        await task.start()
        try:
            async def reminded() -> bool:
                n = await eng.pool.fetchval("SELECT count(*) FROM reminder_broadcasts")
                return bool(n)

            await wait_until(reminded, timeout=5)
        finally:
            await task.stop()
        # The first broadcast and its one reminder (max_reminders = 1), nothing else.
        assert await eng.pool.fetchval("SELECT count(*) FROM broadcasts") == 2
    finally:
        await eng.close()
