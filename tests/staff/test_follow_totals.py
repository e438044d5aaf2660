"""The broadcast page's recipient totals come from the status's one counting pass
(``follow.known_total``) when the filter needs only state and category: they must equal what
counting the filtered deliveries says, for every such filter, and the page of rows must be
the same whichever way its total was found."""

from __future__ import annotations

from engine.queue import State
from engine.staff import follow
from engine.staff.models import CLI_PRINCIPAL

from .conftest import World
from .test_broadcasts import body

# (address, state, category, reason, interrupted) as runners, bounces and a cancel leave them.
OUTCOMES = (
    ("taro@docomo.ne.jp", "failed", "mailbox_full", "mailboxfull", False),
    ("hanako@ezweb.ne.jp", "deferred", "mailbox_full", None, False),
    ("jiro@softbank.ne.jp", "failed", "unknown_user", "userunknown", True),
    ("ichiro@example.jp", "failed", None, "cancelled", True),
)


async def test_totals_from_the_counts_equal_counting_the_filtered_deliveries(
    world: World,
) -> None:
    token = await world.login("admin1")
    async with world.client(token) as c:
        bid = (await c.post("/api/staff/broadcasts", json=body(
            {"schools": [world.orgs["sho1"]]}))).json()["broadcast_id"]
    pool, sealer = world.api.staff.pool, world.api.people.sealer
    for address, state, category, reason, interrupted in OUTCOMES:
        await pool.execute(
            "UPDATE deliveries SET state = $3, category = $4, reason = $5, interrupted = $6 "
            "WHERE broadcast_id = $1 AND recipient_hash = $2",
            bid, sealer.address_hash(address), state, category, reason, interrupted,
        )
    now = world.clock.now()
    st = await follow.status(pool, CLI_PRINCIPAL, bid, now)
    assert st.may_have_arrived == 2 and sum(c.count for c in st.cells) == 4
    filters = [
        follow.RecipientFilter(),
        follow.RecipientFilter(failed_only=True),
        follow.RecipientFilter(temporary_only=True),
        follow.RecipientFilter(failed_only=True, temporary_only=True),
        follow.RecipientFilter(category="mailbox_full"),
        follow.RecipientFilter(category="cancelled"),
        follow.RecipientFilter(category="unknown_user", state=State.FAILED),
        follow.RecipientFilter(state=State.DEFERRED),
        follow.RecipientFilter(state=State.DELIVERED),
    ]
    seen = []
    for f in filters:
        known = follow.known_total(st, f)
        counted = await pool.fetchval(
            "SELECT count(*) FROM deliveries WHERE broadcast_id = $1 AND "
            "($2::text IS NULL OR state = $2) AND ($3::text IS NULL OR category = $3 "
            "OR ($3 = 'cancelled' AND reason = 'cancelled')) "
            "AND (NOT $4 OR state IN ('failed', 'deferred')) "
            "AND (NOT $5 OR category = ANY($6::text[]))",
            bid, f.state.value if f.state else None, f.category, f.failed_only,
            f.temporary_only, follow.TEMPORARY_CATEGORIES,
        )
        assert known == counted, f
        fast = await follow.recipients_of(pool, sealer, st, f, 2, 0)
        slow = await follow.recipients(pool, sealer, CLI_PRINCIPAL, bid, f, now, 2, 0)
        assert fast == slow and fast[0] == counted, f
        seen.append(counted)
    assert seen == [4, 4, 2, 2, 2, 1, 1, 1, 0]
    # Filters that need the deliveries themselves are counted by the page's statement.
    by_address = follow.RecipientFilter(addresses=("taro@docomo.ne.jp", "nobody@example.jp"))
    assert follow.known_total(st, by_address) is None
    total, rows = await follow.recipients_of(pool, sealer, st, by_address, 10, 0)
    assert total == 1 and [r.address for r in rows] == ["taro@docomo.ne.jp"]
    # A page past the end still says how many there are.
    assert await follow.recipients_of(pool, sealer, st, by_address, 10, 5) == (1, [])
