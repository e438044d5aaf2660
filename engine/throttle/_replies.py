"""What a reply says about whom: the recipient alone, or (by elimination) the site.

Carriers publish neither their thresholds nor their texts (research notes, carriers.md), so the
shaper cannot rely on recognising words. This is the one reading that uses wording, and only to
*exempt*: a reply about the recipient (RFC 3463 x.1.x addressing and x.2.x mailbox status, x.3.4
too big for the recipient's system, or the unknown-user wordings the carriers use without
enhanced codes) says nothing about the site: it is never congestion and never part of a block.
Nothing escalates by its words: a "blocked" or "spam" in one recipient's reply is what a
family's own filter says as well, so blocks are inferred from what replies do
(`_congestion.py`).
"""

from __future__ import annotations

import re

# Enhanced status classes about the recipient's address or mailbox (RFC 3463 3.2, 3.3), and
# x.3.4 (message too big for the recipient's system).
_RECIPIENT_STATUS = re.compile(r"^[45]\.(1\.\d+|2\.\d+|3\.4)$")
_RECIPIENT_TEXT = re.compile(
    r"unknown user|user unknown|no such (user|mailbox|recipient|address)"
    r"|invalid (recipient|mailbox|address)|(mailbox|account|address|user)\b.{0,40}"
    r"(does not exist|doesn't exist|not found|disabled)|mailbox (is )?full|over quota"
    r"|too much mail data",
    re.IGNORECASE,
)


def about_recipient(code: int | None, status: str | None, text: str) -> bool:
    """Whether a reply concerns only the recipient (unknown user, full mailbox, ...)."""
    if code is None or code < 400:
        return False
    if status and _RECIPIENT_STATUS.match(status):
        return True
    return bool(_RECIPIENT_TEXT.search(text))
