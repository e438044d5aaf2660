"""Checkpoints of the audit chain kept outside the database, so that removing its newest
entries shows.

The chain alone cannot tell "the newest entries were deleted" from "they were never written".
Once a day ``mamoru serve`` (and ``mamoru audit checkpoint`` by hand) appends the newest
entry's number and mac to ``[staff] audit_checkpoints``, one line each::

    seq <TAB> mac (hex) <TAB> time (ISO 8601, UTC) <TAB> HMAC(key, the first three fields)

The file is append-only by use, 0600, and each line is sealed with the chain's key, so it can
be copied anywhere (a USB stick, the city's document system) and checked later: ``verify``
walks the chain, then demands that every checkpointed entry is still there with the same mac,
unless a sealed prune anchor has legitimately taken it (``engine.staff.audit``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from engine.platform.clock import jst_text
from engine.platform.errors import InputError
from engine.staff import audit


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    mac: bytes
    at: datetime


def _seal(key: bytes, seq: int, mac_hex: str, at_text: str) -> str:
    payload = f"checkpoint\t{seq}\t{mac_hex}\t{at_text}".encode("ascii")
    return hmac.new(key, payload, hashlib.sha256).hexdigest()


async def write_checkpoint(
    pool: asyncpg.Pool, key: bytes, path: Path, now: datetime
) -> Checkpoint | None:
    """Append the chain's newest entry to ``path``; None when the log is empty."""
    head = await pool.fetchrow("SELECT seq, mac FROM audit_log ORDER BY seq DESC LIMIT 1")
    if head is None:
        return None
    point = Checkpoint(head["seq"], bytes(head["mac"]), now.astimezone(UTC))
    at_text = point.at.isoformat()
    line = f"{point.seq}\t{point.mac.hex()}\t{at_text}\t"
    line += _seal(key, point.seq, point.mac.hex(), at_text) + "\n"
    _append(path, line)
    return point


def _append(path: Path, line: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)


def read_checkpoints(path: Path, key: bytes) -> list[Checkpoint]:
    """The checkpoints in ``path``; InputError naming the first line that is not one of ours."""
    try:
        lines = path.read_text("ascii").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(
            f"チェックポイントのファイル {path} を読めません (cannot read checkpoints: {exc})"
        ) from None
    points = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        try:
            seq, mac_hex, at_text, seal = int(fields[0]), fields[1], fields[2], fields[3]
            good = len(fields) == 4 and hmac.compare_digest(
                seal, _seal(key, seq, mac_hex, at_text)
            )
            point = Checkpoint(seq, bytes.fromhex(mac_hex), datetime.fromisoformat(at_text))
        except (IndexError, ValueError):
            good = False
        if not good:
            raise InputError(
                f"チェックポイント {path} の {number} 行目が書き換えられているか、別の鍵の"
                f"ものです (line {number} is altered or sealed with another key)"
            )
        points.append(point)
    return points


async def check(pool: asyncpg.Pool, key: bytes, path: Path) -> audit.Verification:
    """Every checkpoint's entry still in the chain with its mac (or pruned under the anchor)."""
    points = read_checkpoints(path, key)
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        anchored = await conn.fetchval("SELECT seq FROM audit_anchor") or 0
        rows = await conn.fetch(
            "SELECT seq, mac FROM audit_log WHERE seq = ANY($1::bigint[])",
            sorted({p.seq for p in points if p.seq > anchored}),
        )
    macs = {r["seq"]: bytes(r["mac"]) for r in rows}
    for point in points:
        if point.seq <= anchored:
            continue
        when = jst_text(point.at)
        if point.seq not in macs:
            return audit.Verification(
                len(points), point.seq,
                f"{when} (日本時間) には {point.seq} 番まであった記録がありません: 新しい記録が"
                f"消されています (entry {point.seq}, checkpointed then, is missing: the newest "
                f"entries were removed)",
            )
        if not hmac.compare_digest(macs[point.seq], point.mac):
            return audit.Verification(
                len(points), point.seq,
                f"{when} (日本時間) に控えた {point.seq} 番と内容が違います: 記録が作り直されて"
                f"います (entry {point.seq} differs from its checkpoint: the chain was rewritten)",
            )
    return audit.Verification(len(points))


async def verify_all(
    pool: asyncpg.Pool, key: bytes, checkpoints: Path | None, board_id: int | None = None
) -> audit.Verification:
    """The chain, then the checkpoints in ``checkpoints`` when that file exists; a checkpoint
    file that is not ours (altered, another key) is reported as a break at entry 0. With
    ``board_id`` the count and the names are that board's (``audit.verify``)."""
    chain = await audit.verify(pool, key, board_id)
    if not chain.ok or checkpoints is None or not _exists(checkpoints):
        return chain
    try:
        points = await check(pool, key, checkpoints)
    except InputError as exc:
        # An unreadable or altered checkpoint file is a broken promise too.
        return audit.Verification(chain.checked, 0, str(exc))
    if not points.ok:
        return audit.Verification(chain.checked, points.first_bad, points.problem)
    return chain


def _exists(path: Path) -> bool:
    return path.exists()
