"""Personal link tokens: round trip, forgery, purpose, expiry, URL safety."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.message.links import InvalidLink, LinkSigner

SECRET = b"k" * 32
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=30)


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_a_token_names_its_id_and_is_url_safe(subject_id: int) -> None:
    links = LinkSigner(SECRET)
    token = links.token("unsubscribe", subject_id, LATER)
    assert re.fullmatch(r"[0-9a-z]+\.[0-9a-z]+\.[A-Za-z0-9_-]{22}", token)
    assert links.verify("unsubscribe", token, NOW) == subject_id


def test_another_purpose_or_secret_does_not_verify() -> None:
    token = LinkSigner(SECRET).token("read", 42, LATER)
    with pytest.raises(InvalidLink):
        LinkSigner(SECRET).verify("unsubscribe", token, NOW)
    with pytest.raises(InvalidLink):
        LinkSigner(b"x" * 32).verify("read", token, NOW)


def test_changed_id_or_expiry_does_not_verify() -> None:
    links = LinkSigner(SECRET)
    id_text, until, mac = links.token("read", 42, LATER).split(".")
    for forged in (f"{id_text}x.{until}.{mac}", f"{id_text}.{until}z.{mac}", f"1.{until}.{mac}"):
        with pytest.raises(InvalidLink) as caught:
            links.verify("read", forged, NOW)
        assert not caught.value.expired


def test_an_expired_token_says_so() -> None:
    links = LinkSigner(SECRET)
    token = links.token("read", 42, NOW)
    with pytest.raises(InvalidLink, match="expired") as caught:
        links.verify("read", token, NOW)
    assert caught.value.expired


@pytest.mark.parametrize("junk", ["", "abc", "1.2.3", "1.2." + "A" * 21 + "=", "x" * 500])
def test_malformed_tokens_are_refused(junk: str) -> None:
    with pytest.raises(InvalidLink):
        LinkSigner(SECRET).verify("read", junk, NOW)


def test_short_secrets_and_bad_purposes_are_programming_errors() -> None:
    with pytest.raises(ValueError):
        LinkSigner(b"short")
    with pytest.raises(ValueError):
        LinkSigner(SECRET).token("Un subscribe", 1, LATER)
