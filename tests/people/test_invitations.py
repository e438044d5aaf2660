"""Contacts imported without confirmation: one invitation each, confirmed from its link."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from engine.people import Audience, Category, People
from engine.people.directory import find_organisation
from engine.people.invitations import SUBJECT, invite
from engine.platform.errors import InputError
from engine.queue import NewBroadcast, Queue
from engine.twoway import send_broadcast

from .conftest import import_csv
from .registration_helpers import page_settings, pages

ROWS = (
    "sho1,2,1,1,二年生,Haha.Ito@docomo.ne.jp,chichi.ito@au.com\n"
    "sho2,2,1,1,他校,tako.invite@softbank.ne.jp,\n"
)


async def _recipients(queue: Queue, broadcast_id: int | None) -> list[str]:
    assert broadcast_id is not None
    return sorted(r["recipient"] for r in await queue.deliveries_of(broadcast_id))


async def test_unconfirmed_contacts_are_invited_once_and_confirm_from_the_link(
    schools: People, db_url: str
) -> None:
    await import_csv(schools, ROWS, confirmed=False)
    settings = page_settings(db_url)
    queue = Queue(schools.pool, schools.sealer)
    sho1 = await find_organisation(schools.pool, "sho1")
    # Unconfirmed contacts receive nothing, and say so.
    with pytest.raises(InputError, match="配信できる宛先がありません"):
        await send_broadcast(schools, queue, NewBroadcast("s@city.example.jp", "件名", "本文", []),
                             Audience(schools=(sho1.id,)), Category.NOTICE, 3600)

    first = await invite(schools, queue, settings, sho1)
    again = await invite(schools, queue, settings, sho1)
    assert first.invited == 2 and again.broadcast_id is None
    assert await _recipients(queue, first.broadcast_id) == [
        "Haha.Ito@docomo.ne.jp", "chichi.ito@au.com"
    ]
    [content] = (await queue.broadcast_contents([first.broadcast_id or 0])).values()
    assert content.subject == SUBJECT and content.sender == "entry@city.example.jp"

    delivery = {r["recipient"]: r["id"] for r in await queue.deliveries_of(first.broadcast_id)}
    async with pages(schools, settings) as (site, client):
        until = schools.clock.now() + timedelta(days=1)
        token = site.links.token("unsubscribe", delivery["Haha.Ito@docomo.ne.jp"], until)
        page = await client.get(f"/u/{token}")
        assert page.status_code == 200 and "このアドレスで受け取る" in page.text
        done = await client.post(f"/u/{token}/confirm")
        assert done.status_code == 200 and "登録を確認しました" in done.text
        assert "このアドレスで受け取る" not in done.text
        forged = await client.post(f"/u/{token[:-2]}xx/confirm")
        assert forged.status_code == 400

    fan = await send_broadcast(
        schools, queue, NewBroadcast("s@city.example.jp", "件名", "本文", []),
        Audience(schools=(sho1.id,)), Category.NOTICE, 3600,
    )
    assert await _recipients(queue, fan.broadcast_id) == ["Haha.Ito@docomo.ne.jp"]
    # Asked again, only the one still unconfirmed (and the other school's, board-wide).
    repeat = await invite(schools, queue, settings, None, again=True)
    assert await _recipients(queue, repeat.broadcast_id) == [
        "chichi.ito@au.com", "tako.invite@softbank.ne.jp"
    ]


async def test_no_invitation_without_a_sender_and_a_public_url(
    schools: People, db_url: str
) -> None:
    await import_csv(schools, ROWS, confirmed=False)
    settings = page_settings(db_url)
    queue = Queue(schools.pool, schools.sealer)
    no_url = replace(settings, http=replace(settings.http, public_url=""))
    with pytest.raises(InputError, match="public_url"):
        await invite(schools, queue, no_url)
    assert await schools.pool.fetchval("SELECT count(*) FROM broadcasts") == 0
    assert await schools.pool.fetchval(
        "SELECT count(*) FROM contacts WHERE invited_at IS NOT NULL"
    ) == 0
