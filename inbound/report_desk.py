"""The report address: an empty mail from a registered guardian is answered with the link to
the report page (欠席・遅刻・早退・健康連絡).

``[people] report_address`` (e.g. ``report@city.example.jp``). The answer goes through the
queue (engine.twoway.family) to the sender's address, and only when that address is an
active, confirmed contact of a child at a school that takes reports: a forged sender gets the
link sent to the real guardian, who can ignore it, and strangers get nothing. At most
``[inbound] desk_per_sender_hour`` answers to one address an hour and
``[inbound] desk_per_minute`` in all a minute (inbound/desk_limits.py), at normal priority.
Logged by domain only, never the address.
"""

from __future__ import annotations

import logging

import asyncpg

from engine.message.compose import LINK_LIFETIME
from engine.message.links import LinkSigner
from engine.people import People
from engine.people.contacts import find_contact
from engine.platform.clock import Clock
from engine.platform.config import Settings
from engine.platform.errors import InputError
from engine.queue import Queue
from engine.twoway.family import REPORT, accepts_reports, send_report_link
from inbound.desk_limits import desk_allows

log = logging.getLogger(__name__)

class ReportDesk:
    """Knows the report address and answers the mails sent to it."""

    def __init__(self, settings: Settings, pool: asyncpg.Pool, secret: bytes, clock: Clock):
        self.settings = settings
        self.pool = pool
        self.clock = clock
        self.links = LinkSigner(secret) if secret else None
        self.address = settings.people.report_address.strip().lower()
        self._people: People | None = None

    def match(self, rcpt: str) -> bool:
        return bool(self.address) and rcpt.strip().strip("<>").lower() == self.address

    async def answer(self, mail_from: str) -> bool:
        """Mail the report page's link to ``mail_from``; False when it is not answered."""
        domain = mail_from.rpartition("@")[2] or "?"
        if not mail_from or self.links is None:
            log.info("report mail with a null sender: not answered")
            return False
        if self._people is None:
            self._people = await People.open(self.pool, self.settings.people, self.clock)
        people = self._people
        try:
            contact_id = await find_contact(people, mail_from)
        except InputError:
            contact_id = None
        if contact_id is None or not await accepts_reports(people, contact_id):
            log.info("report mail from @%s: no contact with a school taking reports", domain)
            return False
        now = self.clock.now()
        if not await desk_allows(self.pool, people.sealer, self.settings.inbound, "report",
                                 mail_from, now):
            log.info("report mail from @%s: over the desk's limits, not answered", domain)
            return False
        token = self.links.token(REPORT, contact_id, now + LINK_LIFETIME)
        url = f"{self.settings.http.public_url.rstrip('/')}/report/{token}"
        await send_report_link(Queue(self.pool, people.sealer), self.settings, mail_from, url, now)
        log.info("report mail from @%s answered with the report page's link", domain)
        return True
