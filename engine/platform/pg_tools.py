"""PostgreSQL's own ``pg_dump`` and ``pg_restore``: finding a pair new enough for the server
and running them without putting the password on a command line.

The tools are looked for in ``[backup] pg_bin_dir`` when it is set (only there), else in the
embedded server's folder (pgserver ships them) and on PATH, the embedded one first when mamoru
runs the embedded server and PATH's first otherwise; the first whose major version is at least
the server's (pg_dump refuses a newer server) is used.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import unquote, urlsplit

from engine.platform.backup_archive import BackupError

_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")
_READ = 256 * 1024


def embedded_bin_dir() -> Path | None:
    """The folder of the embedded server's binaries (without importing pgserver: its import
    is slow)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "pginstall" / "bin"
    return folder if folder.is_dir() else None


def tool_version(path: Path) -> tuple[int, str] | None:
    """(major, text) of ``path --version``, None when it does not run."""
    try:
        done = subprocess.run([str(path), "--version"], capture_output=True, text=True,
                              timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = _VERSION.search(done.stdout)
    if done.returncode != 0 or m is None:
        return None
    return int(m.group(1)), f"{m.group(1)}.{m.group(2) or 0}"


def find_tool(name: str, pg_bin_dir: str, embedded: bool, min_major: int) -> tuple[Path, str]:
    """The ``name`` tool (``pg_dump``, ``pg_restore``) of major version >= ``min_major``, and
    its version text."""
    candidates: list[Path] = []
    if pg_bin_dir:
        candidates.append(Path(pg_bin_dir) / name)
    else:
        bundled = embedded_bin_dir()
        on_path = shutil.which(name)
        ordered = [bundled / name if bundled else None, Path(on_path) if on_path else None]
        if not embedded:
            ordered.reverse()
        candidates.extend(p for p in ordered if p is not None)
    seen = []
    for path in candidates:
        version = tool_version(path)
        seen.append(f"{path} ({version[1] if version else 'not runnable'})")
        if version is not None and version[0] >= min_major:
            return path, version[1]
    raise BackupError(
        f"PostgreSQL {min_major} 以上の {name} が見つかりません。[backup] pg_bin_dir にその"
        f"フォルダを設定してください ({name} >= {min_major} not found; tried: "
        f"{', '.join(seen) or 'nothing'})"
    )


def libpq_target(dsn: str) -> tuple[str, dict[str, str]]:
    """The DSN without its password, and the environment that carries the password
    (``PGPASSWORD``): a command line is readable by every user of the machine."""
    env = dict(os.environ)
    parts = urlsplit(dsn)
    if parts.password:
        env["PGPASSWORD"] = unquote(parts.password)
        netloc = parts.netloc.replace(f":{parts.password}@", "@", 1)
        dsn = parts._replace(netloc=netloc).geturl()
    return dsn, env


async def _drain(stream: asyncio.StreamReader | None) -> bytes:
    return await stream.read() if stream is not None else b""


def _failed(name: str, code: int, stderr: bytes) -> BackupError:
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    tail = " / ".join(lines[-3:]) or f"exit code {code}"
    return BackupError(f"{name} が失敗しました ({name} failed: {tail})")


async def dump(tool: Path, dsn: str, sink: Callable[[bytes], None]) -> None:
    """``pg_dump --format=custom`` of ``dsn``, its output handed to ``sink`` in pieces."""
    target, env = libpq_target(dsn)
    proc = await asyncio.create_subprocess_exec(
        str(tool), "--format=custom", "--no-password", f"--dbname={target}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL, env=env,
    )
    errors = asyncio.ensure_future(_drain(proc.stderr))
    try:
        assert proc.stdout is not None
        while piece := await proc.stdout.read(_READ):
            sink(piece)
        code = await proc.wait()
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    finally:
        stderr = await errors
    if code != 0:
        raise _failed("pg_dump", code, stderr)


async def restore(tool: Path, dsn: str, pieces: Iterable[bytes]) -> None:
    """``pg_restore`` of a custom-format dump given as ``pieces`` into ``dsn``, in one
    transaction: on any error the database is left as it was."""
    target, env = libpq_target(dsn)
    proc = await asyncio.create_subprocess_exec(
        str(tool), "--single-transaction", "--exit-on-error", "--no-owner", "--no-privileges",
        "--no-password", f"--dbname={target}",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE, env=env,
    )
    errors = asyncio.ensure_future(_drain(proc.stderr))
    try:
        assert proc.stdin is not None
        try:
            for piece in pieces:
                proc.stdin.write(piece)
                await proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # pg_restore stopped early: its exit code and message say why
        else:
            proc.stdin.close()
        code = await proc.wait()
    except BaseException:
        # Also an archive found altered half-way: the transaction is never committed.
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    finally:
        stderr = await errors
    if code != 0:
        raise _failed("pg_restore", code, stderr)
