"""The encrypted backup archive: a manifest (with the key files) and a PostgreSQL dump, sealed
with AES-256-GCM in chunks, so that an archive of any size is written and read in bounded
memory and any change, reordering or truncation of it is refused.

Layout (docs/operation.md describes it for operators)::

    header   b"MAMORU-BACKUP-1\\n" + salt (16 random bytes)
    chunks   length (4 bytes, big-endian; the top bit marks the last chunk) + ciphertext+tag

Each archive has its own key, HKDF-SHA256(backup key, salt, "mamoru backup v1"); chunk ``i``
is sealed with the nonce ``i`` (11 bytes) + ``last`` (1 byte) and the header as associated
data (the STREAM construction): a chunk moved, dropped or cut off no longer opens, and an
archive whose last chunk is missing is refused as truncated. The plaintext is the manifest's
length (4 bytes), the manifest (JSON) and then the bytes of ``pg_dump --format=custom``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from engine.platform.errors import ConfigError, MamoruError

MAGIC = b"MAMORU-BACKUP-1\n"
KEY_BYTES = 32
_SALT_BYTES = 16
_CHUNK = 1024 * 1024
_LAST = 0x8000_0000
_MAX_MANIFEST = 1024 * 1024
_INFO = b"mamoru backup v1"


class BackupError(MamoruError):
    """A backup or restore cannot be done; nothing was changed."""


def _broken(detail: str) -> BackupError:
    return BackupError(
        "バックアップを開けません。バックアップ鍵が違うか、ファイルが改ざん・破損しています "
        f"({detail})"
    )


def load_backup_key(path: str | os.PathLike[str]) -> bytes:
    """The backup key in ``path`` (base64 of 32 bytes)."""
    p = Path(path)
    try:
        raw = base64.b64decode(p.read_text("ascii").strip(), validate=True)
    except FileNotFoundError:
        raise ConfigError(
            f"バックアップ鍵 {p} がありません。`mamoru backup --new-key` で作るか、保管している "
            f"鍵をここに置いてください (backup key file {p} does not exist)"
        ) from None
    except (OSError, UnicodeDecodeError, binascii.Error, ValueError) as exc:
        raise ConfigError(f"backup key file {p} cannot be read as a base64 key: {exc}") from None
    if len(raw) != KEY_BYTES:
        raise ConfigError(f"backup key file {p} must hold {KEY_BYTES} bytes in base64")
    return raw


def new_backup_key(path: str | os.PathLike[str]) -> None:
    """Write a new random backup key to ``path`` (0600, folder 0700); never overwrites."""
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise BackupError(
            f"バックアップ鍵 {p} はもうあります。上書きしません (backup key file exists; an "
            "existing key is never replaced, archives made with it would become unreadable)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"backup key file {p} cannot be created: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii") + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _aead(key: bytes, salt: bytes) -> AESGCM:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_INFO).derive(key)
    return AESGCM(derived)


def _nonce(index: int, last: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class ArchiveWriter:
    """Seals what is written to it into ``out``; ``close`` seals the last chunk."""

    def __init__(self, out: BinaryIO, key: bytes, manifest: dict[str, Any]) -> None:
        salt = secrets.token_bytes(_SALT_BYTES)
        self._header = MAGIC + salt
        self._aead = _aead(key, salt)
        self._out = out
        self._index = 0
        self._buffer = bytearray()
        self.plain_bytes = 0
        out.write(self._header)
        body = json.dumps(manifest, ensure_ascii=False, sort_keys=True).encode("utf-8")
        self.write(len(body).to_bytes(4, "big") + body)

    def write(self, data: bytes) -> None:
        self._buffer += data
        self.plain_bytes += len(data)
        # A chunk is sealed only when more follows, so the last one can be marked.
        while len(self._buffer) > _CHUNK:
            self._seal(bytes(self._buffer[:_CHUNK]), last=False)
            del self._buffer[:_CHUNK]

    def close(self) -> None:
        self._seal(bytes(self._buffer), last=True)
        self._buffer.clear()

    def _seal(self, plain: bytes, last: bool) -> None:
        sealed = self._aead.encrypt(_nonce(self._index, last), plain, self._header)
        self._out.write((len(sealed) | (_LAST if last else 0)).to_bytes(4, "big") + sealed)
        self._index += 1


def _plain_chunks(inp: BinaryIO, key: bytes) -> Iterator[bytes]:
    header = inp.read(len(MAGIC) + _SALT_BYTES)
    if len(header) != len(MAGIC) + _SALT_BYTES or not header.startswith(MAGIC):
        raise BackupError(
            "mamoru のバックアップファイルではありません (not a mamoru backup archive)"
        )
    aead = _aead(key, header[len(MAGIC):])
    index = 0
    while True:
        prefix = inp.read(4)
        if len(prefix) != 4:
            raise _broken("truncated: the last part is missing")
        word = int.from_bytes(prefix, "big")
        last = bool(word & _LAST)
        size = word & ~_LAST
        if size > _CHUNK + 16:
            raise _broken("a part is larger than any this format writes")
        sealed = inp.read(size)
        if len(sealed) != size:
            raise _broken("truncated inside a part")
        try:
            yield aead.decrypt(_nonce(index, last), sealed, header)
        except InvalidTag:
            raise _broken(f"part {index} does not open with this key") from None
        index += 1
        if last:
            if inp.read(1):
                raise _broken("bytes after the last part")
            return


class _Plain:
    """The plaintext of an archive as a stream: ``read_exact`` for the manifest, then
    ``rest`` for the dump."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""

    def read_exact(self, n: int) -> bytes:
        while len(self._pending) < n:
            more = next(self._chunks, None)
            if more is None:
                raise _broken("the manifest is cut short")
            self._pending += more
        out, self._pending = self._pending[:n], self._pending[n:]
        return out

    def rest(self) -> Iterator[bytes]:
        if self._pending:
            yield self._pending
            self._pending = b""
        yield from self._chunks


def open_archive(inp: BinaryIO, key: bytes) -> tuple[dict[str, Any], Iterator[bytes]]:
    """The manifest and the dump's bytes (as chunks) of an archive; every chunk is checked as
    it is read, so the dump must be read to its end before the archive counts as intact."""
    plain = _Plain(_plain_chunks(inp, key))
    size = int.from_bytes(plain.read_exact(4), "big")
    if size > _MAX_MANIFEST:
        raise _broken("the manifest is too large")
    try:
        manifest = json.loads(plain.read_exact(size).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _broken("the manifest is not JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != 1:
        raise BackupError("このバックアップの形式には対応していません (unknown archive format)")
    return manifest, plain.rest()


def verify_archive(path: Path, key: bytes) -> dict[str, Any]:
    """Read the whole archive once (nothing is restored) and return its manifest; refuses a
    wrong key, an altered or a truncated archive."""
    try:
        with path.open("rb") as fh:
            manifest, rest = open_archive(fh, key)
            for _ in rest:
                pass
    except OSError as exc:
        raise BackupError(f"バックアップ {path} を読めません ({exc.strerror})") from None
    return manifest
