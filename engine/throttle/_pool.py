"""Egress pools: the source addresses mail leaves from, their weights and warm-up schedules.

`EgressPool.choose` spreads each site's traffic over the pool's sources by smooth weighted round
robin (nginx's algorithm: deterministic, interleaved, exact proportions), skipping sources that
the caller says cannot take more right now (suspended, no free connection, no token). A source of
weight 0 is never chosen. A new address warms up: its warm-up schedule caps how many messages it
may send per day, counted from `since`, because carriers distrust an unknown IP that suddenly
sends thousands of mails. Days are Japan days (UTC+9), the rhythm the carriers' counters follow
as far as we can tell (a guess) and the one operators think in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from ipaddress import ip_address

from engine.platform.clock import Clock
from engine.platform.errors import ConfigError

JST = timezone(timedelta(hours=9), "JST")

DEFAULT_POOL = "default"


@dataclass(frozen=True, slots=True)
class Warmup:
    """Per-day message ceilings for a new address: day 0 is `since`, after the list: no cap."""

    since: date
    daily_limits: tuple[int, ...]

    def limit_on(self, day: date) -> int | None:
        """The ceiling for a Japan calendar day, or None once warm-up is over."""
        index = (day - self.since).days
        if index < 0:
            return 0  # not yet in service
        if index >= len(self.daily_limits):
            return None
        return self.daily_limits[index]


@dataclass(frozen=True, slots=True)
class Source:
    """One egress address: where to bind, what to say in EHLO, its share of traffic.

    An empty address means "do not bind": the system picks the source address.
    """

    address: str
    helo: str
    weight: int = 1
    warmup: Warmup | None = None


@dataclass(slots=True)
class _Usage:
    day: date
    sent: int = 0


@dataclass
class EgressPool:
    """A named set of sources; round-robin state is kept per site."""

    name: str
    sources: tuple[Source, ...]
    _current: dict[str, dict[str, int]] = field(default_factory=dict, repr=False)
    _usage: dict[str, _Usage] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        seen = set()
        for source in self.sources:
            if source.address in seen:
                raise ConfigError(f"egress.sources: {source.address} is listed twice")
            seen.add(source.address)

    def choose(
        self,
        site: str,
        today: date,
        usable: Callable[[Source], bool] | None = None,
    ) -> Source | None:
        """The next source for a site, or None if no enabled source is usable now.

        `today` is the Japan calendar day (see `JapanDay`) for the warm-up caps; `usable` is the
        caller's check of per-(source, site) capacity.
        """
        current = self._current.setdefault(site, {})
        candidates = [
            s
            for s in self.sources
            if s.weight > 0
            and self.warmup_room(s, today) != 0
            and (usable is None or usable(s))
        ]
        if not candidates:
            return None
        total = 0
        best: Source | None = None
        for s in candidates:
            value = current.get(s.address, 0) + s.weight
            current[s.address] = value
            total += s.weight
            if best is None or value > current[best.address]:
                best = s
        assert best is not None
        current[best.address] -= total
        return best

    def warmup_room(self, source: Source, today: date) -> int | None:
        """Messages the source may still send today under its warm-up, None if uncapped."""
        if source.warmup is None:
            return None
        limit = source.warmup.limit_on(today)
        if limit is None:
            return None
        usage = self._usage.get(source.address)
        sent = usage.sent if usage is not None and usage.day == today else 0
        return max(0, limit - sent)

    def count_sent(self, source: Source, today: date, n: int = 1) -> None:
        """Count messages against the source's warm-up ceiling of the day."""
        usage = self._usage.get(source.address)
        if usage is None or usage.day != today:
            usage = self._usage[source.address] = _Usage(today)
        usage.sent += n

    def sent_today(self, source: Source, today: date) -> int:
        usage = self._usage.get(source.address)
        return usage.sent if usage is not None and usage.day == today else 0


def _japan_day(clock: Clock) -> tuple[date, float]:
    """Today's date in Japan and the seconds until its midnight."""
    now = clock.now().astimezone(JST)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), JST)
    return now.date(), (midnight - now).total_seconds()


class JapanDay:
    """Today's date in Japan, read from ``clock`` once a minute at most (and again at Japan's
    midnight): the shaper asks for it twice per mail (the warm-up ceiling and its count)."""

    _RECHECK = 60.0  # seconds: a wall clock that jumps is believed within a minute

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._day = date.min
        self._until = float("-inf")  # monotonic time until which ``_day`` holds

    def today(self) -> date:
        mono = self._clock.monotonic()
        if mono < self._until:
            return self._day
        self._day, rest = _japan_day(self._clock)
        self._until = mono + min(rest, self._RECHECK)
        return self._day


def seconds_until_next_japan_day(clock: Clock) -> float:
    return max(1.0, _japan_day(clock)[1])


# --- configuration -------------------------------------------------------------------------

_SOURCE_FIELDS = {"address", "helo", "weight", "pool", "warmup_since", "warmup_daily"}


def pools_from_config(sources: Sequence[Mapping[str, object]]) -> dict[str, EgressPool]:
    """Build the named pools from the configuration's `[[egress.sources]]` array.

    Each entry has `address` and `helo`, optionally `weight` (default 1, 0 disables), `pool`
    (default "default"), and `warmup_since` (a TOML date) with `warmup_daily` (a list of per-day
    message ceilings). Raises ConfigError naming `egress.sources[i].FIELD`.
    """
    grouped: dict[str, list[Source]] = {}
    for i, entry in enumerate(sources):
        where = f"egress.sources[{i}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where}: expected a table with address and helo")
        unknown = set(entry) - _SOURCE_FIELDS
        if unknown:
            raise ConfigError(
                f"{where}.{sorted(unknown)[0]}: unknown setting; known ones are "
                f"{', '.join(sorted(_SOURCE_FIELDS))}"
            )
        address = entry.get("address")
        if not isinstance(address, str):
            raise ConfigError(f"{where}.address: required, an IP address such as 192.0.2.10")
        try:
            ip_address(address)
        except ValueError as exc:
            raise ConfigError(f"{where}.address: {address!r} is not an IP address") from exc
        helo = entry.get("helo")
        if not isinstance(helo, str) or "." not in helo:
            raise ConfigError(
                f"{where}.helo: required, the fully qualified host name whose reverse DNS "
                f"matches {address}"
            )
        weight = entry.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
            raise ConfigError(f"{where}.weight: a whole number >= 0 (0 disables), got {weight!r}")
        pool = entry.get("pool", DEFAULT_POOL)
        if not isinstance(pool, str) or not pool:
            raise ConfigError(f"{where}.pool: a pool name, got {pool!r}")
        warmup = _warmup_from(where, entry)
        grouped.setdefault(pool, []).append(Source(address, helo, weight, warmup))
    return {name: EgressPool(name, tuple(items)) for name, items in grouped.items()}


def _warmup_from(where: str, entry: Mapping[str, object]) -> Warmup | None:
    since = entry.get("warmup_since")
    daily = entry.get("warmup_daily")
    if since is None and daily is None:
        return None
    if isinstance(since, datetime) or not isinstance(since, date):
        raise ConfigError(f"{where}.warmup_since: a date such as 2026-12-01, got {since!r}")
    if (
        isinstance(daily, str)
        or not isinstance(daily, Sequence)
        or not daily
        or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in daily)
    ):
        raise ConfigError(
            f"{where}.warmup_daily: a list of per-day message ceilings such as "
            f"[500, 1000, 2000, 5000], got {daily!r}"
        )
    return Warmup(since, tuple(int(n) for n in daily))


def egress_pools(egress: Mapping[str, object], default_helo: str) -> dict[str, EgressPool]:
    """The pools of the `[egress]` section. Without any `[[egress.sources]]` (a development
    setup), the default pool has one source with an empty address, meaning "do not bind, let
    the system choose", and `default_helo`."""
    for key in egress:
        if key != "sources":
            raise ConfigError(f"egress.{key}: unknown setting; known ones are sources")
    sources = egress.get("sources", [])
    if isinstance(sources, str | bytes) or not isinstance(sources, Sequence):
        raise ConfigError("egress.sources: expected an array of tables, [[egress.sources]]")
    if sources:
        return pools_from_config(sources)
    return {DEFAULT_POOL: EgressPool(DEFAULT_POOL, (Source("", default_helo),))}
