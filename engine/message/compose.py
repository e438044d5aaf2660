"""Mail building: one template per broadcast, only what differs written per recipient.

Every recipient of a broadcast gets the same subject, sender and text, so the common header
fields are encoded once per broadcast. Per recipient the template writes ``To``, a
``Message-ID`` and, when the deployment has a public URL, the personal links: an RFC 8058
one-click ``List-Unsubscribe`` (with a ``mailto:`` beside the URL) and the same link at the foot
of the text; for a broadcast with ``personal_page`` also the recipient's personal page
(``{public_url}/m/<token>``, engine/message/links.py) above the foot. The body is UTF-8 in base64
(no line comes near the 1,000-byte limit docomo enforces); with personal links it is encoded
per recipient, which costs a few microseconds, against the ~0.85 ms of the RSA signature that
follows.

DKIM (see ``engine/message/dkim.py``): every mail is signed on its own by default, all its fields
oversigned. The shared-signature mode (one signature per broadcast that leaves To and
Message-ID out) is used only when asked for and only for mail without personal fields.

    template = build_template(content, clock, id_domain, signer, sign_per_recipient,
                              secret=verp_secret, public_url="https://mail.example.jp")
    data = template.render(recipient, delivery_id)     # the whole mail, CRLF line ends
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta, timezone
from email.utils import format_datetime, formataddr

from engine.message.dkim import BodyHead, DkimSigner, PreparedBody, dkim_settings
from engine.message.links import PAGE, LinkSigner
from engine.message.verp import unsubscribe_address
from engine.platform.address import domain_of, smtp_path
from engine.platform.clock import Clock, SystemClock
from engine.platform.config import Settings
from engine.platform.errors import DkimError
from engine.queue.models import BroadcastContent, Priority

__all__ = [
    "LINK_LIFETIME",
    "MessageTemplate",
    "TemplateOptions",
    "build_template",
    "encode_words",
    "estimated_size",
]

_JST = timezone(timedelta(hours=9), "JST")
#: How long the personal links of a mail work.
LINK_LIFETIME = timedelta(days=60)
# RFC 2047 §2: an encoded word is at most 75 characters. "=?UTF-8?B?" + "?=" leave 63 for
# base64, i.e. 45 bytes; 42 bytes (56 base64 characters, a 68-character word) also keep the
# first line, behind "Subject: ", within the 78 columns RFC 5322 §2.1.1 asks for.
_WORD_BYTES = 42
# Bytes encoded on one base64 line of 76 characters.
_LINE_BYTES = 57
# Longer plain ASCII would make a header line over the 998 bytes of RFC 5322 §2.1.1 (docomo
# answers "500 Line Too Long"); encoded words fold onto as many lines as needed.
_PLAIN_MAX = 900
# A longer ASCII display name goes as folded encoded words, like a Japanese one: formataddr
# writes it on one line, and a From line over 998 bytes is refused ("500 Line too long").
_PLAIN_NAME_MAX = 60
# Fields the shared signature must not list: each mail adds its own after signing.
_PERSONAL_FIELDS = frozenset(
    {b"to", b"message-id", b"list-unsubscribe", b"list-unsubscribe-post"}
)
# RFC 8058's one-click field, beside each mail's own List-Unsubscribe.
_UNSUBSCRIBE_POST = b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
# Room for what render() adds to the common part: To, Message-ID, links, DKIM signatures.
_PER_MAIL_ALLOWANCE = 2048


@dataclass(frozen=True)
class _Links:
    """How one broadcast's personal links are made: the text is ``pieces[0] + url(paths[0]) +
    pieces[1] + ... + pieces[-1]``, one signed link per entry of ``paths``."""

    base_url: str  # public_url without a trailing slash
    signer: LinkSigner
    expires: int  # Unix seconds, the same for every recipient of the broadcast
    # UTF-8 text, CRLF line ends, around the links: one more piece than there are links.
    pieces: tuple[bytes, ...]
    # (token purpose, path) of each link in the order they appear; the unsubscribe one is
    # always among them (its URL also goes into List-Unsubscribe).
    paths: tuple[tuple[str, str], ...]
    # Base64 lines of the longest start of pieces[0] that fills whole lines (57 bytes each):
    # they are the same in every mail, so only the rest is encoded per recipient.
    encoded_head: bytes = b""
    head_length: int = 0
    # The domain of the mailto: unsubscribe address (engine.message.verp), keyed by `secret`.
    mailto_domain: str = ""
    secret: bytes = b""
    # encoded_head's DKIM body-hash state, computed once (when the mails are signed).
    hashed_head: BodyHead | None = None
    # Per purpose: the URL up to the token, and the token maker (purpose and expiry bound
    # once per broadcast, see LinkSigner.tokens).
    makers: dict[str, tuple[str, Callable[[int], str]]] = field(default_factory=dict)

    def url(self, purpose: str, path: str, delivery_id: int) -> str:
        made = self.makers.get(purpose)
        if made is not None:
            return made[0] + made[1](delivery_id)
        return f"{self.base_url}/{path}/{self.signer.token(purpose, delivery_id, self.expires)}"

    def text(self, delivery_id: int, unsubscribe_url: str) -> bytes:
        """The part of the text after the pre-encoded head, with this recipient's links."""
        out = [self.pieces[0][self.head_length :]]
        for (purpose, path), piece in zip(self.paths, self.pieces[1:], strict=True):
            url = unsubscribe_url if purpose == "unsubscribe" else self.url(
                purpose, path, delivery_id
            )
            out += [url.encode("ascii"), piece]
        return b"".join(out)


@dataclass(frozen=True)
class MessageTemplate:
    broadcast_id: int
    sender: str
    sender_domain: str
    id_domain: str
    # Header lines shared by all recipients, CRLF-terminated.
    common_headers: bytes
    # The encoded body, CRLF line ends (without personal links: the same for everyone).
    body: bytes
    # DKIM: the signature shared by every recipient (signed once per broadcast), or, when each
    # mail is signed on its own, the signer and the body hash computed once.
    shared_signature: bytes = b""
    signer: DkimSigner | None = None
    prepared_body: PreparedBody | None = None
    # The random part of Message-IDs, the same for every mail of the broadcast.
    id_token: str = ""
    links: _Links | None = None
    # The shared header lines and body need nothing more for SMTP DATA: CRLF line ends only
    # and no line that starts with "." (checked once per broadcast, see `render_wire`).
    wire_safe: bool = False

    def message_id(self, delivery_id: int) -> str:
        """Stable per delivery (a retry is recognisably the same mail) and unique across
        databases and hosts: the random part comes from the deployment's secret."""
        return f"<mamoru.{self.broadcast_id}.{delivery_id}.{self.id_token}@{self.id_domain}>"

    def unsubscribe_url(self, delivery_id: int) -> str | None:
        """The delivery's one-click unsubscribe link, or None without a public URL."""
        links = self.links
        if links is None:
            return None
        return links.url("unsubscribe", "u", delivery_id)

    def header_block(self, recipient: str, delivery_id: int) -> bytes:
        """The complete header block for one recipient, CRLF-terminated, no empty line."""
        own, _ = self._own_fields(recipient, delivery_id, self.unsubscribe_url(delivery_id))
        return own + self.common_headers

    def _own_fields(
        self, recipient: str, delivery_id: int, url: str | None
    ) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        """This recipient's own header lines, and the same split into (name, value) as the
        signer takes them (the value with its leading space, folds and CRLF): written split,
        so the signer need not parse them again per mail."""
        to = b" %s\r\n" % smtp_path(recipient).encode("ascii")
        message_id = b" %s\r\n" % self.message_id(delivery_id).encode("ascii")
        fields = [(b"To", to), (b"Message-ID", message_id)]
        links = self.links
        if url is None or links is None:
            return b"To:%sMessage-ID:%s" % (to, message_id), fields
        # RFC 8058 needs the https URL; the mailto: (RFC 2369) serves mail programs that
        # only send mail. Folded after the comma to stay within 78 columns. The
        # List-Unsubscribe-Post line that follows is the same in every mail: it starts the
        # common lines (see build_template).
        mailto = unsubscribe_address(links.secret, delivery_id, links.mailto_domain)
        unsubscribe = b" <%s>,\r\n <mailto:%s>\r\n" % (
            url.encode("ascii"), mailto.encode("ascii")
        )
        fields.append((b"List-Unsubscribe", unsubscribe))
        return b"To:%sMessage-ID:%sList-Unsubscribe:%s" % (to, message_id, unsubscribe), fields

    def render(self, recipient: str, delivery_id: int) -> bytes:
        """The whole mail for one recipient, CRLF line ends, DKIM-signed when configured."""
        return self.render_wire(recipient, delivery_id)[0]

    def render_wire(self, recipient: str, delivery_id: int) -> tuple[bytes, bool]:
        """`render`, and whether the mail may go into SMTP DATA as it is: CRLF line ends
        only, ending with CRLF, no line that starts with "." (no dot to double). True when
        the broadcast's shared part was found so once and this recipient's own header lines
        are too (the body is base64 and the signature ours; of those lines only the address
        comes from outside, the rest is ours and checked with the template): the SMTP client
        then need not scan the whole mail again."""
        url = self.unsubscribe_url(delivery_id)
        own, own_fields = self._own_fields(recipient, delivery_id, url)
        body, prepared = self.body, self.prepared_body
        links = self.links
        if links is not None and url is not None:
            tail = _encode_body(links.text(delivery_id, url))
            body = links.encoded_head + tail
            if self.signer is not None:
                prepared = self.signer.prepare_body(tail, links.hashed_head)
        if self.signer is not None and prepared is not None:
            signature = self.signer.sign_fields(
                own_fields, self.common_headers, prepared, self.sender_domain
            )
        else:
            signature = self.shared_signature
        data = signature + own + self.common_headers + b"\r\n" + body
        # A printable address holds no CR or LF: no line of its own, so no line to check.
        return data, self.wire_safe and recipient.isprintable()

    @property
    def estimated_size(self) -> int:
        """An upper estimate of one rendered mail's size in bytes, for SIZE checks."""
        links = self.links
        body = len(self.body)
        if links is not None:
            text = sum(map(len, links.pieces)) + 200 * len(links.paths)
            body = (text + 2) // 3 * 4 * 78 // 76 + 4
        return len(self.common_headers) + body + _PER_MAIL_ALLOWANCE


def build_template(
    content: BroadcastContent,
    clock: Clock,
    id_domain: str = "",
    signer: DkimSigner | None = None,
    sign_per_recipient: bool = True,
    *,
    secret: bytes = b"",
    public_url: str = "",
    from_name: str = "",
    reply_to: str = "",
    require_signature: bool = False,
    bounce_domain: str = "",
) -> MessageTemplate:
    """The template of one broadcast.

    `secret`: the deployment's secret (the database's VERP key); it makes Message-IDs unique
    across databases yet stable per delivery, and keys the personal links. Without it the
    Message-ID's random part is drawn afresh per template (unique, but a retry by another
    runner then carries another Message-ID) and no personal links are made.
    `public_url`: base of personal links (``[http] public_url``); empty: no links.
    `from_name`: the sender's display name (○○小学校); `reply_to`: where replies go.
    `require_signature` (not ``dkim.allow_unsigned``): a sender domain without a key is a
    DkimError instead of unsigned mail.
    `bounce_domain`: the domain of the mailto: unsubscribe address, as of the VERP return path
    (``message.bounce_domain``; empty: the sender's domain).
    """
    sender_domain = domain_of(content.sender)
    if require_signature and (signer is None or not signer.signs_for(sender_domain)):
        raise DkimError(
            f"broadcast {content.id} is from {sender_domain}, which has no DKIM key: add "
            "[[dkim.keys]] for it (`mamoru dkim keygen`), or set dkim.allow_unsigned = true"
        )
    id_domain = id_domain or sender_domain
    if secret:
        mac = hmac.new(secret, b"message-id\0%d" % content.id, hashlib.sha256).digest()
        id_token = base64.b32encode(mac[:10]).decode("ascii").lower()
    else:
        id_token = base64.b32encode(secrets.token_bytes(10)).decode("ascii").lower()
    text = _text(content.body)
    links: _Links | None = None
    if public_url and secret:
        expires = int((clock.now() + LINK_LIFETIME).timestamp())
        pieces, paths = _link_layout(text, content.personal_page)
        head = len(pieces[0]) // _LINE_BYTES * _LINE_BYTES
        encoded_head = _encode_body(pieces[0][:head])
        base_url, link_signer = public_url.rstrip("/"), LinkSigner(secret)
        makers = {
            purpose: (f"{base_url}/{path}/", link_signer.tokens(purpose, expires))
            for purpose, path in paths
        }
        links = _Links(
            base_url, link_signer, expires, pieces, paths, encoded_head, head,
            bounce_domain or sender_domain, secret, BodyHead(encoded_head), makers,
        )
    common = _common_headers(content, clock, sender_domain, from_name, reply_to)
    if links is not None:
        # The one personal field's companion, the same in every mail: shared, parsed and
        # canonicalised once per broadcast (it follows the mail's own lines, as it always did).
        common = _UNSUBSCRIBE_POST + common
    body = _encode_body(text.encode("utf-8")) if links is None else b""
    shared_signature = b""
    prepared = None
    per_recipient = sign_per_recipient or links is not None
    signs = signer is not None and signer.signs_for(sender_domain)
    if signer is not None and signs:
        if links is None:
            prepared = signer.prepare_body(body)
        if not per_recipient and prepared is not None:
            shared_signature = signer.sign(common, prepared, sender_domain, _PERSONAL_FIELDS)
    return MessageTemplate(
        broadcast_id=content.id,
        sender=content.sender,
        sender_domain=sender_domain,
        id_domain=id_domain,
        common_headers=common,
        body=body,
        shared_signature=shared_signature,
        signer=signer if signs and per_recipient else None,
        prepared_body=prepared,
        id_token=id_token,
        links=links,
        # The body is base64 lines (and so is every personal tail of it); the own header
        # lines are made of these names and the recipient's address (checked per mail).
        wire_safe=_wire_safe(common) and _wire_safe(shared_signature) and all(
            name.isprintable() for name in (id_domain, sender_domain, public_url, bounce_domain)
        ),
    )


@dataclass(frozen=True)
class TemplateOptions:
    """Everything but the broadcast that `build_template` needs, read once from the settings.

    The runner keeps one and calls `build(content, clock)` per broadcast:

        options = TemplateOptions.from_settings(settings, verp_secret, signer)
        template = options.build(content, clock)
    """

    id_domain: str = ""
    signer: DkimSigner | None = None
    sign_per_recipient: bool = True
    secret: bytes = b""
    public_url: str = ""
    require_signature: bool = False
    bounce_domain: str = ""

    @classmethod
    def from_settings(
        cls, settings: Settings, secret: bytes, signer: DkimSigner | None
    ) -> TemplateOptions:
        dkim = dkim_settings(settings.dkim)
        return cls(
            id_domain=settings.message.id_domain,
            signer=signer,
            sign_per_recipient=dkim.sign_per_recipient,
            secret=secret,
            public_url=settings.http.public_url,
            require_signature=not dkim.allow_unsigned,
            bounce_domain=settings.message.bounce_domain,
        )

    def build(self, content: BroadcastContent, clock: Clock) -> MessageTemplate:
        return build_template(
            content, clock, self.id_domain, self.signer, self.sign_per_recipient,
            secret=self.secret, public_url=self.public_url,
            from_name=content.sender_name, reply_to=content.reply_to,
            require_signature=self.require_signature, bounce_domain=self.bounce_domain,
        )


def estimated_size(subject: str, body: str, sender: str, public_url: str = "") -> int:
    """An upper estimate of the size of a broadcast's mails, before it is stored."""
    content = BroadcastContent(0, sender, subject, body, Priority.NORMAL)
    template = build_template(
        content, SystemClock(), secret=b"x" * 32 if public_url else b"", public_url=public_url
    )
    return template.estimated_size


def encode_words(text: str, plain_max: int = _PLAIN_MAX) -> str:
    """`text` as RFC 2047 encoded words (UTF-8, base64) of at most 68 characters each, folded
    onto continuation lines; printable ASCII without "=?" up to `plain_max` characters is
    written as it is."""
    if text.isascii() and text.isprintable() and "=?" not in text and len(text) <= plain_max:
        return text
    words: list[str] = []
    chunk = bytearray()
    for char in text:
        encoded = char.encode("utf-8")
        if len(chunk) + len(encoded) > _WORD_BYTES:
            words.append(_word(bytes(chunk)))
            chunk.clear()
        chunk += encoded
    if chunk:
        words.append(_word(bytes(chunk)))
    return "\r\n ".join(words)


def _word(data: bytes) -> str:
    return "=?UTF-8?B?" + base64.b64encode(data).decode("ascii") + "?="


def _common_headers(
    content: BroadcastContent, clock: Clock, sender_domain: str, from_name: str, reply_to: str
) -> bytes:
    sender = smtp_path(content.sender)
    if not from_name:
        from_field = sender
    elif from_name.isascii() and len(from_name) <= _PLAIN_NAME_MAX:
        from_field = formataddr((from_name, sender))
    else:
        words = encode_words(from_name, plain_max=0)
        last = ("From: " + words).rsplit("\r\n", 1)[-1]
        # The address goes on a line of its own when the last word leaves no room for it.
        fold = " " if len(last) + len(sender) + 3 <= 78 else "\r\n "
        from_field = f"{words}{fold}<{sender}>"
    lines = [f"From: {from_field}"]
    if reply_to:
        lines.append(f"Reply-To: {smtp_path(reply_to)}")
    lines += [
        f"Subject: {encode_words(content.subject)}",
        # Japanese readers see the time as Japan Standard Time in their mail clients' raw view.
        f"Date: {format_datetime(clock.now().astimezone(_JST))}",
        "MIME-Version: 1.0",
        'Content-Type: text/plain; charset="UTF-8"',
        "Content-Transfer-Encoding: base64",
        # RFC 3834: machines (vacation responders) must not answer automatic mail.
        "Auto-Submitted: auto-generated",
        # Gmail's feedback loop reports complaints per these fields (campaign, sender).
        f"Feedback-ID: {content.id}:{content.priority.name.lower()}:{sender_domain}:mamoru",
    ]
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


# The link opens the recipient's settings page (confirm, groups, stop); only a POST stops.
_UNSUBSCRIBE_LINE = "\r\n--\r\n配信の設定・停止 / Settings, unsubscribe:\r\n"
# Above the foot, so a phone shows it right after the text (issue 13: read confirmation,
# answers, attachments and the report page are all reached from the personal page).
_PAGE_LINE = "\r\n▼確認しました・回答はこちら\r\n"


def _link_layout(
    text: str, personal_page: bool
) -> tuple[tuple[bytes, ...], tuple[tuple[str, str], ...]]:
    """The text around a mail's personal links, and the links (purpose, path) in order."""
    if not personal_page:
        return ((text + _UNSUBSCRIBE_LINE).encode("utf-8"), b"\r\n"), (("unsubscribe", "u"),)
    return (
        (text + _PAGE_LINE).encode("utf-8"), _UNSUBSCRIBE_LINE.encode("utf-8"), b"\r\n"
    ), ((PAGE, "m"), ("unsubscribe", "u"))


def preview_text(body: str, personal_page: bool, base_url: str) -> str:
    """The text a recipient reads, with stand-ins for their personal links (the staff
    screens' phone preview): the same layout ``_link_layout`` gives the real mails."""
    base = base_url.rstrip("/") or "https://(公開URL)"
    pieces, paths = _link_layout(_text(body), personal_page)
    out = [pieces[0].decode("utf-8")]
    for (_, path), piece in zip(paths, pieces[1:], strict=True):
        out += [f"{base}/{path}/(一人ずつのリンク)", piece.decode("utf-8")]
    return "".join(out).replace("\r\n", "\n")


def _text(body: str) -> str:
    """The body text in MIME canonical form: CRLF line ends, ending with one."""
    text = body.replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n"):
        text += "\n"
    return text.replace("\n", "\r\n")


def _wire_safe(lines: bytes) -> bool:
    """Whether header lines are as SMTP DATA sends them: CRLF line ends only (or nothing),
    no line starting with "."."""
    if not lines:
        return True
    crlf = lines.count(b"\r\n")
    return (
        lines.endswith(b"\r\n")
        and lines.count(b"\n") == crlf
        and lines.count(b"\r") == crlf
        and not lines.startswith(b".")
        and b"\n." not in lines
    )


def _encode_body(data: bytes) -> bytes:
    """Base64 in lines of 76 characters, CRLF line ends (RFC 2045 §6.8)."""
    return base64.encodebytes(data).replace(b"\n", b"\r\n")
