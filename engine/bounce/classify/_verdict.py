"""The result types of bounce classification: one ``Verdict`` per recipient, one report per mail."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from engine.bounce.classify.categories import category_for_reason
from engine.bounce.classify.reasons import is_hard

Source = Literal["smtp", "dsn", "nonstandard", "arf", "autoreply"]
ReportKind = Literal["dsn", "nonstandard", "arf", "autoreply", "unknown"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one delivery failure (or report) says about one recipient."""

    recipient: str | None
    reply_code: int | None
    status: str | None
    diagnostic: str
    reason: str
    category: str
    hard: bool
    action: str | None
    source: Source


def make_verdict(
    *,
    recipient: str | None,
    reply_code: int | None,
    status: str | None,
    diagnostic: str,
    reason: str,
    action: str | None,
    source: Source,
) -> Verdict:
    """Build a verdict whose category and hard flag are derived from the reason, never by hand."""
    return Verdict(
        recipient=recipient,
        reply_code=reply_code,
        status=status,
        diagnostic=diagnostic,
        reason=reason,
        category=category_for_reason(reason),
        hard=is_hard(reason, status, reply_code),
        action=action,
        source=source,
    )


@dataclass(frozen=True, slots=True)
class BounceReport:
    """Everything ``parse_bounce`` could learn from one received mail.

    ``message_id``, ``delivery_id`` (our ``X-Mamoru-Delivery`` header) and ``return_path`` come
    from the original message when the bounce attaches or quotes it; the engine matches the
    bounce to its delivery with them when the VERP address alone is not enough.
    """

    kind: ReportKind
    verdicts: list[Verdict] = field(default_factory=list)
    message_id: str | None = None
    delivery_id: str | None = None
    return_path: str | None = None
