"""A guardian who left: replaying an old mail's /m/ link shows and records nothing."""

from __future__ import annotations

from engine.people.choices import leave_address, rejoin_address

from .conftest import Pages


async def test_the_personal_page_after_leaving_reads_and_answers_nothing(pages: Pages) -> None:
    delivery_id, link = await pages.two_way_to_guardian()
    pool = pages.people.pool
    await leave_address(pages.people, "papa@docomo.ne.jp")
    async with pages.client("198.51.100.7") as phone:
        shown = await phone.get(link)
        read = await phone.post(f"{link}/read")
        answered = await phone.post(f"{link}/answers", data={"q": "0"})
        for r in (shown, read, answered):
            assert r.status_code == 410 and "配信は停止されている" in r.text
            assert "遠足" not in r.text
        assert await pool.fetchval("SELECT count(*) FROM delivery_reads") == 0
        assert await pool.fetchval("SELECT count(*) FROM survey_responses") == 0
        # Back again, the same link works as before.
        await rejoin_address(pages.people, "papa@docomo.ne.jp")
        page = await phone.get(link)
        assert page.status_code == 200 and "遠足" in page.text
    assert await pool.fetchval(
        "SELECT count(*) FROM delivery_reads WHERE delivery_id = $1", delivery_id) == 1
