"""Recipient and sender addresses: checking, normalising and writing them for SMTP.

Old docomo and au addresses break RFC 5322's dot-atom (``foo..bar@docomo.ne.jp``,
``foo.@ezweb.ne.jp``) but belong to real guardians, so they are accepted and sent with a
quoted local part (``"foo..bar"@docomo.ne.jp``), which the carriers accept.
"""

from __future__ import annotations

import re

from engine.platform.errors import InputError

# Characters allowed in an unquoted local part by RFC 5322's atext.
_ATEXT = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~-"
_DOT_ATOM = re.compile(rf"^[{_ATEXT}]+(\.[{_ATEXT}]+)*$")
# What we accept as a local part: atext and dots in any arrangement (the carriers' legacy).
_LENIENT_LOCAL = re.compile(rf"^[.{_ATEXT}]+$")
_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def normalise_address(text: str) -> str:
    """Return the address with its domain in lower case, or raise InputError saying why."""
    addr = text.strip()
    if not addr:
        raise InputError("empty address")
    if addr.count("@") != 1:
        raise InputError(f"{addr!r} is not a mail address (it needs exactly one @)")
    local, domain = addr.split("@")
    if not local:
        raise InputError(f"{addr!r} has nothing before the @")
    if len(local) > 64:
        raise InputError(f"{addr!r}: the part before the @ is longer than 64 characters")
    if not _LENIENT_LOCAL.match(local):
        raise InputError(f"{addr!r}: the part before the @ contains characters mail cannot carry")
    domain = domain.lower().rstrip(".")
    try:
        domain = domain.encode("idna").decode("ascii") if not domain.isascii() else domain
    except UnicodeError:
        raise InputError(f"{addr!r}: the domain is not a valid domain name") from None
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels) or len(domain) > 253:
        raise InputError(f"{addr!r}: the domain {domain!r} is not a valid domain name")
    return f"{local}@{domain}"


def domain_of(address: str) -> str:
    return address.rpartition("@")[2]


def smtp_path(address: str) -> str:
    """The address as it goes into MAIL FROM / RCPT TO / To: quoted when not a dot-atom."""
    if not address:
        return address
    local, _, domain = address.rpartition("@")
    if _DOT_ATOM.match(local):
        return address
    escaped = local.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"@{domain}'


# An address inside free text (a receiver's reply, a bounce's diagnostic): an unquoted local
# part, "@", a domain with at least one dot. Quoted local parts of old docomo/au addresses
# ("a..b."@docomo.ne.jp) are caught by their tail after the quote.
_IN_TEXT = re.compile(r'"?([^\s<>()\[\]@,;:"]{1,64})"?@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)')


def mask_addresses(text: str) -> str:
    """``text`` with every address in it shortened to its first two characters and its domain
    ("ta…@docomo.ne.jp"): receivers quote the recipient in their replies, and those replies are
    stored and shown where a full address must not be."""
    return _IN_TEXT.sub(lambda m: f"{m.group(1)[:2]}…@{m.group(2)}", text)
