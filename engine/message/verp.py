"""VERP return paths: one per delivery, signed so that a forged bounce cannot name another.

The return path of delivery 12345 looks like ``b-9ix-k3j5q2m7hd@bounce.example.jp``: the
delivery id in base 36 and the first 50 bits of an HMAC-SHA256 of it under a secret key, in
base 32. A bounce arriving at that address names its delivery with no lookup and no state; a
token whose HMAC does not match is refused.

The same scheme, with the prefix ``u-`` and a MAC under another purpose, makes the ``mailto:``
of a mail's ``List-Unsubscribe`` (RFC 2369): a mail to ``u-9ix-...@bounce.example.jp`` asks to
unsubscribe the recipient of delivery 12345. Neither address can be made from the other.
"""

from __future__ import annotations

import functools
import hmac
import re

from engine.message.links import base36 as _base36

PREFIX = "b-"
_TOKEN = re.compile(r"^b-([0-9a-z]{1,13})-([a-z2-7]{10})$")


UNSUBSCRIBE_PREFIX = "u-"
_UNSUBSCRIBE = re.compile(r"^u-([0-9a-z]{1,13})-([a-z2-7]{10})$")


# Base 32 (RFC 4648's alphabet, lower case), two digits (10 bits) at a time.
_B32 = "abcdefghijklmnopqrstuvwxyz234567"
_B32_PAIRS = [a + b for a in _B32 for b in _B32]


def _mac(secret: bytes, delivery_id: int, purpose: bytes = b"") -> str:
    """The first 50 bits of the HMAC in base 32: ``b32encode(digest[:10]).lower()[:10]``,
    without base64's general (and per mail, twice, dearer) encoder."""
    mac = _keyed(secret, purpose).copy()
    mac.update(str(delivery_id).encode("ascii"))
    digest = mac.digest()
    bits = int.from_bytes(digest[:7], "big") >> 6
    pairs = _B32_PAIRS
    return (
        pairs[bits >> 40] + pairs[(bits >> 30) & 1023] + pairs[(bits >> 20) & 1023]
        + pairs[(bits >> 10) & 1023] + pairs[bits & 1023]
    )


@functools.lru_cache(maxsize=16)
def _keyed(secret: bytes, purpose: bytes) -> hmac.HMAC:
    """The HMAC under ``secret`` with ``purpose`` already fed in: copied per mail, which spares
    each MAC OpenSSL's set-up of the key (a third of the cost of ``hmac.digest``)."""
    return hmac.new(secret, purpose, "sha256")


def local_part(secret: bytes, delivery_id: int) -> str:
    return f"{PREFIX}{_base36(delivery_id)}-{_mac(secret, delivery_id)}"


def return_path(secret: bytes, delivery_id: int, domain: str) -> str:
    return f"{local_part(secret, delivery_id)}@{domain}"


def delivery_id_of(secret: bytes, address: str) -> int | None:
    """The delivery named by a VERP address, or None when it is not one or is forged."""
    local = address.rpartition("@")[0].strip("<>").lower() if "@" in address else address.lower()
    m = _TOKEN.match(local)
    if not m:
        return None
    delivery_id = int(m.group(1), 36)
    if not hmac.compare_digest(_mac(secret, delivery_id), m.group(2)):
        return None
    return delivery_id


def unsubscribe_address(secret: bytes, delivery_id: int, domain: str) -> str:
    """The ``mailto:`` unsubscribe address of a delivery."""
    mac = _mac(secret, delivery_id, b"unsubscribe\0")
    return f"{UNSUBSCRIBE_PREFIX}{_base36(delivery_id)}-{mac}@{domain}"


def unsubscribe_id_of(secret: bytes, address: str) -> int | None:
    """The delivery an unsubscribe address names, or None when it is not one or is forged."""
    local = address.strip().strip("<>").rpartition("@")[0].lower()
    m = _UNSUBSCRIBE.match(local)
    if not m:
        return None
    delivery_id = int(m.group(1), 36)
    if not hmac.compare_digest(_mac(secret, delivery_id, b"unsubscribe\0"), m.group(2)):
        return None
    return delivery_id
