"""Encryption at rest for personal data: sealed values (AES-GCM) and keyed lookup hashes.

A ``Sealer`` is made from one 32-byte master key. Two keys are derived from it with HKDF-SHA256
(RFC 5869), one for AES-256-GCM and one for HMAC-SHA256, so the lookup hash never reuses the
encryption key. A sealed value is ``b"\\x01" + nonce (12 bytes, random) + ciphertext + tag``;
the purpose of the value (``"contact.address"``, ``"account.name"`` ...) is the associated
data, so a sealed name copied into an address column does not open as an address.

The lookup hash is deterministic (same text, same hash) so that a column of hashes can carry a
UNIQUE index and answer "is this address known?" without decrypting anything.

The key comes from ``[people] key`` (base64, e.g. from ``MAMORU_PEOPLE_KEY``) or from the file
``[people] key_file``, created with mode 0600 on first use of a database that has no key yet
(``engine.people.store.open_sealer``). Losing the key loses the data:
operators must back it up apart from the database.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from engine.platform.errors import ConfigError, MamoruError
from engine.platform.key_files import create_key_file, read_key_file

KEY_BYTES = 32

# Purposes of sealed addresses outside the people tables (the AES-GCM associated data and the
# lookup hash's separator). ADDRESS is also the contacts' purpose (engine.people.store).
ADDRESS = "contact.address"
RECIPIENT = "delivery.recipient"  # a delivery's, a bounce's or a suppression's address
RAW_MAIL = "inbound.raw"  # a kept bounce or inbound mail
MAIL_FROM = "inbound.mail_from"  # the envelope sender of a kept mail
_VERSION = b"\x01"
_NONCE_BYTES = 12


class SealError(MamoruError):
    """A sealed value cannot be opened: wrong key, or the stored bytes were altered."""


class Sealer:
    """Seals and opens personal values and computes their lookup hashes under one key."""

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != KEY_BYTES:
            raise ConfigError(f"the people key must be {KEY_BYTES} bytes, not {len(master_key)}")
        self._aead = AESGCM(_derive(master_key, b"mamoru seal v1"))
        self._mac_key = _derive(master_key, b"mamoru lookup v1")

    def seal(self, text: str, purpose: str) -> bytes:
        return self.seal_bytes(text.encode("utf-8"), purpose)

    def seal_bytes(self, data: bytes, purpose: str) -> bytes:
        """Seal raw bytes (a kept mail, a file) under the purpose."""
        nonce = os.urandom(_NONCE_BYTES)
        return _VERSION + nonce + self._aead.encrypt(nonce, data, purpose.encode("ascii"))

    def open(self, sealed: bytes, purpose: str) -> str:
        return self.open_bytes(sealed, purpose).decode("utf-8")

    def open_bytes(self, sealed: bytes, purpose: str) -> bytes:
        if sealed[:1] != _VERSION or len(sealed) < 1 + _NONCE_BYTES + 16:
            raise SealError(f"a stored {purpose} is not a sealed value of this version")
        try:
            return self._aead.decrypt(
                sealed[1 : 1 + _NONCE_BYTES], sealed[1 + _NONCE_BYTES :], purpose.encode("ascii")
            )
        except InvalidTag:
            raise SealError(
                f"a stored {purpose} cannot be opened with this key: the key is not the one "
                f"the data was stored with, or the data was altered"
            ) from None

    def lookup_hash(self, text: str, purpose: str) -> bytes:
        """HMAC-SHA256 of the text under the lookup key, separated by purpose."""
        # hmac.digest: the one-shot C path, about twice as fast as hmac.new(...).digest().
        msg = purpose.encode("ascii") + b"\x00" + text.encode("utf-8")
        return hmac.digest(self._mac_key, msg, "sha256")

    def address_hash(self, address: str) -> bytes:
        """The lookup hash of a (normalised) address: the same for a contact and a delivery,
        so deliveries join their contacts without opening anything."""
        return self.lookup_hash(address, ADDRESS)

    def folded_hash(self, address: str) -> bytes:
        """The lookup hash of an address without case (the suppression list's key: carriers
        treat the local part without case): the address hash of its lower-case spelling, so
        for the usual all-lower-case address the two hashes are one computation."""
        return self.lookup_hash(address.lower(), ADDRESS)

    def hashes(self, address: str) -> tuple[bytes, bytes]:
        """``(address_hash, folded_hash)`` of one address, computed once when they agree."""
        exact = self.lookup_hash(address, ADDRESS)
        lower = address.lower()
        return exact, exact if lower == address else self.lookup_hash(lower, ADDRESS)

    @classmethod
    def from_key(cls, key: str, key_file: str) -> Sealer:
        """The sealer of ``[people] key`` / ``key_file``, which must exist (it is made, when
        allowed, by ``engine.people.store.open_sealer`` as the engine opens)."""
        return cls(load_key(key, key_file, create=False))

    def fingerprint(self) -> str:
        """A value that identifies the key without revealing it (kept to detect a wrong key)."""
        return self.lookup_hash("mamoru key check", "key").hex()[:32]


def _derive(master: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master)


def load_key(key: str, key_file: str, create: bool = True) -> bytes:
    """The master key from base64 text, else from ``key_file`` (made 0600 if missing)."""
    if key:
        try:
            raw = base64.b64decode(key.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError("people.key is not base64 text") from None
        if len(raw) != KEY_BYTES:
            raise ConfigError(f"people.key must decode to {KEY_BYTES} bytes, not {len(raw)}")
        return raw
    path = Path(key_file)
    if path.exists():
        return read_key_file(path, "people.key_file", KEY_BYTES, KEY_BYTES)
    if not create:
        raise ConfigError(f"people.key_file {path} does not exist")
    return create_key_file(path, secrets.token_bytes(KEY_BYTES), "people.key_file")


def new_key_text() -> str:
    """A fresh key as base64 text, for ``[people] key``."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")
