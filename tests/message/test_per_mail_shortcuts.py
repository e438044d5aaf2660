"""The per-mail shortcuts of render and signing give exactly what the long way gives: the
body hash on from the shared head's state, and mails that the SMTP client sends as they are
(issue 25: engine CPU per mail)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import UTC, datetime

import dkim
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.delivery._pipelining import _wire_form
from engine.message import verp
from engine.message.compose import build_template
from engine.message.dkim import (
    BodyHead,
    DkimKey,
    DkimSigner,
    _fold_unbroken,
    _parse_header_block,
    generate_key,
)
from engine.message.links import LinkSigner, base36
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


# Staff-written text: any character but control ones (line breaks aside).
texts = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"), include_characters="\n"),
    max_size=300,
)
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


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject=texts, body=texts, from_name=texts, page=st.booleans(),
       delivery_id=st.integers(1, 2**40))
def test_a_mail_said_ready_for_the_wire_needs_nothing_more_and_verifies(
    keyed: tuple[DkimSigner, str], subject: str, body: str, from_name: str, page: bool,
    delivery_id: int,
) -> None:
    signer, record = keyed
    content = BroadcastContent(7, SENDER, subject or "件名", body, Priority.NORMAL,
                               personal_page=page)
    template = build_template(content, FakeClock(), signer=signer, secret=b"k" * 32,
                              public_url=URL, from_name=from_name)
    data, ready = template.render_wire("hogosha.1@docomo.ne.jp", delivery_id)
    assert data == template.render("hogosha.1@docomo.ne.jp", delivery_id)
    if ready:
        # What the SMTP client would have made of it by scanning: the mail unchanged.
        assert _wire_form(data) == data + b".\r\n"
    assert _verifies(data, record)


def test_ordinary_broadcasts_are_ready_for_the_wire(keyed: tuple[DkimSigner, str]) -> None:
    signer, record = keyed
    for page in (False, True):
        content = BroadcastContent(8, SENDER, "【緊急】台風接近に伴う下校について",
                                   "保護者の皆様\n\n本日は午前11時で下校します。\n" * 20,
                                   Priority.EMERGENCY, personal_page=page)
        template = build_template(content, FakeClock(), signer=signer, secret=b"k" * 32,
                                  public_url=URL, from_name="市立第一小学校")
        for i in (1, 123_456, 2**40):
            data, ready = template.render_wire(f"g{i}@au.com", i)
            assert ready and _wire_form(data) == data + b".\r\n"
            assert _verifies(data, record)


def test_a_mail_that_needs_its_line_ends_or_dots_fixed_is_not_said_ready() -> None:
    # A display name that would put a bare LF and a leading dot into the shared header
    # lines: the client must scan and fix this mail, so it is not said ready.
    content = BroadcastContent(9, SENDER, "件名", "本文", Priority.NORMAL)
    template = build_template(content, FakeClock(), from_name="a\n.b")
    data, ready = template.render_wire("g@au.com", 1)
    assert not ready
    assert _wire_form(data) != data + b".\r\n"
    # An address with a line break in it (never stored so, but rows may come from elsewhere).
    good = build_template(BroadcastContent(9, SENDER, "件名", "本文", Priority.NORMAL), FakeClock())
    assert good.render_wire("g@au.com", 1)[1]
    data, ready = good.render_wire("g\r\n.x@au.com", 1)
    assert not ready and _wire_form(data) != data + b".\r\n"


@given(st.binary(max_size=700).map(base64.b64encode))
def test_the_signatures_b_value_is_folded_as_dkimpy_folds_it(value: bytes) -> None:
    assert _fold_unbroken(value) == dkim.fold(value, namelen=3)


@given(st.binary(min_size=16, max_size=64), st.integers(0, 2**62),
       st.sampled_from([b"", b"unsubscribe\0"]))
def test_verp_macs_are_base32_of_the_hmacs_first_50_bits(
    secret: bytes, delivery_id: int, purpose: bytes
) -> None:
    digest = hmac.new(secret, purpose + str(delivery_id).encode(), hashlib.sha256).digest()
    expected = base64.b32encode(digest[:10]).decode().lower()[:10]
    assert verp._mac(secret, delivery_id, purpose) == expected


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(delivery_id=st.integers(1, 2**40), links=st.booleans(),
       local=st.from_regex(r"[a-z0-9][a-z0-9._+-]{0,30}", fullmatch=True))
def test_own_fields_written_split_are_what_the_parser_makes_of_the_lines(
    keyed: tuple[DkimSigner, str], delivery_id: int, links: bool, local: str
) -> None:
    """The template hands the signer its own fields split (no parse per mail): the same
    fields, and so the same signature, as parsing its own lines would give."""
    signer, record = keyed
    content = BroadcastContent(5, SENDER, "件名", "本文", Priority.NORMAL)
    template = build_template(content, FakeClock(), signer=signer, secret=b"k" * 32,
                              public_url=URL if links else "")
    recipient = f"{local}@docomo.ne.jp"
    url = template.unsubscribe_url(delivery_id)
    own, fields = template._own_fields(recipient, delivery_id, url)
    assert fields == _parse_header_block(own, DOMAIN)
    prepared = signer.prepare_body(b"QUJD\r\n")
    assert signer.sign_fields(fields, template.common_headers, prepared, DOMAIN) == (
        signer.sign_parts(own, template.common_headers, prepared, DOMAIN)
    )
    assert _verifies(template.render(recipient, delivery_id), record)


def test_the_per_mail_tags_have_lines_of_their_own(keyed: tuple[DkimSigner, str]) -> None:
    """t=, x= and bh= follow the fixed tags (folded once per key and h=) on lines of their
    own; every line within 72 columns."""
    signer, _ = keyed
    content = BroadcastContent(5, SENDER, "件名", "本文", Priority.NORMAL)
    template = build_template(content, FakeClock(), signer=signer, secret=b"k" * 32,
                              public_url=URL)
    mail = template.render("g@au.com", 42)
    header = mail[: mail.index(b"\r\nTo:") + 2]
    lines = header[:-2].split(b"\r\n")
    assert all(len(line) <= 72 for line in lines)
    t = next(i for i, line in enumerate(lines) if line.startswith(b" t="))
    assert re.fullmatch(rb" t=\d+; x=\d+;", lines[t])
    assert re.fullmatch(rb" bh=[A-Za-z0-9+/]{43}=;", lines[t + 1])
    assert lines[t + 2].startswith(b" b=")
    assert lines[t - 1].endswith(b";") and b"h=" in b"".join(lines[:t])


@given(st.integers(0, 2**64))
def test_base36_reads_back(n: int) -> None:
    text = base36(n)
    assert int(text, 36) == n
    assert text == "0" or not text.startswith("0")
    assert text == text.lower()


@given(st.binary(min_size=16, max_size=64), st.integers(0, 2**48), st.integers(1, 2**40),
       st.sampled_from(["unsubscribe", "page", "read-2"]))
def test_a_broadcasts_token_maker_makes_the_tokens_token_makes(
    secret: bytes, subject_id: int, expires: int, purpose: str
) -> None:
    signer = LinkSigner(secret)
    made = signer.tokens(purpose, expires)(subject_id)
    assert made == signer.token(purpose, subject_id, expires)
    assert signer.verify(purpose, made, datetime.fromtimestamp(0, UTC)) == subject_id
