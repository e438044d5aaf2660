"""The From addresses an organisation may send as.

Each board and school has its allowed sender addresses, each with a display name. A broadcast
made by staff, an API key or SMTP submission comes from one of its owner's addresses (a
school's broadcast from the school's, a board's from the board's); an empty request takes the
organisation's first address. The address's domain must have a DKIM key unless
``dkim.allow_unsigned``: refused at the request, never discovered when sending. The operator
registers addresses with ``mamoru senders add`` (the board's command line), or the board's
administrators on the settings screen (``senders_of``, ``add_for``, ``remove_for``: the rights
of engine/staff/rights.py — an organisation's administrators read its list, only the board
changes it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from engine.message.checks import check_sender_name
from engine.message.dkim import DkimSettings
from engine.platform.address import normalise_address
from engine.platform.errors import InputError
from engine.staff.models import Principal
from engine.staff.rights import check_organisation, require_admin_of, require_board


@dataclass(frozen=True)
class Sender:
    organisation_id: int
    address: str
    display_name: str


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower()


def check_signed(address: str, dkim: DkimSettings) -> None:
    """InputError when ``address``'s domain has no DKIM key and unsigned mail is not allowed."""
    if dkim.allow_unsigned or not dkim.unsigned_domains([_domain(address)]):
        return
    domain = _domain(address)
    raise InputError(
        f"差出人のドメイン {domain} には DKIM 鍵がありません。署名のないメールは携帯会社に届かない"
        f"ため使えません (no DKIM key for {domain}: add [[dkim.keys]] with `mamoru dkim keygen "
        f"{domain} SELECTOR`)"
    )


async def list_senders(pool: asyncpg.Pool, organisation_id: int) -> list[Sender]:
    """The organisation's addresses, in the order they were added (the first is the default)."""
    rows = await pool.fetch(
        "SELECT organisation_id, address, display_name FROM organisation_senders "
        "WHERE organisation_id = $1 ORDER BY created_at, address",
        organisation_id,
    )
    return [Sender(r["organisation_id"], r["address"], r["display_name"]) for r in rows]


async def add_sender(
    pool: asyncpg.Pool, organisation_id: int, address: str, display_name: str,
    dkim: DkimSettings,
) -> Sender:
    """Add (or rename) one address of the organisation; the domain must be signable."""
    normal = normalise_address(address)
    name = display_name.strip()
    if name:
        check_sender_name(name, "--name")
    check_signed(normal, dkim)
    await pool.execute(
        "INSERT INTO organisation_senders (organisation_id, address, display_name) "
        "VALUES ($1, $2, $3) ON CONFLICT (organisation_id, address) "
        "DO UPDATE SET display_name = EXCLUDED.display_name",
        organisation_id, normal, name,
    )
    return Sender(organisation_id, normal, name)


async def remove_sender(pool: asyncpg.Pool, organisation_id: int, address: str) -> bool:
    status: str = await pool.execute(
        "DELETE FROM organisation_senders WHERE organisation_id = $1 AND address = $2",
        organisation_id, normalise_address(address),
    )
    return status.endswith(" 1")


async def senders_of(
    pool: asyncpg.Pool, actor: Principal, organisation_id: int
) -> list[Sender]:
    """The addresses of an organisation ``actor`` administers (the board: it and its schools)."""
    await require_admin_of(pool, actor, organisation_id)
    return await list_senders(pool, organisation_id)


async def add_for(
    pool: asyncpg.Pool, actor: Principal, organisation_id: int, address: str,
    display_name: str, dkim: DkimSettings,
) -> Sender:
    """``add_sender`` by the board's staff, for the board or one of its schools."""
    require_board(actor)
    await check_organisation(pool, actor, organisation_id)
    return await add_sender(pool, organisation_id, address, display_name, dkim)


async def remove_for(
    pool: asyncpg.Pool, actor: Principal, organisation_id: int, address: str
) -> None:
    """``remove_sender`` by the board's staff, for the board or one of its schools; an
    address that is not registered is an InputError."""
    require_board(actor)
    await check_organisation(pool, actor, organisation_id)
    if not await remove_sender(pool, organisation_id, address):
        raise InputError(f"差出人に {address} はありません (not registered)")


@dataclass(frozen=True)
class SenderUses:
    """What names an address as its From (the settings screen's confirmation before removing
    it): the organisation's templates and drafts, and its broadcasts still to be sent."""

    templates: int
    drafts: int
    scheduled: int


async def uses_of(
    pool: asyncpg.Pool, actor: Principal, organisation_id: int, address: str, now: datetime
) -> SenderUses:
    """``remove_for``'s rights; the counts by the organisation's indexes (saved messages by
    organisation, broadcasts by owner organisation), never a scan of every broadcast."""
    require_board(actor)
    await check_organisation(pool, actor, organisation_id)
    address = normalise_address(address)
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM saved_messages WHERE organisation_id = $1 "
        "   AND kind = 'template' AND lower(sender) = $2) AS templates, "
        " (SELECT count(*) FROM saved_messages WHERE organisation_id = $1 "
        "   AND kind = 'draft' AND lower(sender) = $2) AS drafts, "
        " (SELECT count(*) FROM broadcast_owners o JOIN broadcasts b ON b.id = o.broadcast_id "
        "   WHERE o.organisation_id = $1 AND lower(b.sender) = $2 AND b.send_at > $3 "
        "   AND b.cancelled_at IS NULL) AS scheduled",
        organisation_id, address.lower(), now,
    )
    assert row is not None
    return SenderUses(row["templates"], row["drafts"], row["scheduled"])


async def sender_for(
    pool: asyncpg.Pool | asyncpg.Connection, actor: Principal, requested: str,
    dkim: DkimSettings,
) -> Sender:
    """The From of a broadcast ``actor`` makes: ``requested`` if it is one of the actor's
    organisation's addresses (its first one when empty); InputError naming the choices."""
    if actor.organisation_id is None:
        raise InputError("差出人を決める組織がありません (the actor belongs to no organisation)")
    rows = await pool.fetch(
        "SELECT address, display_name FROM organisation_senders WHERE organisation_id = $1 "
        "ORDER BY created_at, address",
        actor.organisation_id,
    )
    allowed = [Sender(actor.organisation_id, r["address"], r["display_name"]) for r in rows]
    if not allowed:
        raise InputError(
            "この学校 (教育委員会) の差出人アドレスが登録されていません。運用担当者に "
            "`mamoru senders add` での登録を依頼してください (no sender address is registered "
            "for your organisation)"
        )
    if not requested.strip():
        chosen = allowed[0]
    else:
        wanted = normalise_address(requested)
        found = [s for s in allowed if s.address == wanted]
        if not found:
            choices = ", ".join(s.address for s in allowed)
            raise InputError(
                f"差出人 {wanted} は使えません。使える差出人: {choices} (not one of your "
                f"organisation's sender addresses)"
            )
        chosen = found[0]
    check_signed(chosen.address, dkim)
    return chosen
