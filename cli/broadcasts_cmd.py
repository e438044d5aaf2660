"""`mamoru broadcasts`: list broadcasts, scheduled ones too, and cancel one (配信の取り消し)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from cli.audit_trail import Trail, audited
from cli.cells import json_value
from cli.options import ConfigOption, run, settings
from engine.platform.clock import jst_text
from engine.platform.config import Settings
from engine.queue import BroadcastSummary, Cancellation, State
from engine.queue.broadcasts import BROADCAST_STATE_LABELS_JA

app = typer.Typer(
    help="配信 (broadcasts): list them, cancel one.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

PRIORITY_LABELS_JA = {"emergency": "緊急", "normal": "通常", "bulk": "お便り"}


@app.callback()
def broadcasts() -> None:
    """配信 (broadcasts): list them, cancel one."""


def _jst(value: datetime | None) -> str:
    return jst_text(value, seconds=False)


def _as_dict(b: BroadcastSummary) -> dict[str, Any]:
    return {
        "id": b.id,
        "created_at": json_value(b.created_at),
        "send_at": json_value(b.send_at),
        "sender": b.sender,
        "subject": b.subject,
        "priority": b.priority.name.lower(),
        "state": b.state.value,
        "cancelled_at": json_value(b.cancelled_at) if b.cancelled_at else None,
        "recipients": b.recipient_count,
        "suppressed": b.suppressed_count,
        "states": {s.value: n for s, n in b.by_state.items()},
    }


async def _list(cfg: Settings, latest: int, scheduled: bool) -> list[BroadcastSummary]:
    from engine.delivery.context import Engine

    engine = await Engine.open(cfg)
    try:
        return await engine.queue.list_broadcasts(
            engine.clock.now(), latest=latest, scheduled_only=scheduled
        )
    finally:
        await engine.close()


@app.command("list")
def list_(
    scheduled: Annotated[
        bool, typer.Option("--scheduled", help="Only broadcasts still waiting for their time.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
    latest: Annotated[int, typer.Option(min=0, help="How many broadcasts to show.")] = 20,
    config: ConfigOption = None,
) -> None:
    """Broadcasts, newest first, with their state and counts (配信の一覧)."""
    cfg = settings(config)
    rows = run(lambda: _list(cfg, latest, scheduled))
    if as_json:
        print(json.dumps({"broadcasts": [_as_dict(b) for b in rows]}, ensure_ascii=False))
        return
    out = Console(highlight=False)
    if not rows:
        out.print("予約中の配信はありません。" if scheduled else "配信はまだありません。")
        return
    title = "予約中の配信 (新しい順)" if scheduled else "配信一覧 (新しい順)"
    # Several lines per broadcast keep the table readable within 80 columns.
    table = Table(title=title, box=box.SIMPLE_HEAD)
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("送信時刻 (JST)\n登録", no_wrap=True)
    table.add_column("件名\n差出人", overflow="fold", min_width=20)
    table.add_column("優先度\n状態", no_wrap=True)
    table.add_column("件数", overflow="fold")
    for b in rows:
        unsent = b.by_state[State.QUEUED] + b.by_state[State.DEFERRED] + b.by_state[State.SENDING]
        state = BROADCAST_STATE_LABELS_JA[b.state]
        if b.cancelled_at is not None:
            state += f"\n({_jst(b.cancelled_at)[5:]})"
        priority = b.priority.name.lower()
        table.add_row(
            str(b.id), f"{_jst(b.send_at)}\n{_jst(b.created_at)}", f"{b.subject}\n{b.sender}",
            f"{PRIORITY_LABELS_JA.get(priority, priority)}\n{state}",
            f"宛先 {b.recipient_count} 未送信 {unsent}\n"
            f"済 {b.by_state[State.DELIVERED]} 失敗 {b.by_state[State.FAILED]}",
        )
    out.print(table)


async def _cancel(cfg: Settings, broadcast_id: int) -> Cancellation:
    from engine.delivery.context import Engine

    engine = await Engine.open(cfg)
    try:
        return await audited(
            engine.pool, cfg, engine.clock,
            Trail("broadcast.cancel", f"broadcast {broadcast_id}",
                  detail_of=lambda c: f"cancelled={c.cancelled} delivered={c.delivered}"),
            engine.queue.cancel(broadcast_id, engine.clock.now()),
        )
    finally:
        await engine.close()


@app.command()
def cancel(
    broadcast_id: Annotated[int, typer.Argument(help="The broadcast's id (from `mamoru send`).")],
    config: ConfigOption = None,
) -> None:
    """Stop everything of a broadcast not yet sent (配信の取り消し)."""
    cfg = settings(config)
    done = run(lambda: _cancel(cfg, broadcast_id))
    out = Console(highlight=False)
    out.print(
        f"配信 {done.broadcast_id} を取り消しました: 未送信 {done.cancelled} 件を止めました"
        f" (配信済み {done.delivered} 件、失敗 {done.failed} 件)。",
        markup=False,
    )
    if done.in_flight:
        out.print(
            f"送信中の {done.in_flight} 件は、送信が終わっていなければ配信エンジンが止めます。",
            markup=False,
        )
