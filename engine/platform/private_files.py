"""Writing files that hold personal data (exports, notices) readable by their owner only.

``write_private(path, data)`` creates the file with mode 0600 in the ``os.open`` call itself,
so there is no moment when another user of the machine could open it: the bytes go to a new
file beside ``path`` (``O_EXCL``, 0600) that then replaces ``path``. A file that was there
before, with whatever mode, is replaced, not rewritten in place. A path that is not a regular
file (``/dev/stdout``, a named pipe) is written as it is: it holds nothing afterwards.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

MODE = 0o600


def write_private(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` as a file of mode 0600 (OSError as ``open`` raises it)."""
    target = Path(path)
    try:
        existing = target.stat()
    except FileNotFoundError:
        existing = None
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        with target.open("wb") as fh:
            fh.write(data)
        return
    temp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, MODE)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
