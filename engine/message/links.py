"""Personal link tokens: signed, expiring, URL-safe proof of "this link was mailed to X".

A guardian's mail carries links (one-click unsubscribe, change of address, read confirmation,
answers) that must name their delivery or contact without showing a raw id anyone could change,
and must stop working after a while. A token is

    <id in base 36> "." <expiry in base 36, Unix seconds> "." <MAC>

where MAC is the first 128 bits of HMAC-SHA256 over (purpose, id, expiry) in URL-safe base64
without padding. The purpose ("unsubscribe", "read", ...) is bound into the MAC but not written
in the token: the page that verifies knows which purpose it serves, so a read-confirmation token
cannot be used to unsubscribe. Tokens contain only ``[0-9a-z._A-Z-]`` and need no escaping in a
URL, a header or a template.

    links = LinkSigner(secret)                       # secret: bytes kept by the deployment
    token = links.token("unsubscribe", delivery_id, expires_at)
    delivery_id = links.verify("unsubscribe", token, now)   # or InvalidLink

Verification compares MACs in constant time (``hmac.compare_digest``) and checks the expiry
after the MAC, so an attacker learns nothing from timing or from the error.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable
from datetime import datetime

from engine.platform.errors import MamoruError

__all__ = ["PAGE", "InvalidLink", "LinkSigner", "base36", "link_key", "personal_page_url"]

_MAC_BYTES = 16
_TOKEN = re.compile(r"^([0-9a-z]{1,13})\.([0-9a-z]{1,13})\.([A-Za-z0-9_-]{22})$")
_PURPOSE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
# Two base-36 digits at a time: half the divisions of one at a time.
_DIGIT_PAIRS = [a + b for a in _DIGITS for b in _DIGITS]
_URL_SAFE = bytes.maketrans(b"+/", b"-_")


class InvalidLink(MamoruError):
    """A link token is malformed, forged, for another purpose, or expired."""

    def __init__(self, message: str, expired: bool = False) -> None:
        super().__init__(message)
        # Only true for a genuine token past its time: the page may then offer a fresh link.
        self.expired = expired


def link_key(secret: bytes) -> bytes:
    """The key for link MACs derived from a deployment secret (e.g. the database's VERP key),
    so one stored secret serves both without a MAC of one kind ever validating the other."""
    return hmac.new(secret, b"mamoru personal links v1", hashlib.sha256).digest()


class LinkSigner:
    """Makes and checks personal link tokens with one secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("a link secret needs at least 16 bytes")
        self._key = link_key(secret)

    def token(self, purpose: str, subject_id: int, expires: datetime | int) -> str:
        """A token for `subject_id` (a delivery or contact id) valid until `expires`."""
        _check_purpose(purpose)
        if subject_id < 0:
            raise ValueError("link ids are not negative")
        until = int(expires.timestamp()) if isinstance(expires, datetime) else int(expires)
        id_text, until_text = base36(subject_id), base36(until)
        return f"{id_text}.{until_text}.{self._mac(purpose, id_text, until_text)}"

    def verify(self, purpose: str, token: str, now: datetime) -> int:
        """The id a genuine, unexpired token for `purpose` names; InvalidLink otherwise."""
        _check_purpose(purpose)
        m = _TOKEN.match(token)
        if m is None:
            raise InvalidLink("このリンクは正しくありません (malformed link)")
        id_text, until_text, mac = m.groups()
        if not hmac.compare_digest(mac, self._mac(purpose, id_text, until_text)):
            raise InvalidLink("このリンクは正しくありません (invalid link)")
        if int(until_text, 36) <= now.timestamp():
            raise InvalidLink("このリンクは有効期限が切れています (link expired)", expired=True)
        return int(id_text, 36)

    def tokens(self, purpose: str, expires: datetime | int) -> Callable[[int], str]:
        """``lambda subject_id: self.token(purpose, subject_id, expires)`` for many ids (the
        recipients of a broadcast share purpose and expiry): what does not depend on the id
        is checked and encoded once, and each token costs one HMAC."""
        _check_purpose(purpose)
        until = int(expires.timestamp()) if isinstance(expires, datetime) else int(expires)
        until_text = base36(until)
        # The key and the purpose fed in once; each token copies that state (cheaper than
        # OpenSSL setting up the key again per token).
        keyed = hmac.new(self._key, purpose.encode("ascii") + b"\0", hashlib.sha256)
        tail = b"\0" + until_text.encode()
        suffix = "." + until_text + "."

        def token(subject_id: int) -> str:
            if subject_id < 0:
                raise ValueError("link ids are not negative")
            id_text = base36(subject_id)
            state = keyed.copy()
            state.update(id_text.encode("ascii") + tail)
            digest = state.digest()
            mac = binascii.b2a_base64(digest[:_MAC_BYTES], newline=False)
            return id_text + suffix + mac.translate(_URL_SAFE).rstrip(b"=").decode("ascii")

        return token

    def _mac(self, purpose: str, id_text: str, until_text: str) -> str:
        data = f"{purpose}\0{id_text}\0{until_text}".encode("ascii")
        digest = hmac.new(self._key, data, hashlib.sha256).digest()[:_MAC_BYTES]
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


# The purpose of the link to a delivery's personal page (read confirmation, answers, files):
# one token per delivery, served at ``/m/<token>`` by admin_api's pages.
PAGE = "page"


def personal_page_url(
    base_url: str, signer: LinkSigner, delivery_id: int, expires: datetime | int
) -> str:
    """The personal page of a delivery under ``base_url`` (``[http] public_url``)."""
    return f"{base_url.rstrip('/')}/m/{signer.token(PAGE, delivery_id, expires)}"


def _check_purpose(purpose: str) -> None:
    if not _PURPOSE.match(purpose):
        raise ValueError(f"link purpose {purpose!r}: use lower-case letters, digits, hyphens")


def base36(n: int) -> str:
    """A non-negative integer in base 36, lower case (``int(text, 36)`` reads it back)."""
    if n < 36:
        return _DIGITS[n]
    pairs = _DIGIT_PAIRS
    out = []
    while n >= 1296:
        n, r = divmod(n, 1296)
        out.append(pairs[r])
    out.append(pairs[n] if n >= 36 else _DIGITS[n])
    out.reverse()
    return "".join(out)

