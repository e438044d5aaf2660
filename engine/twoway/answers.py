"""The automatic answer to a guardian's reply: one mail pointing to the personal page, at most
once per delivery replied to, never to a reply to an automatic answer (table
``reply_answers``, migration 019). The inbound server decides what is a reply
(inbound/replies.py); this module only decides whether to answer and enqueues the answer.
"""

from __future__ import annotations

from engine.message.compose import LINK_LIFETIME
from engine.message.links import LinkSigner, personal_page_url
from engine.people.store import People
from engine.platform.config import Settings
from engine.queue import NewBroadcast, Priority, Queue

SUBJECT = "【自動応答】返信を受け付けました"


def answer_text(url: str) -> str:
    return (
        "このメールは自動でお送りしています。\n"
        "お知らせへのご返信は学校に届きました。内容は教職員が確認します。\n\n"
        "「確認しました」のボタン、アンケートへの回答、欠席などの連絡は、"
        "下の個人用ページからお願いします。\n\n"
        f"{url}\n\n"
        "急ぎのご用件は、学校へお電話でご連絡ください。\n"
        "このメールに返信されても、自動の応答はこれ以上お送りしません。\n"
    )


async def answer_reply(
    people: People, queue: Queue, settings: Settings, secret: bytes, delivery_id: int,
    recipient: str,
) -> int | None:
    """Enqueue the answer to a reply to ``delivery_id`` (sent to ``recipient``, the address the
    delivery went to); the answer's broadcast id, or None when it is not answered."""
    now = people.clock.now()
    async with people.pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "SELECT d.broadcast_id, b.sender, b.sender_name, b.reply_to, "
            "EXISTS (SELECT 1 FROM reply_answers a WHERE a.answer_broadcast = d.broadcast_id) "
            "AS is_answer FROM deliveries d JOIN broadcasts b ON b.id = d.broadcast_id "
            "WHERE d.id = $1",
            delivery_id,
        )
        if row is None or row["is_answer"]:
            return None
        # Taken first, so that two replies at once answer once (the loser waits on the row,
        # then skips); the answer's broadcast id is written once it exists, below.
        taken = await conn.fetchval(
            "INSERT INTO reply_answers (delivery_id, answer_broadcast, answered_at) "
            "VALUES ($1, $2, $3) ON CONFLICT (delivery_id) DO NOTHING RETURNING delivery_id",
            delivery_id, row["broadcast_id"], now,
        )
        if taken is None:
            return None
        url = personal_page_url(settings.http.public_url, LinkSigner(secret), delivery_id,
                                now + LINK_LIFETIME)
        answer_id = await queue.enqueue(
            NewBroadcast(sender=row["sender"], subject=SUBJECT, body=answer_text(url),
                         recipients=[recipient], priority=Priority.NORMAL,
                         sender_name=row["sender_name"] or "", reply_to=row["reply_to"] or ""),
            now, settings.queue.max_age, conn=conn,
        )
        await conn.execute(
            "UPDATE reply_answers SET answer_broadcast = $2 WHERE delivery_id = $1",
            delivery_id, answer_id,
        )
    return answer_id
