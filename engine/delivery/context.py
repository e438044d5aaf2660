"""The engine's parts opened together from the settings: pool, queue, clock, VERP key."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from engine.delivery._routing import Router
from engine.delivery._runner import Runner
from engine.delivery._smtp import SmtpTransport
from engine.delivery._transport import Transport
from engine.message.dkim import DkimSigner, dkim_settings
from engine.people.store import check_key, open_sealer
from engine.platform.at_rest import seal_plaintext_rows
from engine.platform.clock import Clock, SystemClock
from engine.platform.config import Settings
from engine.platform.db import create_pool, dsn_for
from engine.platform.link_key import link_secret
from engine.queue import Queue
from engine.throttle import Shaper
from engine.throttle.build import build_shaper


@dataclass
class Engine:
    settings: Settings
    dsn: str
    pool: asyncpg.Pool
    queue: Queue
    clock: Clock
    _link_secret: bytes | None = field(default=None, init=False, repr=False)

    @classmethod
    async def open(cls, settings: Settings, clock: Clock | None = None) -> Engine:
        # Key problems are found at start, before anything is claimed.
        dkim = dkim_settings(settings.dkim)
        if dkim.keys:
            DkimSigner(dkim.keys)
        build_shaper(settings, clock or SystemClock())
        dsn = dsn_for(settings.database)
        pool = await create_pool(settings.database, dsn)
        sealer = await open_sealer(pool, settings.people)
        # One key for the people tables and the queue: a different one is refused at start.
        await check_key(pool, sealer)
        await seal_plaintext_rows(pool, sealer)
        return cls(settings, dsn, pool, Queue(pool, sealer), clock or SystemClock())

    async def close(self) -> None:
        await self.pool.close()

    async def verp_secret(self) -> bytes:
        """The configured VERP key, else the link key file's (engine/platform/link_key.py:
        made on first use, or moved there from the database where older releases kept it)."""
        if self._link_secret is None:
            self._link_secret = await link_secret(self.pool, self.settings)
        return self._link_secret

    async def runner(
        self,
        transport: Transport | None = None,
        router: Router | None = None,
        name: str | None = None,
    ) -> Runner:
        return Runner(
            self.settings,
            self.queue,
            router or Router(self.settings.routing, clock=self.clock),
            transport or SmtpTransport(self.settings.delivery),
            await self.verp_secret(),
            clock=self.clock,
            name=name,
            dsn=self.dsn,
            signer=self.signer(),
            shaper=self.shaper(),
        )

    def shaper(self) -> Shaper:
        return build_shaper(self.settings, self.clock)

    def signer(self) -> DkimSigner | None:
        return dkim_settings(self.settings.dkim).signer(self.clock)
