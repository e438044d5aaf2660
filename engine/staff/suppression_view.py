"""The suppression list as an administrator sees it: one page of entries, one address found by
its hash, one entry removed with a reason.

The list (engine/bounce/suppression.py) is the installation's, without an owner column, so an
administrator sees the entries that concern their own people: an address that is a contact of
an account of their school (the board: of any of its schools), or whose entry came from a
delivery of a broadcast their school (board) made. While the database has one board, the board
sees every entry (what the command line added without an owner is that board's, as in
engine/staff/rights.py). A teacher sees none. Anything outside is answered as not found.

Addresses are sealed: a search is by the folded hash of the address typed (as ``mamoru
suppression`` finds one), never by opening every entry. Contacts are matched by their address
hash, which is the folded hash for the usual all-lower-case address.
"""

from __future__ import annotations

import asyncpg

from engine.bounce.suppression import REMOVE_SQL, Suppression
from engine.platform.address import normalise_address
from engine.platform.errors import InputError
from engine.platform.sealing import RECIPIENT
from engine.staff.models import ActorKind, Principal, RightsError, Role
from engine.staff.rights import SINGLE_BOARD, not_found, tenant
from engine.staff.store import Staff

PAGE_LIMIT = 200
# Where an entry came from, as staff read it (the same words as ``mamoru suppression list``).
SOURCE_LABELS_JA = {
    "bounce": "エラーメール", "smtp": "配信時の応答", "complaint": "苦情",
    "operator": "手動登録", "import": "取り込み",
}
REASON_LIMIT = 200

# The entry ``s`` concerns the organisations $1 (NULL: every entry; $2: also every entry
# while the database has one board).
_VISIBLE = f"""
($1::bigint[] IS NULL
 OR ($2 AND {SINGLE_BOARD})
 OR EXISTS (SELECT 1 FROM contacts c
            JOIN contact_accounts ca ON ca.contact_id = c.id
            JOIN accounts a ON a.id = ca.account_id
            WHERE c.address_hash = s.address_key AND a.school_id = ANY($1::bigint[]))
 OR EXISTS (SELECT 1 FROM deliveries d
            JOIN broadcast_owners o ON o.broadcast_id = d.broadcast_id
            WHERE d.id = s.delivery_id AND o.organisation_id = ANY($1::bigint[])))
"""
_FIELDS = "s.address_sealed, s.reason, s.category, s.source, s.delivery_id, s.note, s.created_at"


async def _scope(staff: Staff, actor: Principal) -> tuple[list[int] | None, bool]:
    """The organisations whose entries ``actor`` sees (None: all) and whether the single
    board's rule applies; RightsError for a teacher."""
    if actor.kind is ActorKind.CLI:
        return None, False
    if actor.role is Role.BOARD:
        board = tenant(actor)
        if board is None:
            return None, False
        rows = await staff.pool.fetch(
            "SELECT id FROM organisations WHERE id = $1 OR parent_id = $1", board
        )
        return [r["id"] for r in rows], True
    if actor.role is Role.SCHOOL and actor.organisation_id is not None:
        return [actor.organisation_id], False
    raise RightsError("配信停止リストは管理者だけが扱えます (administrators only)")


def _entry(staff: Staff, r: asyncpg.Record) -> Suppression:
    row = dict(r.items())
    address = staff.sealer.open(row.pop("address_sealed"), RECIPIENT)
    return Suppression(address=address, **row)


async def entries(
    staff: Staff, actor: Principal, limit: int = 50, offset: int = 0
) -> tuple[int, list[Suppression]]:
    """How many entries ``actor`` sees and one page of them, newest first."""
    if not 1 <= limit <= PAGE_LIMIT or offset < 0:
        raise InputError("limit は 1〜200、offset は 0 以上です (limit 1-200, offset >= 0)")
    orgs, single = await _scope(staff, actor)
    total: int = await staff.pool.fetchval(
        f"SELECT count(*) FROM suppressions s WHERE {_VISIBLE}", orgs, single
    )
    rows = await staff.pool.fetch(
        f"SELECT {_FIELDS} FROM suppressions s WHERE {_VISIBLE} "
        "ORDER BY s.created_at DESC, s.address_key LIMIT $3 OFFSET $4",
        orgs, single, limit, offset,
    )
    return total, [_entry(staff, r) for r in rows]


async def find(staff: Staff, actor: Principal, address: str) -> Suppression | None:
    """The entry of ``address`` (any case) if it is on the list and ``actor`` sees it."""
    key = staff.sealer.folded_hash(normalise_address(address))
    orgs, single = await _scope(staff, actor)
    row = await staff.pool.fetchrow(
        f"SELECT {_FIELDS} FROM suppressions s WHERE s.address_key = $3 AND {_VISIBLE}",
        orgs, single, key,
    )
    return _entry(staff, row) if row is not None else None


async def remove(staff: Staff, actor: Principal, address: str, reason: str) -> Suppression:
    """Take ``address`` off the list, with the reason (kept in the audit log by the caller);
    the entry as it was. Not on the list, or not ``actor``'s to see: NotFoundError."""
    why = reason.strip()
    if not why or len(why) > REASON_LIMIT:
        raise InputError(
            f"解除の理由を 1〜{REASON_LIMIT} 文字で入れてください (a reason is required)"
        )
    entry = await find(staff, actor, address)
    if entry is None:
        raise not_found("配信停止リストにその宛先の登録")
    await staff.pool.execute(REMOVE_SQL, staff.sealer.folded_hash(entry.address))
    return entry
