"""Guardians' replies to a broadcast mail: kept for staff, answered once, automatically.

A mail to a service address (the From / Reply-To of broadcasts, ``inbound.service_addresses``)
is a reply when its ``In-Reply-To`` (else ``References``) names one of our Message-IDs, which
carry a MAC (``engine.twoway.delivery_of_message_id``). It is then stored sealed with its
broadcast (``engine.twoway.store_reply``) instead of in ``inbound_messages``.

It is answered with one automatic mail pointing to the recipient's personal page
(``engine.message.links.personal_page_url``), through the queue like registration replies, at
most once per delivery replied to (one per broadcast and address: ``twoway.answers``). Following
RFC 3834 section 2, nothing is answered (nor taken as a reply) that is itself automatic: a null
sender, ``Auto-Submitted`` other than ``no``, ``Precedence: bulk/junk/list``, a ``List-Id``, or
a delivery report. A reply to the automatic answer itself is never answered (no loops).

The answer goes to the address the first mail was delivered to, not to the reply's sender: the
personal page link then reaches nobody who did not have it already, even when a reply's From
is forged or a guardian wrote from another address.
"""

from __future__ import annotations

import email
import email.policy
import logging
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from email.utils import parseaddr

import asyncpg

from engine.bounce.suppression import Suppressions
from engine.people import People
from engine.platform.clock import Clock
from engine.platform.config import Settings
from engine.platform.errors import InputError
from engine.queue import Queue
from engine.twoway import delivery_of_message_id, store_reply
from engine.twoway.answers import answer_reply

log = logging.getLogger(__name__)

_BULK = {"bulk", "junk", "list"}


def is_automatic(mail_from: str, msg: EmailMessage) -> bool:
    """Whether the mail was sent by a program (RFC 3834 section 2, RFC 2919, RFC 3464)."""
    if not mail_from:
        return True
    auto = str(msg.get("Auto-Submitted", "no")).split(";")[0].strip().lower()
    if auto and auto != "no":
        return True
    if str(msg.get("Precedence", "")).strip().lower() in _BULK:
        return True
    if msg.get("List-Id") is not None:
        return True
    return msg.get_content_type() == "multipart/report"


def _answered_header(msg: EmailMessage) -> str:
    """The Message-ID(s) the mail answers: In-Reply-To, else References."""
    return str(msg.get("In-Reply-To") or msg.get("References") or "")


def _text_of(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        text = part.get_content()
    except (LookupError, ValueError):
        payload = part.get_payload(decode=True)
        text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    # Stored with plain line ends: the mail's CRLF is transport, not text.
    return str(text).replace("\r\n", "\n").replace("\x00", "")


class ReplyDesk:
    """Recognises replies among service mail, keeps them and answers them."""

    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        secret: bytes,
        clock: Clock,
        people: Callable[[], Awaitable[People]],
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.secret = secret
        self.clock = clock
        self.people = people

    async def take(self, mail_from: str, raw: bytes) -> bool:
        """Store the mail as a reply and answer it; False when it is no reply of a guardian
        to our mail (the caller then stores it as service mail)."""
        if not self.secret:
            return False
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        answered = _answered_header(msg)
        named = delivery_of_message_id(self.secret, answered)
        if named is None or is_automatic(mail_from, msg):
            return False
        people = await self.people()
        sender = str(msg.get("From", "") or mail_from)
        try:
            reply = await store_reply(
                people, self.secret, answered, parseaddr(sender)[1] or mail_from,
                str(msg.get("Subject", "")).replace("\x00", ""), _text_of(msg),
            )
        except InputError:
            return False
        log.info("reply to broadcast %d stored (delivery %d)", named[0], reply.delivery_id)
        if not self.settings.http.public_url:
            return True
        queue = Queue(self.pool, people.sealer)
        recipient = await queue.recipient_of(reply.delivery_id)
        if recipient is None:
            return True
        listed = (await Suppressions(self.pool, people.sealer).lookup([recipient])).get(recipient)
        if listed is not None:
            log.info("reply to delivery %d: its address is suppressed, not answered",
                     reply.delivery_id)
            return True
        answer = await answer_reply(
            people, queue, self.settings, self.secret, reply.delivery_id, recipient,
        )
        if answer is not None:
            log.info("reply to delivery %d answered (broadcast %d)", reply.delivery_id, answer)
        return True
