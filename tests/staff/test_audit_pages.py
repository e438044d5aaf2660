"""The audit log's pages on a long log: the count may stop at a bound (the screens' "N 件以上")
and the newest matching entry is read without counting (issue 25: a year of a board's log)."""

from __future__ import annotations

from datetime import timedelta

from engine.staff import audit
from engine.staff.models import CLI_PRINCIPAL

from .conftest import World


async def test_the_count_stops_at_its_bound_and_the_page_is_the_same(world: World) -> None:
    st = world.api.staff
    for i in reversed(range(30)):
        await audit.record(st.pool, st.audit_key, st.now() - timedelta(minutes=i), CLI_PRINCIPAL,
                           "test.bound", f"item {i}")
    f = audit.AuditFilter(action="test.bound")
    exact, page = await audit.entries(st.pool, f, 5, 10)
    assert exact == 30 and [e.object for e in page] == [f"item {i}" for i in range(10, 15)]
    capped, same = await audit.entries(st.pool, f, 5, 10, count_up_to=12)
    assert capped == 13 and same == page  # 13: more than 12
    assert (await audit.entries(st.pool, f, 5, 10, count_up_to=30))[0] == 30
    assert (await audit.entries(st.pool, f, 5, 10, count_up_to=29))[0] == 30
    newest = await audit.newest(st.pool, f)
    assert newest is not None and newest.object == "item 0"
    assert await audit.newest(st.pool, audit.AuditFilter(action="test.none")) is None
