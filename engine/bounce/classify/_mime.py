"""Safe, bounded access to a received mail: parsing, header and body decoding, addresses.

Everything here tolerates broken input. The ``email`` package does the MIME and charset work;
this module only bounds it (a bounce may carry a 20 MB original) and picks a fallback charset
when a part lies about its own (Japanese mailers often label EUC-JP text as ISO-2022-JP).
"""

from __future__ import annotations

import email
import email.header
import re
from email import policy
from email.message import Message
from typing import Final

#: Only this much of a received mail is parsed; bounce reports sit at the top of the mail and
#: whatever follows is the (possibly huge) returned original.
MAX_MAIL_BYTES: Final = 1_000_000
#: Only this much decoded text of one part is scanned for recipients and reasons.
MAX_TEXT_CHARS: Final = 200_000
#: At most this many MIME parts are looked at.
MAX_PARTS: Final = 200

_FALLBACK_CHARSETS: Final = ("utf-8", "iso-2022-jp", "euc-jp", "cp932")

ADDRESS_RE: Final = re.compile(
    r"""(?:"[^"\r\n]{1,64}"|[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64})@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)+"""
)


def load_message(raw: bytes) -> Message:
    """Parse at most ``MAX_MAIL_BYTES`` of a mail; compat32 because it never refuses a header."""
    return email.message_from_bytes(raw[:MAX_MAIL_BYTES], policy=policy.compat32)


def decode_header_value(value: object) -> str:
    """Decode an RFC 2047 header value to text; undecodable pieces are replaced, not raised."""
    if value is None:
        return ""
    text = str(value)
    try:
        pieces = email.header.decode_header(text)
    except Exception:  # noqa: BLE001 - a broken encoded-word must not stop classification
        return " ".join(text.split())
    out: list[str] = []
    for chunk, charset in pieces:
        if isinstance(chunk, str):
            out.append(chunk)
        else:
            out.append(decode_bytes(chunk, charset))
    return " ".join("".join(out).split())


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode bytes with the declared charset, falling back to common Japanese ones."""
    if charset:
        try:
            return data.decode(charset)
        except (LookupError, UnicodeDecodeError):
            pass
    for candidate in _FALLBACK_CHARSETS:
        try:
            return data.decode(candidate)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def part_text(part: Message) -> str:
    """Return the decoded text of one leaf part, at most ``MAX_TEXT_CHARS`` characters."""
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        text = decode_bytes(payload[: MAX_TEXT_CHARS * 2], part.get_content_charset())
    else:
        raw = part.get_payload()
        text = raw if isinstance(raw, str) else ""
    if part.get_content_subtype() == "html":
        text = html_to_text(text)
    return text[:MAX_TEXT_CHARS].replace("\r\n", "\n").replace("\r", "\n")


_TAG_RE: Final = re.compile(r"<(?:br|/p|/div|/tr|/li)[^>]*>", re.IGNORECASE)
_ANY_TAG_RE: Final = re.compile(r"<[^>]{0,2000}>")
_ENTITIES: Final = {"&lt;": "<", "&gt;": ">", "&amp;": "&", "&nbsp;": " ", "&quot;": '"'}


def html_to_text(html: str) -> str:
    """Reduce HTML to its text well enough to find addresses and reply lines in it."""
    text = _TAG_RE.sub("\n", html)
    text = _ANY_TAG_RE.sub("", text)
    for entity, char in _ENTITIES.items():
        text = text.replace(entity, char)
    return text


def walk_parts(message: Message) -> list[Message]:
    """Return the message's parts in order, at most ``MAX_PARTS`` of them."""
    parts: list[Message] = []
    for part in message.walk():
        parts.append(part)
        if len(parts) >= MAX_PARTS:
            break
    return parts


def addresses_in(text: str) -> list[str]:
    """Return the addresses written in a text, in order, without duplicates (case-insensitive)."""
    seen: set[str] = set()
    found: list[str] = []
    for m in ADDRESS_RE.finditer(text):
        address = m.group(0).strip(".")
        key = address.lower()
        if key not in seen:
            seen.add(key)
            found.append(address)
    return found


def first_address(text: str) -> str | None:
    """Return the first address in a text (a header value, a DSN field), if there is one."""
    m = ADDRESS_RE.search(text)
    return m.group(0).strip(".") if m else None


def is_valid_address(address: str | None) -> bool:
    """True for an address with one @, a non-empty local part and a dotted domain."""
    if not address or address.count("@") != 1:
        return False
    local, domain = address.split("@")
    return bool(local) and "." in domain and not domain.startswith(".") and not domain.endswith(".")
