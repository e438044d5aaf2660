"""The suppression list against a real PostgreSQL: the rules, the fan-out, the CSV import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from support import make_settings, opened_rows

from engine.bounce.suppression import FailedVerdict, Suppressions
from engine.delivery.context import Engine
from engine.platform.clock import FakeClock
from engine.platform.errors import InputError
from engine.queue import NewBroadcast, State


@pytest.fixture
async def eng(db_url: str) -> AsyncIterator[Engine]:
    clock = FakeClock(datetime(2026, 11, 20, 1, 0, tzinfo=UTC))
    e = await Engine.open(
        make_settings(db_url, suppression={"soft_threshold": 3, "soft_window": 86400.0}), clock
    )
    try:
        yield e
    finally:
        await e.close()


def suppressions(eng: Engine) -> Suppressions:
    return Suppressions(eng.pool, eng.queue.sealer, eng.settings.suppression, eng.clock)


def full(address: str, delivery_id: int) -> FailedVerdict:
    return FailedVerdict(address, delivery_id, "mailboxfull", "mailbox_full", False)


async def listed(eng: Engine) -> dict[str, str]:
    return {s.address: s.reason for s in await suppressions(eng).list()}


async def test_hard_failure_and_complaint_suppress_at_once(eng: Engine) -> None:
    added = await suppressions(eng).record_verdicts(
        [
            FailedVerdict("gone@example.jp", 1, "userunknown", "unknown_user", True),
            FailedVerdict("angry@example.jp", 2, "feedback", "complaint", False),
            full("full@example.jp", 3),
        ]
    )
    assert sorted(added) == ["angry@example.jp", "gone@example.jp"]
    rows = {s.address: s for s in await suppressions(eng).list()}
    assert (rows["gone@example.jp"].source, rows["gone@example.jp"].delivery_id) == ("smtp", 1)
    assert rows["angry@example.jp"].source == "complaint"


async def test_soft_failures_suppress_at_the_threshold_within_the_window(eng: Engine) -> None:
    s = suppressions(eng)
    assert await s.record_verdicts([full("full@example.jp", 1)]) == []
    # The same delivery reported again (its DSN after the runner's reply) counts once.
    assert await s.record_verdicts([full("full@example.jp", 1)], source="bounce") == []
    # Failures that say nothing about the address never count, even when final.
    assert await s.record_verdicts(
        [
            FailedVerdict("full@example.jp", 7, "expired", "network_expired", False),
            FailedVerdict("full@example.jp", 8, "ratelimited", "congestion", False),
            FailedVerdict("full@example.jp", 9, "authfailure", "auth_failed", False),
        ]
    ) == []
    assert await s.record_verdicts([full("full@example.jp", 2)]) == []
    assert await s.record_verdicts([full("full@example.jp", 3)]) == ["full@example.jp"]
    [row] = await s.list()
    assert (row.reason, row.category, row.note) == ("mailboxfull", "mailbox_full",
                                                    "soft failures: 3")


async def test_soft_failures_older_than_the_window_do_not_count(eng: Engine) -> None:
    s = suppressions(eng)
    assert isinstance(eng.clock, FakeClock)
    await s.record_verdicts([full("a@example.jp", 1), full("a@example.jp", 2)])
    eng.clock.advance(86400 + 1)
    assert await s.record_verdicts([full("a@example.jp", 3)]) == []
    assert await s.record_verdicts([full("a@example.jp", 4)]) == []
    # Three within one batch reach the threshold in one statement.
    assert await s.record_verdicts(
        [full("b@example.jp", 10), full("b@example.jp", 11), full("b@example.jp", 12)]
    ) == ["b@example.jp"]
    assert await s.record_verdicts([full("a@example.jp", 5)]) == ["a@example.jp"]


async def test_operator_add_remove_and_address_normalisation(eng: Engine) -> None:
    s = suppressions(eng)
    stored = await s.add("Old..Style@DOCOMO.ne.jp", "保護者の依頼", note="電話で依頼")
    assert stored == "Old..Style@docomo.ne.jp"
    [row] = await s.list()
    assert (row.category, row.source, row.note) == ("other", "operator", "電話で依頼")
    with pytest.raises(InputError, match="exactly one @"):
        await s.add("not-an-address", "x")
    assert await s.remove("Old..Style@docomo.ne.jp") is True
    assert await s.remove("Old..Style@docomo.ne.jp") is False


async def test_import_refuses_the_whole_file_naming_bad_lines(eng: Engine) -> None:
    s = suppressions(eng)
    text = (
        "address,reason,category,source,created_at,note\n"
        "a@example.jp,userunknown,,import,2026-11-01T09:00:00+09:00,\n"
        "broken-address,userunknown,,,,\n"
        "b@example.jp,mailboxfull,no_such_category,,,\n"
        "c@example.jp,,,,,\n"
    )
    with pytest.raises(InputError) as info:
        await s.import_csv(text, "list.csv")
    message = str(info.value)
    assert "line 3" in message and "line 4" in message and "line 2" not in message
    assert "nothing was imported" in message
    assert await s.list() == []
    good = text.replace("broken-address", "d@example.jp").replace("no_such_category", "")
    assert await s.import_csv(good, "list.csv") == 4
    rows = {r.address: r for r in await s.list()}
    assert rows["a@example.jp"].category == "unknown_user"
    assert rows["a@example.jp"].created_at == datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
    assert rows["c@example.jp"].reason == "operator"
    exported = await s.export_csv()
    # UTF-8 with BOM for Excel; times in Japan time with their offset, read back by import.
    assert exported.splitlines()[0] == "\ufeffaddress,reason,category,source,created_at,note"
    assert ",2026-11-01T09:00:00+09:00," in exported
    assert len(exported.splitlines()) == 5


async def test_fan_out_marks_suppressed_recipients_failed_and_counts_them(eng: Engine) -> None:
    s = suppressions(eng)
    await s.record_verdicts(
        [FailedVerdict("gone@example.jp", 1, "userunknown", "unknown_user", True)]
    )
    recipients = [f"g{i}@example.jp" for i in range(30_000)] + ["gone@example.jp"]
    b = NewBroadcast(sender="s@example.jp", subject="件名", body="本文", recipients=recipients)
    bid = await eng.queue.enqueue(b, eng.clock.now(), 3600)
    rows = await opened_rows(
        eng.pool, eng.queue.sealer,
        "SELECT recipient_sealed, state, reason, category, last_text, finished_at FROM deliveries "
        "WHERE broadcast_id = $1 AND state <> 'queued'",
        bid,
    )
    [counts] = await eng.queue.broadcast_counts([bid])
    assert counts.recipient_count == 30_001 and counts.suppressed_count == 1
    assert counts.by_state[State.QUEUED] == 30_000
    [row] = rows
    assert (row["recipient"], row["state"], row["reason"], row["category"]) == (
        "gone@example.jp", "failed", "suppressed", "unknown_user"
    )
    # 2026-11-20 01:00 UTC is 10:00 the same day in Japan.
    assert row["last_text"] == "配信停止リストに登録済み (宛先不明, 2026-11-20)"
    assert row["finished_at"] == eng.clock.now()
