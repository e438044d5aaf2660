"""Read the machine-readable part of an RFC 3464 delivery status notification.

A ``message/delivery-status`` body is one block of per-message fields followed by one block per
recipient, blocks separated by blank lines. Mailers get the details wrong in many ways (folded
values, missing blank lines, the part sent as text/plain or base64), so the fields are read
leniently from the decoded text rather than through the header parser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message
from typing import Final

from engine.bounce.classify._mime import first_address, part_text

_FIELD_RE: Final = re.compile(r"^([A-Za-z][A-Za-z0-9-]{1,40})\s*:\s*(.*)$")
_TYPE_RE: Final = re.compile(r"\s*[A-Za-z0-9-]{1,20}\s*")
_STATUS_RE: Final = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")
_RECIPIENT_FIELDS: Final = ("final-recipient", "original-recipient", "x-actual-recipient")


@dataclass(frozen=True, slots=True)
class DsnRecipient:
    """The per-recipient fields of a DSN that classification needs."""

    recipient: str | None
    action: str | None
    status: str | None
    diagnostic: str
    diagnostic_type: str | None
    remote_mta: str | None


def delivery_status_text(part: Message) -> str:
    """Return the text of a delivery-status part however the parser stored it."""
    payload = part.get_payload()
    if isinstance(payload, list):
        # compat32 parses message/delivery-status into one Message per block.
        blocks: list[str] = []
        for block in payload:
            if isinstance(block, Message):
                lines = [f"{k}: {' '.join(str(v).split())}" for k, v in block.items()]
                blocks.append("\n".join(lines))
        return "\n\n".join(blocks)
    return part_text(part)


def _blocks(text: str) -> list[list[tuple[str, str]]]:
    """Split DSN text into blocks of (lower-cased field name, unfolded value)."""
    blocks: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = []
            continue
        if line[0] in " \t" and current:
            name, value = current[-1]
            current[-1] = (name, f"{value} {line.strip()}")
            continue
        m = _FIELD_RE.match(line)
        if m is None:
            continue
        name = m.group(1).lower()
        # A second recipient field in the same block means the mailer left out the blank line.
        if name == "final-recipient" and any(n == "final-recipient" for n, _ in current):
            blocks.append(current)
            current = []
        current.append((name, m.group(2).strip()))
    if current:
        blocks.append(current)
    return blocks


def _strip_type(value: str) -> tuple[str | None, str]:
    """Split "smtp; 550 ..." into ("smtp", "550 ..."); values without a type keep theirs."""
    head, sep, tail = value.partition(";")
    if sep and _TYPE_RE.fullmatch(head):
        return head.strip().lower(), tail.strip()
    return None, value.strip()


def read_recipients(text: str) -> list[DsnRecipient]:
    """Return one entry per recipient block of a delivery-status text, in order."""
    found: list[DsnRecipient] = []
    for block in _blocks(text):
        fields: dict[str, str] = {}
        for name, value in block:
            if name in fields and name == "diagnostic-code":
                fields[name] = f"{fields[name]} {value}"
            else:
                fields.setdefault(name, value)
        if not any(f in fields for f in _RECIPIENT_FIELDS):
            continue
        recipient = None
        for name in _RECIPIENT_FIELDS:
            if name in fields:
                recipient = first_address(_strip_type(fields[name])[1])
                if recipient:
                    break
        diag_type, diagnostic = _strip_type(fields.get("diagnostic-code", ""))
        status_raw = fields.get("status", "").strip()
        status_m = _STATUS_RE.search(status_raw)
        remote = fields.get("remote-mta")
        action_words = fields.get("action", "").lower().split()
        found.append(
            DsnRecipient(
                recipient=recipient,
                action=action_words[0] if action_words else None,
                status=status_m.group(0) if status_m else None,
                diagnostic=" ".join(diagnostic.split()),
                diagnostic_type=diag_type,
                remote_mta=_strip_type(remote)[1] if remote else None,
            )
        )
    return found
