"""Import benchmark: 40,000 accounts with two contacts each from a generated CP932 CSV.

    python bench/people_import.py [--accounts 40000] [--schools 20] [--database-url URL]

Generates the CSV (Shift_JIS/CP932, Japanese headers and names), then times what
`mamoru accounts import --confirmed` does: decoding and checking every row, checking the rows
against the database, and writing accounts, sealed contacts and links in one transaction.
Then it times re-importing the export with 5 % of the rows changed (every 20th child renamed,
its second address replaced) and --close-missing, as `mamoru accounts import` does it:
every row matched to its account, only the changes written (goal < 60 s for 40,000).
Without --database-url it starts an embedded PostgreSQL in a temporary directory. Prints the
phases and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.people import Organisation, OrgKind, People  # noqa: E402
from engine.people.accounts import export_csv, plan_import, write_import  # noqa: E402
from engine.people.csv_import import parse_rows  # noqa: E402
from engine.people.directory import add_organisation  # noqa: E402
from engine.people.importing import ImportOptions, import_accounts  # noqa: E402
from engine.platform.clock import SystemClock  # noqa: E402
from engine.platform.config import DatabaseSettings, PeopleSettings  # noqa: E402
from engine.platform.db import create_pool  # noqa: E402
from engine.platform.sealing import new_key_text  # noqa: E402

CARRIERS = ("docomo.ne.jp", "ezweb.ne.jp", "softbank.ne.jp", "i.softbank.jp", "gmail.com")
SURNAMES = ("山田", "佐藤", "鈴木", "高橋", "田中", "渡辺", "伊藤", "中村", "小林", "加藤")
GIVEN = ("太郎", "花子", "一郎", "陽菜", "蓮", "結衣", "大翔", "さくら", "悠真", "美咲")


def generate_csv(accounts: int, schools: int) -> bytes:
    lines = ["学校,学年,組,番号,氏名,連絡先1,連絡先2,グループ"]
    per_school = -(-accounts // schools)
    for i in range(accounts):
        school, k = divmod(i, per_school)
        grade, k = divmod(k, -(-per_school // 6))
        klass, number = divmod(k, 35)
        name = f"{SURNAMES[i % 10]} {GIVEN[(i // 10) % 10]}"
        c1 = f"hogosha{i}a@{CARRIERS[i % 5]}"
        # Every twentieth second contact is an old docomo address with a double dot.
        c2 = f"hogosha..{i}@docomo.ne.jp" if i % 20 == 0 else f"hogosha{i}b@{CARRIERS[(i + 1) % 5]}"
        lines.append(f"s{school:02d},{grade + 1},{klass + 1},{number + 1},{name},{c1},{c2},")
    return ("\r\n".join(lines) + "\r\n").encode("cp932")


def database_url(given: str | None) -> str:
    """``given``, or a fresh embedded PostgreSQL in a temporary directory (deleted by pgserver
    when the process ends): the benchmarks' database."""
    if given:
        return given
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import pgserver

    tmp = tempfile.mkdtemp(prefix="mamoru-bench-pg-", dir="/tmp")
    return str(pgserver.get_server(tmp, cleanup_mode="delete").get_uri())


async def add_board(people: People, schools: int) -> Organisation:
    """The benchmarks' board and its elementary schools s00, s01, ... (generate_csv's codes)."""
    board = await add_organisation(people, OrgKind.BOARD, "board", "ベンチ市教育委員会")
    for s in range(schools):
        await add_organisation(people, OrgKind.ELEMENTARY, f"s{s:02d}", f"ベンチ第{s + 1}小学校")
    return board


async def import_board(people: People, accounts: int, schools: int) -> Organisation:
    """The board with ``accounts`` children of two confirmed contacts each; the board."""
    board = await add_board(people, schools)
    plan = await plan_import(people, parse_rows(generate_csv(accounts, schools)))
    await write_import(people, plan, confirmed=True)
    return board


def changed_export(text: str) -> str:
    """The export with every 20th row's name and second address changed."""
    lines = text.split("\r\n")
    for i in range(1, len(lines), 20):
        if not lines[i]:
            continue
        cells = lines[i].split(",")
        cells[5] += "改"
        cells[9] = f"new{i}@docomo.ne.jp"
        lines[i] = ",".join(cells)
    return "\r\n".join(lines)


async def main(args: argparse.Namespace) -> dict[str, float | int]:
    url = database_url(args.database_url)
    pool = await create_pool(DatabaseSettings(url=url, pool_min=1, pool_max=2), url)
    people = await People.open(pool, PeopleSettings(key=new_key_text()), SystemClock())
    await add_board(people, args.schools)
    data = generate_csv(args.accounts, args.schools)
    print(f"CSV: {args.accounts} accounts, {len(data) / 1e6:.1f} MB in CP932")

    t0 = time.perf_counter()
    parsed = parse_rows(data)
    t1 = time.perf_counter()
    plan = await plan_import(people, parsed)
    t2 = time.perf_counter()
    result = await write_import(people, plan, confirmed=True)
    t3 = time.perf_counter()
    assert not plan.errors and result.accounts == args.accounts, plan.errors[:3]
    edited = changed_export(await export_csv(people))
    t4 = time.perf_counter()
    report = await import_accounts(
        people, parse_rows(edited.encode("utf-8")), ImportOptions(True, close_missing=True)
    )
    t5 = time.perf_counter()
    await pool.close()
    wanted = -(-args.accounts // 20)
    assert report.errors == [] and report.updated == wanted, (report.errors[:3], report.updated)
    assert report.added == 0 and report.closed == 0
    print(f"read and check rows ({parsed.encoding}): {t1 - t0:.2f} s")
    print(f"check against the database:          {t2 - t1:.2f} s")
    print(f"write (seal, COPY, one transaction):  {t3 - t2:.2f} s")
    print(f"total: {result.accounts} accounts, {result.new_contacts} contacts in {t3 - t0:.2f} s")
    print(f"re-import with 5 % changed:           {t5 - t4:.2f} s "
          f"(updated {report.updated}, unchanged {report.unchanged})")
    return {
        "reimport_seconds": round(t5 - t4, 3),
        "reimport_updated": report.updated,
        "accounts": result.accounts,
        "contacts": result.new_contacts,
        "parse_seconds": round(t1 - t0, 3),
        "plan_seconds": round(t2 - t1, 3),
        "write_seconds": round(t3 - t2, 3),
        "total_seconds": round(t3 - t0, 3),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=40_000)
    parser.add_argument("--schools", type=int, default=20)
    parser.add_argument("--database-url", default="")
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
