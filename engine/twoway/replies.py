"""Guardians' replies to a broadcast mail: tied to their delivery, sealed at rest, listed.

A reply is tied to its delivery by the **Message-ID it answers** (``In-Reply-To``, else the
last ``References`` entry), not by the VERP return path: replies go to the From / Reply-To
address, and only bounces go to the VERP address. engine/message/compose.py writes Message-IDs as
``<mamoru.{broadcast}.{delivery}.{token}@{domain}>`` where ``token`` is the first 80 bits of
HMAC-SHA256(secret, "message-id\\0{broadcast}") in lower-case base 32 and ``secret`` is the
deployment's VERP key; ``delivery_of_message_id`` checks that token, so a made-up Message-ID
names no delivery. The reply is kept even when it comes from another address than the one the
delivery went to (a guardian answering from a PC), with ``from_recipient`` false for staff to see.

The inbound server calls ``store_reply`` (then answers automatically, pointing to the personal
page: not built here); staff screens call ``replies_of``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime

from engine.people.store import People
from engine.platform.address import normalise_address
from engine.platform.errors import InputError

SENDER = "reply.sender"
SUBJECT = "reply.subject"
BODY = "reply.body"
MAX_BODY = 20_000
_MESSAGE_ID = re.compile(r"<mamoru\.(\d{1,18})\.(\d{1,18})\.([a-z2-7]{16})@[^<>\s]+>")


@dataclass(frozen=True)
class Reply:
    id: int
    delivery_id: int
    from_recipient: bool
    sender: str
    subject: str
    body: str
    received_at: datetime


def delivery_of_message_id(secret: bytes, header: str) -> tuple[int, int] | None:
    """(broadcast id, delivery id) named by a mamoru Message-ID in ``header``, else None.

    ``header`` is the value of In-Reply-To or References; the last mamoru id in it wins (the
    message directly answered).
    """
    for m in reversed(list(_MESSAGE_ID.finditer(header))):
        broadcast_id, delivery_id = int(m.group(1)), int(m.group(2))
        mac = hmac.new(secret, b"message-id\0%d" % broadcast_id, hashlib.sha256).digest()
        token = base64.b32encode(mac[:10]).decode("ascii").lower()
        if hmac.compare_digest(token, m.group(3)):
            return broadcast_id, delivery_id
    return None


async def store_reply(
    people: People,
    secret: bytes,
    in_reply_to: str,
    sender: str,
    subject: str,
    body: str,
) -> Reply:
    """Keep a reply (InputError, storing nothing, when it answers no mail of ours).

    ``in_reply_to``: the In-Reply-To value, or References when In-Reply-To is missing;
    ``body``: the decoded text part (cut to 20,000 characters).
    """
    named = delivery_of_message_id(secret, in_reply_to)
    if named is None:
        raise InputError("返信先のお知らせが分かりません (the reply names no mail of ours)")
    broadcast_id, delivery_id = named
    try:
        address = normalise_address(sender)
    except InputError:
        address = sender.strip()[:320]
    now = people.clock.now()
    seal = people.sealer.seal
    # A reply to the automatic answer (engine/twoway/answers.py) is kept with the delivery the
    # answer was for, so that staff find it under the broadcast the guardian meant.
    row = await people.pool.fetchrow(
        "WITH named AS (SELECT coalesce((SELECT ra.delivery_id FROM reply_answers ra "
        "  WHERE ra.answer_broadcast = d.broadcast_id LIMIT 1), d.id) AS id "
        "  FROM deliveries d WHERE d.id = $1 AND d.broadcast_id = $2) "
        "INSERT INTO inbound_replies (broadcast_id, delivery_id, from_recipient, sender_sealed, "
        "subject_sealed, body_sealed, received_at) "
        "SELECT d.broadcast_id, d.id, d.recipient_hash = $3, $4, $5, $6, $7 "
        "FROM named JOIN deliveries d ON d.id = named.id "
        "RETURNING id, delivery_id, from_recipient",
        delivery_id, broadcast_id, people.sealer.address_hash(address), seal(address, SENDER),
        seal(subject[:998], SUBJECT),
        seal(body[:MAX_BODY], BODY), now,
    )
    if row is None:
        raise InputError("返信先のお知らせが分かりません (the reply names no mail of ours)")
    return Reply(
        row["id"], row["delivery_id"], row["from_recipient"], address, subject[:998],
        body[:MAX_BODY], now,
    )


async def replies_of(people: People, broadcast_id: int) -> list[Reply]:
    """A broadcast's replies, oldest first, opened for staff."""
    rows = await people.pool.fetch(
        "SELECT * FROM inbound_replies WHERE broadcast_id = $1 ORDER BY received_at, id",
        broadcast_id,
    )
    open_ = people.sealer.open
    return [
        Reply(
            r["id"], r["delivery_id"], r["from_recipient"], open_(r["sender_sealed"], SENDER),
            open_(r["subject_sealed"], SUBJECT), open_(r["body_sealed"], BODY), r["received_at"],
        )
        for r in rows
    ]
