"""API keys for applications: each belongs to the board or one school and has its rights.

A key is shown once when made (``mak_`` + 32 random bytes); only its SHA-256 is stored, with
its first characters to tell keys apart. A disabled key is refused at once.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.platform.errors import InputError
from engine.staff.models import ActorKind, AuthError, NotFoundError, Principal, Role
from engine.staff.sessions import token_hash
from engine.staff.store import Staff

KEY_PREFIX = "mak_"


@dataclass(frozen=True)
class ApiKey:
    id: int
    prefix: str
    name: str
    organisation_id: int
    created_at: datetime
    disabled_at: datetime | None
    last_used_at: datetime | None


_COLUMNS = "id, prefix, name, organisation_id, created_at, disabled_at, last_used_at"


def _key(r: Any) -> ApiKey:
    return ApiKey(
        r["id"], r["prefix"], r["name"], r["organisation_id"], r["created_at"],
        r["disabled_at"], r["last_used_at"],
    )


async def create(
    staff: Staff, organisation_id: int, name: str, created_by: int | None
) -> tuple[str, ApiKey]:
    """A new key (the text, shown only now) for the board or a school."""
    name = name.strip()
    if not name or len(name) > 100:
        raise InputError("キーの名前を 1〜100 文字で入れてください (a name of 1-100 characters)")
    exists = await staff.pool.fetchval(
        "SELECT 1 FROM organisations WHERE id = $1", organisation_id
    )
    if not exists:
        raise InputError(f"学校 {organisation_id} はありません (unknown organisation)")
    text = KEY_PREFIX + secrets.token_urlsafe(32)
    row = await staff.pool.fetchrow(
        "INSERT INTO api_keys (key_hash, prefix, name, organisation_id, created_by, created_at) "
        f"VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_COLUMNS}",
        token_hash(text), text[:12], name, organisation_id, created_by, staff.now(),
    )
    return text, _key(row)


# The key belongs to the board $n or one of its schools ($n NULL: any board).
_OF_BOARD = (
    "({n}::bigint IS NULL OR organisation_id IN "
    "(SELECT id FROM organisations WHERE id = {n} OR parent_id = {n}))"
)


async def list_keys(staff: Staff, board_id: int | None = None) -> list[ApiKey]:
    """Every key of the board ``board_id`` and its schools (None: of every board)."""
    rows = await staff.pool.fetch(
        f"SELECT {_COLUMNS} FROM api_keys WHERE {_OF_BOARD.format(n='$1')} ORDER BY id",
        board_id,
    )
    return [_key(r) for r in rows]


async def disable(staff: Staff, key_id: int, board_id: int | None = None) -> ApiKey:
    """Disable a key of the board ``board_id`` (None: any); another board's is unknown."""
    row = await staff.pool.fetchrow(
        f"UPDATE api_keys SET disabled_at = coalesce(disabled_at, $2) WHERE id = $1 "
        f"AND {_OF_BOARD.format(n='$3')} RETURNING {_COLUMNS}",
        key_id, staff.now(), board_id,
    )
    if row is None:
        raise NotFoundError(f"API キー {key_id} はありません (no API key {key_id})")
    return _key(row)


async def principal_of_key(staff: Staff, text: str, address: str = "") -> Principal:
    """The rights of the key ``text``: its school's administrator's, or the board's."""
    row = await staff.pool.fetchrow(
        "UPDATE api_keys k SET last_used_at = $2 FROM organisations o "
        "WHERE k.key_hash = $1 AND k.disabled_at IS NULL AND o.id = k.organisation_id "
        "RETURNING k.id, k.prefix, k.name, k.organisation_id, o.kind, o.parent_id",
        token_hash(text), staff.now(),
    )
    if row is None:
        raise AuthError("API キーが違うか、無効です (unknown or disabled API key)")
    board = row["kind"] == "board"
    return Principal(
        ActorKind.API_KEY, row["id"], f"{row['name']} ({row['prefix']}…)",
        Role.BOARD if board else Role.SCHOOL, row["organisation_id"],
        row["organisation_id"] if board else row["parent_id"], address=address,
    )
