"""Mail building: personal links and headers, Message-IDs, encoded words, per-mail signing."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.header import decode_header, make_header
from pathlib import Path

import dkim
import pytest
from conftest import scratch_database
from support import make_settings

from engine.delivery.context import Engine
from engine.message import verp
from engine.message.checks import MAX_SENDER_NAME, check_sender_name
from engine.message.compose import build_template, encode_words, estimated_size
from engine.message.dkim import DkimKey, DkimSigner, dns_record_name, generate_key
from engine.message.links import PAGE, LinkSigner
from engine.platform.clock import FakeClock
from engine.platform.errors import InputError
from engine.queue.models import BroadcastContent, Priority

DOMAIN = "school.example.jp"
SECRET = b"0123456789abcdef0123456789abcdef"
URL = "https://mail.school.example.jp/"
LONG_SUBJECT = "【緊急】台風接近に伴う臨時休校のお知らせ（市内全小中学校）明日の登校についての詳細"
BODY = "保護者の皆様\n\n台風の接近に伴い、明日は臨時休校といたします。\n" * 5

Records = dict[bytes, bytes]


def content(subject: str = LONG_SUBJECT, body: str = BODY, bid: int = 7) -> BroadcastContent:
    return BroadcastContent(bid, f"info@{DOMAIN}", subject, body, Priority.EMERGENCY)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[DkimSigner, Records]:
    directory = tmp_path_factory.mktemp("keys")
    path, record = generate_key(DOMAIN, "s1", directory)
    name = dns_record_name(DOMAIN, "s1").encode() + b"."
    return DkimSigner([DkimKey(DOMAIN, "s1", path)]), {name: record.encode()}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime.now(UTC))


def verifies(message: bytes, records: Records) -> bool:
    def dnsfunc(name: bytes, timeout: float = 5) -> bytes | None:
        return records.get(name if name.endswith(b".") else name + b".")

    return bool(dkim.verify(message, dnsfunc=dnsfunc))


def parse(message: bytes) -> email.message.EmailMessage:
    parsed = email.message_from_bytes(message, policy=email.policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    return parsed


def h_tag(message: bytes) -> list[str]:
    value = parse(message)["DKIM-Signature"]
    h = re.search(r"h=([^;]*)", value.replace("\r\n", "").replace(" ", ""))
    assert h is not None
    return h.group(1).split(":")


def test_personal_mail_carries_its_own_unsubscribe_link_signed_and_verifiable(
    keys: tuple[DkimSigner, Records], clock: FakeClock
) -> None:
    signer, records = keys
    template = build_template(content(), clock, "", signer, secret=SECRET, public_url=URL)
    mails = {d: template.render(f"g{d}@example.jp", d) for d in (101, 102)}
    links = LinkSigner(SECRET)
    for delivery_id, mail in mails.items():
        assert verifies(mail, records)
        msg = parse(mail)
        https, mailto = (v.strip().strip("<>") for v in msg["List-Unsubscribe"].split(","))
        url = https
        assert url.startswith("https://mail.school.example.jp/u/")
        # The mailto: beside it names the same delivery, under the same secret.
        assert verp.unsubscribe_id_of(SECRET, mailto.removeprefix("mailto:")) == delivery_id
        assert links.verify("unsubscribe", url.rsplit("/", 1)[1], clock.now()) == delivery_id
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        text = msg.get_content()
        assert text.startswith(BODY.replace("\n", "\r\n")) or text.startswith(BODY)
        assert url in text
        signed = h_tag(mail)
        for name in ("list-unsubscribe", "list-unsubscribe-post", "to", "message-id", "from"):
            assert signed.count(name) == 2, name
    # Each mail has its own body hash: the link in the text differs.
    bodies = {re.search(rb"bh=([^;]*)", m).group(1) for m in mails.values()}  # type: ignore[union-attr]
    assert len(bodies) == 2


def test_a_two_way_mail_links_to_its_own_personal_page_above_the_foot(
    keys: tuple[DkimSigner, Records], clock: FakeClock
) -> None:
    from dataclasses import replace

    signer, records = keys
    two_way = replace(content(), personal_page=True)
    template = build_template(two_way, clock, "", signer, secret=SECRET, public_url=URL)
    links = LinkSigner(SECRET)
    for delivery_id in (101, 102):
        mail = template.render(f"g{delivery_id}@example.jp", delivery_id)
        assert verifies(mail, records)
        text = parse(mail).get_content()
        page = re.search(r"https://mail\.school\.example\.jp/m/(\S+)", text)
        leave = re.search(r"https://mail\.school\.example\.jp/u/(\S+)", text)
        assert page is not None and leave is not None
        assert links.verify(PAGE, page.group(1), clock.now()) == delivery_id
        assert links.verify("unsubscribe", leave.group(1), clock.now()) == delivery_id
        # The page link comes right after the text, before the foot with the unsubscribe one.
        assert text.index("▼確認しました・回答はこちら") < page.start() < leave.start()
        assert text.startswith(BODY.replace("\n", "\r\n")) or text.startswith(BODY)
    plain = build_template(content(), clock, "", signer, secret=SECRET, public_url=URL)
    assert "/m/" not in parse(plain.render("g1@example.jp", 1)).get_content()
    assert template.estimated_size >= len(template.render("g1@example.jp", 10**12))


def test_reply_to_added_to_a_rendered_mail_breaks_its_signature(
    keys: tuple[DkimSigner, Records], clock: FakeClock
) -> None:
    signer, records = keys
    template = build_template(content(), clock, "", signer, secret=SECRET, public_url=URL)
    mail = template.render("parent@example.jp", 5)
    head, _, rest = mail.partition(b"\r\nTo: ")
    assert verifies(mail, records)
    for added in (b"Reply-To: x@evil.example", b"Subject: =?UTF-8?B?5YWN6Zmk?=", b"To: x@e.jp"):
        assert not verifies(head + b"\r\n" + added + b"\r\nTo: " + rest, records)


def test_shared_signature_is_only_used_for_mail_without_personal_fields(
    keys: tuple[DkimSigner, Records], clock: FakeClock
) -> None:
    signer, records = keys
    shared = build_template(content(), clock, "", signer, False, secret=SECRET)
    mails = [shared.render(f"g{i}@example.jp", i) for i in range(3)]
    assert len({m.split(b"\r\nTo:")[0] for m in mails}) == 1  # one signature for all
    assert all(verifies(m, records) for m in mails)
    assert "to" not in h_tag(mails[0])
    personal = build_template(content(), clock, "", signer, False, secret=SECRET, public_url=URL)
    mails = [personal.render(f"g{i}@example.jp", i) for i in range(3)]
    assert len({m.split(b"\r\nTo:")[0] for m in mails}) == 3  # links force signing per mail
    assert all(verifies(m, records) and "to" in h_tag(m) for m in mails)


def test_signing_per_recipient_is_the_default(
    keys: tuple[DkimSigner, Records], clock: FakeClock
) -> None:
    signer, records = keys
    template = build_template(content(), clock, "", signer, secret=SECRET)
    mail = template.render("parent@example.jp", 1)
    assert verifies(mail, records)
    assert h_tag(mail).count("to") == 2 and h_tag(mail).count("reply-to") == 1


def test_encoded_words_are_at_most_75_characters_and_decode_to_the_subject(
    clock: FakeClock,
) -> None:
    for subject in (LONG_SUBJECT, LONG_SUBJECT * 3, "お知らせ", "A" + "漢" * 200, "Ü" * 90):
        mail = build_template(content(subject), clock, secret=SECRET).render("p@example.jp", 1)
        raw = mail.split(b"\r\n\r\n")[0].decode("ascii")
        words = re.findall(r"=\?[^?]+\?[bBqQ]\?[^?]*\?=", raw)
        assert words and max(len(w) for w in words) <= 75
        assert all(len(line) <= 78 for line in raw.split("\r\n"))
        assert str(make_header(decode_header(parse(mail)["Subject"]))) == subject
        assert parse(mail)["Subject"] == subject


def test_ascii_subject_is_written_as_it_is_unless_too_long_for_one_line() -> None:
    assert encode_words("School closed today") == "School closed today"
    assert encode_words("=?utf-8?q?x?=") != "=?utf-8?q?x?="
    long = "School closed " * 100
    encoded = encode_words(long)
    assert max(len(line) for line in encoded.split("\r\n")) <= 78
    assert str(make_header(decode_header(encoded))) == long


def test_sender_display_name_reply_to_and_automatic_mail_headers(clock: FakeClock) -> None:
    template = build_template(
        content(), clock, secret=SECRET, from_name="市立さくら小学校",
        reply_to="office@school.example.jp",
    )
    msg = parse(template.render("parent@example.jp", 3))
    assert msg["From"].addresses[0].display_name == "市立さくら小学校"
    assert msg["From"].addresses[0].addr_spec == f"info@{DOMAIN}"
    assert msg["Reply-To"] == "office@school.example.jp"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["Feedback-ID"] == f"7:emergency:{DOMAIN}:mamoru"
    assert msg.get_content() == BODY.replace("\n", "\r\n") or msg.get_content() == BODY


@pytest.mark.parametrize("name", [
    "Sakura Elementary School, City of Example (Board of Education) " * 3,
    "A" * 200,
    "Sakura Elementary",
])
def test_an_ascii_sender_name_of_any_allowed_length_keeps_every_line_short(
    clock: FakeClock, name: str
) -> None:
    data = build_template(content(), clock, secret=SECRET, from_name=name).render(
        "parent@example.jp", 3)
    head = data.split(b"\r\n\r\n", 1)[0]
    assert max(len(line) for line in head.split(b"\r\n")) <= 78
    # Decoded as RFC 2047 says (whitespace between encoded words is not text).
    raw = email.message_from_bytes(data)["From"]
    assert str(make_header(decode_header(raw))) == f"{name} <info@{DOMAIN}>"


def test_a_sender_name_over_200_characters_or_of_two_lines_is_refused() -> None:
    check_sender_name("市立さくら小学校")
    check_sender_name("x" * MAX_SENDER_NAME)
    with pytest.raises(InputError, match="差出人名は 200 文字まで.*201 文字"):
        check_sender_name("x" * 201)
    with pytest.raises(InputError, match="--sender-name に改行.*sender name") as refused:
        check_sender_name("さくら\n小学校")
    assert "subject" not in str(refused.value)


def test_message_id_is_stable_per_delivery_and_differs_between_secrets(clock: FakeClock) -> None:
    one = build_template(content(), clock, secret=SECRET)
    again = build_template(content(), FakeClock(clock.now() + timedelta(hours=1)), secret=SECRET)
    other = build_template(content(), clock, secret=b"another secret of 32 bytes......")
    assert one.message_id(9) == again.message_id(9)
    assert one.message_id(9) != one.message_id(10)
    assert one.message_id(9) != other.message_id(9)
    assert re.fullmatch(r"<mamoru\.7\.9\.[a-z2-7]{16}@school\.example\.jp>", one.message_id(9))


@pytest.fixture
async def second_db_url(server_url: str, template_url: str) -> AsyncIterator[str]:
    async with scratch_database(server_url) as url:
        yield url


async def test_message_ids_differ_across_two_fresh_databases(
    db_url: str, second_db_url: str, clock: FakeClock, tmp_path: Path
) -> None:
    ids = []
    for n, url in enumerate((db_url, second_db_url)):
        # Two deployments: each its own link key file (engine/platform/link_key.py).
        settings = make_settings(url)
        settings = replace(settings, people=replace(
            settings.people, link_key_file=str(tmp_path / f"{n}" / "link.key")))
        eng = await Engine.open(settings)
        try:
            secret = await eng.verp_secret()
        finally:
            await eng.close()
        # Both databases number their first broadcast and delivery 1.
        ids.append(build_template(content(bid=1), clock, secret=secret).message_id(1))
    assert ids[0] != ids[1]
    assert all(i.startswith("<mamoru.1.1.") for i in ids)


def test_estimated_size_bounds_the_rendered_mail(
    keys: tuple[DkimSigner, Records], clock: FakeClock
) -> None:
    signer, _ = keys
    body = "あ" * 300_000
    template = build_template(content(body=body), clock, "", signer, secret=SECRET, public_url=URL)
    size = len(template.render("parent@example.jp", 1))
    assert size <= template.estimated_size < size + 4096
    assert estimated_size("件名", body, f"info@{DOMAIN}", URL) >= size - 1024


def test_lf_and_crlf_bodies_give_the_same_mail(clock: FakeClock) -> None:
    lf = build_template(content(body="一行目\n二行目\n"), clock, secret=SECRET)
    crlf = build_template(content(body="一行目\r\n二行目"), clock, secret=SECRET)
    assert lf.body == crlf.body




def test_a_required_signature_without_a_key_is_an_error(
    keys: tuple[DkimSigner, Records], clock: FakeClock
) -> None:
    from engine.platform.errors import DkimError

    signer, _ = keys
    other = BroadcastContent(8, "info@other.example.jp", "件名", BODY, Priority.NORMAL)
    with pytest.raises(DkimError, match="other.example.jp"):
        build_template(other, clock, "", signer, secret=SECRET, require_signature=True)
    with pytest.raises(DkimError, match="allow_unsigned"):
        build_template(content(), clock, secret=SECRET, require_signature=True)
    assert build_template(other, clock, "", signer, secret=SECRET).signer is None


def test_personal_body_is_the_plain_base64_of_the_whole_text(clock: FakeClock) -> None:
    import base64

    for body in (BODY, "短い本文", "x" * 57 * 3, "あ" * 1000):
        template = build_template(content(body=body), clock, secret=SECRET, public_url=URL)
        mail = template.render("parent@example.jp", 77)
        encoded = mail.partition(b"\r\n\r\n")[2]
        text = base64.b64decode(encoded).decode("utf-8")
        url = template.unsubscribe_url(77)
        assert url is not None and text.endswith(url + "\r\n")
        assert encoded == base64.encodebytes(text.encode("utf-8")).replace(b"\n", b"\r\n")


def test_template_options_from_settings_make_personal_signed_mail(
    keys: tuple[DkimSigner, Records], clock: FakeClock
) -> None:
    from dataclasses import replace

    from engine.message.compose import TemplateOptions
    from engine.platform.config import load_settings

    signer, records = keys
    base = load_settings(None, environ={})
    settings = replace(base, http=replace(base.http, public_url=URL))
    options = TemplateOptions.from_settings(settings, SECRET, signer)
    assert options.require_signature and options.sign_per_recipient
    mail = options.build(content(), clock).render("parent@example.jp", 4)
    assert verifies(mail, records) and b"List-Unsubscribe: <https://" in mail
    assert b"<mamoru.7.4." in mail
