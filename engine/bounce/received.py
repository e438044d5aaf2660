"""Mail the inbound server received: bounce rows and mail to the service addresses.

The one place that knows the ``bounces`` and ``inbound_messages`` tables (the inbound server
itself writes no SQL). Both functions take the connection of the caller's transaction, so that
a bounce, the delivery it fails (``engine.queue.bounced``) and the suppression list change
together or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from engine.platform.address import mask_addresses
from engine.platform.sealing import MAIL_FROM, RAW_MAIL, RECIPIENT, Sealer

#: How much of a received bounce is kept in the database.
MAX_STORED_BYTES = 256 * 1024

# Every row of one received mail at once; the raw bytes are stored with each row.
INSERT_BOUNCES_SQL = """
INSERT INTO bounces (received_at, mail_from_sealed, rcpt, delivery_id, kind, recipient_sealed,
                     reason, category, hard, reply_code, status, action, diagnostic, classified,
                     raw_sealed)
SELECT $1, $2, u.rcpt, u.delivery_id, u.kind, u.recipient, u.reason, u.category, u.hard,
       u.reply_code, u.status, u.action, u.diagnostic, u.classified, $3
FROM unnest($4::text[], $5::bigint[], $6::text[], $7::bytea[], $8::text[], $9::text[],
            $10::boolean[], $11::int[], $12::text[], $13::text[], $14::text[], $15::boolean[])
     AS u(rcpt, delivery_id, kind, recipient, reason, category, hard, reply_code, status,
          action, diagnostic, classified)
"""

# Kept whole (at most inbound.max_message_size): later features read registrations and replies.
INSERT_MESSAGES_SQL = """
INSERT INTO inbound_messages (received_at, mail_from_sealed, rcpt, size, raw_sealed)
SELECT $1, $2, rcpt, $3, $4 FROM unnest($5::text[]) AS rcpt
"""


@dataclass(frozen=True)
class BounceRow:
    rcpt: str
    delivery_id: int | None
    kind: str
    recipient: str | None
    reason: str | None
    category: str | None
    hard: bool
    reply_code: int | None
    status: str | None
    action: str | None
    diagnostic: str | None
    classified: bool


async def insert_bounces(
    conn: asyncpg.Connection,
    sealer: Sealer,
    at: datetime,
    mail_from: str,
    raw: bytes,
    rows: Sequence[BounceRow],
) -> None:
    """Keep a received bounce's rows; its sender, the recipients it names and the mail itself
    sealed, addresses in its diagnostics shortened (engine.platform.address.mask_addresses)."""
    columns: list[list[object]] = [[] for _ in range(12)]
    for row in rows:
        recipient = None if row.recipient is None else sealer.seal(row.recipient, RECIPIENT)
        diagnostic = None if row.diagnostic is None else mask_addresses(row.diagnostic)
        for col, value in zip(
            columns,
            (
                row.rcpt, row.delivery_id, row.kind, recipient, row.reason, row.category,
                row.hard, row.reply_code, row.status, row.action, diagnostic, row.classified,
            ),
            strict=True,
        ):
            col.append(value)
    await conn.execute(
        INSERT_BOUNCES_SQL, at, sealer.seal(mail_from, MAIL_FROM),
        sealer.seal_bytes(raw[:MAX_STORED_BYTES], RAW_MAIL), *columns,
    )


async def insert_messages(
    conn: asyncpg.Connection,
    sealer: Sealer,
    at: datetime,
    mail_from: str,
    raw: bytes,
    rcpts: Sequence[str],
) -> None:
    """Keep a mail to the service addresses, sealed: it comes from a family's mailbox."""
    await conn.execute(
        INSERT_MESSAGES_SQL, at, sealer.seal(mail_from, MAIL_FROM), len(raw),
        sealer.seal_bytes(raw, RAW_MAIL), list(rcpts),
    )


__all__ = ["MAX_STORED_BYTES", "BounceRow", "insert_bounces", "insert_messages"]
