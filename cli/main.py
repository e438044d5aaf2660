"""The ``mamoru`` command: serve, send, status, deliveries."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
import uvloop
from rich.console import Console
from rich.table import Table

from engine.address import normalise_address
from engine.config import Settings, load_settings, parse_host_port
from engine.errors import InputError, MamoruError
from engine.queue import NewBroadcast, Priority, State
from engine.queue.models import STATE_LABELS_JA

app = typer.Typer(
    name="mamoru",
    help="mamoru — 学校・自治体の安全・緊急メール配信エンジン (mail transfer engine).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
from cli.dkim_cmd import app as dkim_app  # noqa: E402 - mounted right after app is made
from cli.report_cmd import app as report_app  # noqa: E402
from cli.suppression_cmd import app as suppression_app  # noqa: E402

app.add_typer(dkim_app, name="dkim")
app.add_typer(suppression_app, name="suppression")
app.add_typer(report_app, name="report")

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

T = TypeVar("T")

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML configuration file (default: $MAMORU_CONFIG)."),
]


def _settings(config: Path | None) -> Settings:
    """The settings, or exit with the configuration error on one line (exit code 1)."""
    try:
        return load_settings(config)
    except MamoruError as exc:
        _fail(str(exc), 1)


def _run(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine on uvloop; a MamoruError becomes one line on stderr and exit code 1."""
    try:
        return uvloop.run(make())
    except MamoruError as exc:
        err.print(f"mamoru: error: {exc}", markup=False, soft_wrap=True)
        raise typer.Exit(2 if isinstance(exc, InputError) else 1) from None


def _fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"mamoru: error: {message}", markup=False, soft_wrap=True)
    raise typer.Exit(code)


@app.command()
def serve(
    config: ConfigOption = None,
    exit_when_idle: Annotated[
        bool, typer.Option(help="Deliver everything that is due, then exit 0.")
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Runner processes (default: one per CPU core)."),
    ] = None,
) -> None:
    """Run the delivery runners (配信を実行する)."""
    from engine.db import redact
    from engine.workers import (
        catch_early_stop,
        default_worker_count,
        run_one,
        run_workers,
        with_resolved_database,
        worker_count,
    )

    catch_early_stop()
    try:
        settings = with_resolved_database(_settings(config))
    except MamoruError as exc:
        _fail(str(exc), 1)
    count = worker_count(settings, workers or default_worker_count())
    out.print(f"mamoru serve: configuration {settings.source}")
    out.print(f"  database     {redact(settings.database.url)}")
    if settings.metrics.listen and not exit_when_idle:
        host, port = parse_host_port("metrics.listen", settings.metrics.listen, 9464)
        more = f" (worker 1; worker N on port {port} + N - 1)" if count > 1 else ""
        out.print(f"  metrics      http://{host}:{port}/metrics{more}")
    if settings.inbound.listen and not exit_when_idle:
        out.print(f"  inbound SMTP {settings.inbound.listen} (bounces to VERP addresses)")
    for domain, target in sorted(settings.routing.transport.items()):
        out.print(f"  transport    {domain} -> {target}")
    if not settings.routing.transport:
        out.print("  transport    (none: MX lookup in DNS)")
    out.print(
        f"  runners      {count} process(es), up to {settings.delivery.concurrency} "
        f"mails in flight each"
    )

    def ready() -> None:
        out.print("配信を開始します。停止するには Ctrl+C (SIGTERM でも安全に停止します)。")

    try:
        if count == 1:
            all_stats = [_run(lambda: run_one(settings, exit_when_idle, on_ready=ready))]
        else:
            all_stats = run_workers(settings, count, exit_when_idle, on_ready=ready)
    except MamoruError as exc:
        _fail(str(exc), 1)
    out.print(
        f"停止しました: 配信済み {sum(s.delivered for s in all_stats)}, "
        f"再送待ち {sum(s.deferred for s in all_stats)}, "
        f"失敗 {sum(s.failed for s in all_stats)}, 返却 {sum(s.released for s in all_stats)}"
    )


@app.command()
def send(
    sender: Annotated[str, typer.Option("--sender", help="From address (差出人).")],
    subject: Annotated[str, typer.Option("--subject", help="Subject (件名).")],
    body_file: Annotated[Path, typer.Option("--body-file", help="UTF-8 text file with the body.")],
    to: Annotated[
        list[str] | None, typer.Option("--to", help="Recipient; repeat for more.")
    ] = None,
    to_file: Annotated[
        Path | None,
        typer.Option("--to-file", help="File with one recipient address per line."),
    ] = None,
    priority: Annotated[
        str, typer.Option(help="emergency | normal | bulk")
    ] = "normal",
    send_at: Annotated[
        str | None,
        typer.Option(help="Send at this time (ISO 8601, e.g. 2026-11-23T07:00+09:00)."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Enqueue a broadcast and print its id (一斉配信を登録する)."""
    try:
        settings = _settings(config)
        broadcast = _read_broadcast(
            sender, subject, body_file, to or [], to_file, priority, send_at
        )
    except MamoruError as exc:
        _fail(str(exc), 2 if isinstance(exc, InputError) else 1)
    except ValueError as exc:
        _fail(str(exc))
    broadcast_id = _run(lambda: _enqueue(settings, broadcast))
    out.print(broadcast_id)
    err.print(f"{len(broadcast.recipients)} 件の宛先で配信 {broadcast_id} を登録しました。")


def _read_broadcast(
    sender: str,
    subject: str,
    body_file: Path,
    to: list[str],
    to_file: Path | None,
    priority: str,
    send_at: str | None,
) -> NewBroadcast:
    try:
        sender_addr = normalise_address(sender)
    except InputError as exc:
        raise InputError(f"--sender: {exc}") from None
    if not subject.strip():
        raise InputError("--subject is empty")
    if "\n" in subject or "\r" in subject:
        raise InputError("--subject must be one line")
    body = _read_text("--body-file", body_file)
    if not body.strip():
        raise InputError(f"--body-file {body_file} is empty: there is nothing to send")
    recipients: list[str] = []
    for value in to:
        try:
            recipients.append(normalise_address(value))
        except InputError as exc:
            raise InputError(f"--to: {exc}") from None
    if to_file is not None:
        recipients.extend(_read_recipient_file(to_file))
    if not recipients:
        raise InputError("no recipients: give --to ADDRESS or --to-file FILE")
    when = None
    if send_at:
        try:
            when = datetime.fromisoformat(send_at)
        except ValueError:
            raise InputError(f"--send-at {send_at!r} is not an ISO 8601 time") from None
        if when.tzinfo is None:
            raise InputError("--send-at needs a time zone, e.g. 2026-11-23T07:00+09:00")
    return NewBroadcast(
        sender=sender_addr,
        subject=subject,
        body=body,
        recipients=recipients,
        priority=Priority.parse(priority),
        send_at=when,
    )


def _read_text(option: str, path: Path) -> str:
    """A UTF-8 text file an operator named (a leading BOM, as Excel writes, is dropped)."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{option} {path} does not exist") from None
    except UnicodeDecodeError:
        raise InputError(f"{option} {path} is not UTF-8 text") from None
    except OSError as exc:
        raise InputError(f"{option} {path} cannot be read: {exc.strerror}") from None


def _read_recipient_file(path: Path) -> list[str]:
    """One address per line; blank lines and lines starting with # are skipped.

    Every line is checked before anything is stored, and all bad lines are reported together so
    the operator can fix the file in one go.
    """
    lines = _read_text("--to-file", path).splitlines()
    good: list[str] = []
    bad: list[str] = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            good.append(normalise_address(text))
        except InputError as exc:
            bad.append(f"line {number}: {exc}")
    if bad:
        shown = "; ".join(bad[:5])
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise InputError(f"--to-file {path}: {len(bad)} invalid address(es): {shown}{more}")
    return good


async def _enqueue(settings: Settings, broadcast: NewBroadcast) -> int:
    from engine.context import Engine

    engine = await Engine.open(settings)
    try:
        return await engine.queue.enqueue(
            broadcast, engine.clock.now(), settings.queue.max_age
        )
    finally:
        await engine.close()


@app.command()
def status(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
    latest: Annotated[int, typer.Option(help="How many recent broadcasts to list.")] = 20,
) -> None:
    """Deliveries by state, overall and per broadcast (配信状況)."""
    settings = _settings(config)
    data = _run(lambda: _status(settings, latest))
    if as_json:
        print(json.dumps(data, ensure_ascii=False))
        return
    states = list(State)
    overall = Table(title="配信状況 (全体)")
    for s in states:
        overall.add_column(f"{STATE_LABELS_JA[s]}\n{s.value}", justify="right")
    overall.add_row(*(str(data["overall"][s.value]) for s in states))
    out.print(overall)
    per = Table(title="配信ごと (新しい順)")
    per.add_column("id", justify="right")
    per.add_column("件名")
    per.add_column("優先度")
    per.add_column("宛先", justify="right")
    for s in states:
        per.add_column(s.value, justify="right")
    for b in data["broadcasts"]:
        per.add_row(
            str(b["id"]), b["subject"], b["priority"], str(b["recipients"]),
            *(str(b["states"][s.value]) for s in states),
        )
    out.print(per)


async def _status(settings: Settings, latest: int) -> dict[str, Any]:
    from engine.context import Engine

    engine = await Engine.open(settings)
    try:
        overall = await engine.queue.state_counts()
        per = await engine.queue.broadcast_counts(latest=latest)
    finally:
        await engine.close()
    return {
        "overall": {s.value: n for s, n in overall.items()},
        "broadcasts": [
            {
                "id": b.id,
                "subject": b.subject,
                "priority": b.priority.name.lower(),
                "created_at": b.created_at.isoformat(),
                "recipients": b.recipient_count,
                "suppressed": b.suppressed_count,
                "states": {s.value: n for s, n in b.by_state.items()},
            }
            for b in per
        ],
    }


_DELIVERY_COLUMNS = (
    "recipient", "state", "attempts", "last_code", "last_status", "last_text", "reason",
    "category", "created_at", "updated_at", "finished_at",
)


@app.command()
def deliveries(
    broadcast_id: Annotated[int, typer.Argument(help="The broadcast's id (from `mamoru send`).")],
    config: ConfigOption = None,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV on standard output.")] = False,
) -> None:
    """One row per recipient of a broadcast (宛先ごとの配信結果)."""
    settings = _settings(config)
    rows = _run(lambda: _deliveries(settings, broadcast_id))
    if as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(_DELIVERY_COLUMNS)
        for r in rows:
            writer.writerow(_cell(r[c]) for c in _DELIVERY_COLUMNS)
        return
    table = Table(title=f"配信 {broadcast_id} の宛先別結果")
    for c in ("宛先", "状態", "試行", "応答", "拡張", "応答文", "分類", "更新"):
        table.add_column(c)
    for r in rows:
        table.add_row(
            r["recipient"],
            STATE_LABELS_JA[State(r["state"])],
            str(r["attempts"]),
            _cell(r["last_code"]),
            _cell(r["last_status"]),
            _cell(r["last_text"]),
            _category_label(r["category"], r["reason"]),
            _cell(r["updated_at"]),
        )
    out.print(table)


async def _deliveries(settings: Settings, broadcast_id: int) -> list[dict[str, Any]]:
    from engine.context import Engine

    engine = await Engine.open(settings)
    try:
        return await engine.queue.deliveries_of(broadcast_id)
    finally:
        await engine.close()


def _category_label(category: str | None, reason: str | None) -> str:
    """The Japanese category label with the fine reason, e.g. "宛先不明 (userunknown)"."""
    from engine.bounce import CATEGORIES

    if not category:
        return _cell(reason)
    label = CATEGORIES[category].label_ja if category in CATEGORIES else category
    return f"{label} ({reason})" if reason else label


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    return str(value)


shaping_app = typer.Typer(help="Traffic shaping: what the runners are doing (送信速度の制御).")
app.add_typer(shaping_app, name="shaping")


@shaping_app.command("status")
def shaping_status(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Rate, connections and suspensions per egress address and site (送信元・宛先ごとの状況)."""
    settings = _settings(config)
    rows = _run(lambda: _shaping_rows(settings))
    if as_json:
        print(json.dumps({"pairs": rows}, ensure_ascii=False, default=_cell))
        return
    if not rows:
        out.print("まだ送信の記録がありません (mamoru serve が送信を始めると表示されます)。")
        return
    table = Table(title="送信速度の制御 (送信元 × 宛先サイト)")
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
            _cell(suspended) if suspended and suspended > now else "",
            _blocks_cell(r, now),
            str(r["cuts"]), str(r["sent"]), str(r["throttled"]), str(r["refused"]),
            _cell(r["updated_at"]),
        )
    out.print(table)


def _blocks_cell(row: dict[str, Any], now: datetime) -> str:
    """Blocks of the pair, and while one lasts when the next probe goes and why."""
    if not row.get("blocks"):
        return ""
    until = row.get("blocked_until")
    if until and until > now:
        return f"{row['blocks']} 回、ブロック中 ({_cell(until)}): {row['block_reason']}"
    return f"{row['blocks']} 回 (解除済み)"


async def _shaping_rows(settings: Settings) -> list[dict[str, Any]]:
    from engine import shaping_state
    from engine.context import Engine

    engine = await Engine.open(settings)
    try:
        return await shaping_state.read(engine.pool)
    finally:
        await engine.close()
