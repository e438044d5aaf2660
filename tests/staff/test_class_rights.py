"""engine/staff/class_rights.py and engine/people/class_units.py: a school's grades and classes
within the rights (add with its grade, rename, remove an empty one), refusals that change
nothing, and a teacher's view of their own class (with the 未登録 filter)."""

from __future__ import annotations

from typing import Any

import pytest

from engine.people import changes as ch
from engine.platform.errors import InputError
from engine.staff import class_rights as cr
from engine.staff.models import RightsError
from staff.conftest import World
from staff.test_audiences import principal


async def _classes(w: World) -> list[Any]:
    rows = await w.api.staff.pool.fetch(
        "SELECT c.id, g.school_id, g.grade, c.name FROM classes c JOIN grades g "
        "ON g.id = c.grade_id ORDER BY c.id")
    return [tuple(r) for r in rows]


async def test_the_school_admin_lists_adds_renames_and_removes_classes(world: World) -> None:
    w, people = world, world.api.people
    admin = await principal(w, "admin1")
    sho1 = w.orgs["sho1"]
    grades = await cr.classes_of(people, admin, sho1)
    assert [(g.grade, [(c.name, c.accounts) for c in g.classes]) for g in grades] == [
        (3, [("1", 2), ("2", 1)]), (4, [("1", 1)])]
    assert grades[0].classes[0].teachers == 1  # teacher31 has 3年1組

    # A class of a grade the school has no row for yet: the grade is made too.
    added = await cr.add_class(people, admin, sho1, 5, "さくら")
    assert (added.grade, added.name, added.label) == (5, "さくら", "5年さくら組")
    again = await cr.classes_of(people, admin, sho1)
    assert [(g.grade, [c.name for c in g.classes]) for g in again][-1] == (5, ["さくら"])
    # Full-width "２組" is stored as "2".
    two = await cr.add_class(people, admin, sho1, 4, "２組")
    assert two.name == "2"

    renamed = await cr.rename_class(people, admin, two.id, "3")
    assert renamed.name == "3" and renamed.id == two.id
    gone = await cr.remove_class(people, admin, two.id)
    assert (gone.place.label, gone.closed_accounts, gone.teachers) == ("4年3組", 0, 0)
    assert await w.count("SELECT count(*) FROM classes WHERE id = $1", two.id) == 0


async def test_refusals_say_why_and_change_nothing(world: World) -> None:
    w, people = world, world.api.people
    admin = await principal(w, "admin1")
    sho1, c31, c32 = w.orgs["sho1"], w.classes["sho1-3-1"], w.classes["sho1-3-2"]
    before = await _classes(w)
    with pytest.raises(InputError, match="3年1組は既にあります"):
        await cr.add_class(people, admin, sho1, 3, "1組")
    with pytest.raises(InputError, match="学年は 1〜6"):
        await cr.add_class(people, admin, sho1, 7, "1")
    with pytest.raises(InputError, match="組"):
        await cr.add_class(people, admin, sho1, 3, "a/b")
    with pytest.raises(InputError, match="3年2組は既にあります"):
        await cr.rename_class(people, admin, c31, "2")
    with pytest.raises(InputError, match="同じ"):
        await cr.rename_class(people, admin, c31, "1")
    with pytest.raises(InputError, match="2 人のアカウントがあるため削除できません。先に別の組"):
        await cr.remove_class(people, admin, c31)
    with pytest.raises(InputError, match="組 999999 はありません"):
        await cr.remove_class(people, admin, 999999)
    assert await _classes(w) == before
    # A class whose last child moved out can go; the move itself is what emptied it.
    jiro = await w.count("SELECT id FROM accounts WHERE class_id = $1", c32)
    await ch.move_account(people, jiro, 3, "1", 9)
    await ch.close_account(people, await w.count(
        "SELECT id FROM accounts WHERE class_id = $1 AND number = 2", c31), "transferred")
    # A closed account that was in a class keeps its school and grade, not the class.
    await w.api.staff.pool.execute(
        "UPDATE accounts SET class_id = $1 WHERE state = 'closed'", c32)
    gone = await cr.remove_class(people, admin, c32)
    assert gone.closed_accounts == 1
    assert await w.count("SELECT count(*) FROM accounts WHERE state = 'closed' "
                         "AND class_id IS NULL AND grade_id IS NOT NULL") == 1


async def test_rights_other_school_teacher_and_board(world: World) -> None:
    w, people = world, world.api.people
    admin1, teacher, board = [await principal(w, login)
                              for login in ("admin1", "teacher31", "board")]
    before = await _classes(w)
    sho2_class = w.classes["sho2-3-1"]
    with pytest.raises(RightsError):
        await cr.add_class(people, admin1, w.orgs["sho2"], 3, "9")
    with pytest.raises(RightsError):
        await cr.rename_class(people, admin1, sho2_class, "9")
    with pytest.raises(RightsError):
        await cr.remove_class(people, admin1, sho2_class)
    with pytest.raises(RightsError):
        await cr.classes_of(people, admin1, w.orgs["sho2"])
    with pytest.raises(RightsError):
        await cr.add_class(people, teacher, w.orgs["sho1"], 3, "9")
    with pytest.raises(RightsError):
        await cr.rename_class(people, teacher, w.classes["sho1-3-1"], "9")
    assert await _classes(w) == before
    # The board administers every school of its own.
    added = await cr.add_class(people, board, w.orgs["sho2"], 3, "2")
    assert added.school_id == w.orgs["sho2"]


async def test_a_teacher_sees_their_own_class_and_its_unregistered(world: World) -> None:
    w, people = world, world.api.people
    teacher = await principal(w, "teacher31")
    c31 = w.classes["sho1-3-1"]
    page = await cr.class_accounts(people, teacher, c31)
    assert [a.name for a in page.accounts] == ["山田太郎", "山田花子"]
    assert await cr.class_accounts(people, teacher, c31, unregistered=True) == type(page)([], 0)
    await w.api.staff.pool.execute(
        "UPDATE contacts SET confirmed_at = NULL WHERE id IN (SELECT contact_id FROM "
        "contact_accounts ca JOIN accounts a ON a.id = ca.account_id WHERE a.number = 2 "
        "AND a.class_id = $1)", c31)
    only = await cr.class_accounts(people, teacher, c31, unregistered=True)
    assert [(a.name, a.contacts, a.confirmed) for a in only.accounts] == [("山田花子", 1, 0)]
    for other in (w.classes["sho1-3-2"], w.classes["sho2-3-1"]):
        with pytest.raises(RightsError):
            await cr.class_accounts(people, teacher, other)
    # An administrator may look at any class of their school, not another school's.
    admin1 = await principal(w, "admin1")
    assert (await cr.class_accounts(people, admin1, w.classes["sho1-3-2"])).total == 1
    with pytest.raises(RightsError):
        await cr.class_accounts(people, admin1, w.classes["sho2-3-1"])
