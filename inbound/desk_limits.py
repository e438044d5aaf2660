"""How often the empty-mail desks answer: overall, and per sender.

An empty mail costs its sender nothing and anybody can write any envelope sender, so without a
limit forty forged senders make forty mails in a couple of seconds. Each desk (``register``,
``report``) answers at most ``[inbound] desk_per_sender_hour`` mails an hour to one sender
(counted under the sender's keyed hash, never the address) and at most
``[inbound] desk_per_minute`` mails a minute in all; the rest are not answered (logged by
domain). The counts are the pages' request counts (engine/twoway/page_limits.py, table
``page_requests``), so every inbound process of a serve shares them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from engine.platform.config import InboundSettings
from engine.platform.sealing import Sealer
from engine.twoway.page_limits import PageBusy, count_request


async def desk_allows(
    pool: asyncpg.Pool, sealer: Sealer, limits: InboundSettings, desk: str, sender: str,
    now: datetime,
) -> bool:
    """Count one answer of ``desk`` to ``sender``; False when a limit says not to send it."""
    mine = f"desk:{desk}:s:{sealer.folded_hash(sender).hex()[:32]}"
    try:
        # The sender first: one sender repeating itself does not use up everyone's minute.
        await count_request(pool, mine, now, limits.desk_per_sender_hour, timedelta(hours=1))
        await count_request(pool, f"desk:{desk}", now, limits.desk_per_minute,
                            timedelta(minutes=1))
    except PageBusy:
        return False
    return True
