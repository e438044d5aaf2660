"""The people model's values: organisation kinds, broadcast categories, groups, audiences."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone

from engine.platform.errors import InputError

# Night windows and school years are Japanese local time.
JST = timezone(timedelta(hours=9), "JST")


class OrgKind(enum.StrEnum):
    BOARD = "board"
    ELEMENTARY = "elementary"
    JUNIOR_HIGH = "junior_high"
    COMPULSORY = "compulsory"
    KINDERGARTEN = "kindergarten"
    HIGH = "high"
    SPECIAL_NEEDS = "special_needs"
    OTHER = "other"

    @property
    def label_ja(self) -> str:
        return ORG_KIND_LABELS_JA[self]

    @property
    def default_final_grade(self) -> int:
        return _FINAL_GRADES[self]

    @classmethod
    def parse(cls, text: str) -> OrgKind:
        key = text.strip()
        for kind in cls:
            if key in (kind.value, kind.label_ja):
                return kind
        choices = ", ".join(f"{k.value} ({k.label_ja})" for k in cls)
        raise InputError(f"種別「{key}」は使えません (unknown kind; choose one of: {choices})")


ORG_KIND_LABELS_JA: dict[OrgKind, str] = {
    OrgKind.BOARD: "教育委員会",
    OrgKind.ELEMENTARY: "小学校",
    OrgKind.JUNIOR_HIGH: "中学校",
    OrgKind.COMPULSORY: "義務教育学校",
    OrgKind.KINDERGARTEN: "幼稚園",
    OrgKind.HIGH: "高等学校",
    OrgKind.SPECIAL_NEEDS: "特別支援学校",
    OrgKind.OTHER: "その他",
}

# Kindergartens count their three years as grades 1-3 (年少, 年中, 年長).
_FINAL_GRADES: dict[OrgKind, int] = {
    OrgKind.BOARD: 0,
    OrgKind.ELEMENTARY: 6,
    OrgKind.JUNIOR_HIGH: 3,
    OrgKind.COMPULSORY: 9,
    OrgKind.KINDERGARTEN: 3,
    OrgKind.HIGH: 3,
    OrgKind.SPECIAL_NEEDS: 12,
    OrgKind.OTHER: 12,
}


class Category(enum.StrEnum):
    """What a broadcast is about; groups choose which categories they receive."""

    EMERGENCY = "emergency"
    SUSPICIOUS_PERSON = "suspicious_person"
    SCHOOL_EVENT = "school_event"
    RECRUITMENT = "recruitment"
    NOTICE = "notice"

    @property
    def label_ja(self) -> str:
        return CATEGORY_LABELS_JA[self]

    @classmethod
    def parse(cls, text: str) -> Category:
        key = text.strip()
        for c in cls:
            if key in (c.value, c.label_ja):
                return c
        choices = ", ".join(f"{c.label_ja} ({c.value})" for c in cls)
        raise InputError(f"区分「{key}」はありません (unknown category; choose one of: {choices})")


CATEGORY_LABELS_JA: dict[Category, str] = {
    Category.EMERGENCY: "緊急",
    Category.SUSPICIOUS_PERSON: "不審者情報",
    Category.SCHOOL_EVENT: "学校行事",
    Category.RECRUITMENT: "募集",
    Category.NOTICE: "お知らせ",
}


class AccountKind(enum.StrEnum):
    CHILD = "child"
    STAFF = "staff"


class SkipReason(enum.StrEnum):
    """Why a contact of the audience gets no delivery (suppressed ones get a failed one)."""

    UNCONFIRMED = "unconfirmed"
    LEFT = "left"
    CATEGORY = "category"
    EMERGENCY_ONLY = "emergency_only"


SKIP_LABELS_JA: dict[SkipReason, str] = {
    SkipReason.UNCONFIRMED: "未確認の連絡先",
    SkipReason.LEFT: "配信停止を希望した連絡先",
    SkipReason.CATEGORY: "この区分を受け取らないグループのみ",
    SkipReason.EMERGENCY_ONLY: "緊急連絡だけを希望した連絡先",
}


@dataclass(frozen=True)
class NightWindow:
    """Non-emergency mail that would arrive between ``start`` and ``end`` (Japan time) waits.

    ``start`` after ``end`` spans midnight (21:00-07:00).
    """

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> NightWindow:
        parts = text.replace("〜", "-").replace("~", "-").split("-")
        try:
            if len(parts) != 2:
                raise ValueError
            start, end = (time.fromisoformat(p.strip().zfill(5)) for p in parts)
        except ValueError:
            raise InputError(
                f"夜間の時間帯「{text}」は「21:00-07:00」の形で書いてください "
                f"(write the night window as HH:MM-HH:MM)"
            ) from None
        if start == end:
            raise InputError(f"夜間の時間帯「{text}」の開始と終了が同じです (start equals end)")
        return cls(start, end)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def end_after(self, at: datetime) -> datetime | None:
        """The end of the window ``at`` falls in (an aware time), or None when outside it."""
        local = at.astimezone(JST)
        t = local.time().replace(tzinfo=None)
        if self.start < self.end:
            inside = self.start <= t < self.end
        else:
            inside = t >= self.start or t < self.end
        if not inside:
            return None
        end = local.replace(
            hour=self.end.hour, minute=self.end.minute, second=0, microsecond=0
        )
        if end <= local:
            end += timedelta(days=1)
        return end


@dataclass(frozen=True)
class DeliveryConditions:
    """Which categories a group's members receive, and the night window they keep."""

    # None: every category.
    categories: frozenset[Category] | None = None
    night: NightWindow | None = None

    def receives(self, category: Category) -> bool:
        return self.categories is None or category in self.categories


@dataclass(frozen=True)
class Organisation:
    id: int
    parent_id: int | None
    kind: OrgKind
    code: str
    name: str
    final_grade: int


@dataclass(frozen=True)
class Group:
    id: int
    owner_id: int
    owner_code: str
    owner_name: str
    name: str
    kind: str
    is_public: bool
    conditions: DeliveryConditions
    created_at: datetime


@dataclass(frozen=True)
class Audience:
    """Who a broadcast is for: any combination of these, by id (see engine.people.directory).

    ``boards`` means every account of the board's schools (and the board's own staff).
    """

    boards: tuple[int, ...] = ()
    schools: tuple[int, ...] = ()
    grades: tuple[int, ...] = ()
    classes: tuple[int, ...] = ()
    groups: tuple[int, ...] = ()
    accounts: tuple[int, ...] = ()

    def is_empty(self) -> bool:
        return not any(
            (self.boards, self.schools, self.grades, self.classes, self.groups, self.accounts)
        )

    def as_json(self) -> dict[str, list[int]]:
        return {
            name: list(getattr(self, name))
            for name in ("boards", "schools", "grades", "classes", "groups", "accounts")
            if getattr(self, name)
        }


@dataclass
class Resolved:
    """An audience resolved to addresses, with the contacts left out counted by reason."""

    # Address -> when its delivery may go (None: at the broadcast's send time).
    recipients: dict[str, datetime | None] = field(default_factory=dict)
    skipped: dict[SkipReason, int] = field(default_factory=dict)

    def skip(self, reason: SkipReason) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
