"""Operator-facing bounce categories: a dozen kinds with Japanese labels, each hard or soft.

A category groups fine-grained reasons (see ``reasons``) into what a school mail operator can
act on. ``hard`` says what the engine does with the address by default: suppress it (hard) or
try it again later (soft). A single verdict's ``hard`` flag can still differ from its category's
(a temporary ``notaccept`` is soft while its category is hard).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from engine.bounce.classify import reasons as r


@dataclass(frozen=True, slots=True)
class Category:
    """One operator-facing kind of bounce."""

    key: str
    label_ja: str
    hard: bool
    reasons: frozenset[str]


_DEFINITIONS: Final[tuple[Category, ...]] = (
    Category("unknown_user", "宛先不明", True, frozenset({r.USER_UNKNOWN, r.HAS_MOVED})),
    Category("unknown_domain", "ドメイン不明", True, frozenset({r.HOST_UNKNOWN, r.NOT_ACCEPT})),
    Category("mailbox_full", "容量超過", False, frozenset({r.MAILBOX_FULL})),
    Category("too_big", "サイズ超過", False, frozenset({r.MESG_TOO_BIG, r.EXCEED_LIMIT})),
    Category("suspended", "アカウント停止中", False, frozenset({r.SUSPEND})),
    Category(
        "refused",
        "受信拒否・フィルタ",
        False,
        frozenset(
            {
                r.FILTERED,
                r.REJECTED,
                r.NO_RELAYING,
                r.POLICY_VIOLATION,
                r.CONTENT_ERROR,
                r.NOT_COMPLIANT_RFC,
                r.SYNTAX_ERROR,
            }
        ),
    ),
    Category(
        "spam_blocked",
        "迷惑メール判定・ブロック",
        False,
        frozenset({r.BLOCKED, r.SPAM_DETECTED, r.BAD_REPUTATION, r.REQUIRE_PTR, r.VIRUS_DETECTED}),
    ),
    Category(
        "auth_failed", "送信ドメイン認証失敗", False, frozenset({r.AUTH_FAILURE, r.SECURITY_ERROR})
    ),
    Category(
        "congestion",
        "混雑・速度制限",
        False,
        frozenset({r.TOO_MANY_CONN, r.SPEEDING, r.RATE_LIMITED, r.SYSTEM_FULL}),
    ),
    Category(
        "network_expired",
        "通信エラー・期限切れ",
        False,
        frozenset({r.NETWORK_ERROR, r.EXPIRED, r.FAILED_STARTTLS, r.SYSTEM_ERROR, r.MAILER_ERROR}),
    ),
    Category("autoreply", "自動応答", False, frozenset({r.VACATION})),
    Category("complaint", "苦情(迷惑メール報告)", False, frozenset({r.FEEDBACK})),
    Category("other", "その他", False, frozenset({r.ON_HOLD, r.DELIVERED, r.UNDEFINED})),
)

OTHER: Final = "other"

#: Category key → category, in the order operators see them.
CATEGORIES: Final = MappingProxyType({c.key: c for c in _DEFINITIONS})

_BY_REASON: Final = MappingProxyType({reason: c.key for c in _DEFINITIONS for reason in c.reasons})


def category_for_reason(reason: str) -> str:
    """Return the category key for a reason name; unknown names fall into ``"other"``."""
    return _BY_REASON.get(reason, OTHER)
