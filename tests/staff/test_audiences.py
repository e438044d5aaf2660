"""engine/staff/audiences.py: the screens' audience picker offers exactly what the rights
allow, and the confirmation's count names the schools and counts as sending would."""

from __future__ import annotations

import pytest

from engine.people import Audience, Category
from engine.queue import Priority
from engine.staff import audiences, sessions
from engine.staff.accounts import get
from engine.staff.models import Principal, RightsError
from staff.conftest import World


async def principal(world: World, login: str) -> Principal:
    st = world.api.staff
    m = await st.pool.fetchrow("SELECT id FROM staff WHERE login = $1", login)
    return await sessions.principal_of(st, await get(st, m["id"]))


async def test_choices_follow_the_rights(world: World) -> None:
    pool, now = world.api.staff.pool, world.clock.now()
    teacher = await audiences.choices(pool, await principal(world, "teacher31"), now)
    assert [(c.kind, c.id) for c in teacher.all()] == [
        ("class", world.classes["sho1-3-1"]), ("group", world.groups["sho1見守り"]),
    ]
    assert teacher.classes[0].label == "第一小学校 3年1組"
    admin = await audiences.choices(pool, await principal(world, "admin1"), now)
    assert [c.label for c in admin.schools] == ["第一小学校"]
    assert {c.id for c in admin.classes} == {
        world.classes[k] for k in ("sho1-3-1", "sho1-3-2", "sho1-4-1")
    }
    assert [c.id for c in admin.groups] == [world.groups["sho1見守り"]]
    assert admin.board == []
    board = await audiences.choices(pool, await principal(world, "board"), now)
    assert [c.id for c in board.board] == [world.orgs["city"]]
    assert [c.label for c in board.schools] == ["第一小学校", "第二小学校"]
    assert world.groups["city全体"] in {c.id for c in board.groups}


async def test_count_names_the_schools_and_refuses_what_sending_would(world: World) -> None:
    st, people, now = world.api.staff, world.api.people, world.clock.now()
    board = await principal(world, "board")
    whole = await audiences.count(
        st.pool, people, board, Audience(boards=(world.orgs["city"],)), Category.NOTICE,
        Priority.NORMAL, now,
    )
    assert whole.recipients == 6 and whole.schools == ["みどり市教育委員会"]
    two = await audiences.count(
        st.pool, people, board,
        Audience(classes=(world.classes["sho1-3-1"], world.classes["sho2-3-1"])),
        Category.NOTICE, Priority.NORMAL, now,
    )
    assert two.recipients == 3 and two.schools == ["第一小学校", "第二小学校"]
    teacher = await principal(world, "teacher31")
    with pytest.raises(RightsError):
        await audiences.count(
            st.pool, people, teacher, Audience(classes=(world.classes["sho1-3-2"],)),
            Category.NOTICE, Priority.NORMAL, now,
        )
    assert await world.count("SELECT count(*) FROM broadcasts") == 0
