"""The ``mamoru`` command: serve, send, status, deliveries."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cli.audit_trail import Trail, audited
from cli.cells import cell, json_value
from cli.options import ConfigOption, exit_code, fail, remember_config, run
from cli.options import settings as load_settings
from cli.staff_session import ApiKeyFileOption, AsOption
from engine.message.checks import check_body, check_sender_name, check_subject
from engine.platform.address import normalise_address
from engine.platform.clock import JST
from engine.platform.config import Settings, parse_host_port
from engine.platform.csv_io import decode_text
from engine.platform.errors import InputError, MamoruError
from engine.queue import NewBroadcast, Priority, State
from engine.queue.broadcasts import refuse_past_send_at, unique_recipients
from engine.queue.models import STATE_LABELS_JA
from engine.staff.follow import Recipient, category_label, recipients_csv

app = typer.Typer(
    name="mamoru",
    help="mamoru — 学校・自治体の安全・緊急メール配信エンジン (mail transfer engine).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
from cli import backup_cmd  # noqa: E402
from cli.attachments_cmd import app as attachments_app  # noqa: E402
from cli.audit_cmd import app as audit_app  # noqa: E402
from cli.broadcasts_cmd import app as broadcasts_app  # noqa: E402 - mounted right after app
from cli.db_cmd import app as db_app  # noqa: E402
from cli.db_cmd import init  # noqa: E402
from cli.dkim_cmd import app as dkim_app  # noqa: E402 - mounted right after app is made
from cli.follow_cmd import status as _follow  # noqa: E402, F401 - adds broadcasts status/recipients
from cli.people_mount import mount_people  # noqa: E402
from cli.queue_cmd import app as queue_app  # noqa: E402
from cli.report_cmd import app as report_app  # noqa: E402
from cli.shaping_cmd import app as shaping_app  # noqa: E402
from cli.staff_cmd import app as staff_app  # noqa: E402
from cli.suppression_cmd import app as suppression_app  # noqa: E402

app.add_typer(dkim_app, name="dkim")
app.add_typer(shaping_app, name="shaping")
app.add_typer(suppression_app, name="suppression")
app.add_typer(report_app, name="report")
app.add_typer(broadcasts_app, name="broadcasts")
mount_people(app)
app.add_typer(staff_app, name="staff")
app.add_typer(audit_app, name="audit")
app.add_typer(attachments_app, name="attachments")
app.add_typer(queue_app, name="queue")
app.command(name="backup")(backup_cmd.backup)
app.command(name="restore")(backup_cmd.restore_cmd)
app.add_typer(db_app, name="db")
app.command("init")(init)

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)

def _click_error(name: str) -> type[Exception]:
    """The click exception class ``name`` as typer uses it. Recent typer vendors click and
    re-exports only ``BadParameter``; the others live in the same module."""
    cls: type[Exception] = getattr(sys.modules[typer.BadParameter.__module__], name)
    return cls


def main() -> None:
    """The ``mamoru`` console script: the app, with usage errors as one line (exit code 2)."""
    no_args = _click_error("NoArgsIsHelpError")
    click_error = _click_error("ClickException")
    try:
        code = app(prog_name="mamoru", standalone_mode=False)
    except no_args as exc:
        # `mamoru` (or `mamoru suppression`) alone: the help, whole, as click shows it.
        print(exc.format_message(), file=sys.stderr)  # type: ignore[attr-defined]
        code = exc.exit_code  # type: ignore[attr-defined]
    except click_error as exc:
        ctx: Any = getattr(exc, "ctx", None)
        message = " ".join(exc.format_message().split())  # type: ignore[attr-defined]
        hint = f" (see: {ctx.command_path} --help)" if ctx is not None else ""
        err.print(f"mamoru: error: {message}{hint}", markup=False, soft_wrap=True)
        code = exc.exit_code  # type: ignore[attr-defined]
    except typer.Abort:
        err.print("mamoru: 中断しました / aborted", markup=False)
        code = 1
    sys.exit(code if isinstance(code, int) else 0)


@app.callback()
def options(config: ConfigOption = None) -> None:
    """mamoru — 学校・自治体の安全・緊急メール配信エンジン (mail transfer engine)."""
    # --config before the subcommand; the subcommand's own --config is merged with it.
    remember_config(config)


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
    from cli.services import front_services
    from engine.delivery.preflight import preflight
    from engine.delivery.workers import (
        catch_early_stop,
        default_worker_count,
        run_one,
        run_workers,
        with_resolved_database,
        worker_count,
    )
    from engine.platform.db import redact
    from engine.platform.embedded import Watchdog
    from engine.platform.embedded import data_path as embedded_data_path
    from engine.platform.logs import configure as configure_logs

    catch_early_stop()
    settings = load_settings(config)
    configure_logs(settings.log, settings.host.name)
    embedded_dir = "" if settings.database.url else settings.database.data_dir
    count = worker_count(settings, workers or default_worker_count())
    try:
        # One line for a missing key or a port in use, before any worker starts.
        preflight(settings, workers=count, listening=not exit_when_idle)
        settings = with_resolved_database(settings)
    except MamoruError as exc:
        fail(str(exc), 1)
    unsigned = run(lambda: _unsigned_warning(settings))
    if unsigned:
        err.print(f"mamoru: 警告 / warning: {unsigned}", markup=False, soft_wrap=True)
    out.print(f"mamoru serve: configuration {settings.source}")
    out.print(f"  database     {redact(settings.database.url)}")
    if embedded_dir:
        out.print(f"  embedded     {embedded_data_path(embedded_dir)} (restarted by serve if it "
                  f"stops; keeps running after serve: `mamoru db stop`)")
    if settings.metrics.listen and not exit_when_idle:
        host, port = parse_host_port("metrics.listen", settings.metrics.listen, 9464)
        more = f" (all {count} workers)" if count > 1 else ""
        out.print(f"  metrics      http://{host}:{port}/metrics{more}")
    if settings.inbound.listen and not exit_when_idle:
        out.print(f"  inbound SMTP {settings.inbound.listen} (bounces to VERP addresses)")
    if settings.people.registration_address and settings.inbound.listen and not exit_when_idle:
        out.print(f"  registration {settings.people.registration_address} (empty mail)")
    if settings.submission.listen and not exit_when_idle:
        tls = "STARTTLS" if settings.submission.tls_cert else "no TLS: development only"
        out.print(f"  submission   {settings.submission.listen} (SMTP, {tls}, AUTH with an API "
                  f"key; group addresses @{settings.submission.domain})")
    if settings.http.listen and not exit_when_idle:
        host, port = parse_host_port("http.listen", settings.http.listen, 8080)
        public = settings.http.public_url or "(http.public_url unset: no links in mail)"
        out.print(f"  pages        http://{host}:{port}/  public URL {public}")
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

    watchdog = Watchdog(embedded_dir).start() if embedded_dir else None
    try:
        if count == 1:
            all_stats = [run(lambda: run_one(
                settings, exit_when_idle, on_ready=ready, services=front_services
            ))]
        else:
            all_stats = run_workers(
                settings, count, exit_when_idle, on_ready=ready, services=front_services
            )
    except MamoruError as exc:
        fail(str(exc), 1)
    finally:
        if watchdog is not None:
            watchdog.close()
    out.print(
        f"停止しました: 配信済み {sum(s.delivered for s in all_stats)}, "
        f"再送待ち {sum(s.deferred for s in all_stats)}, "
        f"失敗 {sum(s.failed for s in all_stats)}, 返却 {sum(s.released for s in all_stats)}"
    )


async def _unsigned_warning(settings: Settings) -> str:
    """A warning when mail waiting to be sent comes from a domain without a DKIM key (unless
    dkim.allow_unsigned). serve starts all the same: that mail is held, never sent unsigned
    (carriers refuse it or file it as spam), and every other broadcast goes out."""
    from engine.delivery.context import Engine
    from engine.message.dkim import dkim_settings

    dkim = dkim_settings(settings.dkim)
    if dkim.allow_unsigned:
        return ""
    engine = await Engine.open(settings)
    try:
        unsigned = dkim.unsigned_domains(await engine.queue.pending_sender_domains())
    finally:
        await engine.close()
    if not unsigned:
        return ""
    domains = ", ".join(unsigned)
    return (
        f"送信待ちの配信の送信元ドメイン {domains} に DKIM 鍵がありません。その配信は鍵を追加する"
        f"まで保留し、ほかの配信は送ります / no DKIM key for {domains}, which has mail waiting: "
        "that mail is held (add [[dkim.keys]] with `mamoru dkim keygen DOMAIN SELECTOR`, or set "
        "dkim.allow_unsigned = true); everything else goes out"
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
        typer.Option(help="Send at this time (ISO 8601; without a zone Japan time)."),
    ] = None,
    board: Annotated[bool, typer.Option("--board", help="Every account of the board.")] = False,
    school: Annotated[list[str] | None, typer.Option(help="School (code or name).")] = None,
    grade: Annotated[list[str] | None, typer.Option(help="Grade of --school, e.g. 3.")] = None,
    class_: Annotated[
        list[str] | None, typer.Option("--class", help="Class of --school, e.g. 3-1.")
    ] = None,
    group: Annotated[
        list[str] | None, typer.Option(help="Group name (or school-code/name).")
    ] = None,
    account: Annotated[list[int] | None, typer.Option(help="One account by id.")] = None,
    category: Annotated[
        str | None, typer.Option(help="緊急 | 不審者情報 | 学校行事 | 募集 | お知らせ (default).")
    ] = None,
    sender_name: Annotated[
        str, typer.Option("--sender-name", help="From display name, e.g. ○○小学校 (差出人名).")
    ] = "",
    reply_to: Annotated[
        str, typer.Option("--reply-to", help="Address replies go to (返信先).")
    ] = "",
    read_confirmation: Annotated[
        bool, typer.Option("--read-confirmation", help="Ask for 「確認しました」 (既読確認).")
    ] = False,
    remind_after: Annotated[
        str | None,
        typer.Option("--remind-after", help="Remind the unread after this long (e.g. 2h)."),
    ] = None,
    reminders: Annotated[
        int | None, typer.Option("--reminders", help="At most this many reminders (0-10).")
    ] = None,
    as_login: AsOption = None,
    api_key_file: ApiKeyFileOption = None,
    config: ConfigOption = None,
) -> None:
    """Enqueue a broadcast and print its id (一斉配信を登録する)."""
    from dataclasses import replace

    from cli.audience_cmd import AudienceOptions, enqueue_for_people, read_asks
    from cli.follow_cmd import send_as
    from engine.twoway.asks import check_way_back

    people = AudienceOptions(
        board, tuple(school or ()), tuple(grade or ()), tuple(class_ or ()),
        tuple(group or ()), tuple(account or ()), category,
    )
    try:
        settings = load_settings(config)
        people = replace(people, asks=read_asks(read_confirmation, remind_after, reminders))
        check_way_back(people.asks, settings.http.public_url)
        broadcast = _with_names(_read_broadcast(
            sender, subject, body_file, to or [], to_file, priority, send_at,
            people.names_people(),
        ), sender_name, reply_to)
    except MamoruError as exc:
        fail(str(exc), exit_code(exc))
    except ValueError as exc:
        fail(str(exc))
    try:
        warning = _check_sendable(settings, broadcast)
    except MamoruError as exc:
        fail(str(exc), exit_code(exc))
    if warning:
        err.print(f"mamoru: 警告 / warning: {warning}", markup=False, soft_wrap=True)
    if as_login or api_key_file:
        made = send_as(settings, broadcast, people, as_login, api_key_file)
        out.print(made.broadcast_id)
        err.print(f"配信 {made.broadcast_id} を登録しました: {made.summary_ja}。")
        return
    if people.given():
        fan = run(lambda: enqueue_for_people(settings, broadcast, people))
        out.print(fan.broadcast_id)
        err.print(f"配信 {fan.broadcast_id} を登録しました: {fan.summary_ja()}。")
        return
    broadcast_id = run(lambda: _enqueue(settings, broadcast))
    out.print(broadcast_id)
    # Counted as stored: the same address twice (in any case) is one recipient.
    count = len(unique_recipients(broadcast.recipients))
    err.print(f"{count} 件の宛先で配信 {broadcast_id} を登録しました。")


def _with_names(broadcast: NewBroadcast, sender_name: str, reply_to: str) -> NewBroadcast:
    """The broadcast with a checked display name and Reply-To address."""
    from dataclasses import replace

    if sender_name:
        check_sender_name(sender_name, "--sender-name")
    if reply_to:
        try:
            reply_to = normalise_address(reply_to)
        except InputError as exc:
            raise InputError(f"--reply-to: {exc}") from None
    return replace(broadcast, sender_name=sender_name.strip(), reply_to=reply_to)


def _read_broadcast(
    sender: str,
    subject: str,
    body_file: Path,
    to: list[str],
    to_file: Path | None,
    priority: str,
    send_at: str | None,
    audience_given: bool = False,
) -> NewBroadcast:
    try:
        sender_addr = normalise_address(sender)
    except InputError as exc:
        raise InputError(f"--sender: {exc}") from None
    check_subject(subject)
    body = _read_text("--body-file", body_file)
    check_body(body, f"--body-file {body_file}")
    recipients: list[str] = []
    for value in to:
        try:
            recipients.append(normalise_address(value))
        except InputError as exc:
            raise InputError(f"--to: {exc}") from None
    if to_file is not None:
        recipients.extend(_read_recipient_file(to_file))
    if not recipients and not audience_given:
        raise InputError("no recipients: give --to ADDRESS or --to-file FILE (or --school ...)")
    when = None
    if send_at:
        try:
            when = datetime.fromisoformat(send_at)
        except ValueError:
            raise InputError(f"--send-at {send_at!r} is not an ISO 8601 time") from None
        if when.tzinfo is None:
            # A time without a zone is Japan time, as operators write it (like audit, report).
            when = when.replace(tzinfo=JST)
        # Said before the database is opened; Queue.enqueue applies the same rule again.
        refuse_past_send_at(when, datetime.now(UTC))
    return NewBroadcast(
        sender=sender_addr,
        subject=subject,
        body=body,
        recipients=recipients,
        priority=Priority.parse(priority),
        send_at=when,
    )


def _check_sendable(settings: Settings, broadcast: NewBroadcast) -> str | None:
    """InputError if the mail is over its audience's smallest carrier cap; the warning to
    print when the sender's domain has no DKIM key."""
    from engine.message.checks import check_size, size_cap
    from engine.message.compose import estimated_size
    from engine.message.dkim import dkim_settings
    from engine.platform.address import domain_of
    from engine.throttle.profiles import load_profiles

    profiles = load_profiles(settings.shaping.get("profiles", {}))
    size = estimated_size(
        broadcast.subject, broadcast.body, broadcast.sender, settings.http.public_url
    )
    check_size(size, size_cap((domain_of(r) for r in broadcast.recipients), profiles))
    dkim = dkim_settings(settings.dkim)
    unsigned = dkim.unsigned_domains([domain_of(broadcast.sender)])
    if not unsigned or dkim.allow_unsigned:
        return None
    return (
        f"送信元ドメイン {unsigned[0]} の DKIM 鍵が設定されていません。このままでは serve が"
        "配信しません（[[dkim.keys]] を追加するか dkim.allow_unsigned = true） / no DKIM key "
        f"for {unsigned[0]}: serve will refuse to send it unsigned; add a [[dkim.keys]] entry "
        "(`mamoru dkim keygen`) or set dkim.allow_unsigned = true"
    )


def _read_text(option: str, path: Path) -> str:
    """A UTF-8 text file an operator named (a leading BOM, as Excel writes, is dropped)."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{option} {path} がありません ({path} does not exist)") from None
    except UnicodeDecodeError:
        raise InputError(
            f"{option} {path} は UTF-8 のテキストではありません（Shift_JIS などで保存されて"
            "います）。メモ帳などで「UTF-8」を選んで保存し直してください"
            f" ({path} is not UTF-8 text)"
        ) from None
    except OSError as exc:
        raise InputError(
            f"{option} {path} を読めません ({path} cannot be read: {exc.strerror})"
        ) from None


def _read_recipient_file(path: Path) -> list[str]:
    """One address per line (UTF-8 or CP932); blank lines and lines starting with # are
    skipped.

    Every line is checked before anything is stored, and all bad lines are reported together so
    the operator can fix the file in one go.
    """
    try:
        # Address lists are often saved from Excel: UTF-8 (BOM or not) or CP932.
        lines = decode_text(path.read_bytes(), f"--to-file {path}").splitlines()
    except FileNotFoundError:
        raise InputError(f"--to-file {path} does not exist") from None
    except OSError as exc:
        raise InputError(f"--to-file {path} cannot be read: {exc.strerror}") from None
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
    from engine.delivery.context import Engine

    engine = await Engine.open(settings)
    try:
        return await audited(
            engine.pool, settings, engine.clock,
            Trail("broadcast.send", broadcast.subject[:100],
                  detail_of=lambda i: f"broadcast={i} recipients={len(broadcast.recipients)} "
                                      f"priority={broadcast.priority.name.lower()}"),
            engine.queue.enqueue(broadcast, engine.clock.now(), settings.queue.max_age),
        )
    finally:
        await engine.close()


@app.command()
def status(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
    latest: Annotated[
        int, typer.Option(min=0, help="How many recent broadcasts to list.")
    ] = 20,
) -> None:
    """Deliveries by state, overall and per broadcast (配信状況)."""
    settings = load_settings(config)
    data = run(lambda: _status(settings, latest))
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
    from engine.delivery.context import Engine

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
                "created_at": json_value(b.created_at),
                "recipients": b.recipient_count,
                "suppressed": b.suppressed_count,
                "states": {s.value: n for s, n in b.by_state.items()},
            }
            for b in per
        ],
    }


@app.command()
def deliveries(
    broadcast_id: Annotated[int, typer.Argument(help="The broadcast's id (from `mamoru send`).")],
    config: ConfigOption = None,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV on standard output.")] = False,
) -> None:
    """One row per recipient of a broadcast (宛先ごとの配信結果)."""
    settings = load_settings(config)
    rows = run(lambda: _deliveries(settings, broadcast_id))
    if as_csv:
        # The staff API's recipients CSV: UTF-8 with BOM for Excel, Japanese headers and
        # states, Japan time.
        sys.stdout.write(recipients_csv([_recipient(r) for r in rows]))
        return
    table = Table(title=f"配信 {broadcast_id} の宛先別結果")
    for c in ("宛先", "状態", "試行", "応答", "拡張", "応答文", "分類", "更新 (日本時間)"):
        table.add_column(c)
    for r in rows:
        table.add_row(
            r["recipient"],
            STATE_LABELS_JA[State(r["state"])],
            str(r["attempts"]),
            cell(r["last_code"]),
            cell(r["last_status"]),
            cell(r["last_text"]),
            _category_label(r["category"], r["reason"]),
            cell(r["updated_at"]),
        )
    out.print(table)


async def _deliveries(settings: Settings, broadcast_id: int) -> list[dict[str, Any]]:
    from engine.delivery.context import Engine

    engine = await Engine.open(settings)
    try:
        return await engine.queue.deliveries_of(broadcast_id)
    finally:
        await engine.close()


def _recipient(r: dict[str, Any]) -> Recipient:
    return Recipient(
        r["id"], r["recipient"], State(r["state"]), r["attempts"], r["last_code"],
        r["last_status"], r["last_text"], r["reason"], r["category"],
        category_label(r["category"], r["reason"]), r["updated_at"], r["finished_at"],
        bool(r["may_have_arrived"]), r["tls"],
    )


def _category_label(category: str | None, reason: str | None) -> str:
    """The Japanese category label with the fine reason, e.g. "宛先不明 (userunknown)"."""
    from engine.bounce import CATEGORIES
    from engine.queue.broadcasts import CANCELLED_LABEL_JA, REASON_CANCELLED

    if not category:
        return f"{CANCELLED_LABEL_JA} ({reason})" if reason == REASON_CANCELLED else cell(reason)
    label = CATEGORIES[category].label_ja if category in CATEGORIES else category
    return f"{label} ({reason})" if reason else label
