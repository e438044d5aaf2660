"""The mails registration sends: the reply with the personal link, the completion notice, and
the notice that a guardian's settings changed (every change on the settings page ends with one).

Both go through the normal queue as one-recipient broadcasts of normal priority: they then
have the queue's retries when a carrier answers "try later" (docomo and au often do), DKIM,
the suppression check, the shaping of the carrier's limits and a row an operator can look up,
and they pass any bulk mail waiting. They are not emergency mail: anybody can make the desk
answer (an empty mail with any sender), and that must never delay a real emergency. Sending
directly from the inbound server would answer a second faster at best and lose the reply on
the first 4xx.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from engine.platform.config import Settings
from engine.queue import NewBroadcast, Priority, Queue

_JST = timezone(timedelta(hours=9), "JST")


@dataclass(frozen=True)
class ReplySender:
    """Enqueues registration mails with the deployment's registration sender."""

    queue: Queue
    settings: Settings

    @property
    def sender(self) -> str:
        people = self.settings.people
        return people.registration_sender or people.registration_address

    async def send(self, address: str, subject: str, body: str, now: datetime) -> int:
        broadcast = NewBroadcast(
            sender=self.sender, subject=subject, body=body, recipients=[address],
            priority=Priority.NORMAL,
        )
        return await self.queue.enqueue(broadcast, now, self.settings.queue.max_age)

    async def send_link(self, address: str, url: str, expires: datetime, now: datetime) -> int:
        until = expires.astimezone(_JST).strftime("%m月%d日 %H:%M")
        body = (
            "登録のお申し込みを受け付けました。\n"
            "下のリンクを開いて、登録を完了してください。\n\n"
            f"{url}\n\n"
            f"このリンクは {until} まで、1 回だけ使えます。\n"
            "お子さまが 2 人以上いるときは、登録が終わったあと、もう一度空メールを送り、"
            "別のお子さまの登録コードを入力してください。\n"
            "このメールに心当たりがないときは、何もしないでください（登録されません）。\n"
        )
        return await self.send(address, "【登録】登録用のリンクをお送りします", body, now)

    async def send_completion(self, address: str, joined: tuple[str, ...], now: datetime) -> int:
        lines = "".join(f"・{j}\n" for j in joined)
        body = (
            "登録が完了しました。次のお知らせをこのアドレスにお届けします。\n\n"
            f"{lines}\n"
            "配信の停止や、受け取るグループの変更は、お知らせのメールの末尾にあるリンクから"
            "いつでもできます。\n"
        )
        return await self.send(address, "【登録完了】メール配信の登録が完了しました", body, now)

    async def send_settings_changed(
        self, address: str, changes: tuple[str, ...], now: datetime
    ) -> int:
        """「設定変更が完了しました」 to the address whose settings changed, saying what changed
        (so a change made by someone else with a forwarded mail is noticed)."""
        lines = "".join(f"・{c}\n" for c in changes)
        body = (
            "このアドレスへのメール配信の設定を変更しました。\n\n"
            f"{lines}\n"
            "お心当たりのないときや、元に戻すときは、お知らせのメールの末尾にあるリンクから"
            "設定のページを開いてください。\n"
        )
        return await self.send(address, "【設定変更完了】メール配信の設定を変更しました", body, now)
