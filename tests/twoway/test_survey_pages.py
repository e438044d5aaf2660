"""The survey screen's page of responses: one statement gives the total and the page, in the
full list's order, and a page past the end still says how many there are."""

from __future__ import annotations

from engine.twoway import responses, submit_answers
from engine.twoway.staff_views import response_page

from .conftest import World
from .test_surveys import setup


async def test_a_page_is_the_full_lists_slice_and_carries_the_total(world: World) -> None:
    b, d = await setup(world)
    for address in ("taro.papa@docomo.ne.jp", "ichiro@softbank.ne.jp", "hanako.mama@docomo.ne.jp"):
        await submit_answers(world.people, d[address], {"attend": "0"})
    every = await responses(world.people, b)
    assert len(every) == 3
    for offset in range(4):
        assert await response_page(world.people, b, 2, offset) == (3, every[offset:offset + 2])
    assert await response_page(world.people, b, 1, 10) == (3, [])
