"""What every page needs, opened once: the people store, the queue, the link signer, settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request

from engine.message.links import LinkSigner
from engine.people import People
from engine.people.replies import ReplySender
from engine.platform.config import Settings
from engine.queue import Queue
from engine.twoway.personal import BroadcastFacts

#: Link purposes; the unsubscribe one is what engine/message/compose.py puts in every mail.
REGISTER = "register"
UNSUBSCRIBE = "unsubscribe"
# The personal page (engine.message.links.PAGE, naming a delivery) and the report page (naming a
# contact, engine.twoway.family.REPORT).
PAGE = "page"
REPORT = "report"


@dataclass(frozen=True)
class Site:
    settings: Settings
    people: People
    queue: Queue
    links: LinkSigner
    # Broadcasts' content and surveys, read once for all their guardians' pages.
    facts: BroadcastFacts = field(default_factory=BroadcastFacts)

    @property
    def replies(self) -> ReplySender:
        return ReplySender(self.queue, self.settings)


def site_of(request: Request) -> Site:
    """The Site of the application serving ``request`` (a FastAPI dependency)."""
    site: Site = request.app.state.site
    return site


async def open_site(settings: Settings, people: People, secret: bytes) -> Site:
    """The Site over an open people store; ``secret`` is the deployment's link secret (the
    database's VERP key, as engine/message/compose.py signs links with)."""
    return Site(settings, people, Queue(people.pool, people.sealer), LinkSigner(secret))
