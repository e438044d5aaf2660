"""One meaning of bounce wording: the unit the phrase tables are made of.

A ``PhraseGroup`` holds the wordings (regular expressions, lower case) that all say one thing
("the mailbox is over quota") and the reason that thing means. It matches with one combined
regex; while the benchmark traces rules it checks the meaning and each wording by name, so a
meaning or a single wording can be switched off (see ``rules``).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from engine.bounce.classify._rules import allowed, is_tracing


@dataclass(frozen=True, slots=True)
class PhraseGroup:
    """Wordings that all mean one reason: one regex for speed, and each wording for tracing."""

    reason: str
    rule_id: str
    pattern: re.Pattern[str]
    #: Each wording's rule id and pattern text: compiled only when first traced (``_compiled``),
    #: so importing the classifier compiles each table once, not twice.
    phrases: tuple[tuple[str, str], ...]
    #: Broad wording ("rejected", "try again later", "timed out") that a precise RFC 3463
    #: status outranks; narrow wording outranks the status.
    weak: bool = False

    def decides(self, text: str) -> bool:
        """True when a phrase of this group is in the text (and, when tracing, allowed)."""
        if not self.pattern.search(text):
            return False
        if not is_tracing():
            return True
        # Traced at two levels: the meaning (the group) and each wording of it.
        if not allowed(self.rule_id):
            return False
        return any(_compiled(p).search(text) and allowed(rule_id) for rule_id, p in self.phrases)


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def rule(
    reason: str, meaning: str, *patterns: str, kind: str = "phrase", weak: bool = False
) -> PhraseGroup:
    # Patterns are written in lower case and matched against lower-cased text: twice as fast
    # as IGNORECASE matching.
    return PhraseGroup(
        reason,
        f"{kind}:{reason}:{meaning}",
        re.compile("|".join(f"(?:{p})" for p in patterns)),
        tuple((f"wording:{kind}:{reason}:{p}", p) for p in patterns),
        weak,
    )
