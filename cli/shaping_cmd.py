"""`mamoru shaping status`: what the runners' traffic shaping is doing, per egress address
and receiving site (published by every runner every 5 s)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cli.cells import cell, json_value
from cli.options import ConfigOption, run
from cli.options import settings as load_settings
from engine.platform.config import Settings

out = Console(highlight=False, soft_wrap=True)

app = typer.Typer(help="Traffic shaping: what the runners are doing (送信速度の制御).")


@app.command("status")
def shaping_status(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Rate, connections and suspensions per egress address and site (送信元・宛先ごとの状況)."""
    settings = load_settings(config)
    rows = run(lambda: _shaping_rows(settings))
    if as_json:
        print(json.dumps({"pairs": rows}, ensure_ascii=False, default=json_value))
        return
    if not rows:
        out.print("まだ送信の記録がありません (mamoru serve が送信を始めると表示されます)。")
        return
    table = Table(title="送信速度の制御 (送信元 × 宛先サイト、時刻は日本時間)")
    for c in ("送信元", "サイト", "プロファイル", "速度/上限 (通/秒)", "接続 (使用/許可)",
              "停止中 (まで)", "ブロック (次の試行)", "減速", "送信", "遅延指示", "拒否", "更新"):
        table.add_column(c)
    now = datetime.now(UTC)
    for r in rows:
        suspended = r["suspended_until"]
        table.add_row(
            r["source"] or "(既定)", r["site"], r["profile"],
            f"{r['rate']:.1f} / {r['ceiling']:.1f}",
            f"{r['connections_in_use']} / {r['connections_allowed']}",
            cell(suspended) if suspended and suspended > now else "",
            _blockscell(r, now),
            str(r["cuts"]), str(r["sent"]), str(r["throttled"]), str(r["refused"]),
            cell(r["updated_at"]),
        )
    out.print(table)


def _blockscell(row: dict[str, Any], now: datetime) -> str:
    """Blocks of the pair, and while one lasts when the next probe goes and why."""
    if not row.get("blocks"):
        return ""
    until = row.get("blocked_until")
    if until and until > now:
        return f"{row['blocks']} 回、ブロック中 ({cell(until)}): {row['block_reason']}"
    return f"{row['blocks']} 回 (解除済み)"


async def _shaping_rows(settings: Settings) -> list[dict[str, Any]]:
    from engine.delivery import shaping_state
    from engine.delivery.context import Engine

    engine = await Engine.open(settings)
    try:
        return await shaping_state.read(engine.pool)
    finally:
        await engine.close()
