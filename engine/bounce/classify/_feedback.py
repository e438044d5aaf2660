"""Recognise complaint reports (RFC 5965 ARF) and automatic replies (RFC 3834) and read them.

Neither says the address is bad: a complaint means the guardian marked our mail as spam (the
engine should stop sending *bulk* mail to them), an auto-reply means someone is away.

A complaint is recognised by its structure, in this order: a ``message/feedback-report`` part
(also inside a forwarded mail), ``report-type=feedback-report``, RFC 5965 fields written into
a text part (``Feedback-Type:`` with ``User-Agent:`` or ``Version:``), Microsoft's JMRP reports
(the original carries ``X-HmXmrOriginalRecipient``), and Apple Mail's unsubscribe request
(``X-Apple-Unsubscribe: true``), which asks the same thing of us: stop sending.
"""

from __future__ import annotations

import re
from email.message import Message
from typing import Final

from engine.bounce.classify._mime import decode_header_value, first_address, part_text
from engine.bounce.classify._rules import allowed

_FEEDBACK_FIELD_RE: Final = re.compile(
    r"^(original-rcpt-to|removal-recipient|original-mail-from|feedback-type)\s*:\s*(.+)$",
    re.IGNORECASE | re.MULTILINE,
)
_RECIPIENT_FIELD_RE: Final = re.compile(
    r"^(?:original-rcpt-to|removal-recipient)\s*:\s*(.+)$", re.IGNORECASE | re.MULTILINE
)
# RFC 5965 section 3.1: Feedback-Type at a line start followed by another of the report's own
# fields is a feedback report even when no MIME part says so.
_INLINE_REPORT_RE: Final = re.compile(
    r"^feedback-type\s*:\s*[a-z-]+\s*$(?:.|\n){0,600}?"
    r"^(?:user-agent|version|original-rcpt-to|original-mail-from|arrival-date|source-ip"
    r"|reported-domain)\s*:",
    re.IGNORECASE | re.MULTILINE,
)
_JMRP_HEADER: Final = "X-HmXmrOriginalRecipient"

_AUTOREPLY_SUBJECT_RE: Final = re.compile(
    r"^(?:auto(?:matic)?[ -]?(?:reply|response|antwort)|auto:|out of (?:the )?office|away|"
    r"on vacation|vacation|absence|自動応答|自動返信|不在)",
    re.IGNORECASE,
)


def has_inline_report(text: str) -> bool:
    """True when a text carries the required RFC 5965 fields at line starts."""
    return bool(_INLINE_REPORT_RE.search(text))


def is_unsubscribe_request(message: Message) -> bool:
    """True for Apple Mail's automatic unsubscribe request (``X-Apple-Unsubscribe: true``)."""
    return str(message.get("X-Apple-Unsubscribe", "")).strip().lower() == "true" and allowed(
        "provider:apple:unsubscribe request"
    )


def jmrp_recipient(*messages: Message | None) -> str | None:
    """Return the complainant of a Microsoft JMRP report, from the header it adds."""
    for message in messages:
        if message is not None and message.get(_JMRP_HEADER) and allowed("provider:microsoft:jmrp"):
            return first_address(decode_header_value(message.get(_JMRP_HEADER))) or ""
    return None


def feedback_text(part: Message) -> str:
    """Return the text of a message/feedback-report part however the parser stored it."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return "\n".join(
            f"{k}: {v}" for block in payload if isinstance(block, Message) for k, v in block.items()
        )
    return part_text(part)


def fields_in_text(text: str) -> dict[str, str]:
    """Return the lower-cased feedback fields written in a text, first occurrence of each."""
    fields: dict[str, str] = {}
    for m in _FEEDBACK_FIELD_RE.finditer(text):
        fields.setdefault(m.group(1).lower(), m.group(2).strip())
    return fields


def feedback_recipients(text: str, original: Message | None) -> list[str]:
    """Return whose complaint this is: every reported recipient in order, else the original's To.

    RFC 5965 lets ``Original-Rcpt-To`` appear once per recipient of the reported message;
    some providers name them in ``Removal-Recipient`` instead. Each address counts once.
    """
    found: list[str] = []
    seen: set[str] = set()
    for m in _RECIPIENT_FIELD_RE.finditer(text):
        address = first_address(m.group(1))
        if address and address.lower() not in seen:
            seen.add(address.lower())
            found.append(address)
    if found:
        return found
    if original is not None:
        address = first_address(decode_header_value(original.get("To")))
        if address:
            return [address]
    return []


def is_autoreply(message: Message) -> bool:
    """True when the headers mark the mail as an automatic reply (not a bounce)."""
    auto = str(message.get("Auto-Submitted", "")).strip().lower()
    if auto.startswith("auto-replied"):
        return True
    if message.get("X-Autoreply") or message.get("X-Autorespond"):
        return True
    if str(message.get("Precedence", "")).strip().lower() == "auto_reply":
        return True
    return bool(_AUTOREPLY_SUBJECT_RE.match(decode_header_value(message.get("Subject"))))
