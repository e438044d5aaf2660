"""What a reply says about whom: the recipient alone, or the sending address at the site.

Carriers publish neither their thresholds nor their texts (research notes, carriers.md), so the
shaper cannot rely on recognising words. These two readings are the only ones that use wording,
and both only to *exempt* or *escalate* — the congestion and block detectors (`congestion.py`)
decide from what replies do:

- A reply about the recipient (RFC 3463 x.1.x addressing and x.2.x mailbox status, or the
  unknown-user wordings the carriers use without enhanced codes) says nothing about the site:
  it is never congestion and never part of a block.
- A block reply names the sender, not the recipient: a 554 at the greeting (RFC 5321 4.2:
  "no SMTP service here"), or a 5xx whose x.7.x status or text speaks of blocking, listing,
  reputation, policy, spam rate or refusal of the client host.
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
_BLOCK_TEXT = re.compile(
    r"block|black ?list|\blisted\b|\brbl\b|dnsbl|reputation|policy|spam|abuse"
    r"|client host|refused|denied|rejected due to|not allowed|banned",
    re.IGNORECASE,
)


def about_recipient(code: int | None, status: str | None, text: str) -> bool:
    """Whether a reply concerns only the recipient (unknown user, full mailbox, ...)."""
    if code is None or code < 400:
        return False
    if status and _RECIPIENT_STATUS.match(status):
        return True
    return bool(_RECIPIENT_TEXT.search(text))


def says_block(code: int | None, status: str | None, text: str, stage: str) -> bool:
    """Whether a 5xx reply says the site refuses the sending address itself."""
    if code is None or not 500 <= code < 600 or about_recipient(code, status, text):
        return False
    if stage == "CONNECT" and code in (554, 550, 521):
        return True  # refused at the greeting: nothing about any recipient was said yet
    if status and status.startswith("5.7.") and _BLOCK_TEXT.search(text):
        return True
    return bool(_BLOCK_TEXT.search(text)) and code in (550, 553, 554)
