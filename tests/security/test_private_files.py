"""Exports with personal data are created 0600 (os.open with the mode, no chmod after)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from commands import config_file, mamoru

from engine.platform.private_files import write_private


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_file_is_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        write_private(tmp_path / "export.csv", b"a,b\r\n")
    finally:
        os.umask(old)
    assert mode(tmp_path / "export.csv") == 0o600
    assert (tmp_path / "export.csv").read_bytes() == b"a,b\r\n"


def test_an_existing_readable_file_is_replaced_by_a_private_one(tmp_path: Path) -> None:
    target = tmp_path / "export.csv"
    target.write_bytes(b"old")
    target.chmod(0o644)
    write_private(target, b"new")
    assert mode(target) == 0o600 and target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["export.csv"]  # no temporary left


async def test_the_export_commands_write_private_files(tmp_path: Path, db_url: str) -> None:
    cfg = config_file(tmp_path, db_url, "127.0.0.1:25")
    for args, name in (
        (["accounts", "export", "--out"], "accounts.csv"),
        (["suppression", "export"], "suppressions.csv"),
    ):
        out = tmp_path / name
        out.write_text("", encoding="utf-8")
        out.chmod(0o644)
        done = mamoru(*args, out, "-c", cfg)
        assert done.returncode == 0, done.stderr
        assert mode(out) == 0o600, name
        assert out.read_bytes().startswith(b"\xef\xbb\xbf")
