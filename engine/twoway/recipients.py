"""Who each delivery was for: its contact and the audience's accounts behind it.

Deliveries are keyed by address only. ``link_deliveries`` ties every delivery of a broadcast
to its contact (the delivery's recipient_hash is the contact's address_hash, so nothing is
opened) and to the
accounts of that contact the broadcast's audience selected (a guardian of two children, one in
the audience, answers for that one only). Fan-out calls it once per broadcast, after
``Queue.enqueue``, ideally in the same transaction; it is idempotent, so running it again (after
a crash between fan-out and linking) adds only what is missing. Addresses given by hand that
are no contact stay unlinked: they can read and reply, but count for no account.
"""

from __future__ import annotations

import asyncpg

from engine.people.store import ACCOUNT_NAME, People

# The audience (as stored on broadcasts.audience by engine.people) -> accounts: by board,
# school, grade, class, account id, or membership of a selected group.
LINK_ACCOUNTS_SQL = """
WITH aud AS (
    SELECT coalesce(audience, '{}'::jsonb) AS a FROM broadcasts WHERE id = $1
),
ids AS (
    SELECT
        ARRAY(SELECT jsonb_array_elements_text(coalesce(a->'boards', '[]'))::bigint) AS boards,
        ARRAY(SELECT jsonb_array_elements_text(coalesce(a->'schools', '[]'))::bigint) AS schools,
        ARRAY(SELECT jsonb_array_elements_text(coalesce(a->'grades', '[]'))::bigint) AS grades,
        ARRAY(SELECT jsonb_array_elements_text(coalesce(a->'classes', '[]'))::bigint) AS classes,
        ARRAY(SELECT jsonb_array_elements_text(coalesce(a->'accounts', '[]'))::bigint)
            AS accounts,
        ARRAY(SELECT jsonb_array_elements_text(coalesce(a->'groups', '[]'))::bigint) AS groups
    FROM aud
),
acc AS (
    SELECT a.id FROM accounts a JOIN organisations o ON o.id = a.school_id, ids
    WHERE a.state = 'active' AND (
        a.school_id = ANY(ids.boards) OR o.parent_id = ANY(ids.boards)
        OR a.school_id = ANY(ids.schools) OR a.grade_id = ANY(ids.grades)
        OR a.class_id = ANY(ids.classes) OR a.id = ANY(ids.accounts))
    UNION
    SELECT ag.account_id FROM account_groups ag
    JOIN accounts a ON a.id = ag.account_id AND a.state = 'active', ids
    WHERE ag.group_id = ANY(ids.groups)
)
INSERT INTO delivery_accounts (delivery_id, account_id, broadcast_id)
SELECT dc.delivery_id, acc.id, $1
FROM acc
JOIN contact_accounts ca ON ca.account_id = acc.id
JOIN delivery_contacts dc ON dc.contact_id = ca.contact_id AND dc.broadcast_id = $1
ON CONFLICT DO NOTHING
"""


async def link_deliveries(
    conn: asyncpg.Connection | asyncpg.Pool, people: People, broadcast_id: int
) -> int:
    """Tie the broadcast's deliveries to contacts and accounts; return the deliveries linked."""
    # A delivery's recipient_hash is its contact's address_hash (Sealer.address_hash).
    result: str = await conn.execute(
        "INSERT INTO delivery_contacts (delivery_id, broadcast_id, contact_id) "
        "SELECT d.id, $1, c.id FROM deliveries d "
        "JOIN contacts c ON c.address_hash = d.recipient_hash "
        "WHERE d.broadcast_id = $1 ON CONFLICT DO NOTHING",
        broadcast_id,
    )
    await conn.execute(LINK_ACCOUNTS_SQL, broadcast_id)
    return int(result.split()[-1])


async def accounts_of_delivery(people: People, delivery_id: int) -> list[tuple[int, str]]:
    """(account id, child's name) the delivery was for: the children a page lets one pick."""
    rows = await people.pool.fetch(
        "SELECT a.id, a.name_sealed FROM delivery_accounts da JOIN accounts a "
        "ON a.id = da.account_id WHERE da.delivery_id = $1 ORDER BY a.id",
        delivery_id,
    )
    return [(r["id"], people.sealer.open(r["name_sealed"], ACCOUNT_NAME)) for r in rows]


async def contact_of_delivery(people: People, delivery_id: int) -> int | None:
    """The contact a delivery was sent to, or None (an address given by hand)."""
    contact: int | None = await people.pool.fetchval(
        "SELECT contact_id FROM delivery_contacts WHERE delivery_id = $1", delivery_id
    )
    return contact
