"""Which reply or bounce wording means which reason: the text half of classification.

The wording itself is in ``narrow_wording`` and ``broad_wording``, one ``PhraseGroup`` per
meaning. Order matters: the first meaning that matches wins, so narrow wording (a DMARC
failure, a full mailbox) comes before broad wording ("rejected", "blocked") that would
otherwise swallow it, and ``phrase_reason`` says which of the two kinds matched.
"""

from __future__ import annotations

import functools
import re
from typing import Final

from engine.bounce.classify._broad_wording import BROAD
from engine.bounce.classify._narrow_wording import (
    CERTAIN_USER_UNKNOWN,
    EXPLICIT_USER_UNKNOWN,
    HAS_MOVED,
    NARROW,
    SENDER_REFUSED,
)
from engine.bounce.classify._phrase_group import PhraseGroup
from engine.bounce.classify._rules import is_tracing

_RULES: Final[tuple[PhraseGroup, ...]] = NARROW + BROAD

# "550-5.7.1 ..." continuation prefixes split sentences across lines; these are removed before
# matching so that a phrase broken over two reply lines is still found.
_CONTINUATION_RE: Final = re.compile(r"(?:\n\s*|\s)[245]\d\d[ -](?:#?[245]\.\d{1,3}\.\d{1,3}\s+)?")

_CERTAIN_USER_UNKNOWN: Final = CERTAIN_USER_UNKNOWN


def names_unknown_mailbox_plainly(text: str) -> bool:
    """True when the text says the mailbox does not exist in words no filter uses."""
    if is_tracing():
        return _CERTAIN_USER_UNKNOWN.decides(text[:20_000].lower())
    return _cached_certain(text)


@functools.lru_cache(maxsize=64)
def _cached_certain(text: str) -> bool:
    return _CERTAIN_USER_UNKNOWN.decides(text[:20_000].lower())


# The meanings ``decide_reason`` asks about by name, before the first-match reading of all.
_NAMED: Final[dict[str, PhraseGroup]] = {
    "user unknown": EXPLICIT_USER_UNKNOWN,
    "moved": HAS_MOVED,
    "sender refused": SENDER_REFUSED,
}


def says(meaning: str, text: str) -> bool:
    """True when the text's wording has the named meaning (see ``_NAMED``)."""
    if not text:
        return False
    if is_tracing():
        return _says(meaning, text)
    return _cached_says(meaning, text)


def _says(meaning: str, text: str) -> bool:
    return _NAMED[meaning].decides(_CONTINUATION_RE.sub(" ", text[:20_000]).lower())


_cached_says: Final = functools.lru_cache(maxsize=256)(_says)


def phrase_reason(text: str) -> tuple[str, bool] | None:
    """Return the reason the wording points to and whether the wording is weak (broad)."""
    if not text:
        return None
    if is_tracing():
        return _phrase_reason(text)
    # A bounce's report section is read once per recipient and once per question asked of
    # it; remembering the last few answers keeps a bounce well under a millisecond.
    return _cached_phrase_reason(text)


def _phrase_reason(text: str) -> tuple[str, bool] | None:
    text = _CONTINUATION_RE.sub(" ", text[:20_000]).lower()
    for group in _RULES:
        if group.decides(text):
            return group.reason, group.weak
    return None


_cached_phrase_reason: Final = functools.lru_cache(maxsize=64)(_phrase_reason)


def reason_from_text(text: str) -> str | None:
    """Return the reason the wording of a reply or bounce points to, or None if it says nothing."""
    found = phrase_reason(text)
    return found[0] if found else None
