"""The structure people hang off: the board, schools, school years, grades, classes, groups.

Operators name things the way they speak (a school by its code or name, grade 3, class
"1組", a group by name or "school-code/name"); the ``find_*`` functions turn those names into
ids or answer with a Japanese error that says what exists, changing nothing.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg

from engine.people.models import (
    JST,
    Category,
    DeliveryConditions,
    Group,
    NightWindow,
    Organisation,
    OrgKind,
)
from engine.people.store import People
from engine.platform.errors import InputError

# Either runs a statement: functions called inside a transaction take its connection.
Executor: TypeAlias = "asyncpg.Pool | asyncpg.Connection"

# "/" separates a school's code from a group name; the others separate groups in a CSV cell.
GROUP_NAME_FORBIDDEN = "/,;、，；|"

_ORG_COLUMNS = "id, parent_id, kind, code, name, final_grade"


def school_year_of(at: datetime) -> int:
    """The Japanese school year (April to March) that ``at`` falls in."""
    local = at.astimezone(JST)
    return local.year if local.month >= 4 else local.year - 1


async def current_year(db: Executor, now: datetime, create: bool = True) -> int:
    """The current school year; when there is none yet, the one ``now`` falls in.

    With ``create`` that year is also recorded as current (registering the first school does
    this); lookups pass ``create=False`` so that a mistyped command changes nothing.
    """
    year: int | None = await db.fetchval("SELECT year FROM school_years WHERE is_current")
    if year is not None:
        return year
    year = school_year_of(now)
    if not create:
        return year
    await db.execute(
        "INSERT INTO school_years (year, is_current, created_at) VALUES ($1, true, $2) "
        "ON CONFLICT (year) DO UPDATE SET is_current = true",
        year, now,
    )
    return year


def _org(r: Any) -> Organisation:
    return Organisation(
        r["id"], r["parent_id"], OrgKind(r["kind"]), r["code"], r["name"], r["final_grade"]
    )


async def add_organisation(
    people: People,
    kind: OrgKind,
    code: str,
    name: str,
    board: str | None = None,
    final_grade: int | None = None,
) -> Organisation:
    """Register the board or a school; a school's board is ``board`` or the only board."""
    code, name = code.strip(), name.strip()
    if not code or not name:
        raise InputError("コードと名前の両方が必要です (code and name are both required)")
    if any(ch in code for ch in " /,\t") or len(code) > 40:
        raise InputError(
            f"コード「{code}」にはスペース・/・カンマを使えません (40 文字まで) "
            f"(a code is one word without spaces, slashes or commas)"
        )
    grade = kind.default_final_grade if final_grade is None else final_grade
    if not 0 <= grade <= 12:
        raise InputError(f"最終学年 {grade} は 0〜12 で指定してください (final grade 0-12)")
    async with people.pool.acquire() as conn, conn.transaction():
        parent_id: int | None = None
        if kind is not OrgKind.BOARD:
            parent_id = await _board_id(conn, board)
        elif board:
            raise InputError("教育委員会の上には登録できません (a board has no parent)")
        taken = await conn.fetchval(
            "SELECT 1 FROM organisations WHERE code = $1 OR name = $2", code, name
        )
        if taken:
            raise InputError(
                f"コード「{code}」または名前「{name}」は既に登録されています (already registered)"
            )
        now = people.clock.now()
        await current_year(conn, now)
        row = await conn.fetchrow(
            f"INSERT INTO organisations (parent_id, kind, code, name, final_grade, created_at) "
            f"VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_ORG_COLUMNS}",
            parent_id, kind.value, code, name, grade, now,
        )
        if kind is OrgKind.BOARD:
            # Schools registered before the first board are that board's (a board is a
            # tenant: a school of no board would be nobody's).
            await conn.execute(
                "UPDATE organisations SET parent_id = $1 WHERE kind <> 'board' "
                "AND parent_id IS NULL "
                "AND (SELECT count(*) FROM organisations WHERE kind = 'board') = 1",
                row["id"],
            )
    return _org(row)


async def _board_id(db: Executor, board: str | None) -> int | None:
    if board:
        org = await find_organisation(db, board)
        if org.kind is not OrgKind.BOARD:
            raise InputError(f"「{board}」は教育委員会ではありません (not a board)")
        return org.id
    ids = [r["id"] for r in await db.fetch("SELECT id FROM organisations WHERE kind = 'board'")]
    if len(ids) > 1:
        raise InputError("教育委員会が複数あります。--board で指定してください (name the board)")
    return ids[0] if ids else None


async def list_organisations(db: Executor) -> list[Organisation]:
    rows = await db.fetch(
        f"SELECT {_ORG_COLUMNS} FROM organisations ORDER BY kind <> 'board', code"
    )
    return [_org(r) for r in rows]


# Organisations of one board ($n: the board's id; NULL: of every board).
_OF_BOARD = "({n}::bigint IS NULL OR id = {n} OR parent_id = {n})"


async def find_organisation(db: Executor, key: str, board_id: int | None = None) -> Organisation:
    """The board or school whose code or name is ``key``; with ``board_id`` only that board
    and its schools are looked at (another board's look as if they did not exist)."""
    text = key.strip()
    row = await db.fetchrow(
        f"SELECT {_ORG_COLUMNS} FROM organisations WHERE (code = $1 OR name = $1) "
        f"AND {_OF_BOARD.format(n='$2')} ORDER BY code = $1 DESC LIMIT 1",
        text, board_id,
    )
    if row is None:
        known = [
            r["code"] for r in await db.fetch(
                f"SELECT code FROM organisations WHERE {_OF_BOARD.format(n='$1')} ORDER BY code",
                board_id,
            )
        ]
        hint = (
            f" 登録済み: {', '.join(known[:10])}" if known else " まだ 1 校も登録されていません。"
        )
        raise InputError(f"学校「{text}」は登録されていません (unknown school).{hint}")
    return _org(row)


async def find_board(db: Executor) -> Organisation:
    board_id = await _board_id(db, None)
    if board_id is None:
        raise InputError("教育委員会が登録されていません (no board is registered)")
    row = await db.fetchrow(f"SELECT {_ORG_COLUMNS} FROM organisations WHERE id = $1", board_id)
    return _org(row)


def parse_grade(text: str) -> int:
    """A grade as operators write it: "3", "３", "3年", "3年生"."""
    plain = unicodedata.normalize("NFKC", text).strip().removesuffix("生").removesuffix("年")
    if not plain.isdigit() or not 0 <= int(plain) <= 12:
        raise InputError(
            f"学年「{text.strip()}」は数字で書いてください (a grade is a number, 1-12)"
        )
    return int(plain)


def parse_class(text: str) -> str:
    """A class name as stored: "1組" and "１" are both "1"."""
    plain = unicodedata.normalize("NFKC", text).strip().removesuffix("組").strip()
    if not plain or len(plain) > 20 or any(ch in plain for ch in ",/\t"):
        raise InputError(f"組「{text.strip()}」は名前として使えません (invalid class name)")
    return plain


async def find_grade(db: Executor, school: Organisation, grade: int, year: int) -> int:
    grade_id: int | None = await db.fetchval(
        "SELECT id FROM grades WHERE school_id = $1 AND year = $2 AND grade = $3",
        school.id, year, grade,
    )
    if grade_id is None:
        raise InputError(
            f"{school.name}に {year} 年度の {grade} 年生は登録されていません (unknown grade)"
        )
    return grade_id


async def find_class(
    db: Executor, school: Organisation, grade: int, class_name: str, year: int
) -> int:
    grade_id = await find_grade(db, school, grade, year)
    class_id: int | None = await db.fetchval(
        "SELECT id FROM classes WHERE grade_id = $1 AND name = $2", grade_id, class_name
    )
    if class_id is None:
        names = [
            r["name"]
            for r in await db.fetch(
                "SELECT name FROM classes WHERE grade_id = $1 ORDER BY name", grade_id
            )
        ]
        raise InputError(
            f"{school.name} {grade} 年に「{class_name}」組はありません (unknown class); "
            f"あるのは: {', '.join(names) or 'なし'}"
        )
    return class_id


async def ensure_classes(
    conn: asyncpg.Connection, year: int, wanted: Iterable[tuple[int, int, str | None]]
) -> dict[tuple[int, int, str | None], tuple[int, int | None]]:
    """Grade and class ids for (school id, grade, class name or None), creating missing ones."""
    keys = sorted(set(wanted), key=lambda k: (k[0], k[1], k[2] or ""))
    grade_keys = sorted({(s, g) for s, g, _ in keys})
    await conn.execute(
        "INSERT INTO grades (school_id, year, grade) "
        "SELECT s, $3, g FROM unnest($1::bigint[], $2::smallint[]) AS u(s, g) "
        "ON CONFLICT DO NOTHING",
        [s for s, _ in grade_keys], [g for _, g in grade_keys], year,
    )
    grade_ids = {
        (r["school_id"], r["grade"]): r["id"]
        for r in await conn.fetch(
            "SELECT id, school_id, grade FROM grades WHERE year = $1 AND school_id = ANY($2)",
            year, list({s for s, _ in grade_keys}),
        )
    }
    class_keys = [(grade_ids[(s, g)], c) for s, g, c in keys if c is not None]
    await conn.execute(
        "INSERT INTO classes (grade_id, name) SELECT * FROM unnest($1::bigint[], $2::text[]) "
        "ON CONFLICT DO NOTHING",
        [g for g, _ in class_keys], [c for _, c in class_keys],
    )
    class_ids = {
        (r["grade_id"], r["name"]): r["id"]
        for r in await conn.fetch(
            "SELECT id, grade_id, name FROM classes WHERE grade_id = ANY($1)",
            list(set(grade_ids.values())),
        )
    }
    out: dict[tuple[int, int, str | None], tuple[int, int | None]] = {}
    for s, g, c in keys:
        gid = grade_ids[(s, g)]
        out[(s, g, c)] = (gid, class_ids[(gid, c)] if c is not None else None)
    return out


_GROUP_SQL = """
SELECT g.id, g.owner_id, o.code AS owner_code, o.name AS owner_name, g.name, g.kind,
       g.is_public, g.categories, g.night_start, g.night_end, g.created_at
FROM groups g JOIN organisations o ON o.id = g.owner_id
"""


def _group(r: Any) -> Group:
    night = NightWindow(r["night_start"], r["night_end"]) if r["night_start"] else None
    cats = frozenset(Category(c) for c in r["categories"]) if r["categories"] is not None else None
    return Group(
        r["id"], r["owner_id"], r["owner_code"], r["owner_name"], r["name"], r["kind"],
        r["is_public"], DeliveryConditions(cats, night), r["created_at"],
    )


async def add_group(
    people: People,
    name: str,
    owner: str | None = None,
    kind: str = "other",
    is_public: bool = False,
    categories: Sequence[Category] | None = None,
    night: NightWindow | None = None,
) -> Group:
    """A group owned by the school ``owner`` (code or name), or by the board when None."""
    name = name.strip()
    if not name or len(name) > 100 or any(ch in name for ch in GROUP_NAME_FORBIDDEN):
        raise InputError(
            f"グループ名「{name}」は使えません: 空・100 文字超・「{GROUP_NAME_FORBIDDEN}」を含む"
            f"名前は不可 (invalid group name)"
        )
    async with people.pool.acquire() as conn, conn.transaction():
        org = await find_organisation(conn, owner) if owner else await find_board(conn)
        if await conn.fetchval(
            "SELECT 1 FROM groups WHERE owner_id = $1 AND name = $2", org.id, name
        ):
            raise InputError(f"{org.name}のグループ「{name}」は既にあります (already exists)")
        group_id = await conn.fetchval(
            "INSERT INTO groups (owner_id, name, kind, is_public, categories, night_start, "
            "night_end, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            org.id, name, kind.strip() or "other", is_public,
            sorted(c.value for c in categories) if categories is not None else None,
            night.start if night else None, night.end if night else None,
            people.clock.now(),
        )
        row = await conn.fetchrow(_GROUP_SQL + "WHERE g.id = $1", group_id)
    return _group(row)


async def list_groups(db: Executor) -> list[Group]:
    return [_group(r) for r in await db.fetch(_GROUP_SQL + "ORDER BY o.code, g.name")]


async def groups_by_id(db: Executor, ids: Sequence[int]) -> dict[int, Group]:
    rows = await db.fetch(_GROUP_SQL + "WHERE g.id = ANY($1::bigint[])", list(ids))
    return {r["id"]: _group(r) for r in rows}


async def find_group(
    db: Executor, key: str, school: Organisation | None = None, board_id: int | None = None
) -> Group:
    """A group by "name" or "school-code/name"; a row's own school is tried before the board.
    With ``board_id`` only the groups of that board and its schools are looked at."""
    owner_key, _, name = key.strip().rpartition("/")
    rows = await db.fetch(
        _GROUP_SQL + "WHERE g.name = $1 AND ($2::bigint IS NULL OR o.id = $2 OR o.parent_id = $2) "
        "ORDER BY g.id",
        name, board_id,
    )
    if owner_key:
        rows = [r for r in rows if owner_key in (r["owner_code"], r["owner_name"])]
    elif len(rows) > 1 and school is not None:
        own = [r for r in rows if r["owner_id"] == school.id]
        rows = own or [r for r in rows if r["owner_id"] == school.parent_id]
    if not rows:
        raise InputError(f"グループ「{key.strip()}」は登録されていません (unknown group)")
    if len(rows) > 1:
        owners = ", ".join(f"{r['owner_code']}/{name}" for r in rows)
        raise InputError(
            f"グループ「{name}」は複数あります。「学校コード/グループ名」で指定してください: "
            f"{owners}"
        )
    return _group(rows[0])
