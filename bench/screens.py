"""Staff screens benchmark: the server time of each screen with a board of 40,000 accounts and
a 30,000-recipient broadcast.

    python bench/screens.py [--accounts 40000] [--recipients 30000] [--history 10] [--audit 5000]
                            [--suppressions 2000] [--rounds 5] [--database-url URL]

Seeds the board with bench/people_import.py's CSV (two confirmed contacts per account), sends
one broadcast asking a question to the first recipients/2 accounts, records 90 % of it
delivered and 10 % failed through the queue as the runners do, stores answers for half its
children, adds audit entries, suppression entries and ``history`` finished broadcasts of the
same size from the days before (copies of its deliveries: the history the dashboard and the
recipients' queries must not read), then signs a board administrator in through the sign-in
form and times each screen in process (httpx's ASGI transport: the server's own time, no
network), ``rounds`` times after one warm-up. The broadcast's recipients are timed unfiltered,
failed, of one class and unanswered; the roster's account search (by name, in one school of
2,000) and its registration rates beside them. Prints one line per screen with the database
statements it issued and the time spent in them, and, last, one JSON line of every screen's
median milliseconds (goal: under 200 each) with the load average (the machine may be shared:
compare figures of one invocation). Without --database-url it starts an embedded PostgreSQL
in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from people_import import database_url, import_board  # noqa: E402

from admin_api.app import create_app  # noqa: E402
from admin_api.site import open_site  # noqa: E402
from admin_api.staff import StaffApi, mount_staff  # noqa: E402
from engine.bounce.suppression import Suppressions  # noqa: E402
from engine.people import Audience, Category  # noqa: E402
from engine.platform.config import load_settings  # noqa: E402
from engine.platform.db import create_pool  # noqa: E402
from engine.platform.sealing import new_key_text  # noqa: E402
from engine.queue import AttemptResult, NewBroadcast, Outcome  # noqa: E402
from engine.staff import accounts, audit  # noqa: E402
from engine.staff.models import CLI_PRINCIPAL, Role  # noqa: E402
from engine.twoway import Question, QuestionKind, send_broadcast  # noqa: E402
from engine.twoway.asks import Asks, ReadPolicy  # noqa: E402
from engine.twoway.questions import check_answers, split_answers  # noqa: E402

PASSWORD = "bench screens passphrase"
QUESTIONS = (Question("q", "出欠", QuestionKind.SINGLE, options=("出", "欠")),)


async def seed(api: StaffApi, args: argparse.Namespace) -> int:
    """The board, its people, one broadcast (half delivered... see the docstring); its id."""
    people, queue = api.people, api.queue
    t0 = time.perf_counter()
    board = await import_board(people, args.accounts, args.schools)
    ids = [r["id"] for r in await people.pool.fetch(
        "SELECT id FROM accounts ORDER BY id LIMIT $1", args.recipients // 2)]
    print(f"seeded {args.accounts} accounts in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    fan = await send_broadcast(
        people, queue, NewBroadcast("kyouiku@bench.example.jp", "台風による臨時休校", "本文\n", []),
        Audience(accounts=tuple(ids)), Category.EMERGENCY, 86400,
        asks=Asks(read=ReadPolicy(), questions=QUESTIONS,
            deadline=api.staff.now() + timedelta(days=2)),
    )
    now = api.staff.now()
    while claimed := await queue.claim("bench", 2000, now, 600):
        await queue.record("bench", [
            AttemptResult(c.id, Outcome.FAILED, now, 550, reason="userunknown",
                          category="unknown_user")
            if c.id % 10 == 0 else AttemptResult(c.id, Outcome.DELIVERED, now, 250)
            for c in claimed])
    print(f"broadcast {fan.broadcast_id} to {fan.recipients} addresses sent and recorded in "
          f"{time.perf_counter() - t0:.1f} s")
    await accounts.add(api.staff, accounts.NewStaff(
        "bench-board", "ベンチ 管理者", Role.BOARD, board.id, PASSWORD))
    st = api.staff
    for i in range(args.audit):
        await audit.record(st.pool, st.audit_key, now - timedelta(minutes=30 * (args.audit - i)),
                           CLI_PRINCIPAL, "bench.action", f"item {i}")
    # Half the children answered the question (stored as the personal page's submit_answers
    # stores it), so the unanswered filter has both kinds to tell apart.
    answered = json.dumps(split_answers(check_answers(QUESTIONS, {"q": "0"}))[0])
    await st.pool.execute(
        "INSERT INTO survey_responses (broadcast_id, account_id, contact_id, answers, answered_at) "
        "SELECT DISTINCT ON (da.account_id) da.broadcast_id, da.account_id, dc.contact_id, "
        "$3::jsonb, $2 FROM delivery_accounts da "
        "JOIN delivery_contacts dc ON dc.delivery_id = da.delivery_id "
        "WHERE da.broadcast_id = $1 AND da.account_id % 2 = 0 ORDER BY da.account_id",
        fan.broadcast_id, now, answered)
    await add_history(st.pool, fan.broadcast_id, args.history)
    lines = "\n".join(f"hogosha{i}a@docomo.ne.jp,userunknown" for i in range(args.suppressions))
    await Suppressions(st.pool, people.sealer).import_csv("address,reason\n" + lines)
    return fan.broadcast_id


async def add_history(pool: asyncpg.Pool, broadcast: int, count: int) -> None:
    """``count`` finished copies of ``broadcast`` (row and deliveries), made 1..count days
    before it: older broadcasts of the board, as a term of use leaves them."""
    t0 = time.perf_counter()
    columns = {
        table: [r["column_name"] for r in await pool.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = $1 "
            "AND is_generated = 'NEVER' AND column_name NOT IN ('id', 'broadcast_id') "
            "ORDER BY ordinal_position", table)]
        for table in ("broadcasts", "deliveries")
    }
    for day in range(1, count + 1):
        moved = {c: f"{c} - make_interval(days => {day})" for c in ("created_at", "send_at")}
        made = await pool.fetchval(
            f"INSERT INTO broadcasts ({', '.join(columns['broadcasts'])}) "
            f"SELECT {', '.join(moved.get(c, c) for c in columns['broadcasts'])} "
            "FROM broadcasts WHERE id = $1 RETURNING id", broadcast)
        await pool.execute(
            f"INSERT INTO deliveries (broadcast_id, {', '.join(columns['deliveries'])}) "
            f"SELECT $2, {', '.join(columns['deliveries'])} FROM deliveries "
            "WHERE broadcast_id = $1", broadcast, made)
    await pool.execute("VACUUM ANALYZE deliveries")
    if count:
        print(f"{count} older broadcasts copied in {time.perf_counter() - t0:.1f} s")


async def main(args: argparse.Namespace) -> dict[str, float]:
    url = database_url(args.database_url)
    keys = tempfile.mkdtemp(prefix="mamoru-bench-keys-", dir="/tmp")
    base = load_settings(None, environ={})
    settings = replace(
        base, database=replace(base.database, url=url, pool_min=4, pool_max=4),
        people=replace(base.people, key=new_key_text(), link_key_file=f"{keys}/link.key"),
        staff=replace(base.staff, audit_key=new_key_text(), audit_checkpoints=""),
    )
    pool = await create_pool(settings.database, url)
    api = await StaffApi.open(pool, settings)
    broadcast = await seed(api, args)
    app = create_app(await open_site(settings, api.people, b"bench-screens-secret-0123456789"))
    mount_staff(app, api)
    one_class = await pool.fetchval("SELECT min(id) FROM classes")
    school = await pool.fetchval("SELECT id FROM organisations WHERE code = 's00'")
    statements: list[float] = []
    # Every statement a screen issues, on each of the pool's connections (asyncpg has no
    # pool-wide query logger; the pool keeps all four open: pool_min).
    for holder in pool._holders:
        if holder._con is None:
            await holder.connect()
        holder._con.add_query_logger(lambda q: statements.append(q.elapsed))
    screens = {
        "dashboard": "/staff/home",
        "broadcast": f"/staff/broadcasts/{broadcast}",
        "broadcast_failed": f"/staff/broadcasts/{broadcast}?failed=true",
        "broadcast_class": f"/staff/broadcasts/{broadcast}?class_id={one_class}",
        "broadcast_unanswered": f"/staff/broadcasts/{broadcast}?unanswered=true",
        "accounts_search": f"/staff/roster/accounts?school_id={school}&name=%E5%A4%AA%E9%83%8E",
        "registration_rate": "/staff/roster/rate",
        "reports": "/staff/reports",
        "survey": f"/staff/broadcasts/{broadcast}/survey",
        "audit": "/staff/audit",
        "suppressions": "/staff/suppressions",
        "staff": "/staff/accounts",
    }
    result: dict[str, float] = {}
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as c:
        form = await c.get("/staff/login")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token
        signed = await c.post("/staff/login", data={
            "csrf": token.group(1), "login": "bench-board", "password": PASSWORD})
        assert signed.status_code == 303, signed.text[:300]
        for name, path in screens.items():
            times = []
            for n in range(args.rounds + 1):
                statements.clear()
                t0 = time.perf_counter()
                got = await c.get(path)
                elapsed = (time.perf_counter() - t0) * 1000
                assert got.status_code == 200, (path, got.status_code, got.text[:300])
                if n:
                    times.append(elapsed)
            result[name] = round(statistics.median(times), 1)
            print(f"{name:22s} {result[name]:8.1f} ms (median of {args.rounds}), "
                  f"{len(statements)} statements, {1000 * sum(statements):.1f} ms in them, "
                  f"load {os.getloadavg()[0]:.2f}")
    await pool.close()
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=40_000)
    parser.add_argument("--schools", type=int, default=20)
    parser.add_argument("--recipients", type=int, default=30_000)
    parser.add_argument("--history", type=int, default=10)
    parser.add_argument("--audit", type=int, default=5_000)
    parser.add_argument("--suppressions", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database-url", default="")
    medians = asyncio.run(main(parser.parse_args()))
    print(json.dumps({**medians, "load_average": [round(x, 2) for x in os.getloadavg()]}))
