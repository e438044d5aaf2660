"""Egress pools: weighted round robin per site, weight 0, warm-up ceilings, configuration."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime

import pytest

from engine.platform.clock import FakeClock
from engine.platform.errors import ConfigError
from engine.throttle._pool import EgressPool, JapanDay, Source, Warmup, pools_from_config

DAY = date(2026, 11, 2)


def test_weighted_round_robin_follows_the_weights_and_interleaves() -> None:
    pool = EgressPool(
        "default",
        (Source("127.0.0.2", "a.example.jp", 3), Source("127.0.0.3", "b.example.jp", 1)),
    )
    picks = [pool.choose("docomo", DAY) for _ in range(400)]
    counts = Counter(s.address for s in picks if s is not None)
    assert counts == {"127.0.0.2": 300, "127.0.0.3": 100}
    # Smooth: the light source is never starved for longer than a cycle of the heavy one.
    first_eight = [s.address for s in picks[:8] if s is not None]
    assert first_eight.count("127.0.0.3") == 2


def test_a_source_of_weight_zero_is_never_chosen() -> None:
    pool = EgressPool(
        "default",
        (Source("127.0.0.2", "a.example.jp", 0), Source("127.0.0.3", "b.example.jp", 1)),
    )
    assert {pool.choose("gmail", DAY) for _ in range(50)} == {pool.sources[1]}
    only_disabled = EgressPool("off", (Source("127.0.0.2", "a.example.jp", 0),))
    assert only_disabled.choose("gmail", DAY) is None


def test_unusable_sources_are_skipped_while_another_has_capacity() -> None:
    a, b = Source("127.0.0.2", "a.example.jp"), Source("127.0.0.3", "b.example.jp")
    pool = EgressPool("default", (a, b))
    assert {pool.choose("au", DAY, lambda s: s is not a) for _ in range(10)} == {b}
    assert pool.choose("au", DAY, lambda s: False) is None


def test_warmup_caps_a_new_address_per_day_then_lifts() -> None:
    new = Source("127.0.0.4", "new.example.jp", 1, Warmup(DAY, (3, 5)))
    pool = EgressPool("default", (new,))
    for _ in range(3):
        assert pool.choose("docomo", DAY) is new
        pool.count_sent(new, DAY)
    assert pool.choose("docomo", DAY) is None
    tomorrow = date(2026, 11, 3)
    assert pool.warmup_room(new, tomorrow) == 5
    assert pool.warmup_room(new, date(2026, 11, 4)) is None  # warm-up over


def test_pools_from_config_groups_sources_by_pool() -> None:
    pools = pools_from_config(
        [
            {"address": "127.0.0.2", "helo": "mx1.example.jp"},
            {"address": "127.0.0.3", "helo": "mx2.example.jp", "weight": 2, "pool": "bulk",
             "warmup_since": date(2026, 11, 1), "warmup_daily": [100, 200]},
        ]
    )
    assert set(pools) == {"default", "bulk"}
    bulk = pools["bulk"].sources[0]
    assert bulk.weight == 2 and bulk.warmup == Warmup(date(2026, 11, 1), (100, 200))


@pytest.mark.parametrize(
    ("entry", "key"),
    [
        ({"address": "not-an-ip", "helo": "a.example.jp"}, "egress.sources[0].address"),
        ({"address": "127.0.0.2"}, "egress.sources[0].helo"),
        ({"address": "127.0.0.2", "helo": "a.example.jp", "weight": -1},
         "egress.sources[0].weight"),
        ({"address": "127.0.0.2", "helo": "a.example.jp", "wieght": 1},
         "egress.sources[0].wieght"),
        ({"address": "127.0.0.2", "helo": "a.example.jp", "warmup_daily": [10]},
         "egress.sources[0].warmup_since"),
    ],
)
def test_bad_egress_sources_raise_config_error_naming_the_key(
    entry: dict[str, object], key: str
) -> None:
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        pools_from_config([entry])


def test_the_japan_day_turns_at_japan_midnight_and_follows_a_jumping_clock() -> None:
    # 14:59:59 UTC is 23:59:59 in Japan.
    clock = FakeClock(datetime(2026, 12, 7, 14, 59, 59, tzinfo=UTC))
    day = JapanDay(clock)
    assert day.today() == date(2026, 12, 7)
    clock.advance(0.999)
    assert day.today() == date(2026, 12, 7)
    clock.advance(0.001)  # midnight in Japan, to the microsecond
    assert day.today() == date(2026, 12, 8)
    # The wall clock set back a day (a bad NTP step) without monotonic time moving: believed
    # within a minute, never later.
    clock._wall = datetime(2026, 12, 6, 15, 0, 30, tzinfo=UTC)
    clock.advance(60)
    assert day.today() == date(2026, 12, 7)
