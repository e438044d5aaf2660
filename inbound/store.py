"""What the inbound server writes: bounce rows, mail to service addresses, late failures.

The one place that knows the ``bounces`` and ``inbound_messages`` tables. It also marks a
delivery ``failed`` when its bounce arrives (``LATE_FAILURE_SQL``): the only statement outside
``engine/queue`` that writes ``deliveries``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

#: How much of a received mail is kept in the database.
MAX_STORED_BYTES = 256 * 1024

DELIVERIES_SQL = "SELECT id, recipient, state FROM deliveries WHERE id = ANY($1::bigint[])"

# Every row of one received mail at once; the raw bytes are stored with each row.
INSERT_BOUNCES_SQL = """
INSERT INTO bounces (received_at, mail_from, rcpt, delivery_id, kind, recipient, reason,
                     category, hard, reply_code, status, action, diagnostic, classified, raw)
SELECT $1, $2, u.rcpt, u.delivery_id, u.kind, u.recipient, u.reason, u.category, u.hard,
       u.reply_code, u.status, u.action, u.diagnostic, u.classified, $3
FROM unnest($4::text[], $5::bigint[], $6::text[], $7::text[], $8::text[], $9::text[],
            $10::boolean[], $11::int[], $12::text[], $13::text[], $14::text[], $15::boolean[])
     AS u(rcpt, delivery_id, kind, recipient, reason, category, hard, reply_code, status,
          action, diagnostic, classified)
"""

# A mail that was accepted and bounced later did not arrive: it becomes failed with the
# bounce's verdict. That covers state 'delivered' and also 'sending': a receiving MX may bounce
# within milliseconds, before the runner has written the outcome of the very attempt it bounces.
# Such a row counts the attempt and loses its lease; the runner's own outcome for it is then not
# written (RECORD_SQL only writes rows still 'sending' under its lease), so the bounce wins.
# Failed rows already say why; queued and deferred rows were never accepted and are left alone.
LATE_FAILURE_SQL = """
UPDATE deliveries d
SET state = 'failed', reason = u.reason, category = u.category, last_code = u.code,
    last_status = u.status, last_text = u.text, finished_at = $1, updated_at = $1,
    attempts = d.attempts + CASE WHEN d.state = 'sending' THEN 1 ELSE 0 END,
    lease_owner = NULL
FROM unnest($2::bigint[], $3::text[], $4::text[], $5::int[], $6::text[], $7::text[])
     AS u(id, reason, category, code, status, text)
WHERE d.id = u.id AND d.state IN ('delivered', 'sending')
RETURNING d.id
"""

# Kept whole (at most inbound.max_message_size): later features read registrations and replies.
INSERT_MESSAGES_SQL = """
INSERT INTO inbound_messages (received_at, mail_from, rcpt, size, raw)
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


@dataclass(frozen=True)
class LateFailure:
    delivery_id: int
    reason: str
    category: str
    code: int | None
    status: str | None
    text: str


async def deliveries(conn: asyncpg.Connection, ids: Sequence[int]) -> dict[int, asyncpg.Record]:
    return {r["id"]: r for r in await conn.fetch(DELIVERIES_SQL, list(ids))}


async def insert_bounces(
    conn: asyncpg.Connection, at: datetime, mail_from: str, raw: bytes, rows: Sequence[BounceRow]
) -> None:
    columns: list[list[object]] = [[] for _ in range(12)]
    for row in rows:
        for col, value in zip(
            columns,
            (
                row.rcpt, row.delivery_id, row.kind, row.recipient, row.reason, row.category,
                row.hard, row.reply_code, row.status, row.action, row.diagnostic, row.classified,
            ),
            strict=True,
        ):
            col.append(value)
    await conn.execute(INSERT_BOUNCES_SQL, at, mail_from, raw[:MAX_STORED_BYTES], *columns)


async def mark_failed_late(
    conn: asyncpg.Connection, at: datetime, failures: Sequence[LateFailure]
) -> list[int]:
    if not failures:
        return []
    rows = await conn.fetch(
        LATE_FAILURE_SQL,
        at,
        [f.delivery_id for f in failures],
        [f.reason for f in failures],
        [f.category for f in failures],
        [f.code for f in failures],
        [f.status for f in failures],
        [f.text for f in failures],
    )
    return [r["id"] for r in rows]


async def insert_messages(
    conn: asyncpg.Connection, at: datetime, mail_from: str, raw: bytes, rcpts: Sequence[str]
) -> None:
    await conn.execute(
        INSERT_MESSAGES_SQL, at, mail_from, len(raw), raw, list(rcpts)
    )
