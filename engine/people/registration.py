"""Registration by empty mail: the request a reply link names, and completing it on the page.

The path (inbound/ and admin_api/ call these; neither writes SQL):

1. An empty mail reaches the registration address. ``create_request`` stores a request for the
   sender's address (sealed) and the school of an ``entry-<school>@`` address; the caller mails
   a link naming the request id, signed and expiring (engine.message.links, purpose ``register``).
   Only the mailbox that receives the link can complete it: a forged sender gets nothing.
2. The page shows ``open_request`` (a masked address, the public groups to follow).
3. ``register_code`` (a guardian types the code on the child's notice) or ``register_groups``
   (a citizen chooses public groups) completes it, once: in one transaction the request is
   marked used and the contact is created or found, confirmed (never unconfirmed again), made
   active (registering is the person's own choice, so it undoes an earlier leave) and linked.
   A wrong code says only that the code is wrong, whether or not any account exists, and is
   counted (engine.people.attempts).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from engine.bounce.suppression import Suppressions
from engine.people.attempts import (
    QUIET_TIME,
    address_key,
    check_allowed,
    network_key,
    record_failure,
)
from engine.people.codes import normalise_code
from engine.people.contacts import UPSERT_SQL, link_contact
from engine.people.store import ADDRESS, CODE, People
from engine.platform.address import normalise_address
from engine.platform.errors import InputError
from engine.platform.logs import fields

log = logging.getLogger(__name__)

#: The suppression reason of a one-click unsubscribe by an address that is no contact.
UNSUBSCRIBED = "unsubscribed"

#: How long a registration link works (the request is stored as long).
DEFAULT_LIFETIME = timedelta(hours=24)
#: Requests answered per address and hour: a forged sender cannot make us mail someone often.
MAX_REQUESTS_PER_HOUR = 5

WRONG_CODE = (
    "登録コードが正しくありません。お知らせの用紙のコードをもう一度ご確認ください。"
    " (the registration code is not right)"
)


class RegistrationError(InputError):
    """A registration that cannot go on: the message says why, for the person at the page."""


class LinkNotUsable(RegistrationError):
    """The request is unknown, already completed or expired."""


@dataclass(frozen=True)
class Request:
    id: int
    address: str
    school_id: int | None
    expires_at: datetime


@dataclass(frozen=True)
class PublicGroup:
    id: int
    name: str
    owner_name: str


@dataclass(frozen=True)
class Registered:
    """What a completed registration did, for the page and the completion mail."""

    contact_id: int
    address: str
    # "第一小学校 3年 1組" for a code; the group names for a citizen.
    joined: tuple[str, ...]


def masked(address: str) -> str:
    """An address as a page may show it to the person it belongs to: "ab…@docomo.ne.jp"."""
    local, _, domain = address.rpartition("@")
    return f"{local.strip(chr(34))[:2]}…@{domain}"


async def create_request(
    people: People, address: str, school_code: str | None = None,
    lifetime: timedelta = DEFAULT_LIFETIME,
) -> Request:
    """A new request for ``address`` (InputError if it is not a usable address)."""
    normal = normalise_address(address)
    now = people.clock.now()
    school_id: int | None = None
    if school_code:
        # An unknown school in an entry- address still registers: the code names the school.
        school_id = await people.pool.fetchval(
            "SELECT id FROM organisations WHERE lower(code) = lower($1) AND kind <> 'board'",
            school_code,
        )
    address_hash = people.sealer.lookup_hash(normal, ADDRESS)
    await _forget_old(people, now)
    recent: int = await people.pool.fetchval(
        "SELECT count(*) FROM registration_requests WHERE address_hash = $1 AND created_at > $2",
        address_hash, now - timedelta(hours=1),
    )
    if recent >= MAX_REQUESTS_PER_HOUR:
        raise RegistrationError(
            "この 1 時間に登録の申し込みが多すぎます。 (too many registration requests)"
        )
    request_id: int = await people.pool.fetchval(
        "INSERT INTO registration_requests (address_sealed, address_hash, school_id, created_at,"
        " expires_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        people.sealer.seal(normal, ADDRESS), address_hash, school_id, now, now + lifetime,
    )
    return Request(request_id, normal, school_id, now + lifetime)


async def _forget_old(people: People, now: datetime) -> None:
    """Sealed addresses are kept no longer than needed: a request a day after it expired,
    a wrong-code counter once it is quiet and no longer blocks."""
    await people.pool.execute(
        "DELETE FROM registration_requests WHERE expires_at < $1", now - timedelta(days=1)
    )
    await people.pool.execute(
        "DELETE FROM registration_attempts WHERE last_at < $1"
        " AND (blocked_until IS NULL OR blocked_until < $2)",
        now - QUIET_TIME, now,
    )


async def open_request(people: People, request_id: int) -> Request:
    """The request, or LinkNotUsable if it was completed, has expired or never existed."""
    row = await people.pool.fetchrow(
        "SELECT id, address_sealed, school_id, expires_at, used_at FROM registration_requests"
        " WHERE id = $1",
        request_id,
    )
    return _usable(people, row)


def _usable(people: People, row: asyncpg.Record | None) -> Request:
    if row is None:
        raise LinkNotUsable("このリンクは正しくありません。 (unknown link)")
    if row["used_at"] is not None:
        raise LinkNotUsable(
            "このリンクはすでに使われました。登録は完了しています。もう一度登録するときは、"
            "あらためて空メールを送ってください。 (this link has been used)"
        )
    if row["expires_at"] <= people.clock.now():
        raise LinkNotUsable(
            "このリンクは有効期限が切れています。もう一度、空メールを送ってください。"
            " (this link has expired)"
        )
    address = people.sealer.open(row["address_sealed"], ADDRESS)
    return Request(row["id"], address, row["school_id"], row["expires_at"])


async def public_groups(people: People, school_id: int | None) -> list[PublicGroup]:
    """The public groups a citizen may follow: the board's, and the school's of an entry-
    address (every school's from the board's address)."""
    rows = await people.pool.fetch(
        "SELECT g.id, g.name, o.name AS owner_name FROM groups g"
        " JOIN organisations o ON o.id = g.owner_id"
        " WHERE g.is_public AND ($1::bigint IS NULL OR o.kind = 'board' OR o.id = $1)"
        " ORDER BY o.kind <> 'board', o.code, g.name",
        school_id,
    )
    return [PublicGroup(r["id"], r["name"], r["owner_name"]) for r in rows]


async def register_code(
    people: People, request_id: int, code: str, client_ip: str
) -> Registered:
    """Complete the request with a registration code: the contact receives for that child.

    RegistrationError for a used or expired link, a wrong code (counted) or too many of them.
    """
    request = await open_request(people, request_id)
    now = people.clock.now()
    keys = [
        address_key(people.sealer.lookup_hash(request.address, ADDRESS)),
        network_key(client_ip),
    ]
    await check_allowed(people.pool, keys, now)
    account = await _account_for(people, code)
    if account is None:
        await record_failure(people.pool, keys, now)
        raise RegistrationError(WRONG_CODE)
    account_id, label = account
    contact_id = await _complete(people, request_id, accounts=[account_id], groups=[])
    return Registered(contact_id, request.address, (label,))


async def register_groups(
    people: People, request_id: int, group_ids: Sequence[int]
) -> Registered:
    """Complete the request with public groups chosen by a citizen."""
    request = await open_request(people, request_id)
    if not group_ids:
        raise RegistrationError(
            "受け取るグループを 1 つ以上選んでください。 (choose at least one group)"
        )
    offered = {g.id: g for g in await public_groups(people, request.school_id)}
    if any(g not in offered for g in group_ids):
        raise RegistrationError("選べないグループが含まれています。 (not a public group)")
    contact_id = await _complete(people, request_id, accounts=[], groups=list(group_ids))
    return Registered(
        contact_id, request.address, tuple(offered[g].name for g in dict.fromkeys(group_ids))
    )


async def _account_for(people: People, code: str) -> tuple[int, str] | None:
    """The active account of a code and its label (school, grade, class); None for text that
    is not a code or a code of no active account, alike."""
    try:
        normal = normalise_code(code)
    except InputError:
        return None
    row = await people.pool.fetchrow(
        "SELECT a.id, o.name AS school, g.grade, c.name AS class FROM accounts a"
        " JOIN organisations o ON o.id = a.school_id"
        " LEFT JOIN grades g ON g.id = a.grade_id LEFT JOIN classes c ON c.id = a.class_id"
        " WHERE a.code_hash = $1 AND a.state = 'active'",
        people.sealer.lookup_hash(normal, CODE),
    )
    if row is None:
        return None
    label = str(row["school"])
    if row["grade"] is not None:
        label += f" {row['grade']}年"
    if row["class"] is not None:
        label += f" {row['class']}組"
    return int(row["id"]), label


async def _complete(
    people: People, request_id: int, accounts: Sequence[int], groups: Sequence[int]
) -> int:
    now = people.clock.now()
    async with people.pool.acquire() as conn, conn.transaction():
        # Marking it used first, in the transaction, makes two submissions at once complete
        # it only once.
        row = await conn.fetchrow(
            "UPDATE registration_requests SET used_at = $2"
            " WHERE id = $1 AND used_at IS NULL AND expires_at > $2"
            " RETURNING address_sealed",
            request_id, now,
        )
        if row is None:
            _usable(people, await conn.fetchrow(
                "SELECT id, address_sealed, school_id, expires_at, used_at"
                " FROM registration_requests WHERE id = $1", request_id,
            ))
            raise LinkNotUsable("このリンクは使えません。 (link not usable)")
        address = people.sealer.open(row["address_sealed"], ADDRESS)
        contact_id: int = await conn.fetchval(
            UPSERT_SQL, people.sealer.seal(address, ADDRESS),
            people.sealer.lookup_hash(address, ADDRESS), now, now,
        )
        await conn.execute(
            "UPDATE contacts SET state = 'active', updated_at = $2 WHERE id = $1",
            contact_id, now,
        )
        # An earlier one-click unsubscribe of the address (before it was a contact) is undone
        # by registering; a bounce or complaint on the list stays.
        suppressions = Suppressions(conn, people.sealer)
        entry = (await suppressions.lookup([address])).get(address)
        if entry is not None and entry.reason == UNSUBSCRIBED:
            await suppressions.remove(address)
        await link_contact(conn, contact_id, accounts, groups, now)
    # Ids and counts only: the address stays sealed.
    log.info("登録完了 / registration %d completed: contact %d, %d account(s), %d group(s)",
             request_id, contact_id, len(accounts), len(groups),
             extra=fields(event="registration.completed", request_id=request_id,
                          contact_id=contact_id, accounts=len(accounts), groups=len(groups)))
    return contact_id
