"""The values of an accounts import: what the file's rows plan (``PlannedRow``, ``ImportPlan``),
the changes they make (``Change``) and their report, and the changes file for the operator.
engine/people/importing.py plans and writes them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.people.csv_import import Row
from engine.people.models import AccountKind, Organisation
from engine.platform.csv_io import csv_text

# Imports of the same database do not interleave: each sees the other's contacts.
IMPORT_LOCK = 0x6D616D10

REMOVED_TEXT = (
    "連絡先の変更・削除により送信しませんでした (the contact was removed from the roster)"
)

KIND_LABELS = {AccountKind.CHILD: "児童生徒", AccountKind.STAFF: "教職員"}

Place = tuple[int, int | None, str | None, int | None]  # school, grade, class, number


@dataclass(frozen=True)
class Existing:
    """An active account as stored, opened for comparing."""

    id: int
    kind: AccountKind
    school_id: int
    grade: int | None
    class_name: str | None
    number: int | None
    name: str
    code_hash: bytes
    contacts: dict[str, int]  # address -> contact id
    groups: frozenset[int]


@dataclass(frozen=True)
class Change:
    """One line of the changes file: what an import did (or a dry run would do)."""

    action: str  # 追加, 変更, 終了
    line: int | None
    account_id: int | None
    school: str
    grade: int | None
    class_name: str | None
    number: int | None
    name: str
    item: str = ""
    before: str = ""
    after: str = ""


@dataclass(frozen=True)
class PlannedRow:
    row: Row
    school: Organisation
    group_ids: tuple[int, ...]
    # The account the row updates (None: a new account).
    existing: Existing | None = None


@dataclass
class ImportPlan:
    year: int
    encoding: str
    rows: list[PlannedRow] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)
    columns: frozenset[str] = frozenset()
    # Active accounts of the file's schools that no row names.
    missing: list[Existing] = field(default_factory=list)
    schools: dict[int, Organisation] = field(default_factory=dict)


@dataclass(frozen=True)
class ImportResult:
    accounts: int
    new_contacts: int
    existing_contacts: int
    confirmed: int


@dataclass
class ImportReport:
    """What an import did, or (``applied`` False) what it would do."""

    encoding: str
    errors: list[tuple[int, str]]
    applied: bool = False
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    closed: int = 0
    links_added: int = 0
    links_removed: int = 0
    new_contacts: int = 0
    existing_contacts: int = 0
    confirmed: int = 0
    contacts_removed: int = 0
    withdrawn: int = 0
    changes: list[Change] = field(default_factory=list)
    added_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class ImportOptions:
    confirmed: bool = False
    close_missing: bool = False
    dry_run: bool = False
    # Import nothing when a row is bad (``close_missing`` implies it: a bad row's account
    # would otherwise be closed as missing).
    strict: bool = False
    # Every row must be a new account (a transfer in): a row naming one is an error.
    add_only: bool = False


CHANGES_HEADER = ["行", "操作", "ID", "学校", "学年", "組", "番号", "氏名", "項目", "変更前",
                  "変更後"]


def changes_csv(changes: Sequence[Change]) -> str:
    """The changes as CSV for Excel (UTF-8 with BOM), one line per changed field."""

    def cells(c: Change) -> list[Any]:
        return [
            c.line or "", c.action, c.account_id or "", c.school, c.grade or "",
            c.class_name or "", c.number or "", c.name, c.item, c.before, c.after,
        ]

    return csv_text(CHANGES_HEADER, (cells(c) for c in changes))
