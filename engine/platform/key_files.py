"""Secret keys kept in files outside the database: base64 text, mode 0600, made once.

The people key, the audit chain's key and any other secret that must not sit in the database
(whoever can read the database should not also hold the key that protects it) live in files
like these. A file is created with ``O_EXCL`` so that two processes starting together cannot
overwrite each other's key: the one that loses the race reads the winner's.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from engine.platform.errors import ConfigError


def read_key_file(path: Path, label: str, min_bytes: int, max_bytes: int) -> bytes:
    """The key in ``path``; ConfigError naming ``label`` when it is unreadable or sized wrong."""
    try:
        raw = base64.b64decode(path.read_text("ascii").strip(), validate=True)
    except (OSError, UnicodeDecodeError, binascii.Error, ValueError) as exc:
        raise ConfigError(f"{label} {path} cannot be read as a base64 key: {exc}") from None
    if not min_bytes <= len(raw) <= max_bytes:
        size = f"{min_bytes}" if min_bytes == max_bytes else f"{min_bytes}-{max_bytes}"
        raise ConfigError(f"{label} {path} must hold {size} bytes in base64")
    return raw


def create_key_file(path: Path, raw: bytes, label: str, max_bytes: int | None = None) -> bytes:
    """Write ``raw`` to a new ``path`` (0600, its folder 0700) and return it; when the file
    appeared meanwhile, return the key already in it instead."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_key_file(path, label, 1, max_bytes or len(raw))
    except OSError as exc:
        raise ConfigError(f"{label} {path} cannot be created: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(base64.b64encode(raw).decode("ascii") + "\n")
    return raw
