"""Recipients seen from the people side: which accounts an address receives for, and which
addresses belong to grades and classes (for the follow-up lists of a broadcast).

Deliveries keep addresses as resolved (normalised), so the keyed lookup hash of a delivery's
recipient finds its contact without opening anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine.people.store import ACCOUNT_NAME, ADDRESS, People


@dataclass(frozen=True)
class AccountRef:
    id: int
    name: str
    school_id: int
    grade: int | None
    class_name: str | None


ACCOUNTS_SQL = """
SELECT c.address_hash, a.id, a.name_sealed, a.school_id, g.grade, cl.name AS class_name
FROM contacts c
JOIN contact_accounts ca ON ca.contact_id = c.id
JOIN accounts a ON a.id = ca.account_id AND a.state = 'active'
LEFT JOIN grades g ON g.id = a.grade_id
LEFT JOIN classes cl ON cl.id = a.class_id
WHERE c.address_hash = ANY($1::bytea[])
ORDER BY a.id
"""


async def accounts_of(people: People, addresses: Sequence[str]) -> dict[str, list[AccountRef]]:
    """address -> the active accounts (children, staff) it receives for; one query."""
    by_hash = {people.sealer.lookup_hash(a, ADDRESS): a for a in addresses}
    out: dict[str, list[AccountRef]] = {a: [] for a in addresses}
    for r in await people.pool.fetch(ACCOUNTS_SQL, list(by_hash)):
        out[by_hash[bytes(r["address_hash"])]].append(AccountRef(
            r["id"], people.sealer.open(r["name_sealed"], ACCOUNT_NAME), r["school_id"],
            r["grade"], r["class_name"],
        ))
    return out


async def addresses_in(
    people: People, grades: Sequence[int], classes: Sequence[int]
) -> list[str]:
    """The addresses of the contacts of the active accounts in these grades or classes, in
    any state (a broadcast's recipients are filtered by them, whatever happened since)."""
    rows = await people.pool.fetch(
        "SELECT DISTINCT c.id, c.address_sealed FROM accounts a "
        "JOIN contact_accounts ca ON ca.account_id = a.id "
        "JOIN contacts c ON c.id = ca.contact_id "
        "WHERE a.state = 'active' AND (a.grade_id = ANY($1::bigint[]) "
        "OR a.class_id = ANY($2::bigint[]))",
        list(grades), list(classes),
    )
    return [people.sealer.open(r["address_sealed"], ADDRESS) for r in rows]
