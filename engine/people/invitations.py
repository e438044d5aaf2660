"""Invitations for contacts imported without confirmation.

An operator who imports addresses from an older system without ``--confirmed`` cannot say that
each family still wants the mail at that address: those contacts are skipped by every
broadcast until confirmed. ``invite`` sends them all one mail (a single broadcast, one delivery
each) whose personal link opens the contact's settings page (``/u/<token>``, admin_api/pages/
leave.py); there 「受け取る」 confirms the contact (``confirm_address``). Each contact is invited
once unless the operator asks again; a contact that confirmed or left is never invited.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.people.models import Organisation
from engine.people.store import ADDRESS, People
from engine.platform.address import normalise_address
from engine.platform.config import Settings
from engine.platform.errors import InputError
from engine.queue import NewBroadcast, Priority, Queue

SUBJECT = "【ご案内】学校からのメール配信の登録確認のお願い"
BODY = (
    "学校からのお知らせ（緊急連絡・学校行事など）をこのアドレスにお届けするため、"
    "登録の確認をお願いします。\n\n"
    "このメールの最後にあるリンクを開き、「このアドレスで受け取る」を押してください。"
    "確認が済むまで、このアドレスにはお知らせが届きません。\n\n"
    "お心当たりのないときや、受け取りを希望されないときは、何もしないでください。"
    "このご案内は 1 回だけお送りしています。\n"
)

# Contacts to invite: active, unconfirmed, not invited yet (unless again), of the school's
# active accounts when a school is given.
_CANDIDATES_SQL = """
SELECT c.id, c.address_sealed FROM contacts c
WHERE c.state = 'active' AND c.confirmed_at IS NULL AND ($2 OR c.invited_at IS NULL)
  AND ($1::bigint IS NULL OR EXISTS (
      SELECT 1 FROM contact_accounts ca JOIN accounts a ON a.id = ca.account_id
      WHERE ca.contact_id = c.id AND a.state = 'active' AND a.school_id = $1))
ORDER BY c.id
"""


@dataclass(frozen=True)
class Invitation:
    broadcast_id: int | None
    invited: int


def invitation_sender(settings: Settings) -> str:
    """The From of invitations (the registration sender); InputError when none is set or no
    link can be made."""
    people = settings.people
    sender = people.registration_sender or people.registration_address
    if not sender or not settings.http.public_url:
        raise InputError(
            "登録確認の案内を送るには [people] registration_address（または registration_sender）"
            "と [http] public_url の設定が必要です (invitations need a registration sender and "
            "a public URL)"
        )
    return sender


async def invitation_count(
    people: People, school: Organisation | None = None, again: bool = False
) -> int:
    """How many contacts ``invite`` would mail now (for a confirmation step)."""
    return int(await people.pool.fetchval(
        f"SELECT count(*) FROM ({_CANDIDATES_SQL}) x", school.id if school else None, again
    ))


async def invite(
    people: People,
    queue: Queue,
    settings: Settings,
    school: Organisation | None = None,
    again: bool = False,
) -> Invitation:
    """Send the invitation to every unconfirmed contact (of ``school``), all or nothing."""
    sender = invitation_sender(settings)
    now = people.clock.now()
    async with people.pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            _CANDIDATES_SQL + " FOR UPDATE OF c", school.id if school else None, again
        )
        if not rows:
            return Invitation(None, 0)
        addresses = [people.sealer.open(r["address_sealed"], ADDRESS) for r in rows]
        broadcast_id = await queue.enqueue(
            NewBroadcast(sender, SUBJECT, BODY, addresses, Priority.NORMAL),
            now, settings.queue.max_age, conn=conn,
        )
        await conn.execute(
            "UPDATE contacts SET invited_at = $2, updated_at = $2 WHERE id = ANY($1::bigint[])",
            [r["id"] for r in rows], now,
        )
    return Invitation(broadcast_id, len(rows))


async def confirm_address(people: People, address: str) -> bool:
    """The contact of ``address`` confirms it wants the mail; False when it is no unconfirmed,
    active contact (confirming never changes anything else)."""
    result: str = await people.pool.execute(
        "UPDATE contacts SET confirmed_at = $2, updated_at = $2 "
        "WHERE address_hash = $1 AND confirmed_at IS NULL AND state = 'active'",
        people.sealer.lookup_hash(normalise_address(address), ADDRESS), people.clock.now(),
    )
    return result.endswith(" 1")
