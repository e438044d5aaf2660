"""A city of 100,000 and a year of history (issue 25): does the cost stay flat?

    python bench/scale.py [--small 30000] [--large 100000] [--history 8000000]
                          [--bulk 100000] [--emergency 300] [--workers N] [--pages 5]
                          [--rounds 1] [--profile] [--no-prune] [--database-url URL]

``--large 0``, ``--history 0`` or ``--bulk 0`` leaves that scenario out. The history scenario
seeds a database of its own on the same server and alternates ``--small`` mails on an empty
queue and on the history (``--rounds`` pairs, best of each); ``--profile`` prints what the
server did in the last pair side by side (``bench/pgprofile.py``).

In one run, on one PostgreSQL (its own embedded one unless ``--database-url`` names an empty
database):

1. **size**: ``--small`` then ``--large`` personal mails (each with its own links, DKIM
   RSA-2048 signed alone) from an empty queue to a sink (``bench/throughput.py``'s settings and
   sink): first claim to last outcome, the ratio, the peak RSS of the largest runner process;
   then the fan-out of ``--large`` addresses from a people audience (a board of ``--large``/2
   accounts with two contacts each, ``bench/audience_fanout.py``): resolved, stored, runners
   woken (NOTIFY heard).
2. **history**: ``--history`` finished deliveries (30,000 per broadcast, each with one attempt,
   a third of them read) and an eighth as many audit entries of a board of 20 schools, seeded
   with COPY, then ``--small`` personal mails again, against the empty-queue time of step 1;
   the queries behind ``broadcasts status`` (counts by state of one broadcast), the recipients
   list (every delivery of one broadcast), the staff broadcast page (its counts and the first
   and the last page of 50 recipients, all and unread: engine/staff/follow.py), the audit page
   of the board and of one school, and ``mamoru status`` (counts over the whole table), each
   the best of ``--pages`` runs; the claim's plan (EXPLAIN ANALYZE) with and without the
   live-only index. Then retention: the seeded history made 14 months old and pruned by
   ``engine/queue/retention.prune`` (batched deletes), against loading the same rows into a
   copy partitioned by month and dropping the partitions.
3. **emergency**: ``--emergency`` emergency mails submitted behind ``--bulk`` queued bulk
   mails (``bench/emergency.py``: ``mamoru serve`` with shaping and the carrier simulator):
   first and last accepted after the submission.

Prints the figures and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import audience_fanout  # noqa: E402
import emergency  # noqa: E402
import shaping  # noqa: E402
import throughput  # noqa: E402
from carriersim import DEFAULT_LIMITS  # noqa: E402
from people_import import database_url  # noqa: E402
from sink import start_sink  # noqa: E402

from engine.platform.config import DatabaseSettings, Settings  # noqa: E402
from engine.platform.db import create_pool  # noqa: E402

PER_BROADCAST = 30_000
QUEUE_TABLES = "broadcasts, deliveries, delivery_attempts"


async def _sql(url: str, *statements: str) -> None:
    pool = await create_pool(DatabaseSettings(url=url, pool_min=1, pool_max=1), url)
    try:
        for s in statements:
            await pool.execute(s)
    finally:
        await pool.close()


async def sibling_database(url: str, name: str, drop: bool = False) -> str:
    """Another database on the same server (the audience benchmark has its own people key)."""
    from urllib.parse import urlsplit, urlunsplit

    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        if not drop:
            await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def personal_settings(url: str, sink: str, tmp: Path) -> Settings:
    base = throughput.bench_settings(url, sink, tmp, per_recipient=True)
    # A public_url: every mail carries its own signed links, so each is signed alone.
    return replace(
        base,
        http=replace(base.http, public_url="https://mamoru.example.jp", listen=""),
        people=replace(base.people, link_key_file=str(tmp / "link.key")),
    )


def send(settings: Settings, n: int, workers: int) -> dict[str, float]:
    """n personal mails from the queue to the sink; first claim to last outcome."""
    from engine.delivery.workers import run_workers

    asyncio.run(throughput.enqueue(settings, n))
    stats = run_workers(settings, workers, exit_when_idle=True)
    first = min(s.first_claim for s in stats if s.first_claim is not None)
    last = max(s.last_record for s in stats if s.last_record is not None)
    return {"messages": n, "seconds": round(last - first, 3)}


def peak_child_mb() -> float:
    # The largest peak RSS of any runner process so far (they are this process's children).
    return round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)


async def seed_history(url: str, n: int) -> dict[str, float]:
    """n finished deliveries in broadcasts of 30,000, with one attempt each and a third read,
    all through COPY; then ANALYZE."""
    pool = await create_pool(DatabaseSettings(url=url, pool_min=1, pool_max=2), url)
    try:
        t0 = time.perf_counter()
        done = 0
        broadcasts = -(-n // PER_BROADCAST)
        sealed = b"\x00" * 60  # not an address: history is never opened here
        while done < n:
            size = min(PER_BROADCAST, n - done)
            # Spread over the past year, the newest a day old.
            days = 1 + 364 * (broadcasts - 1 - done // PER_BROADCAST) / max(broadcasts - 1, 1)
            at = await pool.fetchval("SELECT now() - make_interval(days => $1)", int(days))
            bid = await pool.fetchval(
                "INSERT INTO broadcasts (sender, subject, body, priority, send_at, created_at, "
                "recipient_count) VALUES ('kyouiku@city.example.jp', '学校だより', '本文', 2, "
                "$2, $2, $1) RETURNING id",
                size, at,
            )
            first = await pool.fetchval(
                "SELECT nextval(pg_get_serial_sequence('deliveries', 'id'))")
            # Ids taken from the identity's sequence in one step, so attempts can name them.
            await pool.execute(
                "SELECT setval(pg_get_serial_sequence('deliveries', 'id'), $1)", first + size)
            ids = range(first + 1, first + size + 1)
            async with pool.acquire() as conn:
                await conn.execute("SET session_replication_role = replica")  # no FK checks
                await conn.copy_records_to_table(
                    "deliveries",
                    columns=("id", "broadcast_id", "recipient_sealed", "recipient_hash",
                             "domain", "priority", "state", "next_attempt_at", "expires_at",
                             "attempts", "last_code", "created_at", "updated_at", "finished_at"),
                    records=((i, bid, sealed, i.to_bytes(8, "big"), "docomo.ne.jp", 2,
                              "delivered", at, at, 1, 250, at, at, at) for i in ids),
                )
                await conn.copy_records_to_table(
                    "delivery_attempts",
                    columns=("delivery_id", "attempted_at", "outcome", "code"),
                    records=((i, at, "delivered", 250) for i in ids),
                )
                await conn.copy_records_to_table(
                    "delivery_reads", columns=("delivery_id", "broadcast_id", "read_at"),
                    records=((i, bid, at) for i in ids if i % 3 == 0),
                )
                await conn.execute("SET session_replication_role = origin")
            done += size
        audit_rows = await seed_audit(pool, n // 8)
        await pool.execute(
            "VACUUM ANALYZE deliveries, delivery_attempts, delivery_reads, audit_log")
        return {"seeded": n, "audit_seeded": audit_rows,
                "seed_seconds": round(time.perf_counter() - t0, 1)}
    finally:
        await pool.close()


async def seed_audit(pool: Any, n: int) -> int:
    """A board of 20 schools and n audit entries spread over the past year, half a minute
    apart, by its staff (the chain's MACs are placeholders: the pages do not verify it)."""
    board = await pool.fetchval(
        "INSERT INTO organisations (kind, code, name, final_grade, created_at) "
        "VALUES ('board', 'scale', 'ベンチ市教育委員会', 6, now()) RETURNING id")
    orgs = [board] + [await pool.fetchval(
        "INSERT INTO organisations (kind, code, name, parent_id, final_grade, created_at) "
        "VALUES ('elementary', $1, $2, $3, 6, now()) RETURNING id",
        f"scale{s:02d}", f"ベンチ第{s + 1}小学校", board) for s in range(20)]
    actions = ("login", "broadcast.send", "roster.class", "account.update", "template.save")
    now = await pool.fetchval("SELECT now()")
    async with pool.acquire() as conn:
        await conn.copy_records_to_table(
            "audit_log",
            columns=("seq", "at", "actor_kind", "actor_id", "actor_name", "organisation_id",
                     "action", "object", "result", "prev_mac", "mac"),
            records=((i + 1, now - timedelta(seconds=30 * (n - i)), "staff", 1 + i % 300,
                      f"職員{i % 300}", orgs[i % len(orgs)], actions[i % len(actions)],
                      f"broadcast {i}", "ok", b"\x00" * 32, b"\x00" * 32)
                     for i in range(n)),
        )
    return n


async def timings(url: str, pages: int) -> dict[str, Any]:
    """The queries behind the status and recipients pages of the newest broadcast, `mamoru
    status` and the claim's plan."""
    from engine.platform.sealing import Sealer
    from engine.queue import Queue
    from engine.queue.store import CLAIM_SQL
    from engine.staff import audit, follow
    from engine.staff.models import CLI_PRINCIPAL

    pool = await create_pool(DatabaseSettings(url=url, pool_min=1, pool_max=2), url)
    try:
        sealer = Sealer.from_key(throughput.BENCH_PEOPLE_KEY, "")
        queue = Queue(pool, sealer)
        bid = await pool.fetchval("SELECT max(id) FROM broadcasts")

        async def best(call: Any) -> float:
            out = []
            for _ in range(pages):
                t0 = time.perf_counter()
                await call()
                out.append(time.perf_counter() - t0)
            return round(min(out) * 1000, 1)

        figures: dict[str, Any] = {
            "broadcast_status_ms": await best(lambda: queue.broadcast_counts([bid])),
            "recipients_ms": await best(lambda: queue.deliveries_of(bid)),
            "overall_status_ms": await best(queue.state_counts),
        }

        # The staff broadcast page: its counts, then the first and the last page of 50
        # recipients, all of them and the unread ones (engine/staff/follow.py).
        async def page(which: Any, last: bool) -> None:
            st = await follow.status(pool, CLI_PRINCIPAL, bid, now)
            offset = 0
            if last:
                total, _ = await follow.recipients_of(pool, sealer, st, which, limit=50)
                offset = max(total - 50, 0)
            await follow.recipients_of(pool, sealer, st, which, limit=50, offset=offset)

        # The audit page of the board and of one school (newest 50 and their count up to the
        # screen's bound), and the API's exact count.
        from admin_api.screens.audit import COUNT_UP_TO

        board = await pool.fetchval("SELECT id FROM organisations WHERE code = 'scale'")
        school = await pool.fetchval("SELECT id FROM organisations WHERE code = 'scale00'")
        for label, af in (("board", audit.AuditFilter(board_id=board)),
                          ("school", audit.AuditFilter(organisation_id=school))):
            figures[f"audit_{label}_ms"] = await best(
                lambda f=af: audit.entries(pool, f, 50, 0, COUNT_UP_TO))
            figures[f"audit_{label}_exact_ms"] = await best(
                lambda f=af: audit.entries(pool, f, 50))
        now = await pool.fetchval("SELECT now()")
        for label, which in (("page", follow.RecipientFilter()),
                             ("page_unread", follow.RecipientFilter(unread=True))):
            figures[f"{label}_first_ms"] = await best(lambda w=which: page(w, False))
            figures[f"{label}_last_ms"] = await best(lambda w=which: page(w, True))
        explain = "EXPLAIN (ANALYZE, FORMAT JSON) " + CLAIM_SQL
        args = (await pool.fetchval("SELECT now()"), 200, 300.0, "explain", [], [],
                "cancelled")
        async with pool.acquire() as conn:
            for label in ("with_index", "without_index"):
                tr = conn.transaction()
                await tr.start()
                if label == "without_index":
                    # Every live-only index, or the planner takes the expiry's instead.
                    await conn.execute("DROP INDEX deliveries_due, deliveries_expiry, "
                                       "deliveries_live_by_broadcast")
                plan = json.loads(await conn.fetchval(explain, *args))[0]
                await tr.rollback()
                figures[f"claim_{label}_ms"] = round(plan["Execution Time"], 2)
        return figures
    finally:
        await pool.close()


async def retention_vs_partitions(url: str) -> dict[str, Any]:
    """The whole history pruned by batched deletes as if 14 months had passed, against the
    same rows in a copy partitioned by month (created_at), dropped month by month."""
    from engine.queue.retention import prune

    pool = await create_pool(DatabaseSettings(url=url, pool_min=1, pool_max=2), url)
    try:
        now = await pool.fetchval("SELECT now()")
        await pool.execute(
            "CREATE TABLE part_deliveries (LIKE deliveries INCLUDING DEFAULTS) "
            "PARTITION BY RANGE (created_at)")
        months = []
        for m in range(14):
            name = f"part_deliveries_m{m}"
            await pool.execute(
                f"CREATE TABLE {name} PARTITION OF part_deliveries FOR VALUES FROM ($1) TO ($2)"
                .replace("$1", f"'{(now - timedelta(days=30 * (m + 1))).isoformat()}'")
                .replace("$2", f"'{(now - timedelta(days=30 * m)).isoformat()}'")
                if m < 13 else f"CREATE TABLE {name} PARTITION OF part_deliveries DEFAULT")
            months.append(name)
        await pool.execute("CREATE INDEX ON part_deliveries (broadcast_id, recipient_hash)")
        t0 = time.perf_counter()
        await pool.execute("INSERT INTO part_deliveries SELECT * FROM deliveries")
        load = time.perf_counter() - t0
        t0 = time.perf_counter()
        for name in months:
            await pool.execute(f"DROP TABLE {name}")
        drop = time.perf_counter() - t0
        await pool.execute("DROP TABLE part_deliveries")
        done = await prune(pool, now + timedelta(days=14 * 30), 396 * 86400.0)
        return {
            "pruned_deliveries": done.deliveries, "pruned_attempts": done.attempts,
            "prune_seconds": done.seconds,
            "prune_rows_per_second": round(done.deliveries / done.seconds) if done.seconds else 0,
            "partition_drop_seconds": round(drop, 3),
            "partition_copy_seconds": round(load, 1),
        }
    finally:
        await pool.close()


def emergency_behind(url: str, bulk: int, urgent: int, tmp: Path) -> dict[str, Any]:
    sim, ports = shaping.start_sim(DEFAULT_LIMITS, tmp)
    try:
        cfg = tmp / "mamoru.toml"
        cfg.write_text(emergency.config_text(url, ports, 4), encoding="utf-8")
        return asyncio.run(emergency.scenario(
            SimpleNamespace(bulk=bulk, emergency=urgent), url, cfg))
    finally:
        shaping.stop_sim(sim)


def history_scenario(args: argparse.Namespace, settings: Settings, url: str, port: int,
                     workers: int) -> dict[str, Any]:
    """``--small`` mails on an empty queue and on ``--history`` finished rows (a database of
    its own on the same server), alternated ``--rounds`` times; then the pages and retention.
    With ``--profile`` the statements and counters of the last pair, side by side."""
    import pgprofile

    hist_url = asyncio.run(sibling_database(url, f"mamoru_scale_history_{port}"))
    history = asyncio.run(seed_history(hist_url, args.history))
    print(f"history: {args.history} finished deliveries seeded in "
          f"{history['seed_seconds']} s", flush=True)
    on_history = replace(settings, database=replace(settings.database, url=hist_url))
    empty_s: list[float] = []
    full_s: list[float] = []
    profiles: dict[str, Any] = {}
    for r in range(args.rounds):
        for label, where, out in (("empty", settings, empty_s), ("history", on_history, full_s)):
            asyncio.run(_sql(url, f"TRUNCATE {QUEUE_TABLES} CASCADE"))
            prof = (asyncio.run(pgprofile.Profile.start(where.database.url))
                    if args.profile and r == args.rounds - 1 else None)
            out.append(send(where, args.small, workers)["seconds"])
            if prof is not None:
                profiles[label] = asyncio.run(prof.stop())
            print(f"  round {r + 1}: {args.small} mails on {label}: {out[-1]} s "
                  f"(load {load()})", flush=True)
    asyncio.run(_sql(url, f"TRUNCATE {QUEUE_TABLES} CASCADE"))
    if profiles:
        print(pgprofile.top_statements(profiles), flush=True)
        print(pgprofile.stats_side_by_side(profiles), flush=True)
    history["empty_seconds"] = min(empty_s)
    history["small_seconds"] = min(full_s)
    history["vs_empty"] = round(min(full_s) / min(empty_s), 3)
    history["vs_empty_each_round"] = [round(f / e, 3) for e, f in zip(empty_s, full_s, strict=True)]
    history.update(asyncio.run(timings(hist_url, args.pages)))
    print(f"  {args.small} mails on top: best {history['small_seconds']} s against "
          f"{history['empty_seconds']} s empty ({history['vs_empty']}× the empty queue; each "
          f"round {history['vs_empty_each_round']}); broadcast status "
          f"{history['broadcast_status_ms']} ms, recipients "
          f"{history['recipients_ms']} ms (all); staff page first/last 50: "
          f"{history['page_first_ms']}/{history['page_last_ms']} ms, unread "
          f"{history['page_unread_first_ms']}/{history['page_unread_last_ms']} ms; "
          f"audit page (board / school, {history['audit_seeded']} entries) "
          f"{history['audit_board_ms']} / {history['audit_school_ms']} ms (exact count, as the "
          f"API: {history['audit_board_exact_ms']} / {history['audit_school_exact_ms']} ms); "
          f"whole-table status "
          f"{history['overall_status_ms']} ms; claim {history['claim_with_index_ms']} ms "
          f"({history['claim_without_index_ms']} ms without the live-only index)",
          flush=True)
    if args.prune:
        history.update(asyncio.run(retention_vs_partitions(hist_url)))
        print(f"  retention: {history['pruned_deliveries']} deliveries pruned in "
              f"{history['prune_seconds']} s ({history['prune_rows_per_second']}/s); the same "
              f"rows partitioned by month: loaded in {history['partition_copy_seconds']} s, "
              f"dropped in {history['partition_drop_seconds']} s", flush=True)
    asyncio.run(sibling_database(url, f"mamoru_scale_history_{port}", drop=True))
    return history


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=30_000)
    parser.add_argument("--large", type=int, default=100_000, help="0: no size scenario")
    parser.add_argument("--history", type=int, default=8_000_000, help="0: no history scenario")
    parser.add_argument("--rounds", type=int, default=1,
                        help="empty / history pairs of the history scenario (best of each)")
    parser.add_argument("--profile", action="store_true",
                        help="the last pair's statements and counters (bench/pgprofile.py)")
    parser.add_argument("--no-prune", dest="prune", action="store_false",
                        help="skip the retention part of the history scenario")
    parser.add_argument("--bulk", type=int, default=100_000, help="0: no emergency scenario")
    parser.add_argument("--emergency", type=int, default=300)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--pages", type=int, default=5, help="runs of each page query")
    parser.add_argument("--database-url", default="", help="an empty database (default: own)")
    args = parser.parse_args()
    from engine.delivery.workers import default_worker_count

    workers = args.workers or default_worker_count()
    tmp = Path(tempfile.mkdtemp(prefix="mamoru-scale-", dir="/tmp"))
    url = database_url(args.database_url)
    port = throughput.free_port()
    sink_proc = start_sink("127.0.0.1", port)
    out: dict[str, Any] = {"workers": workers, "load_start": load()}
    try:
        settings = personal_settings(url, f"127.0.0.1:{port}", tmp)
        if args.large:
            small = send(settings, args.small, workers)
            asyncio.run(_sql(url, f"TRUNCATE {QUEUE_TABLES} CASCADE"))
            large = send(settings, args.large, workers)
            out["small"], out["large"] = small, large
            out["ratio"] = round(large["seconds"] / small["seconds"], 2)
            out["peak_worker_mb"] = peak_child_mb()
            print(f"personal signed mails: {args.small} in {small['seconds']} s, {args.large} "
                  f"in {large['seconds']} s (ratio {out['ratio']} for "
                  f"{args.large / args.small:.2f}× the work); peak worker RSS "
                  f"{out['peak_worker_mb']} MB (load {load()})", flush=True)
            asyncio.run(_sql(url, f"TRUNCATE {QUEUE_TABLES} CASCADE"))
            people_db = f"mamoru_scale_people_{port}"
            fan = asyncio.run(audience_fanout.main(SimpleNamespace(
                accounts=args.large // 2, schools=20, rounds=1,
                database_url=asyncio.run(sibling_database(url, people_db)))))
            asyncio.run(sibling_database(url, people_db, drop=True))
            out["fanout"] = {"recipients": fan["recipients"],
                             "until_runners_wake_seconds": fan["until_runners_wake_median_seconds"],
                             "with_linking_seconds": fan["send_best_seconds"]}
            asyncio.run(_sql(url, f"TRUNCATE {QUEUE_TABLES} CASCADE"))
        if args.history:
            out["history"] = history_scenario(args, settings, url, port, workers)
    finally:
        sink_proc.terminate()
        sink_proc.wait(10)
    if args.bulk and args.emergency:
        # A database of its own: serve there runs with the default link key file.
        urgent_db = f"mamoru_scale_emergency_{port}"
        out["emergency"] = emergency_behind(asyncio.run(sibling_database(url, urgent_db)),
                                            args.bulk, args.emergency, tmp)
        asyncio.run(sibling_database(url, urgent_db, drop=True))
        print(f"emergency: {args.emergency} behind {args.bulk} bulk: first after "
              f"{out['emergency']['first_seconds']} s, last after "
              f"{out['emergency']['last_seconds']} s")
    out["load_end"] = load()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
