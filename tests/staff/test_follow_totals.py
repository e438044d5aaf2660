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


async def _sent_with_outcomes(world: World) -> int:
    """A broadcast to school sho1 whose deliveries ended as OUTCOMES say; its id."""
    token = await world.login("admin1")
    async with world.client(token) as c:
        bid: int = (await c.post("/api/staff/broadcasts", json=body(
            {"schools": [world.orgs["sho1"]]}))).json()["broadcast_id"]
    pool, sealer = world.api.staff.pool, world.api.people.sealer
    for address, state, category, reason, interrupted in OUTCOMES:
        await pool.execute(
            "UPDATE deliveries SET state = $3, category = $4, reason = $5, interrupted = $6 "
            "WHERE broadcast_id = $1 AND recipient_hash = $2",
            bid, sealer.address_hash(address), state, category, reason, interrupted,
        )
    return bid


async def test_totals_from_the_counts_equal_counting_the_filtered_deliveries(
    world: World,
) -> None:
    bid = await _sent_with_outcomes(world)
    pool, sealer = world.api.staff.pool, world.api.people.sealer
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


async def test_the_dashboard_counts_only_what_it_shows_and_shows_what_the_full_list_did(
    world: World,
) -> None:
    """``dashboard_broadcasts`` picks, among the newest, today's and the live ones and the ten
    newest others, as filtering the whole counted list did, with the same counts."""
    from datetime import timedelta

    from engine.platform.clock import JST

    token = await world.login("admin1")
    async with world.client(token) as c:
        ids = [(await c.post("/api/staff/broadcasts", json=body(
            {"classes": [world.classes["sho1-3-1"]]}))).json()["broadcast_id"]
            for _ in range(14)]
    pool = world.api.staff.pool
    # All but the last two finished days ago; ids[3] still has one delivery waiting (live),
    # ids[-1] was made today and finished, ids[-2] today and still sending.
    await pool.execute(
        "UPDATE broadcasts SET created_at = $2 WHERE id = ANY($1::bigint[])",
        ids[:-2], world.clock.now() - timedelta(days=3))
    await pool.execute(
        "UPDATE deliveries SET state = 'delivered' WHERE broadcast_id = ANY($1::bigint[])",
        [i for i in ids if i not in (ids[-2],)])
    await pool.execute(
        "UPDATE deliveries SET state = 'deferred' WHERE id = "
        "(SELECT min(id) FROM deliveries WHERE broadcast_id = $1)", ids[3])
    now = world.clock.now()
    await pool.execute("UPDATE broadcasts SET created_at = $2 WHERE id = ANY($1::bigint[])",
                       ids[-2:], now)
    current, recent = await follow.dashboard_broadcasts(pool, CLI_PRINCIPAL, now)
    _, everything = await follow.list_broadcasts(
        pool, CLI_PRINCIPAL, follow.BroadcastFilter(), now, 100)
    today = [b for b in everything if b.created_at.astimezone(JST).date()
             == now.astimezone(JST).date() or b.state.value in ("scheduled", "sending")]
    others = [b for b in everything if b not in today][:10]
    assert [b.id for b in current] == [ids[-1], ids[-2], ids[3]]
    assert current == today and recent == others and len(recent) == 10
    assert current[2].by_state[State.DEFERRED] == 1 and current[1].state.value == "sending"


async def test_the_csv_list_is_every_page_in_order(world: World) -> None:
    """``all_recipients`` (the CSV, one statement) lists what the pages list, in order."""
    bid = await _sent_with_outcomes(world)
    pool, sealer = world.api.staff.pool, world.api.people.sealer
    now = world.clock.now()
    for f in (follow.RecipientFilter(), follow.RecipientFilter(failed_only=True),
              follow.RecipientFilter(state=State.DELIVERED)):
        paged: list[follow.Recipient] = []
        while True:
            total, page = await follow.recipients(
                pool, sealer, CLI_PRINCIPAL, bid, f, now, limit=1, offset=len(paged))
            paged += page
            if not page:
                break
        every = await follow.all_recipients(pool, sealer, CLI_PRINCIPAL, bid, f, now)
        assert [r.delivery_id for r in every] == [r.delivery_id for r in paged]
        assert len(every) == total
        assert [r.address for r in every] == [r.address for r in paged]
    assert len(await follow.all_recipients(
        pool, sealer, CLI_PRINCIPAL, bid, follow.RecipientFilter(), now)) == 4
