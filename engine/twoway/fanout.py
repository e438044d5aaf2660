"""Sending a broadcast to an audience, tied to its recipients for the two-way pages.

``engine.people.fan_out`` resolves the audience and stores the deliveries in one transaction;
this adds what two-way needs around it. Every delivery is tied to its contact and accounts
(``link_deliveries``): inside that transaction when the broadcast asks something (``Asks``:
read confirmation, questions, reminder), so its pages count reads and answers per child from
the first click; otherwise just after the commit, so that the runners start at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg

from engine.people import Audience, Category, FanOut, People, fan_out
from engine.platform.db import BULK_ROWS, analyze
from engine.queue import NewBroadcast, Queue
from engine.twoway.asks import Asks
from engine.twoway.recipients import link_deliveries


async def send_broadcast(
    people: People,
    queue: Queue,
    broadcast: NewBroadcast,
    audience: Audience,
    category: Category,
    max_age: float,
    within: Callable[[asyncpg.Connection, int], Awaitable[None]] | None = None,
    asks: Asks | None = None,
) -> FanOut:
    """Resolve the audience, add ``broadcast.recipients`` (given by address), fan out, commit.

    ``within(conn, broadcast_id)`` runs in the same transaction before it commits, so what a
    caller records about the broadcast (its owner, an idempotency key) commits with it or not
    at all. ``asks`` is checked before anything is stored and applied in the transaction; it
    makes the mails link to the personal page. Raises InputError, changing nothing, when
    nobody is left to send to or ``asks`` is wrong.
    """
    if asks is not None:
        asks.check(people.clock.now())

    async def in_transaction(conn: asyncpg.Connection, broadcast_id: int) -> None:
        if asks is not None:
            await link_deliveries(conn, people, broadcast_id)
            await asks.apply(conn, people, broadcast_id)
        if within is not None:
            await within(conn, broadcast_id)

    fan = await fan_out(
        people, queue, broadcast, audience, category, max_age,
        within=in_transaction, personal_page=asks is not None and asks.personal_page,
    )
    if asks is None:
        # Linking takes about as long as the fan-out itself (30,000 deliveries: ~0.7 s); a
        # broadcast that asks nothing (an emergency among them) must not wait for it, so it is
        # linked once its mails are already being claimed. Idempotent if interrupted.
        await link_deliveries(people.pool, people, fan.broadcast_id)
    if fan.recipients >= BULK_ROWS:
        # Before the first guardians open their pages (engine/twoway/personal.py).
        await analyze(people.pool, "delivery_contacts", "delivery_accounts")
    return fan
