"""Attachments: files a broadcast carries, kept sealed by mamoru and fetched by personal link.

The one place that knows the tables of migration 017. The path of a file:

    check_uploads(settings, uploads)      limits and kinds (engine/staff/filetypes.py), before
                                          anything is stored; TooLarge (413), ForbiddenFile (415)
    storing(sealer, files, start, ...)    the ``within`` step of the broadcast's own transaction:
                                          the files are sealed and written, and the broadcast is
                                          marked ``personal_page``; all of it commits or nothing
    files_of / withdraw                   staff: the files with their download counts; taking
                                          one back (within the rights of the broadcast)
    page_files / download                 a guardian's page and link (token purpose "page",
                                          naming the delivery): FileGone (410) when expired,
                                          withdrawn or the contact has left; each download logged
    prune / purge                         deletion for good after ``keep_days``, or at a
                                          school's (or everyone's) purge; then VACUUM
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from engine.people import People
from engine.people.contacts import left_among
from engine.platform.config import AttachmentSettings
from engine.platform.errors import InputError, MamoruError
from engine.platform.sealing import Sealer
from engine.queue import Queue
from engine.staff.filetypes import clean_name, recognise
from engine.staff.follow import visible_broadcast
from engine.staff.models import NotFoundError, Principal

NAME = "attachment.name"


class TooLarge(InputError):
    """Too many files, or a file or all of them together over the limits; HTTP 413."""


class FileGone(MamoruError):
    """A genuine link whose file cannot be had any more (expired, withdrawn, contact left);
    HTTP 410 with the reason."""


@dataclass(frozen=True)
class Upload:
    name: str
    data: bytes


@dataclass(frozen=True)
class CheckedFile:
    name: str
    media_type: str
    data: bytes
    sha256: bytes


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.3g} MB"


def check_uploads(settings: AttachmentSettings, uploads: Sequence[Upload]) -> list[CheckedFile]:
    """The uploads, checked against every limit and kind; nothing is stored here."""
    if len(uploads) > settings.max_files:
        raise TooLarge(
            f"ファイルは {settings.max_files} 個までです ({len(uploads)} 個あります) "
            f"(at most {settings.max_files} files per broadcast)"
        )
    checked: list[CheckedFile] = []
    total = 0
    for u in uploads:
        name = clean_name(u.name)
        if not u.data:
            raise InputError(f"「{name}」は空のファイルです (the file is empty)")
        if len(u.data) > settings.max_size:
            raise TooLarge(
                f"「{name}」は大きすぎます ({_mb(len(u.data))})。1 ファイル "
                f"{_mb(settings.max_size)} までです (the file is larger than "
                f"{settings.max_size} bytes)"
            )
        total += len(u.data)
        if total > settings.max_total:
            raise TooLarge(
                f"ファイルは合わせて {_mb(settings.max_total)} までです (all files together "
                f"must not exceed {settings.max_total} bytes)"
            )
        kind = recognise(name, u.data, settings.types)
        checked.append(CheckedFile(name, kind.media_type, u.data, hashlib.sha256(u.data).digest()))
    return checked


def files_digest(files: Sequence[CheckedFile]) -> bytes:
    """Identifies a set of files (names and contents, in order), for idempotency keys."""
    h = hashlib.sha256()
    for f in files:
        name = f.name.encode("utf-8")
        h.update(len(name).to_bytes(4, "big") + name + f.sha256)
    return h.digest()


def _content_purpose(broadcast_id: int, position: int) -> str:
    return f"attachment.content:{broadcast_id}:{position}"


def storing(
    sealer: Sealer,
    files: Sequence[CheckedFile],
    start: datetime,
    settings: AttachmentSettings,
    now: datetime,
) -> Callable[[asyncpg.Connection, int], Awaitable[None]]:
    """The step that stores ``files`` inside the broadcast's transaction (``start``: its send
    time, from which links and files are counted)."""
    expires = start + timedelta(days=settings.link_days)
    delete_after = start + timedelta(days=settings.keep_days)

    async def store(conn: asyncpg.Connection, broadcast_id: int) -> None:
        if not files:
            return
        await conn.executemany(
            "INSERT INTO attachments (broadcast_id, position, name_sealed, media_type, size, "
            "sha256, content_sealed, created_at, expires_at, delete_after) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            [
                (broadcast_id, n, sealer.seal(f.name, NAME), f.media_type, len(f.data), f.sha256,
                 sealer.seal_bytes(f.data, _content_purpose(broadcast_id, n)), now, expires,
                 delete_after)
                for n, f in enumerate(files, 1)
            ],
        )
        # Each recipient's mail then links to the page that lists the files.
        await conn.execute("UPDATE broadcasts SET personal_page = true WHERE id = $1",
                           broadcast_id)

    return store


@dataclass(frozen=True)
class FileInfo:
    """A file of a broadcast as staff see it."""

    position: int
    name: str
    media_type: str
    size: int
    sha256: str
    created_at: datetime
    expires_at: datetime
    withdrawn_at: datetime | None
    downloads: int
    # Distinct deliveries (recipients) that downloaded it at least once.
    recipients: int


_INFO = (
    "SELECT a.position, a.name_sealed, a.media_type, a.size, a.sha256, a.created_at, "
    "a.expires_at, a.withdrawn_at, count(d.delivery_id) AS downloads, "
    "count(DISTINCT d.delivery_id) AS recipients FROM attachments a "
    "LEFT JOIN attachment_downloads d ON d.attachment_id = a.id WHERE a.broadcast_id = $1 "
)


def _info(sealer: Sealer, r: asyncpg.Record) -> FileInfo:
    return FileInfo(
        r["position"], sealer.open(r["name_sealed"], NAME), r["media_type"], r["size"],
        bytes(r["sha256"]).hex(), r["created_at"], r["expires_at"], r["withdrawn_at"],
        r["downloads"], r["recipients"],
    )


async def files_of(
    pool: asyncpg.Pool, sealer: Sealer, actor: Principal, broadcast_id: int, now: datetime
) -> list[FileInfo]:
    """The broadcast's files with download counts, for those who may see the broadcast."""
    await visible_broadcast(pool, actor, broadcast_id, now)
    rows = await pool.fetch(_INFO + "GROUP BY a.id ORDER BY a.position", broadcast_id)
    return [_info(sealer, r) for r in rows]


async def withdraw(
    pool: asyncpg.Pool, sealer: Sealer, actor: Principal, broadcast_id: int, position: int,
    now: datetime,
) -> FileInfo:
    """Take a file back (a wrong file sent): its content is deleted at once and its link says
    so; the name and the download log stay for the record until the broadcast's files go."""
    await visible_broadcast(pool, actor, broadcast_id, now)
    async with pool.acquire() as conn:
        done = await conn.fetchval(
            "UPDATE attachments SET content_sealed = NULL, withdrawn_at = $3 "
            "WHERE broadcast_id = $1 AND position = $2 AND withdrawn_at IS NULL RETURNING id",
            broadcast_id, position, now,
        )
        if done is None:
            raise NotFoundError(
                f"配信 {broadcast_id} にファイル {position} はないか、取り下げ済みです "
                "(no such file, or withdrawn already)"
            )
        # The old row version still holds the sealed bytes until vacuumed.
        await conn.execute("VACUUM attachments")
        row = await conn.fetchrow(
            _INFO + "AND a.position = $2 GROUP BY a.id", broadcast_id, position
        )
    return _info(sealer, row)


@dataclass(frozen=True)
class PageFile:
    """A file as a guardian's page lists it."""

    position: int
    name: str
    size: int
    withdrawn: bool

    @property
    def size_text(self) -> str:
        if self.size < 1024 * 1024:
            return f"{max(1, round(self.size / 1024))} KB"
        return f"{self.size / (1024 * 1024):.1f} MB"


@dataclass(frozen=True)
class Download:
    name: str
    media_type: str
    data: bytes


GONE_EXPIRED = (
    "この資料の公開期間は終わりました。必要なときは学校にお問い合わせください。"
    " (the download period has ended)"
)
GONE_WITHDRAWN = (
    "この資料は学校が取り下げました。 (the school has withdrawn this file)"
)
GONE_LEFT = (
    "このアドレスへの配信は停止されているため、資料は表示できません。"
    " (this address has left the mailing)"
)
NO_FILE = "この資料はありません。メールのリンクをお確かめください。 (no such file)"


async def _check_delivery(people: People, queue: Queue, delivery_id: int) -> int:
    """The broadcast of a delivery whose recipient may still see its files."""
    row = await people.pool.fetchrow(
        "SELECT broadcast_id FROM deliveries WHERE id = $1", delivery_id
    )
    address = await queue.recipient_of(delivery_id)
    if row is None or address is None:
        raise NotFoundError(NO_FILE)
    if await left_among(people, [address]):
        raise FileGone(GONE_LEFT)
    broadcast_id: int = row["broadcast_id"]
    return broadcast_id


async def page_files(people: People, queue: Queue, delivery_id: int) -> list[PageFile]:
    """The files of the delivery's broadcast (empty when it has none); FileGone when the
    links have expired or the contact has left."""
    broadcast_id = await _check_delivery(people, queue, delivery_id)
    rows = await people.pool.fetch(
        "SELECT position, name_sealed, size, withdrawn_at, expires_at FROM attachments "
        "WHERE broadcast_id = $1 ORDER BY position", broadcast_id,
    )
    if rows and rows[0]["expires_at"] <= people.clock.now():
        raise FileGone(GONE_EXPIRED)
    return [
        PageFile(r["position"], people.sealer.open(r["name_sealed"], NAME), r["size"],
                 r["withdrawn_at"] is not None)
        for r in rows
    ]


async def download(
    people: People, queue: Queue, delivery_id: int, position: int, client_ip: str
) -> Download:
    """File ``position`` of the delivery's broadcast, opened, and the download logged."""
    broadcast_id = await _check_delivery(people, queue, delivery_id)
    now = people.clock.now()
    row = await people.pool.fetchrow(
        "SELECT id, name_sealed, media_type, content_sealed, expires_at FROM attachments "
        "WHERE broadcast_id = $1 AND position = $2", broadcast_id, position,
    )
    if row is None:
        raise NotFoundError(NO_FILE)
    if row["expires_at"] <= now:
        raise FileGone(GONE_EXPIRED)
    if row["content_sealed"] is None:
        raise FileGone(GONE_WITHDRAWN)
    # GCM's tag proves the bytes are the ones sealed for this broadcast and position: no
    # second checksum pass over the whole file is needed.
    data = people.sealer.open_bytes(row["content_sealed"], _content_purpose(broadcast_id, position))
    await people.pool.execute(
        "INSERT INTO attachment_downloads (attachment_id, delivery_id, at, network) "
        "VALUES ($1, $2, $3, $4)", row["id"], delivery_id, now, network_of(client_ip),
    )
    return Download(people.sealer.open(row["name_sealed"], NAME), row["media_type"], data)


def network_of(client_ip: str) -> str:
    """The client's /24 (IPv4) or /48 (IPv6); "unknown" when it is no address."""
    try:
        ip = ipaddress.ip_address(client_ip)
    except ValueError:
        return "unknown"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


async def _delete(pool: asyncpg.Pool, where: str, *args: object) -> int:
    async with pool.acquire() as conn:
        status: str = await conn.execute(f"DELETE FROM attachments a WHERE {where}", *args)
        # Deleted rows (and their out-of-line bytes) stay in the files until vacuumed.
        await conn.execute("VACUUM attachments, attachment_downloads")
    return int(status.split()[-1])


# Vacuumed after the files' rows are deleted (the disposal does it after its transaction).
ATTACHMENT_TABLES = "attachments, attachment_downloads"


async def delete_all_in(conn: asyncpg.Connection) -> int:
    """Every file and its download log, inside the caller's transaction; not vacuumed."""
    status: str = await conn.execute("DELETE FROM attachments")
    return int(status.split()[-1])


async def prune(pool: asyncpg.Pool, now: datetime) -> int:
    """Delete every file whose broadcast's ``keep_days`` are over; the number deleted."""
    return await _delete(pool, "a.delete_after <= $1", now)


async def purge(pool: asyncpg.Pool, organisation_id: int | None) -> int:
    """Delete the files of the broadcasts an organisation made (None: every file)."""
    if organisation_id is None:
        return await _delete(pool, "true")
    return await _delete(
        pool,
        "a.broadcast_id IN (SELECT broadcast_id FROM broadcast_owners WHERE organisation_id = $1)",
        organisation_id,
    )
