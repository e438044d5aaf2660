"""Mail building: one template per broadcast, a few header lines per recipient.

Every recipient of a broadcast gets the same body, so the body (UTF-8, base64 so no line comes
near the 1,000-byte limit docomo enforces) and the common headers are encoded once; per
recipient only ``To`` and ``Message-ID`` are written. That keeps the hot path to a few string
joins, and lets DKIM hash the body once per broadcast.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta, timezone
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from engine.address import domain_of, smtp_path
from engine.clock import Clock
from engine.dkim import DkimSigner, PreparedBody
from engine.queue.models import BroadcastContent

_JST = timezone(timedelta(hours=9), "JST")


@dataclass(frozen=True)
class MessageTemplate:
    broadcast_id: int
    sender: str
    sender_domain: str
    id_domain: str
    # Header lines shared by all recipients, CRLF-terminated.
    common_headers: bytes
    # The encoded body, CRLF line ends.
    body: bytes
    # DKIM: the signature shared by every recipient (signed once per broadcast), or, when each
    # mail is signed on its own, the signer and the body hash computed once.
    shared_signature: bytes = b""
    signer: DkimSigner | None = None
    prepared_body: PreparedBody | None = None

    def message_id(self, delivery_id: int) -> str:
        """Stable per delivery, so that a retry is recognisably the same mail."""
        return f"<mamoru.{self.broadcast_id}.{delivery_id}@{self.id_domain}>"

    def header_block(self, recipient: str, delivery_id: int) -> bytes:
        """The complete header block for one recipient, CRLF-terminated, no empty line."""
        own = f"To: {smtp_path(recipient)}\r\nMessage-ID: {self.message_id(delivery_id)}\r\n"
        return own.encode("ascii") + self.common_headers

    def render(self, recipient: str, delivery_id: int) -> bytes:
        """The whole mail for one recipient, CRLF line ends, DKIM-signed when configured."""
        headers = self.header_block(recipient, delivery_id)
        if self.signer is not None and self.prepared_body is not None:
            signature = self.signer.sign(headers, self.prepared_body, self.sender_domain)
        else:
            signature = self.shared_signature
        return signature + headers + b"\r\n" + self.body


def build_template(
    content: BroadcastContent,
    clock: Clock,
    id_domain: str = "",
    signer: DkimSigner | None = None,
    sign_per_recipient: bool = False,
) -> MessageTemplate:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = smtp_path(content.sender)
    msg["Subject"] = content.subject
    # Japanese readers see the time as Japan Standard Time in their mail clients' raw view.
    msg["Date"] = format_datetime(clock.now().astimezone(_JST))
    body = content.body if content.body.endswith("\n") else content.body + "\n"
    msg.set_content(body, charset="utf-8", cte="base64")
    raw = msg.as_bytes()
    headers, _, encoded_body = raw.partition(b"\r\n\r\n")
    sender_domain = domain_of(content.sender)
    common_headers = headers + b"\r\n"
    shared_signature = b""
    prepared = None
    if signer is not None and signer.signs_for(sender_domain):
        prepared = signer.prepare_body(encoded_body)
        if not sign_per_recipient:
            shared_signature = signer.sign(common_headers, prepared, sender_domain)
    return MessageTemplate(
        broadcast_id=content.id,
        sender=content.sender,
        sender_domain=sender_domain,
        id_domain=id_domain or sender_domain,
        common_headers=common_headers,
        body=encoded_body,
        shared_signature=shared_signature,
        signer=signer if (prepared is not None and sign_per_recipient) else None,
        prepared_body=prepared,
    )
