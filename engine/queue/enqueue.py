"""Fan-out: a broadcast and one delivery per recipient, stored in one transaction.

The recipients come as plain addresses (given by hand), as contacts already sealed under the
address purpose with their address hash (``engine.people``'s audience), or both. Everything
per recipient happens while the single COPY streams to the server (asyncpg encodes and sends
it in chunks), so the Python work (opening a contact's address, sealing it as a recipient)
overlaps PostgreSQL's insert instead of preceding it:

- each address once, compared without case, the first spelling kept (contacts first, in the
  given order, then the addresses given by hand);
- a contact's address hash comes from the contact row (it is the delivery's recipient_hash),
  so no lookup hash is computed for it; an address given by hand is hashed here;
- the suppression list is looked up once, before the COPY, by the hashes of the lower-case
  spellings (a contact's stored hash is that already when its address is all lower case, as
  nearly every address is); a suppressed address is stored ``failed`` with reason
  ``suppressed`` in the same COPY. A contact's address that is not all lower case is only
  known once opened, during the COPY: the few such are looked up after it and their
  deliveries marked before the commit, so nobody ever sees them queued.

Nothing is visible before the commit, and the runners' wake-up (NOTIFY) is delivered by it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta

import asyncpg

from engine.bounce.suppression import suppressed_text
from engine.platform.address import domain_of
from engine.platform.errors import QueueError
from engine.platform.sealing import ADDRESS, RECIPIENT, Sealer
from engine.queue.broadcasts import refuse_past_send_at
from engine.queue.models import NewBroadcast

NOTIFY_CHANNEL = "mamoru_due"

COLUMNS = [
    "broadcast_id", "recipient_sealed", "recipient_hash", "domain", "priority",
    "next_attempt_at", "expires_at", "created_at", "updated_at",
]
# Written as well when some recipient is suppressed (most broadcasts have none).
STATE_COLUMNS = ["state", "reason", "category", "last_text", "finished_at"]

SUPPRESSIONS_SQL = (
    "SELECT address_key, reason, category, created_at FROM suppressions "
    "WHERE address_key = ANY($1::bytea[])"
)

# Deliveries of broadcast $1 to the addresses hashed $2 that were found suppressed after all.
MARK_SUPPRESSED_SQL = """
UPDATE deliveries d
SET state = 'failed', reason = 'suppressed', category = u.category, last_text = u.text,
    finished_at = $5
FROM unnest($2::bytea[], $3::text[], $4::text[]) AS u(exact, category, text)
WHERE d.broadcast_id = $1 AND d.recipient_hash = u.exact
"""


_FRESH: tuple[object, ...] = ("queued", None, None, None, None)


class _Rows:
    """The COPY's records, produced while it streams; what they held is known after it."""

    def __init__(
        self,
        sealer: Sealer,
        broadcast_id: int,
        fixed: tuple[object, ...],
        marks: dict[bytes, tuple[object, ...]] | None,
    ) -> None:
        self.sealer = sealer
        self.broadcast_id = broadcast_id
        # priority, next attempt, expiry, created, updated: the same for every row.
        self.fixed = fixed
        # Folded hash -> the state columns of a suppressed recipient; None: nobody is.
        self.marks = marks
        self.count = 0
        self.suppressed = 0
        # (recipient hash, folded hash) of the contacts' addresses not all in lower case.
        self.mixed: list[tuple[bytes, bytes]] = []

    def records(
        self,
        contacts: Sequence[tuple[bytes, bytes]],
        given: Sequence[str],
        given_hashes: Sequence[tuple[bytes, bytes]],
    ) -> Iterator[tuple[object, ...]]:
        seen: set[str] = set()
        add = seen.add
        open_sealed = self.sealer.open
        row = self._row
        for sealed, exact in contacts:
            address = open_sealed(sealed, ADDRESS)
            lower = address.lower()
            if lower in seen:
                continue
            add(lower)
            if lower == address:
                yield row(address, exact, exact)
            else:
                # Its suppression key is not its stored hash: looked up after the COPY.
                self.mixed.append((exact, self.sealer.folded_hash(address)))
                yield row(address, exact, None)
        for address, (exact, folded) in zip(given, given_hashes, strict=True):
            lower = address.lower()
            if lower in seen:
                continue
            add(lower)
            yield row(address, exact, folded)

    def _row(self, address: str, exact: bytes, key: bytes | None) -> tuple[object, ...]:
        self.count += 1
        row = (
            self.broadcast_id, self.sealer.seal(address, RECIPIENT), exact, domain_of(address),
            *self.fixed,
        )
        if self.marks is None:
            return row
        mark = self.marks.get(key) if key is not None else None
        if mark is None:
            return (*row, *_FRESH)
        self.suppressed += 1
        return (*row, *mark)


async def store_broadcast(
    conn: asyncpg.Connection,
    sealer: Sealer,
    broadcast: NewBroadcast,
    now: datetime,
    max_age: float,
    contacts: Sequence[tuple[bytes, bytes]] = (),
) -> int:
    """Store the broadcast and its deliveries in ``conn``'s open transaction; its id.

    ``contacts`` are (address sealed under ``ADDRESS``, address hash) pairs, sent to before
    ``broadcast.recipients``. The caller commits; the runners are woken by that commit.
    """
    if not contacts and not broadcast.recipients:
        raise QueueError("the broadcast has no recipients")
    send_at = broadcast.send_at or now
    refuse_past_send_at(send_at, now)
    expires_at = send_at + timedelta(seconds=max_age)
    priority = int(broadcast.priority)
    # Without case, as the suppression list compares addresses (by folded hash).
    given_hashes = [sealer.hashes(a) for a in broadcast.recipients]
    keys = [h for _, h in contacts]
    keys += [folded for _, folded in given_hashes]
    found = await conn.fetch(SUPPRESSIONS_SQL, keys)
    marks = {bytes(s["address_key"]): _mark(s, now) for s in found} if found else None
    broadcast_id: int = await conn.fetchval(
        """
        INSERT INTO broadcasts
            (sender, subject, body, priority, send_at, created_at, recipient_count,
             sender_name, reply_to)
        VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8)
        RETURNING id
        """,
        broadcast.sender, broadcast.subject, broadcast.body, priority, send_at, now,
        broadcast.sender_name, broadcast.reply_to,
    )
    rows = _Rows(sealer, broadcast_id, (priority, send_at, expires_at, now, now), marks)
    await conn.copy_records_to_table(
        "deliveries",
        columns=COLUMNS if marks is None else COLUMNS + STATE_COLUMNS,
        records=rows.records(contacts, broadcast.recipients, given_hashes),
    )
    suppressed = rows.suppressed + await _mark_mixed(conn, broadcast_id, rows.mixed, now)
    await conn.execute(
        "UPDATE broadcasts SET recipient_count = $2, suppressed_count = $3 WHERE id = $1",
        broadcast_id, rows.count, suppressed,
    )
    # Delivered at commit: runners wake once per broadcast, not once per row.
    await conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, str(broadcast_id))
    return broadcast_id


def _mark(s: asyncpg.Record, now: datetime) -> tuple[object, ...]:
    """The state columns of a delivery to an address on the suppression list."""
    text = suppressed_text(s["category"], s["reason"], s["created_at"])
    return ("failed", "suppressed", s["category"], text, now)


async def _mark_mixed(
    conn: asyncpg.Connection, broadcast_id: int, mixed: list[tuple[bytes, bytes]],
    now: datetime,
) -> int:
    """Fail as suppressed the deliveries to contacts' addresses not all in lower case that
    are on the suppression list; how many."""
    if not mixed:
        return 0
    found = await conn.fetch(SUPPRESSIONS_SQL, [folded for _, folded in mixed])
    if not found:
        return 0
    by_key = {bytes(s["address_key"]): s for s in found}
    hits = [(exact, by_key[folded]) for exact, folded in mixed if folded in by_key]
    await conn.execute(
        MARK_SUPPRESSED_SQL, broadcast_id, [exact for exact, _ in hits],
        [s["category"] for _, s in hits],
        [suppressed_text(s["category"], s["reason"], s["created_at"]) for _, s in hits], now,
    )
    return len(hits)
