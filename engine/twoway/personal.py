"""A delivery's personal page: what it shows, and which delivery its link stands for.

The page link of every mail of a broadcast with ``personal_page`` names its delivery
(engine/message/links.py, purpose ``page``). A reminder's delivery stands for the first broadcast's
delivery to the same recipient (``reminder_deliveries``, migration 018), so a read or an answer
given through a reminder counts for the broadcast that asked. ``open_page`` resolves that and
gathers what the page shows in one place; reads and answers go to ``reads.record_read`` and
``surveys.submit_answers`` with ``PageView.delivery_id``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from engine.people.store import ACCOUNT_NAME, People
from engine.queue import BroadcastContent, Queue
from engine.twoway.family import accepts_reports_sql
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
    # Whether the broadcast has attachments (engine/staff/attachments.page_files lists them).
    has_files: bool = False
    # Whether some child of the contact is at a school that takes reports.
    takes_reports: bool = False
    # Whether the contact the mail went to has left (asked for no more mail): the page then
    # shows nothing and takes nothing, like the files and report pages.
    left: bool = False


# One statement for everything about the delivery that can change; the broadcast's content
# and survey never do once it is stored (surveys.py inserts, nothing updates), and are kept
# by BroadcastFacts.
_PAGE_SQL = f"""
WITH d AS (SELECT coalesce((SELECT original_delivery_id FROM reminder_deliveries
                            WHERE delivery_id = $1), $1) AS id)
SELECT x.id, x.broadcast_id, rr.broadcast_id IS NOT NULL AS asks_read, r.read_at,
       dc.contact_id,
       EXISTS (SELECT 1 FROM attachments f WHERE f.broadcast_id = x.broadcast_id) AS has_files,
       coalesce(dc.contact_id IS NOT NULL AND {accepts_reports_sql("dc.contact_id")}, false)
           AS takes_reports,
       coalesce(c.state = 'left', false) AS left_,
       ARRAY(SELECT a.id FROM delivery_accounts da JOIN accounts a ON a.id = da.account_id
             WHERE da.delivery_id = x.id ORDER BY a.id) AS account_ids,
       ARRAY(SELECT a.name_sealed FROM delivery_accounts da JOIN accounts a
             ON a.id = da.account_id WHERE da.delivery_id = x.id ORDER BY a.id) AS names
FROM d JOIN deliveries x ON x.id = d.id
LEFT JOIN read_requests rr ON rr.broadcast_id = x.broadcast_id
LEFT JOIN delivery_reads r ON r.delivery_id = x.id
LEFT JOIN delivery_contacts dc ON dc.delivery_id = x.id
LEFT JOIN contacts c ON c.id = dc.contact_id
"""


class BroadcastFacts:
    """The content and survey of recently opened broadcasts, kept in memory by the pages
    (30,000 guardians opening one notice need them read once, not 30,000 times)."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._known: OrderedDict[int, tuple[BroadcastContent, Survey | None]] = OrderedDict()

    async def of(
        self, people: People, broadcast_id: int
    ) -> tuple[BroadcastContent, Survey | None]:
        known = self._known.get(broadcast_id)
        if known is not None:
            self._known.move_to_end(broadcast_id)
            return known
        queue = Queue(people.pool, people.sealer)
        content = (await queue.broadcast_contents([broadcast_id]))[broadcast_id]
        known = (content, await survey_of(people, broadcast_id))
        self._known[broadcast_id] = known
        while len(self._known) > self._size:
            self._known.popitem(last=False)
        return known


async def open_page(
    people: People, delivery_id: int, facts: BroadcastFacts | None = None
) -> PageView | None:
    """What the page of ``delivery_id`` shows; None when the delivery no longer exists.
    ``facts`` keeps broadcasts' content between calls (a fresh one reads them each time)."""
    row = await people.pool.fetchrow(_PAGE_SQL, delivery_id)
    if row is None:
        return None
    broadcast_id: int = row["broadcast_id"]
    content, survey = await (facts or BroadcastFacts(1)).of(people, broadcast_id)
    names = (people.sealer.open(n, ACCOUNT_NAME) for n in row["names"])
    return PageView(
        row["id"], broadcast_id, content.subject, content.body, content.sender_name,
        row["asks_read"], row["read_at"], row["contact_id"],
        list(zip(row["account_ids"], names, strict=True)), survey,
        row["has_files"], row["takes_reports"], row["left_"],
    )
