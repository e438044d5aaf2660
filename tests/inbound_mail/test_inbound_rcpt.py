"""One mail naming the same VERP address many times is stored once."""

from __future__ import annotations

from inbound_helpers import delivered_ids, engine_with_inbound, make_dsn, smtp_send, verp_of


async def test_repeated_verp_rcpt_stores_one_bounce_row(db_url: str) -> None:
    async with engine_with_inbound(db_url) as (eng, server):
        ids = await delivered_ids(eng, ["taro@docomo.ne.jp", "jiro@au.com"])
        taro = await verp_of(eng, ids["taro@docomo.ne.jp"])
        jiro = await verp_of(eng, ids["jiro@au.com"])
        # 100 times the same address (some in upper case), and another delivery once:
        # the 100-recipient limit counts distinct recipients.
        rcpts = [taro if i % 2 else taro.upper() for i in range(100)] + [jiro]
        code, _ = await smtp_send(server, "", rcpts, make_dsn(taro, "taro@docomo.ne.jp"))
        assert code == 250
        rows = await eng.pool.fetch("SELECT delivery_id, rcpt FROM bounces ORDER BY id")
    assert sorted(r["delivery_id"] for r in rows) == sorted(ids.values())
