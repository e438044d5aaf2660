from __future__ import annotations

from pathlib import Path

import pytest

from engine.platform.config import load_settings
from engine.platform.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "mamoru.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_sample_configuration_loads() -> None:
    sample = Path(__file__).parents[2] / "engine" / "sample.toml"
    settings = load_settings(sample, environ={})
    assert settings.routing.transport["*"] == "127.0.0.1:2525"
    assert settings.queue.max_age == 86400
    assert settings.queue.retry_base == 180


def test_defaults_without_a_file() -> None:
    settings = load_settings(None, environ={})
    assert settings.database.url == ""
    assert settings.delivery.concurrency > 0


def test_unknown_key_is_named(tmp_path: Path) -> None:
    p = write(tmp_path, "[queue]\nlease_secs = 10\n")
    with pytest.raises(ConfigError, match=r"unknown key queue\.lease_secs"):
        load_settings(p, environ={})


def test_unknown_section_is_named(tmp_path: Path) -> None:
    p = write(tmp_path, "[queu]\nlease_seconds = 10\n")
    with pytest.raises(ConfigError, match=r"unknown section \[queu\]"):
        load_settings(p, environ={})


def test_wrong_type_names_the_key(tmp_path: Path) -> None:
    p = write(tmp_path, '[delivery]\nconcurrency = "many"\n')
    with pytest.raises(ConfigError, match=r"delivery\.concurrency must be a whole number"):
        load_settings(p, environ={})


def test_durations_accept_units(tmp_path: Path) -> None:
    p = write(tmp_path, '[queue]\nmax_age = "2h"\nretry_base = "90s"\nretry_max = 600\n')
    s = load_settings(p, environ={})
    assert (s.queue.max_age, s.queue.retry_base, s.queue.retry_max) == (7200, 90, 600)


def test_bad_duration_is_explained(tmp_path: Path) -> None:
    p = write(tmp_path, '[queue]\nmax_age = "one day"\n')
    with pytest.raises(ConfigError, match=r"queue\.max_age must be a duration"):
        load_settings(p, environ={})


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    p = write(tmp_path, '[database]\nurl = "postgresql://a/b"\n[queue]\nclaim_batch = 10\n')
    s = load_settings(
        p, environ={"MAMORU_DATABASE_URL": "postgresql://c/d", "MAMORU_QUEUE_CLAIM_BATCH": "7"}
    )
    assert s.database.url == "postgresql://c/d"
    assert s.queue.claim_batch == 7


def test_config_file_from_environment(tmp_path: Path) -> None:
    p = write(tmp_path, "[delivery]\nconcurrency = 3\n")
    assert load_settings(None, environ={"MAMORU_CONFIG": str(p)}).delivery.concurrency == 3


def test_unknown_environment_setting_is_refused() -> None:
    with pytest.raises(ConfigError, match="MAMORU_QUEUE_LEASE is not a mamoru setting"):
        load_settings(None, environ={"MAMORU_QUEUE_LEASE": "5"})


def test_bad_environment_value_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"queue\.claim_batch must be a whole number"):
        load_settings(None, environ={"MAMORU_QUEUE_CLAIM_BATCH": "lots"})


def test_transport_map_is_checked(tmp_path: Path) -> None:
    p = write(tmp_path, '[routing.transport]\n"docomo.ne.jp" = "127.0.0.1:99999"\n')
    with pytest.raises(ConfigError, match=r"routing\.transport\.docomo\.ne\.jp.*invalid port"):
        load_settings(p, environ={})


def test_missing_file_and_broken_toml_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})
    p = write(tmp_path, "[queue\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(p, environ={})


def test_values_out_of_range_are_refused(tmp_path: Path) -> None:
    p = write(tmp_path, "[delivery]\nconcurrency = 0\n")
    with pytest.raises(ConfigError, match=r"delivery\.concurrency must be at least 1"):
        load_settings(p, environ={})


def test_list_settings_from_file_and_environment(tmp_path: Path) -> None:
    p = write(tmp_path, '[inbound]\nservice_addresses = ["touroku@school.example.jp"]\n')
    assert load_settings(p, environ={}).inbound.service_addresses == ["touroku@school.example.jp"]
    s = load_settings(None, environ={"MAMORU_INBOUND_SERVICE_ADDRESSES": "a@x.jp, b@x.jp"})
    assert s.inbound.service_addresses == ["a@x.jp", "b@x.jp"]
    bad = write(tmp_path, "[inbound]\nservice_addresses = \"a@x.jp\"\n")
    with pytest.raises(ConfigError, match=r"inbound\.service_addresses must be a list"):
        load_settings(bad, environ={})


def test_an_http_public_url_is_refused_unless_a_test_set_up_allows_it(tmp_path: Path) -> None:
    p = write(tmp_path, '[http]\npublic_url = "http://mail.city.example.jp"\n')
    with pytest.raises(ConfigError, match=r"https://.*RFC 8058"):
        load_settings(p, environ={})
    allowed = write(tmp_path, '[http]\npublic_url = "http://127.0.0.1:8080"\n'
                              "allow_insecure_public_url = true\n")
    assert load_settings(allowed, environ={}).http.public_url == "http://127.0.0.1:8080"
    secure = write(tmp_path, '[http]\npublic_url = "https://mail.city.example.jp"\n')
    assert load_settings(secure, environ={}).http.public_url == "https://mail.city.example.jp"
