"""Recognise complaint reports (RFC 5965 ARF) and automatic replies (RFC 3834) and read them.

Neither says the address is bad: a complaint means the guardian marked our mail as spam (the
engine should stop sending *bulk* mail to them), an auto-reply means someone is away.
"""

from __future__ import annotations

import re
from email.message import Message
from typing import Final

from engine.bounce.mime import decode_header_value, first_address, part_text

_FEEDBACK_FIELD_RE: Final = re.compile(
    r"^(original-rcpt-to|removal-recipient|original-mail-from|feedback-type)\s*:\s*(.+)$",
    re.IGNORECASE | re.MULTILINE,
)

_AUTOREPLY_SUBJECT_RE: Final = re.compile(
    r"^(?:auto(?:matic)?[ -]?(?:reply|response|antwort)|auto:|out of (?:the )?office|away|"
    r"on vacation|vacation|absence|自動応答|自動返信|不在)",
    re.IGNORECASE,
)


def feedback_fields(part: Message) -> dict[str, str]:
    """Return the lower-cased fields of a message/feedback-report part that matter to us."""
    payload = part.get_payload()
    if isinstance(payload, list):
        text = "\n".join(
            f"{k}: {v}" for block in payload if isinstance(block, Message) for k, v in block.items()
        )
    else:
        text = part_text(part)
    fields: dict[str, str] = {}
    for m in _FEEDBACK_FIELD_RE.finditer(text):
        fields.setdefault(m.group(1).lower(), m.group(2).strip())
    return fields


def feedback_recipient(fields: dict[str, str], original: Message | None) -> str | None:
    """Return whose complaint this is: the reported recipient, else the original's To."""
    for name in ("original-rcpt-to", "removal-recipient"):
        address = first_address(fields.get(name, ""))
        if address:
            return address
    if original is not None:
        return first_address(decode_header_value(original.get("To")))
    return None


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
