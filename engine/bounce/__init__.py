"""Bounces and what follows from them: classification, the suppression list, the error report.

    classify/     pure classification of replies, DSNs and feedback reports (no I/O)
    received      bounce rows and service-address mail the inbound server stored
    suppression   the suppression list: addresses nothing is sent to, and the rules that fill it
    report        the error report: failures grouped by operator category, with examples

The names below are the classifier's, re-exported: the runner calls ``classify_reply`` on each
failed attempt, the inbound side ``parse_bounce`` on each mail to a bounce address.
"""

from __future__ import annotations

from engine.bounce.classify import (
    ALL_REASONS,
    CATEGORIES,
    BounceReport,
    Category,
    Verdict,
    category_for_reason,
    classify_reply,
    parse_bounce,
)

__all__ = [
    "ALL_REASONS",
    "CATEGORIES",
    "BounceReport",
    "Category",
    "Verdict",
    "category_for_reason",
    "classify_reply",
    "parse_bounce",
]
