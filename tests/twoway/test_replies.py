"""Replies: tied to their delivery by the Message-ID they answer, sealed, listed per broadcast."""

from __future__ import annotations

import pytest

from engine.message.compose import build_template
from engine.people import Audience
from engine.platform.errors import InputError
from engine.queue import BroadcastContent, Priority
from engine.twoway import delivery_of_message_id, replies_of, store_reply

from .conftest import World

SECRET = b"k" * 32


def message_id(world: World, broadcast_id: int, delivery_id: int, secret: bytes = SECRET) -> str:
    """The Message-ID engine/message/compose.py really writes for this delivery."""
    content = BroadcastContent(broadcast_id, "school@example.jp", "件名", "本文", Priority.NORMAL)
    return build_template(content, world.clock, secret=secret).message_id(delivery_id)


async def test_the_message_id_written_by_the_engine_names_its_delivery(world: World) -> None:
    mid = message_id(world, 41, 12345)
    assert delivery_of_message_id(SECRET, mid) == (41, 12345)
    assert delivery_of_message_id(SECRET, f"<other@example.jp> {mid}") == (41, 12345)
    # Forged: another broadcast number under the same token, or another deployment's secret.
    assert delivery_of_message_id(SECRET, mid.replace("mamoru.41.", "mamoru.42.")) is None
    assert delivery_of_message_id(SECRET, message_id(world, 41, 12345, b"x" * 32)) is None
    assert delivery_of_message_id(SECRET, "<abc@example.jp>") is None


async def test_a_reply_is_kept_sealed_and_listed_with_its_broadcast(world: World) -> None:
    b = await world.send(Audience(schools=(await world.school("sho1"),)))
    d = await world.deliveries(b)
    hanako = d["hanako.mama@docomo.ne.jp"]
    body = "娘は明日の遠足を欠席します。佐藤"
    await store_reply(world.people, SECRET, message_id(world, b, hanako),
                      "hanako.mama@DOCOMO.ne.jp", "Re: お知らせ", body)
    # From another address than the one mailed: kept, marked for staff.
    await store_reply(world.people, SECRET, message_id(world, b, hanako),
                      "sato@example.com", "Re: お知らせ", "PCから失礼します")
    replies = await replies_of(world.people, b)
    assert [(r.delivery_id, r.from_recipient, r.sender, r.body) for r in replies] == [
        (hanako, True, "hanako.mama@docomo.ne.jp", body),
        (hanako, False, "sato@example.com", "PCから失礼します"),
    ]
    dump: str = await world.people.pool.fetchval(
        "SELECT string_agg(r::text, '|') FROM inbound_replies r")
    for words in ("遠足", "hanako.mama", "sato@"):
        assert words not in dump and words.encode().hex() not in dump


async def test_a_reply_to_no_mail_of_ours_is_refused_and_stores_nothing(world: World) -> None:
    b = await world.send(Audience(schools=(await world.school("sho1"),)))
    d = await world.deliveries(b)
    with pytest.raises(InputError, match="返信先"):
        await store_reply(world.people, SECRET, "<x@example.jp>", "a@example.jp", "Re", "本文")
    # A well-signed id whose delivery is not of that broadcast.
    wrong = message_id(world, b + 1, d["hanako.mama@docomo.ne.jp"])
    with pytest.raises(InputError, match="返信先"):
        await store_reply(world.people, SECRET, wrong, "a@example.jp", "Re", "本文")
    assert await world.people.pool.fetchval("SELECT count(*) FROM inbound_replies") == 0
