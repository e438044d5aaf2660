"""Sealing personal values: round trip, purposes, wrong keys, lookup hashes, the key file."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from engine.platform.errors import ConfigError
from engine.platform.sealing import Sealer, SealError, load_key


def test_sealed_value_opens_to_the_same_text_and_hides_it() -> None:
    s = Sealer(b"k" * 32)
    sealed = s.seal("taro..yamada@docomo.ne.jp", "contact.address")
    assert b"docomo" not in sealed and b"taro" not in sealed
    assert s.open(sealed, "contact.address") == "taro..yamada@docomo.ne.jp"
    # A fresh nonce each time: equal addresses do not give equal ciphertexts.
    assert s.seal("a@example.jp", "p") != s.seal("a@example.jp", "p")


def test_a_value_sealed_for_one_purpose_does_not_open_for_another() -> None:
    s = Sealer(b"k" * 32)
    with pytest.raises(SealError):
        s.open(s.seal("山田太郎", "account.name"), "contact.address")


def test_another_key_cannot_open_and_says_so() -> None:
    sealed = Sealer(b"k" * 32).seal("a@example.jp", "contact.address")
    with pytest.raises(SealError, match="key"):
        Sealer(b"j" * 32).open(sealed, "contact.address")


def test_altered_bytes_are_refused() -> None:
    s = Sealer(b"k" * 32)
    sealed = bytearray(s.seal("a@example.jp", "contact.address"))
    sealed[-1] ^= 1
    with pytest.raises(SealError):
        s.open(bytes(sealed), "contact.address")


def test_lookup_hash_is_stable_keyed_and_separated_by_purpose() -> None:
    a, b = Sealer(b"k" * 32), Sealer(b"j" * 32)
    assert a.lookup_hash("x@example.jp", "p") == a.lookup_hash("x@example.jp", "p")
    assert a.lookup_hash("x@example.jp", "p") != b.lookup_hash("x@example.jp", "p")
    assert a.lookup_hash("x@example.jp", "p") != a.lookup_hash("x@example.jp", "q")
    assert len(a.lookup_hash("x@example.jp", "p")) == 32


def test_missing_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "people.key"
    first = load_key("", str(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key("", str(path)) == first and len(first) == 32


def test_bad_keys_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="base64"):
        load_key("not base64!", "")
    with pytest.raises(ConfigError, match="32 bytes"):
        load_key(base64.b64encode(b"short").decode(), "")
    bad = tmp_path / "bad.key"
    bad.write_text("@@@")
    with pytest.raises(ConfigError, match="bad.key"):
        load_key("", str(bad))
