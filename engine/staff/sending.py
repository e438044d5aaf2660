"""Broadcasts made by staff and applications: rights checked, owner recorded, sent once.

The owner row (``broadcast_owners``) is written in the same transaction as the broadcast and
its deliveries (``send_broadcast(within=...)``), so a broadcast never exists without the
organisation that decides who may see it. An application's idempotency key is unique per API
key: a retried request finds the broadcast of the first and gets it back instead of sending
again; two requests racing with the same key meet at the unique index, and the second one
rolls back and gets the first one's broadcast. A staff member's key (the screens'
confirmation form carries one) works the same way per staff account, so a second click on
「送信する」 never sends twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from engine.message.checks import MAX_SUBJECT
from engine.people import Audience, Category, People
from engine.people.contacts import left_among
from engine.platform.errors import InputError
from engine.queue import NewBroadcast, Priority, Queue
from engine.queue.broadcasts import refuse_past_send_at
from engine.staff.follow import RecipientFilter, all_recipients, visible_broadcast
from engine.staff.models import ActorKind, NotFoundError, Principal
from engine.staff.rights import check_audience
from engine.staff.senders import sender_for
from engine.staff.store import Staff
from engine.twoway import send_broadcast
from engine.twoway.asks import Asks, ReadPolicy, check_way_back
from engine.twoway.questions import Question


@dataclass(frozen=True)
class BroadcastRequest:
    sender: str
    subject: str
    body: str
    audience: Audience
    category: Category = Category.NOTICE
    priority: Priority = Priority.NORMAL
    send_at: datetime | None = None
    # Two-way (engine/twoway): ask for read confirmation with this reminder policy; questions
    # answered on the personal page until ``deadline``. Either makes the mails link to it.
    read: ReadPolicy | None = None
    questions: tuple[Question, ...] = ()
    deadline: datetime | None = None

    def asks(self) -> Asks | None:
        """What the broadcast asks of its recipients, for ``send_broadcast``; None: nothing."""
        if self.read is None and not self.questions and self.deadline is None:
            return None
        return Asks(read=self.read, questions=self.questions, deadline=self.deadline)
    # Identifies the files sent with it (attachments.files_digest); empty: none.
    files_digest: bytes = b""

    def digest(self) -> bytes:
        """Identifies the request's content, to tell a retry from a different request."""
        fields: list[object] = [
            self.sender, self.subject, self.body, self.audience.as_json(), self.category.value,
            int(self.priority), self.send_at.isoformat() if self.send_at else None,
        ]
        if self.asks() is not None:
            # Only then, so digests of requests without two-way stay what they were.
            fields.append([
                None if self.read is None
                else [self.read.remind_after.total_seconds(), self.read.max_reminders],
                [q.as_json() for q in self.questions],
                self.deadline.isoformat() if self.deadline else None,
            ])
        if self.files_digest:
            fields.append(self.files_digest.hex())
        payload = json.dumps(fields, ensure_ascii=False, sort_keys=True)
        return hashlib.sha256(payload.encode("utf-8")).digest()


@dataclass(frozen=True)
class Created:
    broadcast_id: int
    recipients: int
    # True: an earlier request with the same idempotency key made it; nothing was sent now.
    replayed: bool = False
    summary_ja: str = ""


class IdempotencyConflict(InputError):
    """The idempotency key was used before for a different request; HTTP 409."""


def check_content(req: BroadcastRequest) -> None:
    """InputError for an empty or too long subject or body, or no audience (before the
    audience and the sender are checked)."""
    if not req.subject.strip() or len(req.subject) > MAX_SUBJECT:
        raise InputError(
            f"件名を 1〜{MAX_SUBJECT} 文字で入れてください"
            f" (a subject of 1-{MAX_SUBJECT} characters)"
        )
    if any(ch in req.subject for ch in "\r\n"):
        raise InputError("件名に改行は使えません (no line breaks in the subject)")
    if not req.body.strip() or len(req.body) > 100_000:
        raise InputError("本文を 1〜100,000 文字で入れてください (a body of 1-100,000 characters)")
    if req.audience.is_empty():
        raise InputError("配信先を指定してください (name an audience)")


async def create(
    staff: Staff,
    people: People,
    queue: Queue,
    actor: Principal,
    req: BroadcastRequest,
    max_age: float,
    idempotency_key: str | None = None,
    draft_id: int | None = None,
    also: Within | None = None,
) -> Created:
    """Check, then resolve and fan out the broadcast with its owner, all or nothing. With
    ``draft_id`` that draft (the actor's own) is removed in the same transaction; ``also``
    (e.g. storing its attachments) runs in that transaction too."""
    if idempotency_key is not None:
        if actor.kind not in (ActorKind.API_KEY, ActorKind.STAFF):
            raise InputError(
                "冪等キーは API キーと職員の送信に使います (idempotency keys are for API keys "
                "and staff)"
            )
        if not 1 <= len(idempotency_key) <= 200 or not idempotency_key.isprintable():
            raise InputError("冪等キーは 1〜200 文字です (an idempotency key of 1-200 characters)")
        earlier = await _earlier(staff.pool, actor, idempotency_key, req)
        if earlier is not None:
            return earlier
    check_content(req)
    check_way_back(req.asks(), staff.public_url)
    now = staff.now()
    if req.send_at is not None:
        refuse_past_send_at(req.send_at, now)
    await check_audience(staff.pool, actor, req.audience)
    # The From is one of the owner's addresses, signable: refused here, never when sending.
    sender = await sender_for(staff.pool, actor, req.sender, staff.dkim)

    own = owner_row(
        actor, now, idempotency_key, req.digest() if idempotency_key else None,
        draft_id=draft_id,
    )
    if also is not None:
        own = _both(own, also)

    broadcast = NewBroadcast(
        sender=sender.address, subject=req.subject.strip(), body=req.body, recipients=[],
        priority=req.priority, send_at=req.send_at, sender_name=sender.display_name,
    )
    try:
        fan = await send_broadcast(
            people, queue, broadcast, req.audience, req.category, max_age, within=own,
            asks=req.asks(),
        )
    except asyncpg.UniqueViolationError:
        # The same key raced us and won: its broadcast is the answer.
        earlier = await _earlier(staff.pool, actor, idempotency_key or "", req)
        if earlier is None:
            raise
        return earlier
    return Created(fan.broadcast_id, fan.recipients, False, fan.summary_ja())


Within = Callable[[asyncpg.Connection, int], Awaitable[None]]


def _both(first: Within, then: Within) -> Within:
    async def both(conn: asyncpg.Connection, broadcast_id: int) -> None:
        await first(conn, broadcast_id)
        await then(conn, broadcast_id)

    return both


def owner_row(
    actor: Principal,
    now: datetime,
    idempotency_key: str | None = None,
    digest: bytes | None = None,
    resend_of: int | None = None,
    organisation_id: int | None = None,
    draft_id: int | None = None,
) -> Callable[[asyncpg.Connection, int], Awaitable[None]]:
    """Writes the owner row (and removes the draft sent) inside ``send_broadcast``'s
    transaction."""

    async def own(conn: asyncpg.Connection, broadcast_id: int) -> None:
        if draft_id is not None:
            gone = await conn.fetchval(
                "DELETE FROM saved_messages WHERE id = $1 AND kind = 'draft' "
                "AND staff_id = $2 RETURNING id",
                draft_id, actor.id,
            )
            if gone is None:  # sent already (a second click): roll everything back
                raise NotFoundError(
                    f"下書き {draft_id} は送信済みか、ありません (draft already sent or gone)"
                )
        await conn.execute(
            "INSERT INTO broadcast_owners (broadcast_id, organisation_id, staff_id, api_key_id, "
            "idempotency_key, request_hash, resend_of, created_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            broadcast_id, organisation_id or actor.organisation_id,
            actor.id if actor.kind is ActorKind.STAFF else None,
            actor.id if actor.kind is ActorKind.API_KEY else None,
            idempotency_key, digest, resend_of, now,
        )

    return own


async def resend(
    staff: Staff,
    people: People,
    queue: Queue,
    actor: Principal,
    broadcast_id: int,
    which: RecipientFilter,
    max_age: float,
    subject: str | None = None,
    body: str | None = None,
) -> Created:
    """A new broadcast, linked to ``broadcast_id``, to those of its recipients ``which``
    selects (e.g. failed for a temporary reason). Contacts that left since are not sent to;
    suppressed addresses get a failed delivery as always. Rights: whoever may see the first
    broadcast; the new one belongs to the same school."""
    now = staff.now()
    first = await visible_broadcast(staff.pool, actor, broadcast_id, now)
    chosen = [
        r.address
        for r in await all_recipients(staff.pool, people.sealer, actor, broadcast_id, which, now)
    ]
    left = await left_among(people, chosen)
    addresses = [a for a in chosen if a not in left]
    if not addresses:
        raise InputError(
            "再送する宛先がありません (no recipient matches the filter"
            + (f"; {len(left)} left since" if left else "") + ")"
        )
    content = (await queue.broadcast_contents([broadcast_id]))[broadcast_id]
    broadcast = NewBroadcast(
        sender=content.sender, subject=(subject or content.subject).strip(),
        body=body or content.body, recipients=addresses, priority=content.priority,
    )
    if not broadcast.subject or "\n" in broadcast.subject or "\r" in broadcast.subject:
        raise InputError("件名を 1 行で入れてください (a one-line subject)")
    fan = await send_broadcast(
        people, queue, broadcast, Audience(), Category(first.category), max_age,
        within=owner_row(actor, now, resend_of=broadcast_id,
                          organisation_id=first.organisation_id),
    )
    return Created(fan.broadcast_id, fan.recipients, False, fan.summary_ja())


async def _earlier(
    pool: asyncpg.Pool, actor: Principal, key: str, req: BroadcastRequest
) -> Created | None:
    owner = "api_key_id" if actor.kind is ActorKind.API_KEY else "staff_id"
    row = await pool.fetchrow(
        "SELECT o.broadcast_id, o.request_hash, b.recipient_count FROM broadcast_owners o "
        f"JOIN broadcasts b ON b.id = o.broadcast_id WHERE o.{owner} = $1 "
        "AND o.idempotency_key = $2",
        actor.id, key,
    )
    if row is None:
        return None
    if bytes(row["request_hash"]) != req.digest():
        raise IdempotencyConflict(
            "この冪等キーは別の内容の配信に使われています。新しいキーを使ってください "
            "(the idempotency key was used for a different request; use a new key)"
        )
    return Created(row["broadcast_id"], row["recipient_count"], replayed=True)
