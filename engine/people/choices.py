"""A contact's own choices from its personal link: which public groups to follow, or leave.

The change/leave page and the RFC 8058 one-click unsubscribe reach a contact through the
delivery its link names (the recipient's address): ``choices_of`` says what the page shows,
``choose_groups`` replaces the public groups the contact follows (groups it was put in by the
school stay), ``leave_address`` stops all mail to the address at once. An address that is not a
contact (mail sent to plain addresses) is put on the suppression list instead, so a one-click
unsubscribe always takes effect.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine.bounce.suppression import Suppressions
from engine.people.contacts import find_contact
from engine.people.registration import UNSUBSCRIBED, PublicGroup, masked, public_groups
from engine.people.store import People
from engine.platform.address import normalise_address
from engine.platform.errors import InputError
from engine.queue.withdrawn import withdraw_unsent


@dataclass(frozen=True)
class Choices:
    """What the change/leave page shows."""

    contact_id: int | None
    address_masked: str
    left: bool
    # "第一小学校 3年 1組", one per child the contact receives for.
    children: tuple[str, ...]
    offered: tuple[PublicGroup, ...]
    chosen: frozenset[int]
    # False for a contact imported without confirmation: the page asks it to confirm.
    confirmed: bool = True


async def choices_of(people: People, address: str) -> Choices:
    contact_id = await find_contact(people, address)
    offered = tuple(await public_groups(people, None))
    if contact_id is None:
        entry = (await Suppressions(people.pool, people.sealer).lookup([address])).get(address)
        # Only the person's own unsubscribe is shown as theirs to undo (see rejoin_address).
        left = entry is not None and entry.reason == UNSUBSCRIBED
        return Choices(None, masked(address), left, (), offered, frozenset())
    row = await people.pool.fetchrow(
        "SELECT state, confirmed_at FROM contacts WHERE id = $1", contact_id
    )
    children = await people.pool.fetch(
        "SELECT o.name AS school, g.grade, c.name AS class FROM contact_accounts ca"
        " JOIN accounts a ON a.id = ca.account_id AND a.state = 'active'"
        " JOIN organisations o ON o.id = a.school_id"
        " LEFT JOIN grades g ON g.id = a.grade_id LEFT JOIN classes c ON c.id = a.class_id"
        " WHERE ca.contact_id = $1 ORDER BY o.code, g.grade, c.name",
        contact_id,
    )
    chosen = await people.pool.fetch(
        "SELECT group_id FROM contact_groups WHERE contact_id = $1", contact_id
    )
    return Choices(
        contact_id, masked(address), row["state"] == "left",
        tuple(_label(r["school"], r["grade"], r["class"]) for r in children),
        offered, frozenset(r["group_id"] for r in chosen), row["confirmed_at"] is not None,
    )


def _label(school: str, grade: int | None, class_name: str | None) -> str:
    text = school
    if grade is not None:
        text += f" {grade}年"
    if class_name is not None:
        text += f" {class_name}組"
    return text


async def choose_groups(people: People, address: str, group_ids: Sequence[int]) -> None:
    """The public groups the contact follows become ``group_ids`` (InputError for another
    group or an address that is not a contact)."""
    contact_id = await find_contact(people, address)
    if contact_id is None:
        raise InputError("この連絡先は登録されていません。 (unknown contact)")
    offered = {g.id for g in await public_groups(people, None)}
    if any(g not in offered for g in group_ids):
        raise InputError("選べないグループが含まれています。 (not a public group)")
    now = people.clock.now()
    async with people.pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "DELETE FROM contact_groups WHERE contact_id = $1 AND group_id = ANY($2::bigint[])"
            " AND NOT group_id = ANY($3::bigint[])",
            contact_id, list(offered), list(group_ids),
        )
        await conn.execute(
            "INSERT INTO contact_groups (contact_id, group_id, created_at) "
            "SELECT $1, g, $3 FROM unnest($2::bigint[]) AS g ON CONFLICT DO NOTHING",
            contact_id, list(group_ids), now,
        )


#: How an address that is no contact asked to leave, as its suppression-list note says.
BY_ONE_CLICK = "配信停止（ワンクリック） / one-click unsubscribe (RFC 8058)"
BY_MAIL = "配信停止（メールで依頼） / unsubscribe by mail to the List-Unsubscribe address"


async def leave_address(people: People, address: str, how: str = BY_ONE_CLICK) -> None:
    """Nothing more is sent to ``address``: its contact leaves, or, for an address that is not a
    contact, it goes on the suppression list with the note ``how`` (``BY_ONE_CLICK`` or
    ``BY_MAIL``); mail to it fanned out and not sent yet is withdrawn (engine.queue.withdrawn).
    Doing it twice changes nothing more."""
    normal = normalise_address(address)
    now = people.clock.now()
    contact_id = await find_contact(people, normal)
    async with people.pool.acquire() as conn, conn.transaction():
        if contact_id is not None:
            await conn.execute(
                "UPDATE contacts SET state = 'left', updated_at = $2 WHERE id = $1",
                contact_id, now,
            )
        else:
            suppressions = Suppressions(conn, people.sealer, clock=people.clock)
            if not await suppressions.lookup([normal]):
                await suppressions.add(
                    normal, UNSUBSCRIBED, source="operator",
                    note=how,
                )
        await withdraw_unsent(conn, [people.sealer.address_hash(normal)], now)


async def rejoin_address(people: People, address: str) -> None:
    """Undo ``leave_address`` from the same page (only the contact's own choice undoes it)."""
    contact_id = await find_contact(people, address)
    if contact_id is None:
        suppressions = Suppressions(people.pool, people.sealer, clock=people.clock)
        entry = (await suppressions.lookup([address])).get(address)
        # Only the person's own unsubscribe is undone here, never a bounce or a complaint.
        if entry is not None and entry.reason == UNSUBSCRIBED:
            await suppressions.remove(address)
        return
    await people.pool.execute(
        "UPDATE contacts SET state = 'active', updated_at = $2 WHERE id = $1",
        contact_id, people.clock.now(),
    )
