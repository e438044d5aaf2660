"""A contact's own choices from its personal link: which groups to receive, or leave.

The settings page and the RFC 8058 one-click unsubscribe reach a contact through the
delivery its link names (the recipient's address): ``choices_of`` says what the page shows
(each group's real state: through a child's membership, its own, or opted out),
``choose_groups`` changes it, ``keep_emergencies_only`` keeps emergencies only,
``leave_address`` stops all mail to the address at once and ``rejoin_address`` undoes either.
An address that is not a contact (mail sent to plain addresses) is put on the suppression list
instead, so a one-click unsubscribe always takes effect.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from engine.bounce.suppression import Suppressions
from engine.people.contacts import find_contact
from engine.people.registration import UNSUBSCRIBED, masked
from engine.people.store import People
from engine.platform.address import normalise_address
from engine.platform.errors import InputError
from engine.queue.withdrawn import withdraw_routine, withdraw_unsent


@dataclass(frozen=True)
class GroupChoice:
    """One group on the settings page and whether the contact receives through it now."""

    id: int
    name: str
    owner_name: str
    member: bool


@dataclass(frozen=True)
class Choices:
    """What the change/leave page shows."""

    contact_id: int | None
    address_masked: str
    left: bool
    # "第一小学校 3年 1組", one per child the contact receives for.
    children: tuple[str, ...]
    # The groups the contact may choose: those it receives through (its children's, e.g. PTA
    # from the CSV, and its own) and the public groups of its children's schools and board.
    groups: tuple[GroupChoice, ...]
    # False for a contact imported without confirmation: the page asks it to confirm.
    confirmed: bool = True
    # 「緊急連絡だけは受け取る」: only emergencies (category or priority) are sent.
    emergency_only: bool = False

    @property
    def chosen(self) -> frozenset[int]:
        return frozenset(g.id for g in self.groups if g.member)


@dataclass(frozen=True)
class Changed:
    """What ``choose_groups`` changed, in words for the page and the completion mail."""

    started: tuple[str, ...]
    stopped: tuple[str, ...]

    def lines(self) -> tuple[str, ...]:
        return (
            *(f"受け取る: {name}" for name in self.started),
            *(f"受け取らない: {name}" for name in self.stopped),
        )


# The groups of a contact's page: through its active children (account_groups), its own
# (contact_groups), and the public groups of its "home" organisations: its children's schools
# and their board, and the owners (and their board) of the groups it follows itself. Never
# another school's group the family has nothing to do with.
_GROUPS_SQL = """
WITH kids AS (
    SELECT a.id, a.school_id FROM contact_accounts ca
    JOIN accounts a ON a.id = ca.account_id AND a.state = 'active'
    WHERE ca.contact_id = $1
),
via AS (SELECT DISTINCT ag.group_id FROM account_groups ag JOIN kids ON kids.id = ag.account_id),
own AS (SELECT group_id FROM contact_groups WHERE contact_id = $1),
near AS (
    SELECT school_id AS org FROM kids
    UNION SELECT g.owner_id FROM own JOIN groups g ON g.id = own.group_id
),
homes AS (
    SELECT org FROM near
    UNION SELECT o.parent_id FROM near JOIN organisations o ON o.id = near.org
    WHERE o.parent_id IS NOT NULL
)
SELECT g.id, g.name, o.name AS owner_name, g.is_public,
       g.id IN (SELECT group_id FROM via) AS via_child,
       g.id IN (SELECT group_id FROM own) AS own,
       EXISTS (SELECT 1 FROM contact_group_optouts x
               WHERE x.contact_id = $1 AND x.group_id = g.id) AS opted_out
FROM groups g JOIN organisations o ON o.id = g.owner_id
WHERE g.id IN (SELECT group_id FROM via) OR g.id IN (SELECT group_id FROM own)
   OR (g.is_public AND g.owner_id IN (SELECT org FROM homes))
ORDER BY o.kind <> 'board', o.code, g.name
"""


def _member(r: asyncpg.Record) -> bool:
    return bool((r["via_child"] or r["own"]) and not r["opted_out"])


async def choices_of(people: People, address: str) -> Choices:
    contact_id = await find_contact(people, address)
    if contact_id is None:
        entry = (await Suppressions(people.pool, people.sealer).lookup([address])).get(address)
        # Only the person's own unsubscribe is shown as theirs to undo (see rejoin_address).
        left = entry is not None and entry.reason == UNSUBSCRIBED
        return Choices(None, masked(address), left, (), ())
    row = await people.pool.fetchrow(
        "SELECT state, confirmed_at, emergency_only FROM contacts WHERE id = $1", contact_id
    )
    children = await people.pool.fetch(
        "SELECT o.name AS school, g.grade, c.name AS class FROM contact_accounts ca"
        " JOIN accounts a ON a.id = ca.account_id AND a.state = 'active'"
        " JOIN organisations o ON o.id = a.school_id"
        " LEFT JOIN grades g ON g.id = a.grade_id LEFT JOIN classes c ON c.id = a.class_id"
        " WHERE ca.contact_id = $1 ORDER BY o.code, g.grade, c.name",
        contact_id,
    )
    groups = await people.pool.fetch(_GROUPS_SQL, contact_id)
    return Choices(
        contact_id, masked(address), row["state"] == "left",
        tuple(_label(r["school"], r["grade"], r["class"]) for r in children),
        tuple(GroupChoice(r["id"], r["name"], r["owner_name"], _member(r)) for r in groups),
        row["confirmed_at"] is not None, row["emergency_only"],
    )


def _label(school: str, grade: int | None, class_name: str | None) -> str:
    text = school
    if grade is not None:
        text += f" {grade}年"
    if class_name is not None:
        text += f" {class_name}組"
    return text


async def choose_groups(people: People, address: str, group_ids: Sequence[int]) -> Changed:
    """The groups the contact receives through become ``group_ids`` among those its page
    offers (InputError for another group or an address that is not a contact).

    Checking a group it is not in joins it (a public group); unchecking a group it chose
    itself leaves it; unchecking a group it is in through its child (PTA from the CSV) or that
    the school put it in records an opt-out (``contact_group_optouts``): the child stays in
    the group for the other guardians, and mail addressed to that group skips this address."""
    contact_id = await find_contact(people, address)
    if contact_id is None:
        raise InputError("この連絡先は登録されていません。 (unknown contact)")
    wanted = set(group_ids)
    now = people.clock.now()
    started: list[str] = []
    stopped: list[str] = []
    async with people.pool.acquire() as conn, conn.transaction():
        # One change at a time per contact: two tabs cannot interleave their reads and writes.
        await conn.execute("SELECT 1 FROM contacts WHERE id = $1 FOR UPDATE", contact_id)
        rows = await conn.fetch(_GROUPS_SQL, contact_id)
        if wanted - {r["id"] for r in rows}:
            raise InputError("選べないグループが含まれています。 (not a group of this page)")
        for r in rows:
            want, have = r["id"] in wanted, _member(r)
            if want == have:
                continue
            name = f"{r['name']}（{r['owner_name']}）"
            if want:
                started.append(name)
                await conn.execute(
                    "DELETE FROM contact_group_optouts WHERE contact_id = $1 AND group_id = $2",
                    contact_id, r["id"],
                )
                if not (r["via_child"] or r["own"]):
                    await conn.execute(
                        "INSERT INTO contact_groups (contact_id, group_id, created_at)"
                        " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                        contact_id, r["id"], now,
                    )
                continue
            stopped.append(name)
            if r["own"] and r["is_public"] and not r["via_child"]:
                await conn.execute(
                    "DELETE FROM contact_groups WHERE contact_id = $1 AND group_id = $2",
                    contact_id, r["id"],
                )
            else:
                await conn.execute(
                    "INSERT INTO contact_group_optouts (contact_id, group_id, created_at)"
                    " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    contact_id, r["id"], now,
                )
        if started or stopped:
            await conn.execute(
                "UPDATE contacts SET updated_at = $2 WHERE id = $1", contact_id, now
            )
    return Changed(tuple(started), tuple(stopped))


#: How an address that is no contact asked to leave, as its suppression-list note says.
BY_ONE_CLICK = "配信停止（ワンクリック） / one-click unsubscribe (RFC 8058)"
BY_MAIL = "配信停止（メールで依頼） / unsubscribe by mail to the List-Unsubscribe address"
BY_PAGE = "配信停止（設定ページで確認のうえ） / stopped on the settings page after confirming"


async def leave_address(people: People, address: str, how: str = BY_ONE_CLICK) -> bool:
    """Nothing more is sent to ``address``: its contact leaves, or, for an address that is not a
    contact, it goes on the suppression list with the note ``how`` (``BY_ONE_CLICK`` or
    ``BY_MAIL``); mail to it fanned out and not sent yet is withdrawn (engine.queue.withdrawn).
    Doing it twice changes nothing more. True when the address is a contact."""
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
    return contact_id is not None


async def keep_emergencies_only(people: People, address: str) -> None:
    """「緊急連絡だけは受け取る」: the contact stays (or becomes again) active but is sent only
    emergencies (category or priority); routine mail fanned out and not sent yet is withdrawn.
    InputError for an address that is not a contact (it can only leave)."""
    normal = normalise_address(address)
    contact_id = await find_contact(people, normal)
    if contact_id is None:
        raise InputError("この連絡先は登録されていません。 (unknown contact)")
    now = people.clock.now()
    async with people.pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE contacts SET state = 'active', emergency_only = true, updated_at = $2"
            " WHERE id = $1",
            contact_id, now,
        )
        await withdraw_routine(conn, [people.sealer.address_hash(normal)], now)


async def rejoin_address(people: People, address: str) -> bool:
    """Undo ``leave_address`` or ``keep_emergencies_only`` from the same page: every mail
    again (only the contact's own choice undoes a leave). True when the address is a
    contact."""
    contact_id = await find_contact(people, address)
    if contact_id is None:
        suppressions = Suppressions(people.pool, people.sealer, clock=people.clock)
        entry = (await suppressions.lookup([address])).get(address)
        # Only the person's own unsubscribe is undone here, never a bounce or a complaint.
        if entry is not None and entry.reason == UNSUBSCRIBED:
            await suppressions.remove(address)
        return False
    await people.pool.execute(
        "UPDATE contacts SET state = 'active', emergency_only = false, updated_at = $2"
        " WHERE id = $1",
        contact_id, people.clock.now(),
    )
    return True
