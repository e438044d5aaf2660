"""Mail people send us: empty mail to register (answered with a personal, signed, expiring
link) and mail to a List-Unsubscribe ``mailto:`` address (the recipient leaves).

The board's address is ``[people] registration_address`` (e.g. ``entry@city.example.jp``);
``entry-<school code>@`` the same domain is the school's (its public groups are offered). The
reply goes to the envelope sender through the queue (engine.people.replies) and names a
registration request; only whoever reads that mailbox can complete it, so a forged sender
gets nothing but a mail to the real owner, who can ignore it.

Not answered (logged by domain only, never the address):
- a null sender (a bounce or an auto-reply must not start a registration);
- a sender on the suppression list (unless only by its own one-click unsubscribe): it bounced
  hard or complained, so a reply would fail or be
  unwanted, and a forged sender must not get mail sent to such an address. An operator who
  knows the address works again takes it off the list (``mamoru suppression remove``);
- more than ``[inbound] desk_per_sender_hour`` mails from one address in an hour, or more
  than ``[inbound] desk_per_minute`` in all in a minute (inbound/desk_limits.py), or more than
  ``MAX_REQUESTS_PER_HOUR`` requests from one address in an hour.

The reply is sent at normal priority (engine.people.replies): it never overtakes an emergency.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from engine.bounce.suppression import Suppressions
from engine.message.links import LinkSigner
from engine.people import People
from engine.people.choices import BY_MAIL, leave_address
from engine.people.registration import UNSUBSCRIBED, create_request
from engine.people.replies import ReplySender
from engine.platform.clock import Clock
from engine.platform.config import Settings
from engine.platform.errors import InputError
from engine.queue import Queue
from inbound.desk_limits import desk_allows

log = logging.getLogger(__name__)

#: The link purpose the registration page verifies (admin_api.site.REGISTER).
REGISTER = "register"


@dataclass(frozen=True)
class Entry:
    """A registration address: the board's (school None) or a school's, by its code."""

    school: str | None


class RegistrationDesk:
    """Knows the registration addresses and answers the mails sent to them."""

    def __init__(self, settings: Settings, pool: asyncpg.Pool, secret: bytes, clock: Clock):
        self.settings = settings
        self.pool = pool
        self.clock = clock
        self.links = LinkSigner(secret) if secret else None
        address = settings.people.registration_address.strip()
        self.local, _, domain = address.rpartition("@")
        self.domain = domain.lower()
        self._people: People | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.local and self.settings.http.public_url and self.links)

    def match(self, rcpt: str) -> Entry | None:
        """The registration address ``rcpt`` is (the board's, or a school's), or None."""
        if not self.enabled:
            return None
        local, _, domain = rcpt.strip().strip("<>").rpartition("@")
        if domain.lower() != self.domain:
            return None
        # Our own addresses are matched without case: people type them from paper.
        if local.lower() == self.local.lower():
            return Entry(None)
        prefix = f"{self.local}-".lower()
        if local.lower().startswith(prefix) and local[len(prefix):]:
            return Entry(local[len(prefix):])
        return None

    async def people(self) -> People:
        if self._people is None:
            self._people = await People.open(self.pool, self.settings.people, self.clock)
        return self._people

    async def answer(self, mail_from: str, school: str | None) -> bool:
        """Reply to ``mail_from`` with a registration link; False when it is not answered."""
        domain = mail_from.rpartition("@")[2] or "?"
        if not mail_from or self.links is None:
            log.info("registration mail with a null sender: not answered")
            return False
        people = await self.people()
        entry = (await Suppressions(self.pool, people.sealer).lookup([mail_from])).get(mail_from)
        # The person's own one-click unsubscribe is no reason to refuse a new registration.
        if entry is not None and entry.reason != UNSUBSCRIBED:
            log.info("registration mail from a suppressed address @%s: not answered", domain)
            return False
        if not await desk_allows(self.pool, people.sealer, self.settings.inbound, "register",
                                 mail_from, self.clock.now()):
            log.info("registration mail from @%s: over the desk's limits, not answered", domain)
            return False
        lifetime = timedelta(hours=self.settings.people.registration_link_hours)
        try:
            request = await create_request(people, mail_from, school, lifetime)
        except InputError as exc:
            log.info("registration mail from @%s not answered: %s", domain, exc)
            return False
        token = self.links.token(REGISTER, request.id, request.expires_at)
        url = f"{self.settings.http.public_url.rstrip('/')}/r/{token}"
        now = self.clock.now()
        delivery = await ReplySender(Queue(self.pool, people.sealer), self.settings).send_link(
            request.address, url, request.expires_at, now
        )
        log.info("registration request %d from @%s answered (broadcast %d)", request.id, domain,
                 delivery)
        return True

    async def unsubscribe(self, delivery_id: int) -> bool:
        """A mail to a delivery's mailto: unsubscribe address: its recipient leaves at once
        (as with the one-click POST); False if the delivery is gone."""
        people = await self.people()
        address = await Queue(self.pool, people.sealer).recipient_of(delivery_id)
        if address is None:
            log.info("unsubscribe mail for delivery %d, which no longer exists", delivery_id)
            return False
        await leave_address(people, address, BY_MAIL)
        log.info("unsubscribed by mail: the recipient of delivery %d", delivery_id)
        return True
