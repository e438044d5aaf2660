"""What an operator scripts, under staff rights: send to an audience, a broadcast's status and
its recipients as CSV.

``mamoru send --as LOGIN`` (or ``--api-key-file FILE``) sends through
``engine.staff.sending.create``, and ``mamoru broadcasts status|recipients ID`` read through
``engine.staff.follow``: the same rights checks and audit entries as the HTTP API. Without
``--as``/``--api-key-file`` the command line acts with the board's rights, named in the audit
log by the OS user.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from cli.audience_cmd import AudienceOptions, audience_of
from cli.broadcasts_cmd import app
from cli.people_session import ConfigOption, fail, note, out, settings_of
from cli.staff_session import ApiKeyFileOption, AsOption, acting_principal, run_staff
from engine.people import Category, People
from engine.people.recipients import AccountRef, accounts_of
from engine.platform.clock import jst, jst_text
from engine.platform.config import Settings
from engine.platform.private_files import write_private
from engine.queue import NewBroadcast, Queue, State
from engine.queue.broadcasts import BROADCAST_STATE_LABELS_JA
from engine.queue.models import STATE_LABELS_JA
from engine.staff import follow, sending
from engine.staff.rights import tenant
from engine.staff.store import Staff


def send_as(
    settings: Settings, broadcast: NewBroadcast, people_opts: AudienceOptions,
    as_login: str | None, api_key_file: Path | None,
) -> sending.Created:
    """The broadcast to the audience, as that staff member or key (rights, owner, audit)."""
    if broadcast.recipients:
        fail(
            "--as / --api-key-file では --to / --to-file は使えません。--school などで配信先を"
            "指定してください (with --as, name an audience: --school, --grade, --class, "
            "--group, --board)"
        )
    if broadcast.sender_name or broadcast.reply_to:
        fail(
            "--as / --api-key-file では --sender-name / --reply-to は使えません "
            "(not available with --as yet)"
        )

    async def use(people: People, staff: Staff) -> sending.Created:
        actor = await acting_principal(staff, as_login, api_key_file)
        category = (
            Category.parse(people_opts.category) if people_opts.category else Category.NOTICE
        )

        async def make() -> sending.Created:
            audience = await audience_of(staff.pool, people, people_opts, tenant(actor))
            asks = people_opts.asks
            req = sending.BroadcastRequest(
                broadcast.sender, broadcast.subject, broadcast.body, audience, category,
                broadcast.priority, broadcast.send_at,
                read=asks.read if asks is not None else None,
            )
            return await sending.create(
                staff, people, Queue(staff.pool, people.sealer), actor, req,
                settings.queue.max_age
            )

        return await staff.audited(
            actor, "broadcast.create", "", make(),
            object_of=lambda c: f"broadcast {c.broadcast_id}", detail="via command line",
        )

    return run_staff(settings, use)


def _status_json(st: follow.Status) -> dict[str, Any]:
    b = st.broadcast
    return {
        "id": b.id, "subject": b.subject, "sender": b.sender,
        "priority": b.priority.name.lower(), "category": b.category, "state": b.state.value,
        "created_at": jst(b.created_at).isoformat(timespec="seconds"),
        "send_at": jst(b.send_at).isoformat(timespec="seconds"),
        "recipients": b.recipient_count, "suppressed": b.suppressed_count,
        "states": {s.value: n for s, n in b.by_state.items()},
        "by_category": [
            {"category": c.category, "label_ja": c.label_ja, "state": c.state.value,
             "count": c.count}
            for c in st.by_category
        ],
        "skipped": st.skipped,
        "may_have_arrived": st.may_have_arrived,
    }


@app.command("status")
def status(
    broadcast_id: Annotated[int, typer.Argument(help="The broadcast's id.")],
    as_login: AsOption = None,
    api_key_file: ApiKeyFileOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
    config: ConfigOption = None,
) -> None:
    """One broadcast's counts by state and error category, within your rights (配信の状況)."""
    settings = settings_of(config)

    async def use(people: People, staff: Staff) -> follow.Status:
        actor = await acting_principal(staff, as_login, api_key_file)
        return await staff.audited(
            actor, "broadcast.status", f"broadcast {broadcast_id}",
            follow.status(staff.pool, actor, broadcast_id, staff.now()),
        )

    st = run_staff(settings, use)
    if as_json:
        print(json.dumps(_status_json(st), ensure_ascii=False))
        return
    b = st.broadcast
    table = Table(title=f"配信 {b.id}: {b.subject} ({BROADCAST_STATE_LABELS_JA[b.state]})")
    table.add_column("状態")
    table.add_column("件数", justify="right")
    for s in State:
        table.add_row(f"{STATE_LABELS_JA[s]} ({s.value})", str(b.by_state.get(s, 0)))
    out().print(table)
    out().print(
        f"送信時刻 {jst_text(b.send_at, seconds=False)} (日本時間)、宛先 {b.recipient_count} 件、"
        f"配信停止 {b.suppressed_count} 件", markup=False,
    )
    if st.by_category:
        errors = Table(title="エラー区分別")
        for column in ("区分", "状態", "件数"):
            errors.add_column(column)
        for c in st.by_category:
            errors.add_row(c.label_ja or c.category, STATE_LABELS_JA[c.state], str(c.count))
        out().print(errors)
    if st.may_have_arrived:
        out().print(
            f"失敗のうち {st.may_have_arrived} 件は、送信中に処理が中断したため、届いている"
            "可能性があります (一覧の「備考」欄)。", markup=False,
        )


def _account_label(a: AccountRef) -> str:
    if a.grade is None:
        return a.name
    return f"{a.name} ({a.grade}年{a.class_name + '組' if a.class_name else ''})"


@app.command("recipients")
def recipients(
    broadcast_id: Annotated[int, typer.Argument(help="The broadcast's id.")],
    as_login: AsOption = None,
    api_key_file: ApiKeyFileOption = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="Only those failed or waiting for a retry.")
    ] = False,
    state: Annotated[
        str | None, typer.Option(help="queued | sending | deferred | delivered | failed")
    ] = None,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write the CSV here (default: standard output).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Every recipient with the accounts it receives for, as CSV (UTF-8 with BOM, Japan time)
    within your rights (宛先ごとの結果の CSV)."""
    settings = settings_of(config)
    try:
        which = follow.RecipientFilter(State(state) if state else None, failed_only=failed)
    except ValueError:
        raise typer.BadParameter(f"unknown state {state!r}", param_hint="--state") from None

    async def use(people: People, staff: Staff) -> tuple[str, int]:
        actor = await acting_principal(staff, as_login, api_key_file)
        rows = await staff.audited(
            actor, "broadcast.recipients_csv", f"broadcast {broadcast_id}",
            follow.all_recipients(
                staff.pool, people.sealer, actor, broadcast_id, which, staff.now()
            ),
        )
        refs = await accounts_of(people, [r.address for r in rows])
        names = {a: "、".join(_account_label(x) for x in found) for a, found in refs.items()}
        return follow.recipients_csv(rows, names), len(rows)

    text, count = run_staff(settings, use)
    if out_file is None:
        sys.stdout.write(text)
        return
    try:
        write_private(out_file, text.encode("utf-8"))
    except OSError as exc:
        raise typer.BadParameter(f"cannot write {out_file}: {exc.strerror}") from None
    note(f"{count} 件を {out_file} に書き出しました。")
