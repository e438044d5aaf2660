"""Find failed recipients and their error text in a bounce written for humans, not machines.

Postfix, Exim, qmail, Sendmail, Exchange, Gmail, Yahoo, carriers and many appliances each word
their bounces differently, but they share a shape: some prose, then each failed address with the
remote server's reply near it, then (after a marker line) a copy of the original message. This
module relies on that shape instead of on one template per mailer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from engine.bounce.classify._mime import ADDRESS_RE

# Lines that start the returned copy of the original message: nothing after them is report.
_ORIGINAL_MARKER_RE: Final = re.compile(
    r"^\s*(?:"
    r"-{2,}\s*(?:the )?(?:original|returned|undelivered|unsent|below this line|this is a copy"
    r"|header|message headers|copy of)"
    r"|original message (?:follows|headers?)"
    r"|(?:the )?(?:original )?message headers? follows?"
    r"|message headers follow"
    r"|original mail as follows"
    r"|below this line is a copy"
    r"|-+ ?original message ?-+"
    r"|content-type: message/rfc822"
    r"|the header of the original message"
    r"|-{5,}\s*$"
    r"|={5,}\s*$(?!x)"
    r"|(?:received|return-path|dkim-signature|x-received|arc-seal|authentication-results):"
    r")",
    re.IGNORECASE,
)

_RULE_LINE_RE: Final = re.compile(r"[-=]{5,}")
_REPLY_CODE_RE: Final = re.compile(r"\b[245]\d\d\b")
_NOT_RECIPIENT_LOCAL: Final = frozenset(
    {"mailer-daemon", "mail-daemon", "maildaemon", "mailerdaemon"}
)
# Addresses right after these words belong to the sender or to message identifiers.
_SENDER_CONTEXT_RE: Final = re.compile(
    r"(?:\bmail from|\bfrom|sender|envelope-from|return-path|reply-to|message-id|in-reply-to"
    r"|references)\s*[:=]?\s*<?$",
    re.IGNORECASE,
)


# A quoted header line of the original ("  To: someone") names who the mail was for, not
# necessarily who failed; such addresses count only when nothing better is in the report.
_QUOTED_HEADER_RE: Final = re.compile(r"^\s*(?:to|cc|bcc|subject|sent|date)\s*:", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class TextRecipient:
    """A failed address found in a human-readable bounce, and the text that concerns it."""

    recipient: str
    block: str


def report_section(text: str) -> str:
    """Return the part of a bounce body that comes before the returned original message."""
    lines = text.split("\n")
    seen_content = False
    for i, line in enumerate(lines):
        stripped = line.strip()
        # Decorative rules at the very top (before any prose) are not a marker.
        if seen_content and _ORIGINAL_MARKER_RE.match(line) and not _is_frame(stripped, lines, i):
            return "\n".join(lines[:i])
        if stripped:
            seen_content = True
    return text


def _is_frame(stripped: str, lines: list[str], index: int) -> bool:
    """True when a bare rule of dashes or equals signs frames report text rather than ending it."""
    if not _RULE_LINE_RE.fullmatch(stripped):
        return False
    # Report text frames usually carry an address or a reply code in the next few lines.
    following = "\n".join(lines[index + 1 : index + 6])
    return bool(ADDRESS_RE.search(following) or _REPLY_CODE_RE.search(following))


def find_recipients(report: str, exclude: set[str]) -> list[TextRecipient]:
    """Return each failed address in a report section with the lines that concern it.

    ``exclude`` holds lower-cased addresses that are known not to be failed recipients (the
    bounce's own sender and receiver, the original sender).
    """
    lines = report.split("\n")
    on_line: list[set[str]] = []
    order: list[str] = []
    seen: set[str] = set()
    outside_quoted_headers: set[str] = set()
    for line in lines:
        quoted_header = bool(_QUOTED_HEADER_RE.match(line))
        keys: set[str] = set()
        for m in ADDRESS_RE.finditer(line):
            address = m.group(0).strip(".")
            key = address.lower()
            if key in exclude or key.split("@")[0].strip('"') in _NOT_RECIPIENT_LOCAL:
                continue
            if _SENDER_CONTEXT_RE.search(line[: m.start()]):
                continue
            keys.add(key)
            if not quoted_header:
                outside_quoted_headers.add(key)
            if key not in seen:
                seen.add(key)
                order.append(address)
        on_line.append(keys)
    if outside_quoted_headers:
        order = [a for a in order if a.lower() in outside_quoted_headers]
    found: list[TextRecipient] = []
    for address in order:
        key = address.lower()
        pieces: list[str] = []
        index = 0
        while index < len(lines):
            if key not in on_line[index]:
                index += 1
                continue
            # The block runs until a line that names another recipient and not this one.
            end = index + 1
            while end < len(lines) and not (on_line[end] and key not in on_line[end]):
                end += 1
            pieces.append("\n".join(lines[index:end]))
            index = end
        found.append(TextRecipient(recipient=address, block="\n".join(pieces)))
    return found
