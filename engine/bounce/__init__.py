"""Bounce classification: SMTP replies, DSNs, non-standard bounces, complaints and auto-replies.

Pure functions only (no I/O, no clock): the delivery runner calls ``classify_reply`` on each
failed attempt, the inbound side calls ``parse_bounce`` on each mail that reaches the bounce
address, and both get ``Verdict`` objects whose ``category`` keys into ``CATEGORIES``.
"""

from __future__ import annotations

from engine.bounce.categories import CATEGORIES, Category, category_for_reason
from engine.bounce.parse import parse_bounce
from engine.bounce.reasons import ALL_REASONS
from engine.bounce.reply import classify_reply
from engine.bounce.verdict import BounceReport, Verdict

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
