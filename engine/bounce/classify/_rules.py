"""Named classification rules that can be traced and switched off, to measure generalisation.

Every rule learnt from real mail (a phrase, a carrier's quirk, a provider's error code) asks
``allowed(rule_id)`` before it decides a reason. Normally nothing is traced and every rule is
allowed, at the cost of one context-variable lookup. The accuracy benchmark runs the classifier
inside ``tracing()`` to learn which rules each mail needed and then re-runs mails with the rules
that only *they* needed switched off: the honest "left out of tuning" figure for a rule-based
classifier. Rules that restate an RFC (the RFC 3463 status table, RFC 3464 fields) are not
named here: they were not learnt from the mails, so leaving a mail out cannot remove them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass(slots=True)
class RuleTrace:
    """The rules that fired while tracing, and the ones that were switched off."""

    disabled: frozenset[str] = frozenset()
    fired: list[str] = field(default_factory=list)


_ACTIVE: ContextVar[RuleTrace | None] = ContextVar("mamoru_bounce_rule_trace", default=None)


def is_tracing() -> bool:
    """True inside ``tracing()``: callers then check rules one by one instead of in bulk."""
    return _ACTIVE.get() is not None


def allowed(rule_id: str) -> bool:
    """Return whether the rule may decide; while tracing, record that it did."""
    trace = _ACTIVE.get()
    if trace is None:
        return True
    if rule_id in trace.disabled:
        return False
    trace.fired.append(rule_id)
    return True


@contextmanager
def tracing(disabled: frozenset[str] = frozenset()) -> Iterator[RuleTrace]:
    """Record the rules that fire inside the block, with ``disabled`` rules switched off."""
    trace = RuleTrace(disabled=disabled)
    token = _ACTIVE.set(trace)
    try:
        yield trace
    finally:
        _ACTIVE.reset(token)
