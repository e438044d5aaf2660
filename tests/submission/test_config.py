"""[submission]: what a usable configuration needs, each refusal naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.platform.config import load_settings
from engine.platform.errors import ConfigError


def env(**values: str) -> dict[str, str]:
    return {f"MAMORU_SUBMISSION_{k.upper()}": v for k, v in values.items()}


def test_submission_is_off_by_default_and_set_from_the_environment() -> None:
    assert load_settings(None, environ={}).submission.listen == ""
    sample = load_settings(Path(__file__).parents[2] / "engine" / "sample.toml", environ={})
    assert sample.submission.listen == "127.0.0.1:2587"  # make run: a loopback dev server
    s = load_settings(None, environ=env(
        listen="127.0.0.1:2587", domain="mail.city.example.jp", allow_plain_auth="true",
        rate_per_minute="5",
    ))
    assert s.submission.domain == "mail.city.example.jp" and s.submission.rate_per_minute == 5


@pytest.mark.parametrize(("values", "names"), [
    ({"listen": "127.0.0.1:2587", "allow_plain_auth": "true"}, "submission.domain"),
    ({"listen": "127.0.0.1:2587", "domain": "mail.test"}, "submission.tls_cert"),
    ({"listen": "0.0.0.0:2587", "domain": "mail.test", "allow_plain_auth": "true"},
     "submission.allow_plain_auth"),
    ({"listen": "127.0.0.1:2587", "domain": "mail.test", "tls_cert": "c.pem"},
     "submission.tls_cert and submission.tls_key"),
    ({"listen": "127.0.0.1:2587", "domain": "mail.test", "allow_plain_auth": "true",
      "rate_per_minute": "0"}, "submission.rate_per_minute"),
])
def test_an_unusable_submission_configuration_is_refused(
    values: dict[str, str], names: str
) -> None:
    with pytest.raises(ConfigError, match=names.replace(".", r"\.")):
        load_settings(None, environ=env(**values))
