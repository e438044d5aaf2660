"""What PostgreSQL did during one timed part of a benchmark, to compare two parts side by side.

The embedded PostgreSQL (pgserver) has no pg_stat_statements, so statements are timed from the
server's own log: ``log_min_duration_statement = 0`` (parameters left out) while the part runs,
then the log written meanwhile is summed by statement. Beside it, the deltas of the
cumulative statistics: per table (inserts, updates, HOT updates, scans, blocks hit/read), per
index (scans, blocks), checkpoints and WAL; and the autovacuum / checkpoint lines the server
logged during the part.

    profile = await Profile.start(url)       # before the part
    ...                                       # the part (any processes, any connections)
    result = await profile.stop()             # after it: a dict
    print(side_by_side({"empty": a, "history": b}))

Needs a superuser connection (the embedded server's) to change and reload the settings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

_SETTINGS = {
    "log_min_duration_statement": "0",
    "log_parameter_max_length": "0",
    "log_parameter_max_length_on_error": "0",
    "log_autovacuum_min_duration": "0",
    "log_checkpoints": "on",
}

_TABLES = """
SELECT s.relname, s.seq_scan, s.seq_tup_read, s.idx_scan, s.n_tup_ins, s.n_tup_upd,
       s.n_tup_hot_upd, s.n_tup_del, s.n_dead_tup, s.autovacuum_count, s.autoanalyze_count,
       io.heap_blks_read, io.heap_blks_hit, io.idx_blks_read, io.idx_blks_hit
FROM pg_stat_user_tables s JOIN pg_statio_user_tables io USING (relid)
"""
_INDEXES = """
SELECT s.indexrelname AS relname, s.idx_scan, s.idx_tup_read, io.idx_blks_read, io.idx_blks_hit
FROM pg_stat_user_indexes s JOIN pg_statio_user_indexes io USING (indexrelid)
"""
_SERVER = """
SELECT c.checkpoints_timed, c.checkpoints_req, c.buffers_checkpoint, c.buffers_clean,
       c.buffers_backend, w.wal_records, w.wal_fpi, w.wal_bytes::bigint AS wal_bytes
FROM pg_stat_bgwriter c, pg_stat_wal w
"""

_ENTRY = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
_DURATION = re.compile(r"duration: ([\d.]+) ms\s+(?:(parse|bind|execute) [^:]*|statement): (.*)",
                       re.S)


async def _rows(conn: asyncpg.Connection, sql: str) -> dict[str, dict[str, int]]:
    return {r["relname"]: {k: int(v or 0) for k, v in r.items() if k != "relname"}
            for r in await conn.fetch(sql)}


async def _snapshot(conn: asyncpg.Connection) -> dict[str, Any]:
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    server = await conn.fetchrow(_SERVER)
    return {"tables": await _rows(conn, _TABLES), "indexes": await _rows(conn, _INDEXES),
            "server": {k: int(v) for k, v in server.items()}}


def _delta(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    def sub(a: dict[str, dict[str, int]], b: dict[str, dict[str, int]]) -> dict[str, Any]:
        out = {}
        for name, vals in a.items():
            was = b.get(name, {})
            d = {k: v - was.get(k, 0) for k, v in vals.items() if k != "n_dead_tup"}
            if any(d.values()):
                d["n_dead_tup"] = vals.get("n_dead_tup", 0)
                out[name] = d
        return out

    return {"tables": sub(after["tables"], before["tables"]),
            "indexes": sub(after["indexes"], before["indexes"]),
            "server": {k: v - before["server"][k] for k, v in after["server"].items()}}


def _statement_key(phase: str | None, sql: str) -> str:
    text = " ".join(sql.split())
    return f"{phase or 'simple'}: {text[:110]}"


def parse_log(text: str) -> tuple[dict[str, list[float]], list[str]]:
    """Statements' durations by normalised text, and the autovacuum/checkpoint lines."""
    entries: list[str] = []
    for line in text.splitlines():
        if _ENTRY.match(line) or not entries:
            entries.append(line)
        else:
            entries[-1] += "\n" + line
    statements: dict[str, list[float]] = {}
    events = []
    for e in entries:
        m = _DURATION.search(e)
        if m:
            statements.setdefault(_statement_key(m.group(2), m.group(3)), []).append(
                float(m.group(1)))
        elif "automatic vacuum" in e or "automatic analyze" in e or "checkpoint" in e:
            events.append(" ".join(e.split())[:160])
    return statements, events


@dataclass
class Profile:
    url: str
    log: Path
    offset: int
    before: dict[str, Any]

    @classmethod
    async def start(cls, url: str) -> Profile:
        conn = await asyncpg.connect(url)
        try:
            for name, value in _SETTINGS.items():
                await conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
            await conn.execute("SELECT pg_reload_conf()")
            log = Path(await conn.fetchval("SHOW data_directory")) / "log"
            before = await _snapshot(conn)
        finally:
            await conn.close()
        return cls(url, log, log.stat().st_size if log.exists() else 0, before)

    async def stop(self) -> dict[str, Any]:
        conn = await asyncpg.connect(self.url)
        try:
            # Backends flush their statistics at exit or within a second: the runners exited.
            after = await _snapshot(conn)
            for name in _SETTINGS:
                await conn.execute(f"ALTER SYSTEM RESET {name}")
            await conn.execute("SELECT pg_reload_conf()")
        finally:
            await conn.close()
        with self.log.open("rb") as f:
            f.seek(self.offset)
            text = f.read().decode("utf-8", "replace")
        statements, events = parse_log(text)
        return {"stats": _delta(after, self.before), "statements": statements, "events": events}


def top_statements(parts: dict[str, dict[str, Any]], n: int = 15) -> str:
    """The top ``n`` statements by total time of any part, one column pair per part."""
    names = list(parts)
    totals = {k: {p: sum(parts[p]["statements"].get(k, [])) for p in names}
              for part in parts.values() for k in part["statements"]}
    top = sorted(totals, key=lambda k: -max(totals[k].values()))[:n]
    head = "".join(f"{p + ' ms':>14}{'calls':>8}{'ms/call':>9}" for p in names)
    lines = [f"{head}  statement"]
    for k in top:
        cols = ""
        for p in names:
            calls = parts[p]["statements"].get(k, [])
            total = sum(calls)
            cols += f"{total:14.1f}{len(calls):8d}{(total / len(calls) if calls else 0):9.3f}"
        lines.append(f"{cols}  {k}")
    lines.append("".join(f"{sum(sum(v) for v in parts[p]['statements'].values()):14.1f}"
                         f"{sum(len(v) for v in parts[p]['statements'].values()):8d}{'':9}"
                         for p in names) + "  (all statements)")
    return "\n".join(lines)


def stats_side_by_side(parts: dict[str, dict[str, Any]], tables: tuple[str, ...] = (
        "deliveries", "delivery_attempts", "broadcasts", "runners")) -> str:
    """Table, index and server counters of each part, side by side."""
    names = list(parts)
    lines = [f"{'':44}" + "".join(f"{p:>16}" for p in names)]

    def row(label: str, values: list[int]) -> None:
        if any(values):
            lines.append(f"{label:44}" + "".join(f"{v:16d}" for v in values))

    for t in tables:
        keys = sorted({k for p in names for k in parts[p]["stats"]["tables"].get(t, {})})
        for k in keys:
            row(f"{t}.{k}", [parts[p]["stats"]["tables"].get(t, {}).get(k, 0) for p in names])
    idx = sorted({i for p in names for i in parts[p]["stats"]["indexes"]})
    for i in idx:
        for k in ("idx_scan", "idx_tup_read", "idx_blks_hit", "idx_blks_read"):
            row(f"{i}.{k}", [parts[p]["stats"]["indexes"].get(i, {}).get(k, 0) for p in names])
    for k in parts[names[0]]["stats"]["server"]:
        row(f"server.{k}", [parts[p]["stats"]["server"].get(k, 0) for p in names])
    for p in names:
        for e in parts[p]["events"]:
            lines.append(f"[{p}] {e}")
    return "\n".join(lines)
