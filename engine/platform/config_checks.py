"""Checks of the [attachments] and [backup] sections' values, for engine/platform/config.py.

They take the values, not the sections, so that this module needs nothing of config.py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from engine.platform.errors import ConfigError

# The kinds of file [attachments] types may name (engine/staff/attachments.py sniffs them).
ATTACHMENT_TYPES = ("pdf", "jpeg", "png", "text", "docx", "xlsx")


def check_attachments(
    max_size: int, max_total: int, max_files: int, link_days: int, keep_days: int,
    types: Sequence[str],
) -> None:
    for key, v in (("max_size", max_size), ("max_total", max_total),
                   ("max_files", max_files), ("link_days", link_days)):
        if v < 1:
            raise ConfigError(f"attachments.{key} must be at least 1, not {v}")
    if max_total < max_size:
        raise ConfigError("attachments.max_total must not be smaller than attachments.max_size")
    if max_total > 100 * 1024 * 1024:
        raise ConfigError("attachments.max_total must be at most 100 MB (104857600)")
    unknown = [t for t in types if t not in ATTACHMENT_TYPES]
    if unknown:
        raise ConfigError(
            f"attachments.types: unknown kind {unknown[0]!r} (known: {', '.join(ATTACHMENT_TYPES)})"
        )
    if keep_days < link_days:
        raise ConfigError(
            "attachments.keep_days must not be shorter than attachments.link_days "
            "(a link would outlive its file)"
        )


def check_backup(
    keep_daily: int, daily_at: str, key_file: str, other_keys: Mapping[str, str]
) -> None:
    """``other_keys``: the setting name and path of every key the backup key must not be."""
    if not 7 <= keep_daily <= 31:
        raise ConfigError(f"backup.keep_daily must be between 7 and 31, not {keep_daily}")
    if daily_at and not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", daily_at.strip()):
        raise ConfigError(
            f"backup.daily_at {daily_at!r} must be a time like \"02:30\" (Japan time), or "
            "empty for no daily backup"
        )
    if daily_at and not key_file:
        raise ConfigError("backup.daily_at needs backup.key_file (the key of the archives)")
    if key_file:
        mine = Path(key_file).resolve()
        for key, other in other_keys.items():
            if other and Path(other).resolve() == mine:
                raise ConfigError(
                    f"backup.key_file must not be {key}: the backup key is kept apart from "
                    "the keys it protects"
                )
