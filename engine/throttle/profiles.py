"""Carrier profiles: the static limits and reply patterns that shape traffic to each site.

A profile says how gently to treat one receiving provider (docomo, Gmail, ...): how many
connections, how many messages per connection and per second at most, where to start, which
reply texts mean "slow down" or "stop this IP for a while". The adaptive controller
(`aimd.py`) moves the actual rate between a floor and `max_rate`; the profile is the ceiling and
the starting point, never a promise that the carrier accepts that much.

The numbers of the built-in profiles come from `/work/shared/research/carriers.md` where it says
anything, and are marked as guesses where it does not. Operators override any field in the
configuration (`[shaping.profiles.NAME]`), see `load_profiles` and `docs/shaping.md`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.platform.errors import ConfigError

#: Carriers reject more than 100 recipients per message or session (docomo, au, SoftBank).
MAX_RECIPIENTS_LIMIT = 100

DEFAULT_PROFILE = "default"


@dataclass(frozen=True, slots=True)
class QuietWindow:
    """Minutes of every hour in which no new connection is opened to a site.

    `start` is inclusive and `end` exclusive, both minutes of the hour (0-59); a window may wrap
    around the top of the hour: QuietWindow(58, 2) covers hh:58:00 up to (hh+1):02:00.
    """

    start: int
    end: int

    def contains(self, minute_of_hour: float) -> bool:
        """Whether a moment (minutes since the top of the hour, fractional) lies inside."""
        if self.start < self.end:
            return self.start <= minute_of_hour < self.end
        return minute_of_hour >= self.start or minute_of_hour < self.end

    def seconds_until_end(self, minute_of_hour: float) -> float:
        """Seconds from a moment inside the window until the window ends."""
        minutes = (self.end - minute_of_hour) % 60
        return minutes * 60.0


@dataclass(frozen=True)
class Profile:
    """How to shape traffic to one site; every field can be overridden in the configuration."""

    name: str
    domains: tuple[str, ...] = ()
    mx_patterns: tuple[str, ...] = ()
    max_connections: int = 5
    max_messages_per_connection: int = 100
    max_rate: float = 20.0
    initial_rate: float = 5.0
    max_recipients: int = 100
    quiet_windows: tuple[QuietWindow, ...] = ()
    throttle_patterns: tuple[str, ...] = ()
    suspend_patterns: tuple[str, ...] = ()
    suspend_seconds: float = 300.0
    # The largest mail the site accepts, in bytes; 0: none known. `send` refuses a broadcast
    # over the smallest cap among its recipients' sites.
    max_message_size: int = 0
    _throttle_res: tuple[re.Pattern[str], ...] = field(
        init=False, repr=False, compare=False, default=()
    )
    _suspend_res: tuple[re.Pattern[str], ...] = field(
        init=False, repr=False, compare=False, default=()
    )

    def __post_init__(self) -> None:
        _check_profile(self)
        # Compiled once here so matching a reply costs no regex compilation on the hot path.
        object.__setattr__(self, "_throttle_res", _compile(self, "throttle_patterns"))
        object.__setattr__(self, "_suspend_res", _compile(self, "suspend_patterns"))

    def says_slow_down(self, text: str) -> bool:
        """Whether a reply text matches one of the profile's "slow down" patterns."""
        return any(p.search(text) for p in self._throttle_res)

    def says_suspend(self, text: str) -> bool:
        """Whether a reply text means "stop sending from this IP for a while"."""
        return any(p.search(text) for p in self._suspend_res)

    def quiet_window_at(self, minute_of_hour: float) -> QuietWindow | None:
        """The quiet window covering a moment, if any."""
        for window in self.quiet_windows:
            if window.contains(minute_of_hour):
                return window
        return None


def _key(name: str, field_name: str) -> str:
    return f"shaping.profiles.{name}.{field_name}"


def _compile(profile: Profile, field_name: str) -> tuple[re.Pattern[str], ...]:
    compiled = []
    for pattern in getattr(profile, field_name):
        try:
            compiled.append(re.compile(pattern, re.IGNORECASE))
        except re.error as exc:
            raise ConfigError(
                f"{_key(profile.name, field_name)}: {pattern!r} is not a valid regular "
                f"expression ({exc}); fix or remove it"
            ) from exc
    return tuple(compiled)


def _check_profile(p: Profile) -> None:
    """Range and cross-field checks; raises ConfigError naming the offending key."""

    def bad(field_name: str, what: str) -> ConfigError:
        return ConfigError(f"{_key(p.name, field_name)}: {what}")

    if not p.name or not re.fullmatch(r"[A-Za-z0-9_.-]+", p.name):
        raise ConfigError(
            f"shaping.profiles.{p.name!r}: a profile name uses letters, digits, '_', '.', '-'"
        )
    if p.max_connections < 1:
        raise bad("max_connections", f"must be at least 1, got {p.max_connections}")
    if p.max_messages_per_connection < 1:
        raise bad(
            "max_messages_per_connection",
            f"must be at least 1, got {p.max_messages_per_connection}",
        )
    if not p.max_rate > 0:
        raise bad("max_rate", f"must be a positive number of messages/second, got {p.max_rate}")
    if not p.initial_rate > 0:
        raise bad("initial_rate", f"must be positive, got {p.initial_rate}")
    if p.initial_rate > p.max_rate:
        raise bad(
            "initial_rate",
            f"{p.initial_rate} is above max_rate {p.max_rate}; lower it or raise max_rate",
        )
    if not 1 <= p.max_recipients <= MAX_RECIPIENTS_LIMIT:
        raise bad(
            "max_recipients",
            f"must be between 1 and {MAX_RECIPIENTS_LIMIT} (carriers reject more), "
            f"got {p.max_recipients}",
        )
    if not p.suspend_seconds > 0:
        raise bad("suspend_seconds", f"must be positive, got {p.suspend_seconds}")
    if p.max_message_size < 0:
        raise bad("max_message_size", f"must be 0 (no cap) or a size in bytes, got "
                  f"{p.max_message_size}")
    for window in p.quiet_windows:
        if not (0 <= window.start <= 59 and 0 <= window.end <= 59):
            raise bad("quiet_windows", f"minutes must be 0-59, got [{window.start}, {window.end}]")
        if window.start == window.end:
            raise bad("quiet_windows", f"[{window.start}, {window.end}] is an empty window")
    for domain in p.domains:
        if not domain or "@" in domain or domain != domain.lower().strip("."):
            raise bad("domains", f"{domain!r} is not a lower-case domain name")


# Patterns shared by most profiles. Kept narrow on purpose: a false "slow down" costs only
# speed, but a greylisting reply ("try again later") is not about our pace, so it is not here.
_COMMON_THROTTLE = (
    r"too many (connections|sessions|messages|mails|recipients)",
    r"\brate[- ]limit",
    r"\bthrottl",
    r"slow down",
    r"congest",
    r"server busy",
    r"\bresources? temporarily",
)

BUILTIN_PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        # Sites that match nothing else. Guess: a small school or municipal server.
        Profile(
            name=DEFAULT_PROFILE,
            max_connections=5,
            max_messages_per_connection=100,
            max_rate=20.0,
            initial_rate=5.0,
            throttle_patterns=_COMMON_THROTTLE,
        ),
        # docomo: "limits connections when too many SMTP sessions arrive at once" and "100
        # recipients per SMTP session" (research notes). We send one recipient per message, so
        # 100 messages per connection stays within that. Connection and rate numbers are guesses.
        # The on-the-hour congestion is marked (uncertain) in the notes and a quiet window would
        # delay emergency mail by minutes, so none is set; operators can add [[58, 2]].
        Profile(
            name="docomo",
            domains=("docomo.ne.jp",),
            mx_patterns=("*.docomo.ne.jp",),
            max_connections=10,
            max_messages_per_connection=100,
            max_rate=30.0,
            initial_rate=10.0,
            max_recipients=100,
            throttle_patterns=_COMMON_THROTTLE,
        ),
        # au/KDDI: publishes no thresholds and answers congestion with a TCP reset (research
        # notes), which the controller treats as "slow down" by itself. Numbers are guesses.
        Profile(
            name="au",
            domains=("ezweb.ne.jp", "au.com"),
            mx_patterns=("*.ezweb.ne.jp", "*.au.com"),
            max_connections=8,
            max_messages_per_connection=100,
            max_rate=25.0,
            initial_rate=8.0,
            max_recipients=100,
            throttle_patterns=_COMMON_THROTTLE,
            # "rejects ... messages over 3 MB" (research notes).
            max_message_size=3_000_000,
        ),
        # SoftBank "asks senders to spread sending over time" (research notes), so it starts
        # lower than docomo. Numbers are guesses. disney.ne.jp is SoftBank's Disney Mobile.
        Profile(
            name="softbank",
            domains=("softbank.ne.jp", "i.softbank.jp", "disney.ne.jp"),
            mx_patterns=("*.softbank.ne.jp", "*.softbank.jp"),
            max_connections=6,
            max_messages_per_connection=100,
            max_rate=20.0,
            initial_rate=5.0,
            max_recipients=100,
            throttle_patterns=_COMMON_THROTTLE,
            # "1 MB limit" (research notes).
            max_message_size=1_000_000,
        ),
        # Rakuten Mobile: nothing in the notes; a guess sized like a smaller carrier.
        Profile(
            name="rakuten",
            domains=("rakuten.jp",),
            mx_patterns=("*.rakuten.jp",),
            max_connections=5,
            max_messages_per_connection=100,
            max_rate=10.0,
            initial_rate=3.0,
            throttle_patterns=_COMMON_THROTTLE,
        ),
        # Gmail takes large volumes from authenticated senders (2024 bulk-sender rules in the
        # notes); the limits are guesses. 4.7.28 / 4.2.1 "rate that prevents" are Gmail's
        # published rate-limit replies.
        Profile(
            name="gmail",
            domains=("gmail.com", "googlemail.com"),
            mx_patterns=("*.google.com", "*.googlemail.com"),
            max_connections=20,
            max_messages_per_connection=100,
            max_rate=100.0,
            initial_rate=20.0,
            throttle_patterns=(
                *_COMMON_THROTTLE,
                r"4\.7\.28",
                r"unusual rate",
                r"rate that prevents additional messages",
            ),
        ),
        # yahoo.co.jp: "2 connections, 10 msg/s, 20 deliveries per connection; suspend on
        # 'VS98-IP0 deferred' and [TSS04]/[IPTS04]" (research notes, from KumoMTA's shaping
        # file). The initial rate and suspension length are guesses.
        Profile(
            name="yahoo_jp",
            domains=("yahoo.co.jp", "ymail.ne.jp"),
            mx_patterns=("*.yahoo.co.jp",),
            max_connections=2,
            max_messages_per_connection=20,
            max_rate=10.0,
            initial_rate=5.0,
            throttle_patterns=_COMMON_THROTTLE,
            suspend_patterns=(r"VS98-IP0", r"\[TSS04\]", r"\[IPTS04\]"),
            suspend_seconds=600.0,
        ),
        # iCloud: nothing in the notes; guesses.
        Profile(
            name="icloud",
            domains=("icloud.com", "me.com", "mac.com"),
            mx_patterns=("*.mail.icloud.com",),
            max_connections=10,
            max_messages_per_connection=100,
            max_rate=30.0,
            initial_rate=10.0,
            throttle_patterns=_COMMON_THROTTLE,
        ),
        # Outlook.com / Microsoft 365: limits are guesses; 4.7.650 ("rate limited due to IP
        # reputation") and 4.7.500 ("server busy") are Microsoft's throttling replies.
        Profile(
            name="outlook",
            domains=("outlook.com", "hotmail.com", "live.com", "outlook.jp", "hotmail.co.jp"),
            mx_patterns=("*.outlook.com", "*.protection.outlook.com"),
            max_connections=10,
            max_messages_per_connection=100,
            max_rate=30.0,
            initial_rate=10.0,
            throttle_patterns=(*_COMMON_THROTTLE, r"4\.7\.65\d", r"4\.7\.500"),
        ),
    )
}


# --- configuration -------------------------------------------------------------------------


def _as_int(key: str, value: object) -> int:
    # bool is an int in Python, but `max_connections = true` is certainly a mistake.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key}: expected a whole number, got {value!r}")
    return value


def _as_float(key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    return float(value)


def _as_strings(key: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ConfigError(f"{key}: expected a list of strings, got {value!r}")
    out = []
    for item in value:
        if not isinstance(item, str) or not item:
            raise ConfigError(f"{key}: every entry must be a non-empty string, got {item!r}")
        out.append(item)
    return tuple(out)


def _as_domains(key: str, value: object) -> tuple[str, ...]:
    return tuple(d.strip().lower().rstrip(".") for d in _as_strings(key, value))


def _as_windows(key: str, value: object) -> tuple[QuietWindow, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ConfigError(f"{key}: expected a list of [start_minute, end_minute] pairs")
    windows = []
    for item in value:
        if (
            isinstance(item, str)
            or not isinstance(item, Sequence)
            or len(item) != 2
            or any(isinstance(m, bool) or not isinstance(m, int) for m in item)
        ):
            raise ConfigError(
                f"{key}: {item!r} is not a [start_minute, end_minute] pair of whole numbers, "
                "e.g. [58, 2]"
            )
        windows.append(QuietWindow(int(item[0]), int(item[1])))
    return tuple(windows)


_CONVERTERS: dict[str, Callable[[str, object], Any]] = {
    "domains": _as_domains,
    "mx_patterns": lambda k, v: tuple(s.lower() for s in _as_strings(k, v)),
    "max_connections": _as_int,
    "max_messages_per_connection": _as_int,
    "max_rate": _as_float,
    "initial_rate": _as_float,
    "max_recipients": _as_int,
    "quiet_windows": _as_windows,
    "throttle_patterns": _as_strings,
    "suspend_patterns": _as_strings,
    "suspend_seconds": _as_float,
    "max_message_size": _as_int,
}


def load_profiles(overrides: Mapping[str, Mapping[str, object]]) -> dict[str, Profile]:
    """Merge the configuration's `[shaping.profiles.*]` tables over the built-in profiles.

    A table named like a built-in changes only the fields it sets; a new name defines a new
    profile that takes the `default` profile's values for the fields it leaves out. Raises
    ConfigError naming `shaping.profiles.NAME.FIELD` for unknown fields, wrong types, values out of
    range, or a domain claimed by two profiles.
    """
    profiles = dict(BUILTIN_PROFILES)
    for name, table in overrides.items():
        if not isinstance(table, Mapping):
            raise ConfigError(f"shaping.profiles.{name}: expected a table of settings")
        changes: dict[str, Any] = {}
        for field_name, raw in table.items():
            key = _key(name, field_name)
            converter = _CONVERTERS.get(field_name)
            if converter is None:
                raise ConfigError(
                    f"{key}: unknown setting; known ones are {', '.join(sorted(_CONVERTERS))}"
                )
            changes[field_name] = converter(key, raw)
        base = profiles.get(name)
        if base is None:
            base = dataclasses.replace(
                profiles[DEFAULT_PROFILE], name=name, domains=(), mx_patterns=()
            )
        profiles[name] = dataclasses.replace(base, name=name, **changes)
    _check_unique_domains(profiles)
    return profiles


def _check_unique_domains(profiles: Mapping[str, Profile]) -> None:
    owner: dict[str, str] = {}
    for profile in profiles.values():
        for domain in profile.domains:
            other = owner.setdefault(domain, profile.name)
            if other != profile.name:
                raise ConfigError(
                    f"{_key(profile.name, 'domains')}: {domain} is also listed by profile "
                    f"{other!r}; a domain belongs to one profile, remove it from one of them"
                )
