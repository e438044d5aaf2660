"""Bounce classification: SMTP replies, DSNs, non-standard bounces, complaints and auto-replies.

Pure functions only (no I/O, no clock, no database): text in, ``Verdict`` out, so that each
rule can be tested alone and the whole measured on a labelled corpus (``bench/bounce_accuracy``).

Offers ``classify_reply`` (one SMTP reply), ``parse_bounce`` (one mail that reached a bounce
address), ``Verdict`` / ``BounceReport``, and two public modules: ``reasons`` (the fine reasons)
and ``categories`` (the operator categories with their Japanese labels). The ``_``-modules are
the rules behind them, in the order a bounce is read: ``_mime`` (the parts), ``_dsn`` /
``_feedback`` / ``_ses`` / ``_nonstandard`` (the formats), ``_rules`` / ``_phrase_group`` /
``_narrow_wording`` / ``_broad_wording`` / ``_phrases`` (wording), ``_diagnosis`` (status codes
and text to a reason), ``_verdict``; ``_reply`` and ``_parse`` put them together.
"""

from __future__ import annotations

from engine.bounce.classify._parse import parse_bounce
from engine.bounce.classify._reply import classify_reply
from engine.bounce.classify._verdict import BounceReport, Verdict
from engine.bounce.classify.categories import CATEGORIES, Category, category_for_reason
from engine.bounce.classify.reasons import ALL_REASONS

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
