"""Carrier profiles: built-ins, configuration overrides, and errors that name the key."""

from __future__ import annotations

import pytest

from engine.platform.errors import ConfigError
from engine.throttle.profiles import BUILTIN_PROFILES, QuietWindow, load_profiles


def test_builtin_profiles_cover_the_carriers_and_providers() -> None:
    assert set(BUILTIN_PROFILES) >= {
        "default", "docomo", "au", "softbank", "rakuten", "gmail", "yahoo_jp", "icloud", "outlook"
    }
    yahoo = BUILTIN_PROFILES["yahoo_jp"]
    assert (yahoo.max_connections, yahoo.max_rate, yahoo.max_messages_per_connection) == (
        2, 10.0, 20
    )
    assert "disney.ne.jp" in BUILTIN_PROFILES["softbank"].domains
    assert all(p.max_recipients <= 100 for p in BUILTIN_PROFILES.values())


def test_override_changes_only_the_given_fields_of_a_builtin() -> None:
    profiles = load_profiles({"docomo": {"max_rate": 50, "quiet_windows": [[58, 2]]}})
    docomo = profiles["docomo"]
    assert docomo.max_rate == 50.0
    assert docomo.quiet_windows == (QuietWindow(58, 2),)
    assert docomo.domains == BUILTIN_PROFILES["docomo"].domains
    assert docomo.max_connections == BUILTIN_PROFILES["docomo"].max_connections


def test_a_new_profile_inherits_the_default_values() -> None:
    profiles = load_profiles(
        {"city_tokyo": {"domains": ["City.Example.Tokyo.JP"], "max_connections": 2}}
    )
    new = profiles["city_tokyo"]
    assert new.domains == ("city.example.tokyo.jp",)
    assert new.max_connections == 2
    assert new.max_rate == BUILTIN_PROFILES["default"].max_rate


@pytest.mark.parametrize(
    ("table", "key", "words"),
    [
        ({"docomo": {"max_rat": 5}}, "shaping.profiles.docomo.max_rat", "unknown setting"),
        ({"docomo": {"max_connections": "ten"}}, "shaping.profiles.docomo.max_connections",
         "whole number"),
        ({"docomo": {"max_connections": True}}, "shaping.profiles.docomo.max_connections",
         "whole number"),
        ({"au": {"max_recipients": 500}}, "shaping.profiles.au.max_recipients",
         "between 1 and 100"),
        ({"au": {"initial_rate": 99}}, "shaping.profiles.au.initial_rate", "above max_rate"),
        ({"gmail": {"throttle_patterns": ["(unclosed"]}},
         "shaping.profiles.gmail.throttle_patterns", "regular expression"),
        ({"gmail": {"quiet_windows": [[58]]}}, "shaping.profiles.gmail.quiet_windows", "pair"),
        ({"gmail": {"quiet_windows": [[58, 75]]}}, "shaping.profiles.gmail.quiet_windows", "0-59"),
        ({"x": {"domains": ["docomo.ne.jp"]}}, "shaping.profiles.x.domains", "also listed"),
        ({"x": {"suspend_seconds": -1}}, "shaping.profiles.x.suspend_seconds", "positive"),
        ({"x": "fast"}, "shaping.profiles.x", "table"),
    ],
)
def test_bad_settings_raise_config_error_naming_the_key(
    table: dict[str, object], key: str, words: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_profiles(table)  # type: ignore[arg-type]
    assert key in str(info.value)
    assert words in str(info.value)


def test_quiet_window_wraps_around_the_top_of_the_hour() -> None:
    window = QuietWindow(58, 2)
    assert window.contains(59.5) and window.contains(0.0) and window.contains(1.99)
    assert not window.contains(2.0) and not window.contains(30.0)
    assert window.seconds_until_end(59.0) == pytest.approx(180.0)
