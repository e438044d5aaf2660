"""The staff package's values: roles, staff members, who is acting, and the errors of access.

    MamoruError
    ├── AuthError        not signed in: wrong login, password or code, locked, expired session
    ├── RightsError      signed in, but this is not within the actor's rights
    └── InputError
        └── NotFoundError    no such object, or one the actor may not see (the same answer)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from engine.platform.errors import InputError, MamoruError


class AuthError(MamoruError):
    """The caller is not signed in (or the credentials are wrong); HTTP 401."""


class LoginRefused(AuthError):
    """A refused sign-in. Its message is the same for a wrong password, an unknown or disabled
    login and a source that must wait; ``reason`` tells them apart for the audit log only."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class RightsError(MamoruError):
    """The caller is signed in but may not do this; HTTP 403."""


class NotFoundError(InputError):
    """No such object, or one outside the caller's rights (never told apart); HTTP 404."""


class Role(enum.StrEnum):
    BOARD = "board"
    SCHOOL = "school"
    TEACHER = "teacher"

    @property
    def label_ja(self) -> str:
        return ROLE_LABELS_JA[self]

    @classmethod
    def parse(cls, text: str) -> Role:
        key = text.strip()
        for role in cls:
            if key in (role.value, role.label_ja):
                return role
        choices = ", ".join(f"{r.value} ({r.label_ja})" for r in cls)
        raise InputError(f"役割「{key}」はありません (unknown role; choose one of: {choices})")


ROLE_LABELS_JA: dict[Role, str] = {
    Role.BOARD: "教育委員会",
    Role.SCHOOL: "学校管理者",
    Role.TEACHER: "教員",
}


@dataclass(frozen=True)
class StaffMember:
    id: int
    login: str
    name: str
    role: Role
    organisation_id: int
    organisation_code: str
    totp_enabled: bool
    # The latest time until which some source must wait before trying this login again
    # (engine/staff/backoff.py); it may have passed. None: no failures kept.
    locked_until: datetime | None
    disabled_at: datetime | None
    created_at: datetime
    class_ids: tuple[int, ...] = ()
    group_ids: tuple[int, ...] = ()
    # When the password was last set, and whether it must be changed before anything else.
    password_changed_at: datetime | None = None
    password_change_required: bool = False


class ActorKind(enum.StrEnum):
    STAFF = "staff"
    API_KEY = "api_key"
    CLI = "cli"
    ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Principal:
    """Who is acting and within which rights: a staff member, an API key or the command line.

    An API key has the rights of its organisation: the board's key those of the board, a
    school's key those of that school's administrator.
    """

    kind: ActorKind
    id: int | None
    name: str
    role: Role
    organisation_id: int | None
    # The board the organisation belongs to (the board itself for role board).
    board_id: int | None = None
    class_ids: frozenset[int] = field(default_factory=frozenset)
    group_ids: frozenset[int] = field(default_factory=frozenset)
    # Where the request came from (HTTP client address), for the audit log.
    address: str = ""

    @property
    def is_board(self) -> bool:
        return self.role is Role.BOARD


CLI_PRINCIPAL = Principal(ActorKind.CLI, None, "command line", Role.BOARD, None)
