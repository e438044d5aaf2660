"""A delivery's personal page: what it shows, and which delivery its link stands for.

The page link of every mail of a broadcast with ``personal_page`` names its delivery
(engine/links.py, purpose ``page``). A reminder's delivery stands for the first broadcast's
delivery to the same recipient (``reminder_deliveries``, migration 018), so a read or an answer
given through a reminder counts for the broadcast that asked. ``open_page`` resolves that and
gathers what the page shows in one place; reads and answers go to ``reads.record_read`` and
``surveys.submit_answers`` with ``PageView.delivery_id``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from engine.people.store import People
from engine.queue import Queue
from engine.twoway.recipients import accounts_of_delivery
from engine.twoway.surveys import Survey, survey_of


@dataclass(frozen=True)
class PageView:
    # The delivery reads and answers are recorded against (the first one, for a reminder).
    delivery_id: int
    broadcast_id: int
    subject: str
    body: str
    sender_name: str
    read_requested: bool
    read_at: datetime | None
    # The contact the mail went to; None for an address given by hand.
    contact_id: int | None
    # (account id, child's name) the mail was for: whom the survey is answered for.
    children: list[tuple[int, str]]
    survey: Survey | None


async def open_page(people: People, delivery_id: int) -> PageView | None:
    """What the page of ``delivery_id`` shows; None when the delivery no longer exists."""
    row = await people.pool.fetchrow(
        "WITH d AS (SELECT coalesce((SELECT original_delivery_id FROM reminder_deliveries "
        "  WHERE delivery_id = $1), $1) AS id) "
        "SELECT x.id, x.broadcast_id, rr.broadcast_id IS NOT NULL AS asks_read, r.read_at, "
        "dc.contact_id FROM d JOIN deliveries x ON x.id = d.id "
        "LEFT JOIN read_requests rr ON rr.broadcast_id = x.broadcast_id "
        "LEFT JOIN delivery_reads r ON r.delivery_id = x.id "
        "LEFT JOIN delivery_contacts dc ON dc.delivery_id = x.id",
        delivery_id,
    )
    if row is None:
        return None
    broadcast_id: int = row["broadcast_id"]
    queue = Queue(people.pool, people.sealer)
    content = (await queue.broadcast_contents([broadcast_id]))[broadcast_id]
    return PageView(
        row["id"], broadcast_id, content.subject, content.body, content.sender_name,
        row["asks_read"], row["read_at"], row["contact_id"],
        await accounts_of_delivery(people, row["id"]), await survey_of(people, broadcast_id),
    )
