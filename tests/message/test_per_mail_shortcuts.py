"""The per-mail shortcuts of render and signing give exactly what the long way gives: the
body hash on from the shared head's state (issue 25: engine CPU per mail)."""

from __future__ import annotations

from datetime import UTC, datetime

import dkim
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.message.compose import build_template
from engine.message.dkim import BodyHead, DkimKey, DkimSigner, generate_key
from engine.platform.clock import FakeClock
from engine.queue.models import BroadcastContent, Priority

DOMAIN = "school.example.jp"
SENDER = f"info@{DOMAIN}"
URL = "https://mail.school.example.jp"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> tuple[DkimSigner, str]:
    path, record = generate_key(DOMAIN, "s1", tmp_path_factory.mktemp("keys"))
    # A clock that stands still (t= the same in every rendering), set to now (x= ahead).
    clock = FakeClock(datetime.now(UTC))
    return DkimSigner([DkimKey(DOMAIN, "s1", path)], clock), record


def _verifies(mail: bytes, record: str) -> bool:
    return bool(dkim.verify(mail, dnsfunc=lambda _name, timeout=5: record.encode()))


chunks = st.binary(max_size=200) | st.sampled_from(
    [b"", b"\r\n", b"QUJD\r\n", b"a b\r\n", b"x\r\n\r\n", b"x\n", b"\tx\r\n", b"ab"]
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(head=chunks, tail=chunks)
def test_the_body_hash_from_the_heads_state_is_the_whole_bodys(
    keyed: tuple[DkimSigner, str], head: bytes, tail: bytes
) -> None:
    signer, _ = keyed
    assert signer.prepare_body(tail, BodyHead(head)) == signer.prepare_body(head + tail)


def test_personal_mails_hashed_on_from_the_head_verify(keyed: tuple[DkimSigner, str]) -> None:
    signer, record = keyed
    for text in ("短い", "保護者の皆様\n\n本日は午前11時で下校します。\n" * 20, "x" * 57):
        for page in (False, True):
            content = BroadcastContent(8, SENDER, "【緊急】下校について", text,
                                       Priority.EMERGENCY, personal_page=page)
            template = build_template(content, FakeClock(), signer=signer, secret=b"k" * 32,
                                      public_url=URL)
            for i in (1, 123_456, 2**40):
                assert _verifies(template.render(f"g{i}@au.com", i), record)
