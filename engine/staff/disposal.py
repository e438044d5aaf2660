"""Disposal at contract end (契約終了時の廃棄): every personal datum deleted for good, and a record.

``dispose_all`` deletes, in one transaction, what ``mamoru contacts purge --all`` always did
(every account, contact, membership, pending registration, the addresses in the queue,
suppressions, kept mails and bounces: engine/people/accounts.py) plus every attached file and
every staff account with its sessions, classes, groups, drafts, API keys and sign-in failures,
and appends the disposal record to the audit log in the same transaction: it happens whole,
with its record, or not at all. The freed space is vacuumed after the commit, so the deleted
rows do not linger in the table files; this is physical deletion, not a flag.

What stays: organisations (names of the board and schools), the broadcasts' subjects, bodies
and counts (their recipients already sealed "(削除済み)" placeholders), and the audit log, whose
chain must still verify (so the staff logins named in it stay as the record of who did what).
Backups taken before hold the old data until their generations expire or are removed by hand;
the record names them and the keys that open them.

``disposal_pdf`` writes the record as a PDF (the Japanese font embedded).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg

from engine.people import People
from engine.people.accounts import PURGED_TABLES, PurgeResult, purge_rows
from engine.platform.backup_files import archives
from engine.platform.clock import jst_text
from engine.platform.config import Settings
from engine.platform.pdf_flow import FlowDocument
from engine.staff import audit
from engine.staff.attachments import ATTACHMENT_TABLES, delete_all_in
from engine.staff.audit_keys import load_audit_key
from engine.staff.models import Principal

ACTION = "disposal"
METHOD_JA = (
    "データベースの行を物理削除 (DELETE) し、続けて VACUUM で表の領域を回収しました。"
    "論理削除 (削除の印を付けるだけの方式) ではありません。すべての削除と本記録は 1 つの"
    "トランザクションで行い、途中で失敗した場合は何も削除されません。"
)
KEPT_JA = (
    "残したもの: 教育委員会・学校の名称、監査ログ (改ざん検知の鎖を保つため。職員の"
    "ログイン名を含みます)。配信は件名・本文・宛先ごとの記録・返信・アンケートの回答まで"
    "すべて削除しました (月次運用レポートは廃棄の前に作成してください)。"
)
# Every broadcast and what hangs off it (deliveries, attempts, reads, answers, replies, owner
# rows: ON DELETE CASCADE, migrations 013-036): subjects and bodies can name children.
_BROADCAST_TABLES = "broadcasts, delivery_attempts, inbound_replies, survey_responses"
_STAFF_TABLES = (
    "staff, staff_sessions, staff_classes, staff_groups, api_keys, staff_login_failures, "
    "saved_messages, report_views, broadcast_owners"
)


@dataclass(frozen=True)
class StaffRemoved:
    staff: int
    sessions: int
    api_keys: int
    drafts: int


@dataclass(frozen=True)
class Disposal:
    at: datetime
    actor: str
    people: PurgeResult
    files: int
    broadcasts: int
    staff: StaffRemoved
    audit_seq: int
    verification: audit.Verification
    backup_dir: str
    backups_left: tuple[str, ...]
    keys: tuple[tuple[str, str], ...]

    def counts_ja(self) -> list[tuple[str, int]]:
        p, s = self.people, self.staff
        return [
            ("アカウント (児童・職員の名簿)", p.accounts), ("連絡先 (メールアドレス)", p.contacts),
            ("グループ登録", p.group_memberships), ("配信記録の宛先", p.deliveries),
            ("配信停止リスト", p.suppressions), ("添付資料", self.files),
            ("配信 (件名・本文・返信・回答)", self.broadcasts),
            ("職員アカウント", s.staff), ("職員のログインセッション", s.sessions),
            ("API キー", s.api_keys), ("職員の下書き", s.drafts),
        ]

    def backups_ja(self) -> str:
        where = f"バックアップの保存先 {self.backup_dir} に"
        if not self.backups_left:
            return f"{where}バックアップはありません。"
        return (
            f"{where}廃棄前のデータを含むバックアップが {len(self.backups_left)} 件残っています "
            f"(最新: {self.backups_left[-1]})。保存期間を過ぎた世代は次のバックアップの後に削除"
            "されますが、バックアップを取らなくなれば残り続けます。廃棄するにはこれらのファイル"
            " (別の場所に複製したものも) を"
            "削除し、バックアップ鍵を破棄してください。鍵がなければバックアップは復号できません。"
        )


async def _remove_staff(conn: asyncpg.Connection) -> StaffRemoved:
    """Every staff account and what hangs off it; broadcasts keep their organisation."""

    def n(status: str) -> int:
        return int(status.split()[-1])

    await conn.execute(
        "UPDATE broadcast_owners SET staff_id = NULL, api_key_id = NULL, "
        "idempotency_key = NULL, request_hash = NULL "
        "WHERE staff_id IS NOT NULL OR api_key_id IS NOT NULL"
    )
    drafts = n(await conn.execute("DELETE FROM saved_messages WHERE kind = 'draft'"))
    await conn.execute("UPDATE saved_messages SET staff_id = NULL WHERE staff_id IS NOT NULL")
    await conn.execute("DELETE FROM report_views")
    sessions = n(await conn.execute("DELETE FROM staff_sessions"))
    await conn.execute("DELETE FROM staff_classes")
    await conn.execute("DELETE FROM staff_groups")
    keys = n(await conn.execute("DELETE FROM api_keys"))
    await conn.execute("DELETE FROM staff_login_failures")
    staff = n(await conn.execute("DELETE FROM staff"))
    return StaffRemoved(staff, sessions, keys, drafts)


async def _remove_broadcasts(conn: asyncpg.Connection) -> int:
    """Every broadcast with its deliveries and attempts (the rest by cascade); templates too."""
    await conn.execute("DELETE FROM delivery_attempts")
    await conn.execute("DELETE FROM deliveries")
    await conn.execute("DELETE FROM saved_messages")
    return int((await conn.execute("DELETE FROM broadcasts")).split()[-1])


def _detail(people: PurgeResult, files: int, broadcasts: int, staff: StaffRemoved,
            backups: int) -> str:
    return (
        "物理削除 (DELETE と VACUUM、論理削除ではない); "
        f"accounts={people.accounts} contacts={people.contacts} "
        f"memberships={people.group_memberships} deliveries={people.deliveries} "
        f"broadcasts={broadcasts} "
        f"suppressions={people.suppressions} files={files} staff={staff.staff} "
        f"sessions={staff.sessions} api_keys={staff.api_keys} drafts={staff.drafts}; "
        f"backups_left={backups} (保存期間の経過で削除、または手作業で削除し鍵を破棄)"
    )


def _keys(settings: Settings) -> tuple[tuple[str, str], ...]:
    named = [
        ("個人情報の鍵 (people key)", settings.people.key_file if not settings.people.key
         else "設定ファイル内 [people] key"),
        ("リンクの鍵 (link key)", settings.people.link_key_file or "people key の隣の link.key"),
        ("監査ログの鍵 (audit key)", settings.staff.audit_key_file if not settings.staff.audit_key
         else "設定ファイル内 [staff] audit_key"),
        ("バックアップ鍵 (backup key)", settings.backup.key_file or "(未設定)"),
    ]
    return tuple(named)


async def dispose_all(people: People, settings: Settings, actor: Principal) -> Disposal:
    """Delete every personal datum and staff account in one transaction with its audit
    record; vacuum; verify the audit chain afterwards."""
    pool = people.pool
    key = await load_audit_key(pool, settings.staff)
    now = people.clock.now()
    left = tuple(a.path.name for a in archives(Path(settings.backup.dir)))
    async with pool.acquire() as conn:
        async with conn.transaction():
            removed = await purge_rows(conn, people, None, now)
            files = await delete_all_in(conn)
            staff = await _remove_staff(conn)
            broadcasts = await _remove_broadcasts(conn)
            seq = await audit.record_in(
                conn, key, now, actor, ACTION, "all", audit.Result.OK,
                _detail(removed, files, broadcasts, staff, len(left)),
            )
        await conn.execute(
            f"VACUUM {PURGED_TABLES}, {ATTACHMENT_TABLES}, {_STAFF_TABLES}, {_BROADCAST_TABLES}"
        )
    verification = await audit.verify(pool, key)
    return Disposal(now, actor.name, removed, files, broadcasts, staff, seq, verification,
                    settings.backup.dir, left, _keys(settings))


def disposal_pdf(d: Disposal) -> bytes:
    """The disposal record (廃棄記録) as an A4 PDF."""
    doc = FlowDocument("個人情報の廃棄記録 (契約終了)")
    doc.line(f"廃棄した日時: {jst_text(d.at)} (日本時間)")
    doc.line(f"実施者: {d.actor}")
    doc.line(f"監査ログの記録番号: {d.audit_seq} (操作 {ACTION})")
    doc.line(f"廃棄後の監査ログ: {d.verification.summary_ja()}")
    doc.heading("廃棄の方法")
    doc.line(METHOD_JA)
    doc.heading("廃棄したもの")
    doc.table(("項目", "件数"), [(label, n) for label, n in d.counts_ja()], (4, 1))
    doc.line(KEPT_JA)
    doc.heading("バックアップと鍵")
    doc.line(d.backups_ja())
    doc.table(("鍵", "場所"), list(d.keys), (2, 4))
    doc.line(
        "個人情報の鍵を破棄すると、バックアップや複製に残った暗号化済みの氏名・アドレスも"
        "読めなくなります (暗号による消去)。鍵の写しを保管している場合はそれも破棄してください。"
    )
    return doc.output()
