"""Saved messages: templates of a school or the board, and a staff member's drafts.

A template belongs to an organisation: every staff member of that school sees it (the board's
templates are all its schools'); the board and the school's administrators change it. Another
board's templates do not exist for the caller (engine/staff/rights.py). A draft is its
author's alone, with the audience and send time it will go with; sending it stores the
broadcast and removes the draft in one transaction (engine/staff/sending.py), so a draft is
sent once however often "send" is pressed.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.people import Category
from engine.platform.errors import InputError
from engine.queue import Priority
from engine.staff.models import ActorKind, Principal, RightsError, Role
from engine.staff.rights import not_found
from engine.staff.store import Staff


class Kind(enum.StrEnum):
    TEMPLATE = "template"
    DRAFT = "draft"


LABELS_JA = {Kind.TEMPLATE: "テンプレート", Kind.DRAFT: "下書き"}


@dataclass(frozen=True)
class Content:
    name: str
    sender: str = ""
    subject: str = ""
    body: str = ""
    category: Category = Category.NOTICE
    priority: Priority = Priority.NORMAL
    audience: dict[str, Any] | None = None
    send_at: datetime | None = None


@dataclass(frozen=True)
class Saved:
    id: int
    kind: Kind
    organisation_id: int
    staff_id: int | None
    content: Content
    created_at: datetime
    updated_at: datetime


_COLUMNS = (
    "id, kind, organisation_id, staff_id, name, sender, subject, body, category, priority, "
    "audience, send_at, created_at, updated_at"
)
# The board the saved message's organisation belongs to (the tenant boundary).
_BOARD_OF = (
    "(SELECT CASE WHEN o.kind = 'board' THEN o.id ELSE o.parent_id END FROM organisations o "
    "WHERE o.id = saved_messages.organisation_id)"
)


def _saved(r: Any) -> Saved:
    audience = r["audience"]
    return Saved(
        r["id"], Kind(r["kind"]), r["organisation_id"], r["staff_id"],
        Content(
            r["name"], r["sender"], r["subject"], r["body"], Category(r["category"]),
            Priority(r["priority"]),
            json.loads(audience) if isinstance(audience, str) else audience, r["send_at"],
        ),
        r["created_at"], r["updated_at"],
    )


def _check(kind: Kind, c: Content) -> None:
    if not c.name.strip() or len(c.name) > 100:
        raise InputError("名前を 1〜100 文字で入れてください (a name of 1-100 characters)")
    if any(ch in c.subject for ch in "\r\n"):
        raise InputError("件名に改行は使えません (no line breaks in the subject)")
    if kind is Kind.TEMPLATE and (c.audience is not None or c.send_at is not None):
        raise InputError(
            "テンプレートには配信先と送信時刻を保存しません (templates keep no audience or time)"
        )


def _may_change(actor: Principal, s: Saved, board: int | None) -> bool:
    """``board``: the board of the saved message's organisation."""
    if s.kind is Kind.DRAFT:
        return actor.kind is ActorKind.STAFF and s.staff_id == actor.id
    return (actor.role is Role.BOARD and board == actor.board_id) or (
        actor.role is Role.SCHOOL and actor.organisation_id == s.organisation_id
    )


def changeable(actor: Principal, s: Saved) -> bool:
    """Whether ``actor`` may change ``s``, one of what ``list_saved`` gave it (so of its
    board)."""
    return _may_change(actor, s, actor.board_id)


def _may_see(actor: Principal, s: Saved, board: int | None) -> bool:
    if s.kind is Kind.DRAFT:
        return _may_change(actor, s, board)
    return (actor.role is Role.BOARD and board == actor.board_id) or s.organisation_id in (
        actor.organisation_id, actor.board_id
    )


async def create(staff: Staff, actor: Principal, kind: Kind, c: Content) -> Saved:
    _check(kind, c)
    if actor.organisation_id is None or actor.kind is not ActorKind.STAFF:
        raise RightsError("職員のログインが必要です (staff only)")
    if kind is Kind.TEMPLATE and actor.role is Role.TEACHER:
        raise RightsError("テンプレートを作れるのは管理者です (administrators make templates)")
    now = staff.now()
    row = await staff.pool.fetchrow(
        "INSERT INTO saved_messages (kind, organisation_id, staff_id, name, sender, subject, "
        "body, category, priority, audience, send_at, created_at, updated_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11, $12, $12) "
        f"RETURNING {_COLUMNS}",
        kind.value, actor.organisation_id, actor.id, c.name.strip(), c.sender, c.subject,
        c.body, c.category.value, int(c.priority),
        json.dumps(c.audience) if c.audience is not None else None, c.send_at, now,
    )
    return _saved(row)


async def _get(staff: Staff, actor: Principal, kind: Kind, saved_id: int) -> tuple[Saved, bool]:
    """The saved message and whether ``actor`` may change it; NotFoundError when it may not
    see it (another school's, another board's, someone else's draft)."""
    row = await staff.pool.fetchrow(
        f"SELECT {_COLUMNS}, {_BOARD_OF} AS board FROM saved_messages WHERE id = $1 AND kind = $2",
        saved_id, kind.value,
    )
    if row is None or not _may_see(actor, s := _saved(row), row["board"]):
        raise not_found(f"{LABELS_JA[kind]} {saved_id} ")
    return s, _may_change(actor, s, row["board"])


async def get(staff: Staff, actor: Principal, kind: Kind, saved_id: int) -> Saved:
    return (await _get(staff, actor, kind, saved_id))[0]


async def list_saved(staff: Staff, actor: Principal, kind: Kind) -> list[Saved]:
    rows = await staff.pool.fetch(
        f"SELECT {_COLUMNS}, {_BOARD_OF} AS board FROM saved_messages WHERE kind = $1 "
        f"AND (($2 AND {_BOARD_OF} = $4) OR organisation_id = $3 OR organisation_id = $4) "
        "AND (kind = 'template' OR staff_id = $5) ORDER BY updated_at DESC, id DESC",
        kind.value, actor.role is Role.BOARD, actor.organisation_id, actor.board_id,
        actor.id if actor.kind is ActorKind.STAFF else None,
    )
    return [_saved(r) for r in rows if _may_see(actor, _saved(r), r["board"])]


async def update(
    staff: Staff, actor: Principal, kind: Kind, saved_id: int, c: Content
) -> Saved:
    _check(kind, c)
    _, may = await _get(staff, actor, kind, saved_id)
    if not may:
        raise RightsError("変更する権限がありません (not yours to change)")
    row = await staff.pool.fetchrow(
        "UPDATE saved_messages SET name = $2, sender = $3, subject = $4, body = $5, "
        "category = $6, priority = $7, audience = $8::jsonb, send_at = $9, updated_at = $10 "
        f"WHERE id = $1 RETURNING {_COLUMNS}",
        saved_id, c.name.strip(), c.sender, c.subject, c.body, c.category.value,
        int(c.priority), json.dumps(c.audience) if c.audience is not None else None,
        c.send_at, staff.now(),
    )
    return _saved(row)


async def delete(staff: Staff, actor: Principal, kind: Kind, saved_id: int) -> None:
    _, may = await _get(staff, actor, kind, saved_id)
    if not may:
        raise RightsError("削除する権限がありません (not yours to delete)")
    await staff.pool.execute("DELETE FROM saved_messages WHERE id = $1", saved_id)
