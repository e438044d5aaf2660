"""Attachments benchmark: checking and storing files with a broadcast, and guardians' downloads.

    python bench/attachments.py [--recipients 30000] [--files 5] [--file-mb 4]
                                [--downloads 400] [--download-mb 2] [--concurrency 16]
                                [--database-url URL]

Times: ``check_uploads`` of FILES files of FILE_MB each (content sniffing, SHA-256); the
fan-out of a RECIPIENTS-address broadcast alone and with those files sealed and stored in the
same transaction (what the files add before the runners can start); then DOWNLOADS downloads
of one DOWNLOAD_MB file through the real HTTP server on 127.0.0.1 (token check, delivery and
left check, unsealing, the download log, the body) from CONCURRENCY clients. Prints one line
per step and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from people_import import database_url  # noqa: E402

from admin_api.app import create_app  # noqa: E402
from admin_api.site import open_site  # noqa: E402
from engine.message.links import PAGE  # noqa: E402
from engine.people import Audience, Category, People  # noqa: E402
from engine.platform.clock import SystemClock  # noqa: E402
from engine.platform.config import load_settings  # noqa: E402
from engine.platform.db import create_pool  # noqa: E402
from engine.platform.sealing import new_key_text  # noqa: E402
from engine.queue import NewBroadcast, Priority, Queue  # noqa: E402
from engine.staff import attachments  # noqa: E402
from engine.twoway import send_broadcast  # noqa: E402

SECRET = b"bench-attachments-secret-0123456789"


def pdf(mb: float, seed: int) -> bytes:
    # Random bytes behind the header: like a scanned PDF, it does not compress.
    return b"%PDF-1.7\n" + os.urandom(int(mb * 1024 * 1024) - 9 - seed % 7)


async def main(args: argparse.Namespace) -> dict[str, float | int]:
    url = database_url(args.database_url)
    base = load_settings(None, environ={})
    limits = replace(base.attachments, max_size=int(args.file_mb * 1024 * 1024) + 1,
                     max_total=int(args.files * args.file_mb * 1024 * 1024) + 1,
                     max_files=args.files)
    settings = replace(base, database=replace(base.database, url=url, pool_min=1,
                                              pool_max=args.concurrency + 2),
                       people=replace(base.people, key=new_key_text()), attachments=limits)
    pool = await create_pool(settings.database, url)
    people = await People.open(pool, settings.people, SystemClock())
    queue = Queue(pool, people.sealer)
    addresses = [f"hogosha{i:05d}@docomo.ne.jp" for i in range(args.recipients)]

    def message() -> NewBroadcast:
        return NewBroadcast(sender="school@city.example.jp", subject="学年だより",
                            body="添付の資料をご覧ください。\n" * 5, recipients=addresses,
                            priority=Priority.NORMAL)

    uploads = [attachments.Upload(f"資料{i}.pdf", pdf(args.file_mb, i)) for i in range(args.files)]
    total_mb = sum(len(u.data) for u in uploads) / (1024 * 1024)
    t0 = time.perf_counter()
    files = attachments.check_uploads(limits, uploads)
    t_check = time.perf_counter() - t0
    print(f"check_uploads: {args.files} files, {total_mb:.1f} MB in {t_check:.3f} s")

    t0 = time.perf_counter()
    await send_broadcast(people, queue, message(), Audience(), Category.NOTICE, 86400)
    t_plain = time.perf_counter() - t0
    now = people.clock.now()
    t0 = time.perf_counter()
    fan = await send_broadcast(
        people, queue, message(), Audience(), Category.NOTICE, 86400,
        within=attachments.storing(people.sealer, files, now, limits, now),
    )
    t_files = time.perf_counter() - t0
    print(f"fan-out of {fan.recipients} recipients: {t_plain:.3f} s alone, {t_files:.3f} s with "
          f"{total_mb:.1f} MB of files sealed and stored in the same transaction "
          f"(+{t_files - t_plain:.3f} s)")

    one = [attachments.Upload("学年だより.pdf", pdf(args.download_mb, 1))]
    b = await send_broadcast(
        people, queue, replace(message(), recipients=addresses[: args.downloads]), Audience(),
        Category.NOTICE, 86400,
        within=attachments.storing(people.sealer, attachments.check_uploads(limits, one), now,
                                   limits, now),
    )
    ids = [r["id"] for r in await pool.fetch(
        "SELECT id FROM deliveries WHERE broadcast_id = $1", b.broadcast_id)]
    site = await open_site(settings, people, SECRET)
    server = uvicorn.Server(uvicorn.Config(create_app(site), host="127.0.0.1", port=0,
                                           log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    for _ in range(200):  # up to 10 s for uvicorn to bind
        if server.started:
            break
        await asyncio.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    expires = int(time.time()) + 3600
    paths = [f"/m/{site.links.token(PAGE, d, expires)}/files/1" for d in ids]
    received = 0

    async def worker(mine: list[str]) -> None:
        nonlocal received
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as c:
            for path in mine:
                r = await c.get(path)
                assert r.status_code == 200, r.text[:200]
                received += len(r.content)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(paths[i :: args.concurrency]) for i in range(args.concurrency)))
    t_dl = time.perf_counter() - t0
    server.should_exit = True
    await task
    logged = await pool.fetchval("SELECT count(*) FROM attachment_downloads")
    mb = received / (1024 * 1024)
    print(f"downloads over HTTP: {len(paths)} x {args.download_mb} MB from {args.concurrency} "
          f"clients in {t_dl:.2f} s = {len(paths) / t_dl:.0f} downloads/s, {mb / t_dl:.0f} MB/s; "
          f"{logged} logged")
    t0 = time.perf_counter()
    deleted = await attachments.purge(pool, None)
    t_purge = time.perf_counter() - t0
    print(f"purge of {deleted} files with VACUUM: {t_purge:.3f} s")
    await pool.close()
    return {
        "recipients": args.recipients, "files": args.files, "files_mb": round(total_mb, 1),
        "check_s": round(t_check, 3), "fanout_s": round(t_plain, 3),
        "fanout_with_files_s": round(t_files, 3), "downloads": len(paths),
        "download_mb": args.download_mb, "downloads_per_s": round(len(paths) / t_dl, 1),
        "download_mb_per_s": round(mb / t_dl, 1), "purge_s": round(t_purge, 3),
    }


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipients", type=int, default=30000)
    p.add_argument("--files", type=int, default=5)
    p.add_argument("--file-mb", type=float, default=4.0)
    p.add_argument("--downloads", type=int, default=400)
    p.add_argument("--download-mb", type=float, default=2.0)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--database-url", default="")
    result = asyncio.run(main(p.parse_args()))
    print(json.dumps(result))
