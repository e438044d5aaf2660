"""One contact at a time: add or find an address, link it, confirm it, let it leave.

These are the steps registration by empty mail and the change/leave pages (later issues) are
built from. A contact is unique by address (its keyed hash); adding an address that exists
returns the same contact. Confirming never goes backwards, and leaving is the contact's own
choice: only ``rejoin`` undoes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from engine.people.codes import normalise_code
from engine.people.store import ADDRESS, CODE, People
from engine.platform.address import normalise_address
from engine.platform.errors import InputError

UPSERT_SQL = """
INSERT INTO contacts (address_sealed, address_hash, confirmed_at, created_at, updated_at)
VALUES ($1, $2, $3, $4, $4)
ON CONFLICT (address_hash) DO UPDATE
SET confirmed_at = COALESCE(contacts.confirmed_at, EXCLUDED.confirmed_at),
    updated_at = EXCLUDED.updated_at
RETURNING id
"""


async def add_contact(
    people: People,
    address: str,
    accounts: Sequence[int] = (),
    groups: Sequence[int] = (),
    confirmed: bool = False,
) -> int:
    """The contact for ``address`` (created if new), linked to the accounts and groups given."""
    normal = normalise_address(address)
    now = people.clock.now()
    sealer = people.sealer
    async with people.pool.acquire() as conn, conn.transaction():
        contact_id: int = await conn.fetchval(
            UPSERT_SQL, sealer.seal(normal, ADDRESS), sealer.lookup_hash(normal, ADDRESS),
            now if confirmed else None, now,
        )
        await link_contact(conn, contact_id, accounts, groups, now)
    return contact_id


async def link_contact(
    conn: asyncpg.Connection,
    contact_id: int,
    accounts: Sequence[int],
    groups: Sequence[int],
    now: datetime,
) -> None:
    """Link a contact to accounts and groups (links it already has are kept as they are)."""
    await conn.execute(
        "INSERT INTO contact_accounts (contact_id, account_id, created_at) "
        "SELECT $1, a, $3 FROM unnest($2::bigint[]) AS a ON CONFLICT DO NOTHING",
        contact_id, list(accounts), now,
    )
    await conn.execute(
        "INSERT INTO contact_groups (contact_id, group_id, created_at) "
        "SELECT $1, g, $3 FROM unnest($2::bigint[]) AS g ON CONFLICT DO NOTHING",
        contact_id, list(groups), now,
    )


async def find_contact(people: People, address: str) -> int | None:
    normal = normalise_address(address)
    found: int | None = await people.pool.fetchval(
        "SELECT id FROM contacts WHERE address_hash = $1",
        people.sealer.lookup_hash(normal, ADDRESS),
    )
    return found


async def left_among(people: People, addresses: Sequence[str]) -> set[str]:
    """Those of ``addresses`` (as stored in deliveries: normalised) whose contact asked to
    receive nothing more."""
    by_hash = {people.sealer.lookup_hash(a, ADDRESS): a for a in addresses}
    rows = await people.pool.fetch(
        "SELECT address_hash FROM contacts WHERE state = 'left' "
        "AND address_hash = ANY($1::bytea[])",
        list(by_hash),
    )
    return {by_hash[bytes(r["address_hash"])] for r in rows}


async def _set_state(people: People, address: str, state: str) -> datetime:
    contact_id = await find_contact(people, address)
    if contact_id is None:
        raise InputError("この連絡先は登録されていません (unknown contact)")
    now = people.clock.now()
    await people.pool.execute(
        "UPDATE contacts SET state = $2, updated_at = $3 WHERE id = $1", contact_id, state, now
    )
    return now


async def leave(people: People, address: str) -> None:
    """The contact receives nothing more (it stays, so the choice is remembered)."""
    await _set_state(people, address, "left")


async def rejoin(people: People, address: str) -> None:
    await _set_state(people, address, "active")


async def account_for_code(people: People, code: str) -> int | None:
    """The active account a registration code (as typed) belongs to, or None.

    Raises InputError when the text cannot be a code at all; a well-formed code that belongs
    to no account is None, so callers can answer both the same way to a guesser.
    """
    found: int | None = await people.pool.fetchval(
        "SELECT id FROM accounts WHERE code_hash = $1 AND state = 'active'",
        people.sealer.lookup_hash(normalise_code(code), CODE),
    )
    return found
